# What the shell tests (tests/*.sh) share. A script sources it relative to its own location,
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# and gets:
#   setup SHARDREC WORKDIR [MPIEXEC]  bin, dir, mpiexec (default mpiexec); WORKDIR emptied and
#                                     made the current directory (exit 1 if it cannot be); fails=0
#   ok MSG                            prints "ok   MSG"
#   bad MSG                           prints "FAIL: MSG" and counts a failure in fails
#   mpi NP CMD...                     CMD on NP ranks: "$mpiexec" --oversubscribe -np NP CMD...
#   finish MSG                        prints MSG if nothing failed; exits with the failure count
# A script may define its own bad (or mpi) after sourcing this, where its messages differ.

setup() {
  bin=$1; dir=$2; mpiexec=${3:-mpiexec}
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir" || exit 1
  fails=0
}
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
mpi() { "$mpiexec" --oversubscribe -np "$@"; }
finish() {
  [ "$fails" -eq 0 ] && echo "$1"
  exit "$fails"
}
