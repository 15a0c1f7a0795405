#!/usr/bin/env bash
# The test runner behind `make test`: the cmocka unit binaries in
# $BUILD/tests, then the integration scripts tests/integration/test_*.sh
# against a private stack (scripts/stack.sh) that is stopped on any exit.
#
#   tests/run.sh unit|integration|all
#
# Counts one check per unit binary (its exit status) and one per PASS:/FAIL:
# line of an integration file, plus one that the installed Debian packages
# are the same at the end as at the start (no test installs or upgrades a
# package: scripts/install-deps.sh brings them all first); ends with the line
# "N passed, N failed".
# Environment: BUILD (default build/rel), PGS_ENGINE (opensearch or
# elasticsearch), PGS_TESTS (an extended regex on file names: only matching
# tests run), PGS_TEST_TIMEOUT (seconds per integration file, default 900),
# PGS_VERBOSE=1 (print every file's output), PGS_KEEP=1 (keep the stack
# folder; by default only its logs/ are kept, and only after a failure).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build/rel}
MODE=${1:-all}
TEST_TIMEOUT=${PGS_TEST_TIMEOUT:-900}

PASSED=0
FAILED=0
FAILURES=()
STACK_DIR=
CURRENT_PID=
INTERRUPTED=

case "$MODE" in
unit | integration | all) ;;
*)
    echo "usage: tests/run.sh unit|integration|all" >&2
    exit 2
    ;;
esac

selected() {
    [ -z "${PGS_TESTS:-}" ] || [[ $1 =~ ${PGS_TESTS} ]]
}

record() { # record pass|fail NAME [WHY]
    if [ "$1" = pass ]; then
        PASSED=$((PASSED + 1))
    else
        FAILED=$((FAILED + 1))
        FAILURES+=("$2${3:+: $3}")
    fi
}

run_unit() {
    local bin name rc found=0
    for bin in "$BUILD"/tests/test_*; do
        [ -f "$bin" ] && [ -x "$bin" ] || continue
        name=$(basename "$bin")
        selected "$name" || continue
        found=1
        echo "==> unit: $name"
        timeout --foreground -k 10 "${PGS_UNIT_TIMEOUT:-300}" "$bin" </dev/null 2>&1
        rc=$?
        if [ "$rc" -eq 0 ]; then
            echo "PASS: unit/$name"
            record pass "unit/$name"
        else
            echo "FAIL: unit/$name: exit status $rc"
            record fail "unit/$name" "exit status $rc"
        fi
    done
    [ "$found" = 1 ] ||
        echo "==> unit: no test binaries in $BUILD/tests${PGS_TESTS:+ match PGS_TESTS=$PGS_TESTS} (make unit-tests builds them)"
}

# Stops the current test's process group and the stack; keeps the logs of a
# failed run. Runs once, whether the suite ends, fails or is interrupted.
cleanup() {
    if [ -n "$CURRENT_PID" ]; then
        kill -TERM -- "-$CURRENT_PID" 2>/dev/null
        sleep 1
        kill -KILL -- "-$CURRENT_PID" 2>/dev/null
        CURRENT_PID=
    fi
    [ -n "$STACK_DIR" ] || return 0
    scripts/stack.sh stop "$STACK_DIR" || echo "run.sh: could not stop the stack in $STACK_DIR" >&2
    if [ "${PGS_KEEP:-}" = 1 ]; then
        echo "==> stack folder kept: $STACK_DIR"
    elif [ "$FAILED" -gt 0 ] || [ -n "$INTERRUPTED" ]; then
        rm -rf "${STACK_DIR:?}/pg" "$STACK_DIR/redis" "$STACK_DIR/engine"
        echo "==> logs kept: $STACK_DIR/logs"
    else
        rm -rf "$STACK_DIR"
    fi
    STACK_DIR=
}

