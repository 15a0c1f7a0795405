#!/usr/bin/env bash
# Redis that can lose data silently (issue: faults production meets): a
# maxmemory-policy of allkeys-* may evict the change streams. Every binary
# reads the policy when it connects (INFO memory): a tool refuses to run and
# names the setting and the fix; a daemon waits with /healthz 503 and the
# reason. The daemons read it again while they run: set to allkeys-* under
# them, they stop confirming and say why, and once it is fixed the change
# made meanwhile arrives. Runs on a Redis of its own (the stack's is shared).
. "$(dirname "$0")/lib.sh"

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=3000
dir=$PGS_STACK_DIR/evict-$$
mkdir -p "$dir"
rport=$(free_port)
start_bg "evict_redis_$$" redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir" --save '' \
    --appendonly yes --maxmemory 256mb --maxmemory-policy allkeys-lru
rq() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }
up() { [ "$(rq PING 2>/dev/null)" = PONG ]; }
wait_until 10 up || { fail "eviction: Redis starts" "no PONG"; exit 1; }
export REDIS_URL=redis://127.0.0.1:$rport/0 REDIS_PORT=$rport

new_db evict >/dev/null
index=$(unique_name evict)
psql_q "CREATE TABLE item (id int PRIMARY KEY, title text);
        INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 50) g" >/dev/null
schema=$dir/schema.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index", "nodes": {"table": "item", "columns": ["id", "title"]}}]
EOF

# tools refuse, naming the policy and the fix
out=$(timeout 60 pgsync --config "$schema" --quiet 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && grep -q "maxmemory-policy allkeys-lru" <<<"$out" && grep -q "noeviction" <<<"$out"; then
    pass "eviction: the load refuses an allkeys-lru Redis, naming the policy and the fix"
else
    fail "eviction: the load refuses an allkeys-lru Redis" "exit $rc: $out"
fi
out=$(timeout 30 pgsync-queue --index "$index" 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && grep -q "maxmemory-policy allkeys-lru" <<<"$out"; then
    pass "eviction: pgsync-queue refuses it too"
else
    fail "eviction: pgsync-queue refuses it too" "exit $rc: $out"
fi
check_eq "eviction: nothing was written to that Redis" "0" "$(rq DBSIZE)"

# daemons wait, /healthz 503 with the reason
pport=$(free_port) cport=$(free_port)
says() { [ "$(healthz_code "$1")" = 503 ] && healthz "$1" | grep -q "maxmemory-policy $2"; }
rq CONFIG SET maxmemory-policy noeviction >/dev/null
pgsync --config "$schema" --quiet >"$dir/load.log" 2>&1 || fail "eviction: loads once fixed" "$(tail -3 "$dir/load.log")"
rq CONFIG SET maxmemory-policy allkeys-lfu >/dev/null
start_bg "evict_p_$$" pgsync-producer --config "$schema" --metrics-port "$pport"
start_bg "evict_c_$$" pgsync-consumer --config "$schema" --metrics-port "$cport"
if wait_until 30 says "$pport" allkeys-lfu && wait_until 30 says "$cport" allkeys-lfu; then
    pass "eviction: producer and consumer wait with /healthz 503 naming the policy"
else
    fail "eviction: daemons wait with /healthz 503" "producer: $(healthz "$pport") consumer: $(healthz "$cport")"
fi
rq CONFIG SET maxmemory-policy noeviction >/dev/null
healthy() { [ "$(healthz_code "$pport")" = 200 ] && [ "$(healthz_code "$cport")" = 200 ]; }
wait_until 60 healthy || fail "eviction: healthy once fixed" "$(healthz "$pport") / $(healthz "$cport")"
title_of() { es_doc "$index" "$1" | jq -r .title; }
psql_q "UPDATE item SET title = 'first' WHERE id = 1" >/dev/null
is_title() { [ "$(title_of "$1")" = "$2" ]; }
if wait_until 30 is_title 1 first; then
    pass "eviction: once fixed, changes flow"
else
    fail "eviction: once fixed, changes flow" "$(title_of 1)"
fi

# set under them while they run: both notice, nothing is lost
rq CONFIG SET maxmemory-policy allkeys-random >/dev/null
if wait_until 40 says "$pport" allkeys-random && wait_until 40 says "$cport" allkeys-random; then
    pass "eviction: a policy set while they run turns both /healthz 503"
else
    fail "eviction: a policy set while they run turns /healthz 503" "producer: $(healthz "$pport") consumer: $(healthz "$cport")"
fi
psql_q "UPDATE item SET title = 'meanwhile' WHERE id = 2" >/dev/null
sleep 2
rq CONFIG SET maxmemory-policy volatile-lru >/dev/null
if wait_until 60 is_title 2 meanwhile && wait_until 60 healthy; then
    pass "eviction: a volatile-* policy is accepted, and the change made meanwhile arrives"
else
    fail "eviction: the change made meanwhile arrives" "$(title_of 2) / $(healthz "$pport") / $(healthz "$cport")"
fi
if pgsync-verify --config "$schema" >"$PGS_STACK_DIR/logs/test_75_redis_eviction-verify-$$.log" 2>&1; then
    pass "eviction: the index converges exactly (pgsync-verify clean)"
else
    fail "eviction: the index converges exactly" "$(tail -3 "$PGS_STACK_DIR/logs/test_75_redis_eviction-verify-$$.log")"
fi
check_eq "eviction: nothing dead-lettered" 0 "$(rq XLEN "pgsync:{$index}:dlq")"
for b in "evict_p_$$" "evict_c_$$"; do
    kill -0 "$(bg_pid "$b")" 2>/dev/null || fail "eviction: $b kept running" "it exited"
    stop_bg "$b" >/dev/null 2>&1
done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 || fail "teardown" "failed"
