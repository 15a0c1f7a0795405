#!/usr/bin/env bash
# The operations tools (issue: Operations) against the real stack:
# pgsync-queue (depth, pending, lag, slot; table, JSON, --watch),
# pgsync-replay (dry run, moving the group back, copying a range),
# pgsync-dlq (real dead letters from a strict mapping: list, show, retry,
# purge) and pgsync-slot (state, --drop refused while a producer reads it).
. "$(dirname "$0")/lib.sh"

new_db ops >/dev/null
index=$(unique_name ops)
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
schema=$PGS_STACK_DIR/$index.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
stream="pgsync:{$index}:changes"
dlq="pgsync:{$index}:dlq"
log=$PGS_STACK_DIR/logs/$index-ops.log
# consumers take over a dead consumer's entries after 1 s, not 30
consumer() { start_bg consumer env PGSYNC_CLAIM_IDLE_MS=1000 pgsync-consumer --config "$schema"; }

# the JSON of pgsync-queue, and one value of the group "pgsync"
queue_json() { pgsync-queue --config "$schema" --json 2>>"$log"; }
group() { queue_json | jq -r --arg k "$1" '.entries[0].groups[] | select(.name == "pgsync") | .[$k]'; }
title_of() { es_doc "$index" "$1" | jq -r .title; }
slot_active() { psql_q "SELECT active FROM pg_replication_slots WHERE database = current_database()"; }
# is WANT CMD... / at_least N CMD...: CMD runs anew each time wait_until tries
is() { local want=$1; shift; [ "$("$@")" = "$want" ]; }
at_least() { local n=$1 v; shift; v=$("$@"); [ -n "$v" ] && [ "$v" -ge "$n" ]; }

# --- 0. arguments and a wrong config ------------------------------------------------
for bin in pgsync-queue pgsync-replay pgsync-dlq pgsync-slot; do
    out=$($bin --help 2>&1)
    if [ $? -eq 0 ] && grep -q "Usage: $bin" <<<"$out"; then
        pass "$bin --help"
    else
        fail "$bin --help" "$out"
    fi
done
expect_usage() { # NAME CMD...: exit status 2 and one line that names the program
    local name=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q "^$1: " <<<"$out"; then
        pass "$name"
    else
        fail "$name" "rc=$rc out=$out"
    fi
}
expect_usage "queue: --watch needs a number" pgsync-queue --index "$index" --watch soon
expect_usage "queue: needs --config or --index" pgsync-queue
expect_usage "replay: --from is required" pgsync-replay --config "$schema"
expect_usage "replay: a bad --from" pgsync-replay --config "$schema" --from yesterday
expect_usage "replay: --to before --from" pgsync-replay --config "$schema" --from 20-0 --to 10-0
expect_usage "dlq: unknown command" pgsync-dlq --config "$schema" frobnicate
expect_usage "dlq: show needs an ID" pgsync-dlq --config "$schema" show
expect_usage "slot: --drop needs --yes" pgsync-slot --config "$schema" --drop

