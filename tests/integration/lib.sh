# Sourced by each tests/integration/test_*.sh. Owns the check lines that
# tests/run.sh counts (PASS: NAME / FAIL: NAME: why), helpers to reach the
# stack (psql, redis-cli, the search engine's HTTP API) and the daemons a test
# file runs in the background, which all die when the file exits.
#
# One file by hand, against a stack started with scripts/stack.sh:
#   PGS_STACK_DIR=/tmp/stk bash tests/integration/test_00_stack.sh
#
# lib.sh owns the EXIT trap of the test file: do not set another one.
# It sets no shell options; helpers return non-zero on failure.

if [ -z "${ELASTICSEARCH_URL:-}" ] && [ -f "${PGS_STACK_DIR:-/nonexistent}/env" ]; then
    . "$PGS_STACK_DIR/env"
fi
if [ -z "${PG_PORT:-}" ] || [ -z "${REDIS_PORT:-}" ] || [ -z "${ELASTICSEARCH_URL:-}" ]; then
    echo "FAIL: $(basename "$0" .sh): no test stack: run tests/run.sh, or set PGS_STACK_DIR"
    exit 1
fi
PGS_ROOT=${PGS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
case ":$PATH:" in *":$PGS_ROOT/bin:"*) ;; *) PATH=$PGS_ROOT/bin:$PATH ;; esac
TEST_NAME=$(basename "$0" .sh)
mkdir -p "$PGS_STACK_DIR/logs"

_PGS_FAILS=0
declare -A _PGS_BG=() # name -> pid of a running background process
_PGS_BG_NAMES=()      # every name started, for the log tails on failure
_PGS_WATCH=
# tests/run.sh runs each file in its own process group; if the runner itself
# is SIGKILLed, this stops the group (the file and its daemons) too.
if [ -n "${PGS_RUNNER_PID:-}" ] && [ "$(ps -o pgid= $$ | tr -d ' ')" = "$$" ]; then
    (
        trap - EXIT INT TERM
        while kill -0 "$PGS_RUNNER_PID" 2>/dev/null; do sleep 2; done
        kill -TERM -- "-$$"
    ) >/dev/null 2>&1 </dev/null &
    _PGS_WATCH=$!
fi
# --- checks ----------------------------------------------------------------------

pass() {
    echo "PASS: $1"
}

# fail NAME WHY: reports and carries on; the file then exits non-zero.
fail() {
    echo "FAIL: $1: ${2:-failed}"
    _PGS_FAILS=$((_PGS_FAILS + 1))
    return 0
}

# check_eq NAME EXPECTED ACTUAL: returns non-zero when they differ.
check_eq() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1" "expected '$2', got '$3'"
        return 1
    fi
}

