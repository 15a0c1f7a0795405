#!/usr/bin/env bash
# The producer's rate from WAL into Redis, beside pg_recvlogical reading the
# same WAL with the same plugin (pgoutput) to /dev/null: the ceiling set by
# the walsender's decoding. One table in the schema, N rows inserted in
# transactions of T rows; then R runs of each, alternating, every run on its
# own slot created before the data (so each reads exactly the same WAL).
#
#   bench/producer.sh [N [T [R]]]      default 1000000 1000 3
#
# Uses the stack in $PGS_STACK_DIR when set, else starts one (scripts/stack.sh)
# in a temporary folder and stops it at the end. Prints per run the seconds
# and the peak RSS (VmHWM), then median, min-max and the ratio of the medians.
# Target: the producer at >= 0.5x pg_recvlogical's rate, peak RSS < 32 MB.
set -euo pipefail

N=${1:-1000000}
T=${2:-1000}
R=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATH=$ROOT/bin:$PATH
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
own_stack=
if [ -z "${PGS_STACK_DIR:-}" ]; then
    PGS_STACK_DIR=$(mktemp -d /tmp/pgsync-bench-producer.XXXXXX)
    chmod 777 "$PGS_STACK_DIR"
    own_stack=1
    "$ROOT/scripts/stack.sh" start "$PGS_STACK_DIR/stk" >&2
    PGS_STACK_DIR=$PGS_STACK_DIR/stk
fi
. "$PGS_STACK_DIR/env"
# bench/redis-tls points the producer at another Redis (one that serves TLS)
if [ -n "${PGS_BENCH_REDIS_URL:-}" ]; then
    export REDIS_URL=$PGS_BENCH_REDIS_URL REDIS_PORT=$PGS_BENCH_REDIS_PORT
fi
work=$(mktemp -d /tmp/pgsync-bench-work.XXXXXX)
db=bench_producer_$$
cleanup() {
    set +e
    for p in $(jobs -p); do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    psql -XAtq -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                                WHERE database = '$db'" >/dev/null 2>&1
    psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
    for i in $(seq 1 "$R"); do redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL "bench$i:{$db}:changes" >/dev/null 2>&1; done
    rm -rf "$work"
    [ -z "$own_stack" ] || "$ROOT/scripts/stack.sh" stop "$PGS_STACK_DIR" >&2
}
trap cleanup EXIT

q() { psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
psql -XAtq -d postgres -c "CREATE DATABASE $db"
q "CREATE TABLE item (id bigint PRIMARY KEY, qty int, note text)"
cat >"$work/schema.json" <<EOF
[{"database": "$db", "index": "$db",
  "nodes": {"table": "item", "columns": ["id", "qty", "note"]}}]
EOF
pub=pgsync_${db}_${db}
pgsync-bootstrap --config "$work/schema.json" >/dev/null 2>&1 # the publication (and a slot)
for i in $(seq 1 "$R"); do
    q "SELECT pg_create_logical_replication_slot('bench_p$i', 'pgoutput')" >/dev/null
    q "SELECT pg_create_logical_replication_slot('bench_r$i', 'pgoutput')" >/dev/null
done
t0=${EPOCHREALTIME/./}
q "DO \$\$ BEGIN FOR k IN 0..$((N / T - 1)) LOOP
     INSERT INTO item SELECT g, g % 100, 'note ' || g FROM generate_series(k * $T + 1, (k + 1) * $T) g;
     COMMIT; END LOOP; END \$\$"
end_lsn=$(q "SELECT pg_current_wal_lsn()")
echo "generated $N rows in $((N / T)) transactions in $(((${EPOCHREALTIME/./} - t0) / 1000)) ms; WAL end $end_lsn" >&2

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

run_producer() { # slot number -> "ms kB"
    local i=$1 key="bench$1:{$db}:changes" pid t0 t1 peak
    t0=$(now_ms)
    PGSYNC_SLOT=bench_p$i PGSYNC_STREAM_PREFIX=bench$i pgsync-producer --config "$work/schema.json" \
        --log-level warn >"$work/producer$i.log" 2>&1 &
    pid=$!
    while [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" XLEN "$key")" -lt "$N" ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/producer$i.log" >&2; return 1; }
        sleep 0.05
    done
    t1=$(now_ms)
    peak=$(hwm "$pid")
    # CPU time (user+system, clock ticks) of the producer: busy or waiting?
    awk '{ printf "producer cpu %d ms\n", ($14 + $15) * 10 }' "/proc/$pid/stat" >&2
    kill -TERM "$pid"
    wait "$pid" || true
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL "$key" >/dev/null
    echo "$((t1 - t0)) $peak"
}

run_recvlogical() { # slot number -> "ms kB"
    local i=$1 pid t0 t1 peak=0 h
    t0=$(now_ms)
    "$PG_BIN/pg_recvlogical" -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$db" --slot "bench_r$i" \
        --start --endpos "$end_lsn" -o proto_version=1 -o publication_names="$pub" \
        -f /dev/null -s 1 2>"$work/recv$i.log" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        h=$(hwm "$pid")
        [ "${h:-0}" -le "$peak" ] || peak=$h
        sleep 0.05
    done
    wait "$pid" || { cat "$work/recv$i.log" >&2; return 1; }
    t1=$(now_ms)
    echo "$((t1 - t0)) $peak"
}

declare -a P_MS P_KB R_MS R_KB
for i in $(seq 1 "$R"); do
    read -r ms kb < <(run_producer "$i")
    P_MS+=("$ms") P_KB+=("$kb")
    echo "run $i: pgsync-producer  $ms ms  $((N * 1000 / (ms > 0 ? ms : 1))) changes/s  peak RSS ${kb} kB" >&2
    read -r ms kb < <(run_recvlogical "$i")
    R_MS+=("$ms") R_KB+=("$kb")
    echo "run $i: pg_recvlogical   $ms ms  $((N * 1000 / (ms > 0 ? ms : 1))) changes/s  peak RSS ${kb} kB" >&2
done

stats() { # values... -> "median min max"
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[1], v[NR] }'
}
read -r pm pmin pmax < <(stats "${P_MS[@]}")
read -r rm rmin rmax < <(stats "${R_MS[@]}")
read -r pk _ pkmax < <(stats "${P_KB[@]}")
read -r rk _ _ < <(stats "${R_KB[@]}")
rate() { echo $((N * 1000 / ($1 > 0 ? $1 : 1))); }
printf '\n%d changes (%d per transaction), %d runs each, alternating\n' "$N" "$T" "$R"
printf '%-16s %12s %22s %14s\n' "" "changes/s" "min-max changes/s" "peak RSS kB"
printf '%-16s %12s %22s %14s\n' pgsync-producer "$(rate "$pm")" "$(rate "$pmax")-$(rate "$pmin")" "$pk (max $pkmax)"
printf '%-16s %12s %22s %14s\n' pg_recvlogical "$(rate "$rm")" "$(rate "$rmax")-$(rate "$rmin")" "$rk"
awk -v p="$pm" -v r="$rm" 'BEGIN { printf "producer / pg_recvlogical rate: %.2f (target >= 0.50)\n", r / p }'
[ "$pkmax" -lt 32768 ] && echo "peak RSS under 32 MB: yes" || echo "peak RSS under 32 MB: NO"