bad=$PGS_STACK_DIR/$index-bad.json
jq '.[0].nodes.children[0].table = "no_such_table"' "$schema" >"$bad"
for bin in pgsync-queue pgsync-slot; do
    out=$($bin --config "$bad" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && grep -q "no_such_table" <<<"$out"; then
        pass "$bin names the missing table of a wrong config"
    else
        fail "$bin names the missing table of a wrong config" "rc=$rc out=$out"
    fi
done

# --- 1. pgsync-queue: a backlog builds with the producer alone, then drains -----------
if pgsync --config "$schema" --quiet >>"$log" 2>&1; then
    pass "initial load"
else
    fail "initial load" "$(tail -5 "$log")"
fi
start_bg producer pgsync-producer --config "$schema"
wait_until 20 is t slot_active ||
    fail "the producer attaches to the slot"
psql_q "UPDATE book SET title = title || ' (2nd ed.)' WHERE isbn = '9788374950978';
        UPDATE book SET title = title || ' (2nd ed.)' WHERE isbn = '9781471331435';
        UPDATE author SET name = 'George Orwell (Eric Blair)' WHERE id = 4"
if wait_until 20 at_least 3 group undelivered; then
    pass "queue: changes wait in the stream while no consumer runs"
else
    fail "queue: changes wait in the stream while no consumer runs" "$(queue_json)"
fi
# a consumer that reads one entry and dies: it stays pending
redis_q XREADGROUP GROUP pgsync probe COUNT 1 STREAMS "$stream" '>' >/dev/null
sleep 0.3
j=$(queue_json)
length=$(redis_q XLEN "$stream")
check_eq "queue: length is XLEN" "$length" "$(jq -r '.entries[0].length' <<<"$j")"
check_eq "queue: one entry pending" 1 "$(jq -r '.entries[0].groups[0].pending' <<<"$j")"
check_eq "queue: lag counts pending and undelivered entries" \
    "$(jq -r '.entries[0].groups[0] | .pending + .undelivered' <<<"$j")" \
    "$(jq -r '.entries[0].groups[0].lag' <<<"$j")"
# counted independently: entries after the group's last-delivered id, plus the pending one
after=$(redis_q EVAL "return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+')" 1 "$stream" \
    "$(jq -r '.entries[0].groups[0].last_delivered_id' <<<"$j")")
check_eq "queue: the lag is every entry after the group's position plus pending" \
    "$((after + 1))" "$(jq -r '.entries[0].groups[0].lag' <<<"$j")"
check_eq "queue: the probe consumer holds the pending entry" 1 \
    "$(jq -r '.entries[0].groups[0].consumers[] | select(.name == "probe") | .pending' <<<"$j")"
if jq -e '.entries[0].groups[0] | .lag_ms > 0 and .lag_seconds > 0 and .oldest_pending_age_ms > 0
        and (.oldest_pending_idle_ms | type == "number") and (.oldest_pending_id | type == "string")' \
    <<<"$j" >/dev/null; then
    pass "queue: lag in time and the oldest pending entry's age and idle"
else
    fail "queue: lag in time and the oldest pending entry's age and idle" "$j"
fi
if jq -e '.entries[0].slot | .exists and .active and (.active_pid | type == "number")
        and .retained_wal_bytes >= 0 and (.confirmed_flush_lsn | test("^[0-9A-F]+/[0-9A-F]+$"))' \
    <<<"$j" >/dev/null; then
    pass "queue: the slot is active, with retained WAL and confirmed position"
else
    fail "queue: the slot is active, with retained WAL and confirmed position" "$(jq -c .entries[0].slot <<<"$j")"
fi
# every key the man page documents
if jq -e '(keys == ["engine", "entries", "redis", "time"])
        and (.engine.nodes | length == 1) and (.engine.nodes[0] | keys == ["up", "url", "version"])
        and .engine.nodes[0].up
        and (.redis | keys == ["addr", "min_replicas", "replicas", "role"])
        and (.entries[0] | keys == (["database", "dlq", "exists", "first_id", "groups", "index",
             "last_id", "length", "redis", "slot", "stream"]))
        and (.entries[0].redis | keys == ["addr", "min_replicas", "replicas", "role"])
        and (.entries[0].groups[0] | keys == (["consumers", "lag", "lag_ms", "lag_seconds",
             "last_delivered_id", "name", "oldest_pending_age_ms", "oldest_pending_id",
             "oldest_pending_idle_ms", "pending", "undelivered"]))
        and (.entries[0].groups[0].consumers[0] | keys == ["idle_ms", "name", "pending"])
        and (.entries[0].dlq | keys == ["key", "length"])
        and (.entries[0].slot | keys == (["active", "active_pid", "confirmed_flush_lsn",
             "database", "exists", "name", "plugin", "restart_lsn", "retained_wal_bytes",
             "wal_status"]))' <<<"$j" >/dev/null; then
    pass "queue --json has the documented keys"
else
    fail "queue --json has the documented keys" "$j"
fi
out=$(pgsync-queue --config "$schema" 2>&1)
if grep -q "$stream" <<<"$out" && grep -q "pgsync" <<<"$out" && grep -q "retains" <<<"$out"; then
    pass "queue: a readable table by default"
else
    fail "queue: a readable table by default" "$out"
fi
j=$(pgsync-queue --index "$index" --json 2>>"$log")
if jq -e --argjson n "$length" '.entries[0] | .slot == null and .length == $n and .database == null' \
    <<<"$j" >/dev/null; then
    pass "queue --index without --config: Redis only"
else
    fail "queue --index without --config: Redis only" "$j"
fi
lines=$(timeout --preserve-status -s INT 2.5 pgsync-queue --index "$index" --json --watch 1 2>>"$log" |
    jq -c .entries[0].length | wc -l)
rc=${PIPESTATUS[0]}
if [ "$lines" -ge 2 ]; then
    pass "queue --watch refreshes until Ctrl-C"
else
    fail "queue --watch refreshes until Ctrl-C" "lines=$lines rc=$rc"
fi

consumer
if wait_until 30 is 0 group lag; then
    pass "queue: the lag drains to 0 once a consumer runs (pending entry taken over)"
else
    fail "queue: the lag drains to 0 once a consumer runs (pending entry taken over)" "$(queue_json)"
fi
check_eq "queue: nothing pending after the drain" 0 "$(group pending)"
wait_until 20 is "Kafka on the Shore (2nd ed.)" title_of 9788374950978 ||
    fail "the changes reached the index" "got $(title_of 9788374950978)"

# --- 2. pgsync-replay -----------------------------------------------------------------
stop_bg consumer >/dev/null 2>&1
first=$(queue_json | jq -r '.entries[0].first_id')
length=$(redis_q XLEN "$stream")
out=$(pgsync-replay --config "$schema" --from "$first" --dry-run 2>&1)
if grep -q "$length entries would be delivered again" <<<"$out" && grep -q "dry run" <<<"$out"; then
    pass "replay --dry-run counts the entries it would re-deliver"
else
    fail "replay --dry-run counts the entries it would re-deliver" "length=$length: $out"
fi
check_eq "replay --dry-run changes nothing" 0 "$(group lag)"
out=$(pgsync-replay --config "$schema" --from "$first" 2>&1)
if [ $? -eq 0 ] && grep -q "XGROUP SETID\|moved group" <<<"$out"; then
    pass "replay moves the group back"
else
    fail "replay moves the group back" "$out"
fi
check_eq "replay: every entry is waiting again" "$length" "$(group lag)"
psql_q "UPDATE book SET title = 'Kafka on the Shore (3rd ed.)' WHERE isbn = '9788374950978'"
consumer
if wait_until 30 is 0 group lag; then
    pass "replay: the consumer processes the entries again"
else
    fail "replay: the consumer processes the entries again" "$(queue_json)"
fi
wait_until 20 is "Kafka on the Shore (3rd ed.)" title_of 9788374950978 &&
    pass "replay: re-processing old entries does not undo a newer change" ||
    fail "replay: re-processing old entries does not undo a newer change" "got $(title_of 9788374950978)"

stop_bg consumer >/dev/null 2>&1
second=$(redis_q EVAL "return redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 2)[2][1]" 1 "$stream")
length=$(redis_q XLEN "$stream")
out=$(pgsync-replay --config "$schema" --from "$first" --to "$second" --dry-run 2>&1)
if grep -q "would copy 2 entries" <<<"$out"; then
    pass "replay --to --dry-run counts the range"
else
    fail "replay --to --dry-run counts the range" "second=$second: $out"
fi
check_eq "replay --dry-run adds nothing" "$length" "$(redis_q XLEN "$stream")"
out=$(pgsync-replay --config "$schema" --from "$first" --to "$second" 2>&1)
check_eq "replay --to copies the range to the end of the stream" "$((length + 2))" \
    "$(redis_q XLEN "$stream")"
check_eq "replay --to: the copies wait for the consumers" 2 "$(group lag)"
consumer
wait_until 30 is 0 group lag && pass "replay --to: the copies are processed" ||
    fail "replay --to: the copies are processed" "$(queue_json)"

# --- 3. pgsync-dlq: real dead letters from a strict mapping ----------------------------
stop_bg consumer >/dev/null 2>&1
es_replace_index "$index" '{"mappings": {"dynamic": "strict", "properties": {"isbn": {"type": "keyword"}, "title": {"type": "text"}}}}' ||
    fail "create a strict index" "PUT failed"
consumer
psql_q "UPDATE book SET title = 'Strict 1' WHERE isbn = '9788374950978';
        UPDATE book SET title = 'Strict 2' WHERE isbn = '9785811243570'"
if wait_until 30 at_least 2 redis_q XLEN "$dlq"; then
    pass "dlq: the engine's refusals become dead letters"
else
    fail "dlq: the engine's refusals become dead letters" "dlq length $(redis_q XLEN "$dlq")"
fi
wait_until 20 is 0 group lag || fail "dlq: the rejected batch is acknowledged"
out=$(pgsync-dlq --config "$schema" list 2>&1)
if grep -q 9788374950978 <<<"$out" && grep -q strict_dynamic_mapping_exception <<<"$out"; then
    pass "dlq list shows the document and the error"
else
    fail "dlq list shows the document and the error" "$out"
fi
j=$(pgsync-dlq --config "$schema" list --json 2>>"$log")
if jq -e --arg ix "$index" 'length >= 2 and all(.[]; .index == $ix
        and (.id | test("^[0-9]+-[0-9]+$")) and (.time | test("Z$"))
        and .error == "strict_dynamic_mapping_exception" and (.reason | length > 0))
        and ([.[].doc_id] | index("9785811243570") != null)' <<<"$j" >/dev/null; then
    pass "dlq list --json"