# wait_until SECONDS CMD...: runs CMD (output discarded) every 0.2 s until it
# succeeds (returns 0) or SECONDS (may be fractional) have passed (returns 1).
wait_until() {
    local limit_us deadline
    limit_us=$(awk -v t="$1" 'BEGIN { printf "%d", t * 1000000 }')
    shift
    deadline=$((${EPOCHREALTIME/./} + limit_us))
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "${EPOCHREALTIME/./}" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# unique_name PREFIX: a fresh lowercase name, valid for a database, an index,
# a stream or a slot (letters, digits, _; at most 63 bytes).
unique_name() {
    local p
    p=$(printf '%s' "${1:-t}" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_')
    echo "${p:0:40}_$((${EPOCHREALTIME/./} % 10000000000))_$RANDOM"
}

# --- PostgreSQL ------------------------------------------------------------------

# new_db NAME: creates a fresh database, exports PGDATABASE (and PG_DATABASE)
# and prints its name. Call it directly, not in $(...), or the export is lost:
#   new_db books; db=$PGDATABASE
new_db() {
    local db
    db=$(unique_name "${1:-db}")
    psql -XAtq -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres \
        -c "CREATE DATABASE \"$db\"" >/dev/null || return 1
    export PGDATABASE=$db PG_DATABASE=$db
    echo "$db"
}

# psql_q SQL: runs SQL (or stdin when no argument) in $PGDATABASE (default
# postgres), unaligned and without headers; stops at the first error.
psql_q() {
    if [ $# -gt 0 ]; then printf '%s\n' "$*"; else cat; fi |
        psql -XAtq -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" \
            -d "${PGDATABASE:-postgres}" -f -
}

# --- Redis -------------------------------------------------------------------------

# free_port: a loopback TCP port below the ephemeral range that nobody listens on,
# not handed out before by this shell (for servers a test starts itself).
declare -A _pgs_ports=()
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [ -z "${_pgs_ports[$p]:-}" ] || continue
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && continue
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        _pgs_ports[$p]=1
        echo "$p"
        return 0
    done
    return 1
}

# healthz PORT: the body of a daemon's /healthz; healthz_code PORT: its HTTP status.
healthz() { curl -s --max-time 5 "http://127.0.0.1:$1/healthz"; }
healthz_code() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$1/healthz"; }

redis_q() {
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"
}

# --- the search engine -------------------------------------------------------------

# es METHOD PATH [BODY]: prints the response body; non-zero on HTTP >= 400.
# BODY is JSON (NDJSON for _bulk; the final newline is added), or @FILE.
es() {
    local method=$1 path=$2 body=${3:-} ctype=application/json
    [[ $path == /* ]] || path=/$path
    if [[ $path == *_bulk* ]]; then
        ctype=application/x-ndjson
        # $(...) strips the final newline that _bulk requires.
        [[ $body == @* || $body == *$'\n' ]] || body+=$'\n'
    fi
    if [ $# -ge 3 ]; then
        curl -sS --fail-with-body --max-time 60 -X "$method" -H "Content-Type: $ctype" \
            --data-binary "$body" "$ELASTICSEARCH_URL$path"
    else
        curl -sS --fail-with-body --max-time 60 -X "$method" "$ELASTICSEARCH_URL$path"
    fi
}

# es_physical NAME: the concrete index behind the alias NAME (pgsync's
# <index>_v<N>), or NAME itself when it is no alias.
es_physical() {
    local behind
    behind=$(es GET "/_alias/$1" 2>/dev/null | jq -r 'keys[0] // empty' 2>/dev/null)
    echo "${behind:-$1}"
}

# es_drop_index NAME: deletes the index NAME, or the index behind the alias NAME.
es_drop_index() {
    es DELETE "/$(es_physical "$1")" >/dev/null
}

# es_replace_index NAME BODY: recreates the index behind NAME (an alias or an
# index) with BODY (settings and mappings), keeping the alias.
es_replace_index() {
    local phys
    phys=$(es_physical "$1")
    es DELETE "/$phys" >/dev/null 2>&1
    es PUT "/$phys" "$2" >/dev/null || return 1
    if [ "$phys" != "$1" ]; then
        es POST /_aliases "{\"actions\": [{\"add\": {\"index\": \"$phys\", \"alias\": \"$1\"}}]}" >/dev/null
    fi
}

# es_doc INDEX ID: prints the document's _source as one line of JSON (a
# realtime GET: no refresh needed); prints nothing and fails when absent.
es_doc() {
    local id body
    id=$(jq -rn --arg s "$2" '$s | @uri')
    body=$(es GET "/$1/_doc/$id" 2>/dev/null) || return 1
    jq -ce 'select(.found == true) | ._source' <<<"$body"
}

# es_ids INDEX: refreshes INDEX and prints the ids of its documents (up to
# 10000), sorted with LC_ALL=C sort. Fails when the index does not exist.
es_ids() {
    local body
    es POST "/$1/_refresh" >/dev/null 2>&1 || return 1
    body=$(es POST "/$1/_search" '{"size": 10000, "_source": false, "query": {"match_all": {}}}' \
        2>/dev/null) || return 1
    jq -r '.hits.hits[]._id' <<<"$body" | LC_ALL=C sort
}

# --- background daemons ------------------------------------------------------------

# start_bg NAME CMD...: runs CMD in the background, output appended to
# $PGS_STACK_DIR/logs/NAME.log. bg_pid NAME prints its pid.
start_bg() {
    local name=$1 log=$PGS_STACK_DIR/logs/$1.log
    shift
    echo "=== $(date -u +%FT%T) $TEST_NAME: $*" >>"$log"
    "$@" >>"$log" 2>&1 </dev/null &
    _PGS_BG[$name]=$!
    _PGS_BG_NAMES+=("$name")
}

bg_pid() {
    echo "${_PGS_BG[$1]:-}"
}

# stop_bg NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 10).
# Returns the process's exit status (0 for a clean shutdown).
stop_bg() {
    local pid=${_PGS_BG[$1]:-} i rc
    if [ -z "$pid" ]; then
        echo "stop_bg: no background process named $1" >&2
        return 1
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < ${2:-10} * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop_bg: $1 (pid $pid) ignored SIGTERM for ${2:-10}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    unset "_PGS_BG[$1]"
    return "$rc"
}

# kill9_bg NAME: a crash, as far as the daemon can tell.
kill9_bg() {
    local pid=${_PGS_BG[$1]:-}
    [ -n "$pid" ] || return 1
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "_PGS_BG[$1]"
    return 0
}

_pgs_on_exit() {
    local rc=$? name
    [ -z "$_PGS_WATCH" ] || kill "$_PGS_WATCH" 2>/dev/null
    for name in "${!_PGS_BG[@]}"; do
        stop_bg "$name" 5 >/dev/null 2>&1
    done
    if [ "$_PGS_FAILS" -gt 0 ]; then
        for name in $(printf '%s\n' "${_PGS_BG_NAMES[@]}" | sort -u); do
            [ -f "$PGS_STACK_DIR/logs/$name.log" ] || continue
            echo "---- last 30 lines of logs/$name.log ----"
            tail -n 30 "$PGS_STACK_DIR/logs/$name.log"
        done
        [ "$rc" -ne 0 ] || rc=1
    fi
    exit "$rc"
}
trap _pgs_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
