#!/usr/bin/env bash
# The chaos test by hand, longer and repeated: starts a private stack
# (scripts/stack.sh), runs tests/integration/test_80_chaos.sh RUNS times for
# SECONDS each, stops the stack, and prints one figures line per run and a
# verdict. A run that fails keeps its output (and the stack's logs) in the
# results folder: a flaky result is a bug to report, with those logs.
#
#   scripts/chaos.sh [SECONDS [RUNS]]      default 300 s, 3 runs
#
# Environment: PGS_CHAOS_SEED (the first run's seed; later runs add 1),
# PGS_CHAOS_GAP, PGS_CHAOS_PAUSE (see test_80_chaos.sh), PGS_BIN (binaries
# to test, e.g. a `make SANITIZE=1 BIN=/tmp/san` build), PGS_ENGINE,
# PGS_CHAOS_OUT (results folder, default /tmp/pgsync-chaos.<pid>).
set -uo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
SECS=${1:-300}
RUNS=${2:-3}
OUT=${PGS_CHAOS_OUT:-/tmp/pgsync-chaos.$$}
mkdir -p "$OUT"
chmod 755 "$OUT"
STACK=$OUT/stack

# shellcheck disable=SC2317
stop_stack() { "$ROOT/scripts/stack.sh" stop "$STACK" >/dev/null 2>&1; }
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
PGS_STACK_OWNER_PID=$$ "$ROOT/scripts/stack.sh" start "$STACK" || exit 1

failed=0
for ((i = 1; i <= RUNS; i++)); do
    seed=
    [ -z "${PGS_CHAOS_SEED:-}" ] || seed=$((PGS_CHAOS_SEED + i - 1))
    echo "==> chaos run $i/$RUNS: ${SECS}s${seed:+, seed $seed}"
    (
        unset PGDATABASE
        export PGS_STACK_DIR=$STACK PGS_ROOT=$ROOT PGS_CHAOS_SECONDS=$SECS
        [ -z "$seed" ] || export PGS_CHAOS_SEED=$seed
        bash "$ROOT/tests/integration/test_80_chaos.sh"
    ) >"$OUT/run-$i.out" 2>&1
    rc=$?
    grep -E '^(FAIL|chaos figures)' "$OUT/run-$i.out"
    if [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
        echo "    run $i FAILED (exit $rc): $OUT/run-$i.out"
    fi
done
cp -r "$STACK/logs" "$OUT/logs" 2>/dev/null
echo "==> $((RUNS - failed)) of $RUNS chaos runs passed; output and logs in $OUT"
[ "$failed" -eq 0 ]
