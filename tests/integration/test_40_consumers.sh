#!/usr/bin/env bash
# Consumers (issue: consumers): stale data never wins under a forced bad
# interleaving; 1, 2 and 4 consumers give the same index for the same
# workload; a consumer killed with -9 mid-stream loses nothing; a document
# the engine rejects goes to the dead-letter stream and the rest of its
# batch is indexed; the engine down for 30 s loses nothing.
. "$(dirname "$0")/lib.sh"

export PGSYNC_CLAIM_IDLE_MS=2000 PGSYNC_BLOCK_MS=200

# setup NAME: a fresh book database and index, loaded; sets db, index, schema, stream
setup() {
    new_db "$1" >/dev/null
    db=$PGDATABASE
    index=$(unique_name "$1")
    psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
    psql_q <"$PGS_ROOT/tests/fixtures/book_workload.sql" >/dev/null
    schema=$PGS_STACK_DIR/$index.json
    stream="pgsync:{$index}:changes"
    jq --arg db "$db" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
        "$PGS_ROOT/schemas/book.json" >"$schema"
    pgsync --config "$schema" --quiet >>"$PGS_STACK_DIR/logs/$index.log" 2>&1 ||
        fail "$1: initial load" "pgsync failed"
}
# every entry written was delivered and acknowledged
drained() {
    [ "$(redis_q XPENDING "$stream" pgsync | head -1)" = 0 ] &&
        [ "$(redis_q XINFO GROUPS "$stream" | awk 'f { print; exit } /last-delivered-id/ { f = 1 }')" = \
            "$(redis_q XINFO STREAM "$stream" | awk 'f { print; exit } /last-generated-id/ { f = 1 }')" ]
}
# the producer has written everything committed so far (its slot caught up)
caught_up() {
    [ "$(psql_q "SELECT confirmed_flush_lsn >= pg_current_wal_lsn() FROM pg_replication_slots
                 WHERE database = current_database() AND slot_type = 'logical' AND NOT temporary")" = t ]
}
dump() {
    es POST "/$index/_refresh" >/dev/null
    es POST "/$index/_search" '{"size": 10000, "sort": [{"_id": "asc"}]}' |
        jq -cS '[.hits.hits[] | {_id, _source}]'
}
verify() {
    pgsync-verify --config "$schema" >"$PGS_STACK_DIR/logs/$index-verify.out" 2>&1
}
title_of() { es_doc "$index" "$1" | jq -r .title; }
title_is() { [ "$(title_of "$1")" = "$2" ]; }

# 1. the stale-write race: consumer A reads a document, then stalls before
# its bulk request; meanwhile consumer B applies a later change. A's older
# copy must not replace B's newer one.
setup race
start_bg producer_race pgsync-producer --config "$schema"
pause=$PGS_STACK_DIR/$index.pause
touch "$pause"
PGSYNC_TEST_PAUSE_FILE=$pause start_bg consumer_a pgsync-consumer --config "$schema" --name a
psql_q "UPDATE book SET title = 'older' WHERE isbn = '9788374950978'"
wait_until 20 grep -q "test pause" "$PGS_STACK_DIR/logs/consumer_a.log" ||
    fail "race: consumer a holds its bulk request" "no pause seen"
psql_q "UPDATE book SET title = 'newer' WHERE isbn = '9788374950978'"
start_bg consumer_b pgsync-consumer --config "$schema" --name b
wait_until 20 title_is 9788374950978 newer || fail "race: consumer b applies the later change" \
    "title is $(title_of 9788374950978)"
rm -f "$pause"
if wait_until 20 drained; then
    check_eq "race: the stale copy loses (external versions by commit LSN)" newer \
        "$(title_of 9788374950978)"
else
    fail "race: consumer a finishes its batch" "entries still pending"
fi
stop_bg consumer_a
stop_bg consumer_b
stop_bg producer_race

# 2. the same workload with 1, 2 and 4 consumers gives the same index
dumps=()
for n in 1 2 4; do
    setup "n$n"
    start_bg "producer_$n" pgsync-producer --config "$schema"
    for k in $(seq 1 "$n"); do
        start_bg "consumer_${n}_$k" pgsync-consumer --config "$schema" --name "c$k" --batch-size 25
    done
    psql_q "CALL book_workload(1500, 0.42)" || fail "$n consumers: the workload runs" "psql failed"
    if wait_until 60 caught_up && wait_until 90 drained; then
        pass "$n consumers: the stream drains"
    else
        fail "$n consumers: the stream drains" "pending=$(redis_q XPENDING "$stream" pgsync | head -1)"
    fi
    if verify; then
        pass "$n consumers: the index equals the database"
    else
        fail "$n consumers: the index equals the database" \
            "$(tail -6 "$PGS_STACK_DIR/logs/$index-verify.out")"
    fi
    dumps+=("$(dump)")
    for k in $(seq 1 "$n"); do stop_bg "consumer_${n}_$k"; done
    stop_bg "producer_$n"