else
    fail "dlq list --json" "$j"
fi
id1=$(jq -r '[.[] | select(.doc_id == "9788374950978")][0].id' <<<"$j")
id2=$(jq -r '[.[] | select(.doc_id == "9785811243570")][0].id' <<<"$j")
out=$(pgsync-dlq --config "$schema" show "$id1" 2>&1)
if jq -e '.doc.title == "Strict 1" and .doc_id == "9788374950978" and (.reason | length > 0)' \
    <<<"$out" >/dev/null; then
    pass "dlq show prints the dead letter in full"
else
    fail "dlq show prints the dead letter in full" "$out"
fi
pgsync-dlq --config "$schema" show 1-1 >/dev/null 2>&1
check_eq "dlq show of an unknown id fails" 1 "$?"

# fix the cause: the consumer recreates the index with the schema's mapping
stop_bg consumer >/dev/null 2>&1
es_drop_index "$index"
consumer
out=$(pgsync-dlq --config "$schema" retry "$id1" 2>&1)
if [ $? -eq 0 ] && grep -q "re-queued document 9788374950978" <<<"$out"; then
    pass "dlq retry ID re-queues that document"
else
    fail "dlq retry ID re-queues that document" "$out"
fi
if wait_until 30 is "Strict 1" title_of 9788374950978; then
    pass "dlq retry: the document arrives once the mapping is fixed"