# run_file FILE: runs one test file in its own process group (so everything
# it started can be stopped at once) with a time limit; counts its checks.
run_file() {
    local file=$1 name log t0 rc timed_out=0 deadline p f i line
    name=$(basename "$file" .sh)
    log=$STACK_DIR/logs/$name.log
    t0=$SECONDS
    deadline=$((SECONDS + TEST_TIMEOUT))
    setsid bash "$file" >"$log" 2>&1 </dev/null &
    CURRENT_PID=$!
    while kill -0 "$CURRENT_PID" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            timed_out=1
            kill -TERM -- "-$CURRENT_PID" 2>/dev/null
            for ((i = 0; i < 25; i++)); do
                kill -0 "$CURRENT_PID" 2>/dev/null || break
                sleep 0.2
            done
            kill -KILL -- "-$CURRENT_PID" 2>/dev/null
            break
        fi
        sleep 0.2
    done
    wait "$CURRENT_PID"
    rc=$?
    # Whatever the file left running dies with it.
    kill -TERM -- "-$CURRENT_PID" 2>/dev/null
    CURRENT_PID=
    [ "$timed_out" = 0 ] || echo "FAIL: $name: timed out after ${TEST_TIMEOUT}s" >>"$log"
    f=$(grep -c '^FAIL: ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL: $name: exited with status $rc and no FAIL line" >>"$log"
        f=1
    fi
    p=$(grep -c '^PASS: ' "$log")
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    while IFS= read -r line; do
        line=${line#FAIL: }
        [[ $line == "$name:"* ]] || line="$name: $line"
        FAILURES+=("$line")
    done < <(grep '^FAIL: ' "$log")
    if [ "$f" -gt 0 ]; then
        printf '==> %-40s %3d passed, %d FAILED (%ds)\n' "$name" "$p" "$f" $((SECONDS - t0))
        echo "---- $log ----"
        cat "$log"
        echo "----"
    else
        printf '==> %-40s %3d passed (%ds)\n' "$name" "$p" $((SECONDS - t0))
        [ "${PGS_VERBOSE:-}" != 1 ] || cat "$log"
    fi
}

run_integration() {
    local files=() file
    for file in tests/integration/test_*.sh; do
        [ -f "$file" ] || continue
        selected "$(basename "$file")" && files+=("$file")
    done
    if [ ${#files[@]} -eq 0 ]; then
        echo "==> integration: no test files${PGS_TESTS:+ match PGS_TESTS=$PGS_TESTS}"
        return
    fi

    STACK_DIR=$(mktemp -d /tmp/pgsync-c-test.XXXXXX) || exit 1
    chmod 755 "$STACK_DIR"
    echo "==> integration: starting the stack (${PGS_ENGINE:-opensearch}) in $STACK_DIR"
    # The stack watches this process too, and stops itself if we are killed.
    if ! PGS_STACK_OWNER_PID=$$ scripts/stack.sh start "$STACK_DIR"; then
        echo "FAIL: stack: could not start the test stack"
        record fail stack "could not start the test stack"
        return
    fi
    # shellcheck disable=SC1091
    . "$STACK_DIR/env"
    unset PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGOPTIONS
    export PATH=$ROOT/bin:$PATH PGS_ROOT=$ROOT PGS_BUILD=$BUILD PGS_RUNNER_PID=$$

    for file in "${files[@]}"; do
        run_file "$file"
    done
}

# The installed packages, one "name version status" line each, sorted.
package_set() {
    dpkg-query -W -f='${binary:Package} ${Version} ${db:Status-Abbrev}\n' 2>/dev/null | sort
}

# One check: the package set recorded at the start is the one installed now.
check_packages() {
    local now changed
    [ -n "$PACKAGES_AT_START" ] || return 0
    now=$(mktemp) || return 0
    package_set >"$now"
    changed=$(diff "$PACKAGES_AT_START" "$now" | sed -n 's/^\([<>]\) /\1/p' | head -n 20 | paste -sd' ')
    rm -f "$now" "$PACKAGES_AT_START"
    PACKAGES_AT_START=
    if [ -z "$changed" ]; then
        echo "PASS: packages: the installed package set did not change during the run"
        record pass packages
    else
        echo "FAIL: packages: the installed package set changed during the run" \
            "(< before, > after): $changed"
        record fail packages "the installed package set changed during the run: $changed"
    fi
}

PACKAGES_AT_START=
if command -v dpkg-query >/dev/null 2>&1; then
    PACKAGES_AT_START=$(mktemp /tmp/pgsync-c-packages.XXXXXX) && package_set >"$PACKAGES_AT_START"
fi

trap 'cleanup; [ -z "$PACKAGES_AT_START" ] || rm -f "$PACKAGES_AT_START"' EXIT
trap 'INTERRUPTED=1; echo "run.sh: interrupted" >&2; exit 130' INT
trap 'INTERRUPTED=1; echo "run.sh: terminated" >&2; exit 143' TERM HUP

[ "$MODE" = integration ] || run_unit
[ "$MODE" = unit ] || run_integration
cleanup
check_packages

if [ ${#FAILURES[@]} -gt 0 ]; then
    echo
    echo "Failed:"
    printf '  %s\n' "${FAILURES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ $((PASSED + FAILED)) -gt 0 ]