done
if [ "${dumps[0]}" = "${dumps[1]}" ] && [ "${dumps[0]}" = "${dumps[2]}" ] && [ "${#dumps[0]}" -gt 100 ]; then
    pass "1, 2 and 4 consumers give the same final index"
else
    fail "1, 2 and 4 consumers give the same final index" "the documents differ"
fi

# 3. kill -9 a consumer in the middle of a workload: the others finish its work
setup kill
start_bg producer_kill pgsync-producer --config "$schema"
start_bg consumer_k1 pgsync-consumer --config "$schema" --name k1 --batch-size 10
start_bg consumer_k2 pgsync-consumer --config "$schema" --name k2 --batch-size 10
psql_q "CALL book_workload(800, 0.7)" &
workload=$!
sleep 1
kill9_bg consumer_k1
wait "$workload"
if wait_until 60 caught_up && wait_until 90 drained; then
    pass "kill -9: the other consumer claims and finishes the dead one's entries"
else
    fail "kill -9: the other consumer claims and finishes the dead one's entries" \
        "$(redis_q XPENDING "$stream" pgsync | tr '\n' ' ')"
fi
if verify; then
    pass "kill -9: nothing lost"
else
    fail "kill -9: nothing lost" "$(tail -6 "$PGS_STACK_DIR/logs/$index-verify.out")"
fi
stop_bg consumer_k2
stop_bg producer_kill

# 4. a document the engine rejects for good goes to the dead-letter stream
setup dlq
es_replace_index "$index" '{"mappings": {"properties": {"title": {"type": "integer"}}}}' 
start_bg producer_dlq pgsync-producer --config "$schema"
start_bg consumer_dlq pgsync-consumer --config "$schema"
psql_q "INSERT INTO book (isbn, title) VALUES ('d1', '1234'), ('d2', 'not a number'), ('d3', '5678')"
# the records first: an empty stream counts as drained
if wait_until 30 caught_up && wait_until 30 drained; then
    pass "dlq: the batch with a rejected document is acknowledged"
else
    fail "dlq: the batch with a rejected document is acknowledged" "still pending"
fi
check_eq "dlq: the good documents of the batch are indexed" "1234 5678" \
    "$(title_of d1) $(title_of d3)"
dl=$(redis_q --raw XRANGE "pgsync:{$index}:dlq" - +)
if grep -q "^d2$" <<<"$dl" && grep -q "mapper_parsing_exception" <<<"$dl" && grep -q "not a number" <<<"$dl"; then
    pass "dlq: the rejected document is dead-lettered with its reason and body"
else
    fail "dlq: the rejected document is dead-lettered with its reason and body" "$dl"
fi
stop_bg consumer_dlq
stop_bg producer_dlq

# 5. the engine down for 30 s in the middle of a workload
setup down
start_bg producer_down pgsync-producer --config "$schema"
start_bg consumer_down pgsync-consumer --config "$schema"
psql_q "CALL book_workload(200, 0.1)"
"$PGS_ROOT/scripts/stack.sh" stop-engine "$PGS_STACK_DIR" >/dev/null 2>&1
psql_q "CALL book_workload(300, 0.2)"
sleep 30
"$PGS_ROOT/scripts/stack.sh" start-engine "$PGS_STACK_DIR" >/dev/null 2>&1 ||
    fail "engine: restarts" "start-engine failed"
if wait_until 60 caught_up && wait_until 120 drained; then
    pass "engine down 30 s: the consumer retries and catches up"
else
    fail "engine down 30 s: the consumer retries and catches up" "still pending"
fi
if verify; then
    pass "engine down 30 s: nothing lost"
else
    fail "engine down 30 s: nothing lost" "$(tail -6 "$PGS_STACK_DIR/logs/$index-verify.out")"
fi
if kill -0 "$(bg_pid consumer_down)" 2>/dev/null; then
    pass "engine down 30 s: the consumer survives"
else
    fail "engine down 30 s: the consumer survives" "it exited"
fi