else
    fail "dlq retry: the document arrives once the mapping is fixed" "got '$(es_doc "$index" 9788374950978)'"
fi
check_eq "dlq retry ID removes only that dead letter" "$id2" \
    "$(pgsync-dlq --config "$schema" list --json | jq -r '[.[].id] | join(" ")')"
# a record that could not be decoded names no document: it cannot be retried
redis_q XADD "$dlq" '*' index "$index" id "" error bad_record reason "bad op" entries 1-1 ts "$(date +%s)" doc "" >/dev/null
out=$(pgsync-dlq --config "$schema" retry 2>&1)
rc=$?
if [ $rc -eq 1 ] && grep -q "re-queued document 9785811243570" <<<"$out" &&
    grep -q "names no document" <<<"$out"; then
    pass "dlq retry re-queues all, and says which it cannot"
else
    fail "dlq retry re-queues all, and says which it cannot" "rc=$rc $out"
fi
wait_until 30 is "Strict 2" title_of 9785811243570 &&
    pass "dlq retry (all): the document arrives" ||
    fail "dlq retry (all): the document arrives" "got '$(es_doc "$index" 9785811243570)'"
check_eq "dlq: the dead letter that could not be retried stays" 1 "$(redis_q XLEN "$dlq")"
out=$(pgsync-dlq --config "$schema" purge 2>&1)
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--yes" <<<"$out" && [ "$(redis_q XLEN "$dlq")" = 1 ]; then
    pass "dlq purge without --yes refuses"
