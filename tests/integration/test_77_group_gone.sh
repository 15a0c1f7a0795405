#!/usr/bin/env bash
# A consumer group that disappears (issue: faults production meets): Redis
# lost it (a FLUSHALL, a restart without persistence, XGROUP DESTROY). Its
# position is lost with it, so the consumers never make it again by
# themselves: they wait, log an error once, and /healthz turns 503 naming
# the group and the ways to recover, both while running (the read fails)
# and after a restart (the check at connect). pgsync without --resync
# refuses too. pgsync-replay --from ID makes the group again at the
# position the user chose, the consumer carries on, and the change made
# meanwhile arrives: nothing is lost.
. "$(dirname "$0")/lib.sh"

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=3000
dir=$PGS_STACK_DIR/gone-$$
mkdir -p "$dir"
new_db gone >/dev/null
index=$(unique_name gone)
psql_q "CREATE TABLE item (id int PRIMARY KEY, title text);
        INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 50) g" >/dev/null
schema=$dir/schema.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index", "nodes": {"table": "item", "columns": ["id", "title"]}}]
EOF
pgsync --config "$schema" --quiet >"$dir/load.log" 2>&1 || fail "group gone: loads" "$(tail -3 "$dir/load.log")"
stream="pgsync:{$index}:changes"

pport=$(free_port) cport=$(free_port)
start_bg "gone_p_$$" pgsync-producer --config "$schema" --metrics-port "$pport"
start_bg "gone_c_$$" pgsync-consumer --config "$schema" --metrics-port "$cport"
title_of() { es_doc "$index" "$1" | jq -r .title; }
is_title() { [ "$(title_of "$1")" = "$2" ]; }
psql_q "UPDATE item SET title = 'before' WHERE id = 1" >/dev/null
wait_until 30 is_title 1 before || fail "group gone: changes flow at first" "$(title_of 1)"

# the group disappears under the running consumer
redis_q XGROUP DESTROY "$stream" pgsync >/dev/null
psql_q "UPDATE item SET title = 'while gone' WHERE id = 2" >/dev/null
alarm() { [ "$(healthz_code "$cport")" = 503 ] && healthz "$cport" | grep -q 'consumer group "pgsync" of stream .* is gone'; }
if wait_until 30 alarm; then
    pass "group gone: the running consumer's /healthz turns 503 naming the group ($(healthz "$cport" | head -1 | cut -c1-150))"
else
    fail "group gone: the running consumer's /healthz turns 503" "$(healthz "$cport")"
fi
if healthz "$cport" | grep -q "pgsync-replay --config FILE --from ID"; then
    pass "group gone: /healthz says how to recover"
else
    fail "group gone: /healthz says how to recover" "$(healthz "$cport")"
fi
log=$PGS_STACK_DIR/logs/gone_c_$$.log
check_eq "group gone: one error line in the consumer's log, not one per retry" "1" \
    "$(grep -c 'level=error.*consumer group gone' "$log")"
groups() { redis_q XINFO GROUPS "$stream" | grep -c '^pgsync$'; }
sleep 2
check_eq "group gone: the consumer did not make the group again" "0" "$(groups)"
check_eq "group gone: the change made meanwhile waits" "item 2" "$(title_of 2)"

# a restart meets it at connect: same alarm, still not made again
stop_bg "gone_c_$$" >/dev/null 2>&1
start_bg "gone_c_$$" pgsync-consumer --config "$schema" --metrics-port "$cport"
if wait_until 30 alarm; then
    pass "group gone: a restarted consumer waits with the same alarm"
else
    fail "group gone: a restarted consumer waits with the same alarm" "$(healthz "$cport")"
fi
check_eq "group gone: the restarted consumer did not make it again either" "0" "$(groups)"
out=$(timeout 60 pgsync --config "$schema" --quiet 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && grep -q "is gone" <<<"$out" && grep -q -- "--resync" <<<"$out"; then
    pass "group gone: pgsync without --resync refuses, naming the recovery"
else
    fail "group gone: pgsync without --resync refuses" "exit $rc: $out"
fi
check_eq "group gone: ... and did not make it" "0" "$(groups)"

# recovery: the user replays from the first entry the index may not reflect
first=$(redis_q XRANGE "$stream" - + COUNT 1 | head -1)
out=$(pgsync-replay --config "$schema" --from "$first" 2>&1)
if grep -q "was gone: made again" <<<"$out"; then
    pass "group gone: pgsync-replay --from makes it again ($(head -1 <<<"$out" | cut -c1-140))"
else
    fail "group gone: pgsync-replay --from makes it again" "$out"
fi
healthy() { [ "$(healthz_code "$cport")" = 200 ]; }
wait_until 30 healthy || fail "group gone: the consumer is healthy again" "$(healthz "$cport")"
if wait_until 30 is_title 2 "while gone"; then
    pass "group gone: the change made while it was gone arrives"
else
    fail "group gone: the change made while it was gone arrives" "$(title_of 2)"
fi
psql_q "UPDATE item SET title = 'after' WHERE id = 3" >/dev/null
wait_until 30 is_title 3 after || fail "group gone: changes flow after the recovery" "$(title_of 3)"
if pgsync-verify --config "$schema" >"$dir/verify.out" 2>&1; then
    pass "group gone: the index converges exactly (pgsync-verify clean)"
else
    fail "group gone: the index converges exactly" "$(tail -5 "$dir/verify.out")"
fi
for b in "gone_p_$$" "gone_c_$$"; do stop_bg "$b" >/dev/null 2>&1; done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 || fail "teardown" "failed"
