#!/usr/bin/env bash
# Errors under mpirun print once and every rank stops together (launch/cli_util.h, run_mpi):
#  - an error every rank raises (a bad option, before MPI starts; a config the data refuses):
#    one copy from rank 0, the exit code of the error;
#  - an error on one rank alone (a failure planted after a training step; a bad item id in the
#    rows only the last rank reads): the failed rank prints it once, naming itself, the others
#    stop within seconds with one `stopped (rank R of N): rank F of N failed` line each, and
#    mpirun prints no MPI_ABORT banner;
#  - with --comm-timeout 0 (blocking collectives, which cannot hear of it) MPI_Abort ends the
#    job after 10 s, the message still printed once.
# usage: errors_once.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
bad() { echo "FAIL $*"; fails=$((fails+1)); }
# run3 CMD...: runs CMD on 3 ranks; sets out, rc, took (seconds).
run3() {
  local t0; t0=$(date +%s.%N)
  out=$(timeout 120 "$mpiexec" --oversubscribe -np 3 "$@" 2>&1); rc=$?
  took=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
}
# check WHAT RC MESSAGE COUNT MAX_SECONDS: exit code, the message exactly COUNT times, no banner,
# the job over within MAX_SECONDS.
check() {
  local what=$1 want_rc=$2 msg=$3 count=$4 max=$5 why="" c
  [ "$rc" -eq "$want_rc" ] || why="exit $rc, expected $want_rc"
  c=$(grep -cF -- "$msg" <<<"$out")
  [ "$c" -eq "$count" ] || why="$why; '$msg' printed $c times"
  grep -q "MPI_ABORT was invoked" <<<"$out" && why="$why; MPI_ABORT banner"
  python3 -c "import sys; sys.exit(0 if $took < $max else 1)" || why="$why; took ${took}s (limit ${max}s)"
  if [ -n "$why" ]; then bad "$what: $why"; echo "$out" | head -8; else echo "ok   $what (exit $rc, ${took}s)"; fi
}

"$bin" synth --out d.h5 --users 3000 --items 1000 --interactions 100000 >/dev/null || exit 1
train=(train --data d.h5 --epochs 2 --dim 8 --eval-every 0 --final-eval false --quiet)

echo "== an error on every rank"
run3 "$bin" train --data d.h5 --dim abc
check "bad option on 3 ranks" 2 "error: option --dim: 'abc' is not an integer (see shardrec train --help)" 1 20
run3 "$bin" "${train[@]}" --model gmf
check "a model the data refuses, on 3 ranks" 1 "has no ratings" 1 20
grep -q "(rank" <<<"$out" && bad "an error of every rank names a rank: $(grep -m1 '(rank' <<<"$out")"

echo "== an error on one rank alone"
SHARDREC_TEST_FAIL_AT=1:3 run3 "$bin" "${train[@]}"
check "planted failure on rank 1" 1 "error (rank 1 of 3): test failure planted on rank 1 after step 3" 1 20
c=$(grep -cE "^stopped \(rank [02] of 3\): rank 1 of 3 failed; see its error" <<<"$out")
[ "$c" -eq 2 ] || { bad "planted failure: $c 'stopped' lines from ranks 0 and 2, expected 2"; echo "$out" | head -8; }
# The last rank owns the last users: a bad item id among their rows is its error alone.
cp d.h5 badid.h5
python3 - <<'EOF' || exit 1
import h5py
with h5py.File("badid.h5", "r+") as f:
    d = f["/train/item"]
    d[d.shape[0] - 3] = 1000000
EOF
run3 "$bin" train --data badid.h5 --epochs 1 --quiet
check "bad item id in the last rank's rows" 1 "error (rank 2 of 3): badid.h5: dataset /train/item index" 1 20
c=$(grep -c "^stopped (rank [01] of 3): rank 2 of 3 failed" <<<"$out")
[ "$c" -eq 2 ] || { bad "bad item id: $c 'stopped' lines, expected 2"; echo "$out" | head -8; }

echo "== blocking collectives (--comm-timeout 0): MPI_Abort after 10 s"
SHARDREC_TEST_FAIL_AT=1:3 run3 "$bin" "${train[@]}" --comm-timeout 0
n=$(grep -cF "error (rank 1 of 3): test failure planted" <<<"$out")
if [ "$rc" -ne 1 ] || [ "$n" -ne 1 ] || ! python3 -c "import sys; sys.exit(0 if $took < 30 else 1)"; then
  bad "--comm-timeout 0: exit $rc, message $n times, ${took}s"; echo "$out" | head -8
else echo "ok   --comm-timeout 0 (exit $rc, ${took}s)"; fi

finish "all errors-once cases ok"