else
    fail "dlq purge without --yes refuses" "rc=$rc $out"
fi
pgsync-dlq --config "$schema" purge --yes >>"$log" 2>&1
check_eq "dlq purge --yes deletes them all" 0 "$(redis_q XLEN "$dlq")"
check_eq "queue shows the dead letters' count" 0 "$(queue_json | jq .entries[0].dlq.length)"

# --- 4. pgsync-slot -------------------------------------------------------------------
slot=$(psql_q "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()")
out=$(pgsync-slot --config "$schema" 2>&1)
if grep -q "$slot" <<<"$out" && grep -q "active  *yes" <<<"$out" && grep -q "retained WAL  *[0-9]* bytes" <<<"$out"; then
    pass "slot shows the slot, active, with its retained WAL"
else
    fail "slot shows the slot, active, with its retained WAL" "$out"
fi
j=$(pgsync-slot --config "$schema" --json 2>&1)
if jq -e --arg s "$slot" '.[0] | .name == $s and .active and .retained_wal_bytes >= 0
        and .wal_status != null and .restart_lsn != null' <<<"$j" >/dev/null; then
    pass "slot --json"
else
    fail "slot --json" "$j"
fi
out=$(pgsync-slot --config "$schema" --drop --yes 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "active" <<<"$out" && grep -q "producer" <<<"$out" &&
    [ "$(psql_q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'")" = 1 ]; then
    pass "slot --drop refuses while the producer runs"
else
    fail "slot --drop refuses while the producer runs" "rc=$rc $out"
fi
stop_bg producer >/dev/null 2>&1
stop_bg consumer >/dev/null 2>&1
wait_until 10 is f slot_active
out=$(pgsync-slot --config "$schema" --drop --yes 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ "$(psql_q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'")" = 0 ]; then
    pass "slot --drop --yes drops it once the producer stopped"
else
    fail "slot --drop --yes drops it once the producer stopped" "rc=$rc $out"
fi
out=$(pgsync-slot --config "$schema" 2>&1)
grep -q "does not exist" <<<"$out" && pass "slot: a dropped slot shows as missing" ||
    fail "slot: a dropped slot shows as missing" "$out"

# no secret in any output
export PG_PASSWORD=sekrit-pg ELASTICSEARCH_PASSWORD=sekrit-es
out=$( (pgsync-queue --config "$schema"; pgsync-slot --config "$schema"; pgsync-dlq --config "$schema" list;
    pgsync-replay --config "$schema" --from 0 --dry-run) 2>&1)
if grep -q sekrit <<<"$out"; then
    fail "the tools print no password" "$out"
else
    pass "the tools print no password"
fi
unset ELASTICSEARCH_PASSWORD
export PG_PASSWORD=

pgsync-bootstrap --config "$schema" --teardown >>"$log" 2>&1
es_drop_index "$index" 2>/dev/null
redis_q DEL "$stream" "$dlq" "pgsync:{$index}:meta" >/dev/null
