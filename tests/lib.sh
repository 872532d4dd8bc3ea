# What the shell tests (tests/*.sh) share. A script sources it relative to its own location,
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# and gets:
#   setup SHARDREC WORKDIR [MPIEXEC]  bin, dir, mpiexec (default mpiexec); WORKDIR emptied and
#                                     made the current directory (exit 1 if it cannot be); fails=0
#   ok MSG                            prints "ok   MSG"
#   bad MSG                           prints "FAIL: MSG" and counts a failure in fails
#   mpi NP CMD...                     CMD on NP ranks: "$mpiexec" --oversubscribe -np NP CMD...
#   finish MSG                        prints MSG if nothing failed; exits with the failure count
#   netns_wire P H NET COUNT          "hosts" P H 1 .. P H COUNT (network namespaces, e.g. srh1) on
#                                     a bridge Pb, each by a veth pair Pv<i> <-> eth0 with address
#                                     NET.<i>/24, eth0 and lo up; on failure sets netns_error, returns 1
#   netns_teardown P H COUNT          kills what runs in those namespaces, removes them, the links
#                                     and the bridge, by name (what does not exist is passed over)
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

netns_wire() {
  local p=$1 h=$2 net=$3 count=$4 i
  ip link add "${p}b" type bridge 2>/dev/null && ip link set "${p}b" up ||
    { netns_error="cannot make a bridge (network namespaces need root and a kernel that allows them)"; return 1; }
  for i in $(seq "$count"); do
    { ip netns add "${p}$h$i" && ip link add "${p}v$i" type veth peer name eth0 netns "${p}$h$i" &&
      ip link set "${p}v$i" master "${p}b" up &&
      ip netns exec "${p}$h$i" ip addr add "$net.$i/24" dev eth0 &&
      ip netns exec "${p}$h$i" ip link set eth0 up && ip netns exec "${p}$h$i" ip link set lo up; } 2>/dev/null ||
      { netns_error="cannot wire host $h$i"; return 1; }
  done
}
netns_teardown() {
  local p=$1 h=$2 count=$3 i
  for i in $(seq "$count"); do
    ip netns pids "${p}$h$i" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "${p}$h$i" 2>/dev/null
    ip link del "${p}v$i" 2>/dev/null
  done
  ip link del "${p}b" 2>/dev/null
  return 0
}
