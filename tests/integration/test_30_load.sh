#!/usr/bin/env bash
# The initial load at scale (issue: initial load): 200,000 books with
# authors through book_author. A load killed with -9 half-way resumes
# without reading finished ranges again; updates committed during a load
# all win over the loaded copies; two consumers share one load's work items.
. "$(dirname "$0")/lib.sh"

ROWS=${PGS_LOAD_ROWS:-200000}
new_db load >/dev/null
psql -XAtq -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PGDATABASE" -v books="$ROWS" \
    -v authors=$((ROWS / 3)) -f "$PGS_ROOT/bench/gen_books.sql" >/dev/null ||
    fail "generate $ROWS books" "psql failed"
index=$(unique_name load)
schema=$PGS_STACK_DIR/$index.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
meta="pgsync:{$index}:meta"
log=$PGS_STACK_DIR/logs/$index

count() { es POST "/$index/_refresh" >/dev/null; es GET "/$index/_count" | jq .count; }
verify() {
    pgsync-verify --config "$schema" >"$log-verify.out" 2>&1
}

# 1. kill -9 at about half-way, then resume
start_bg load1 pgsync --config "$schema" --workers 2
if wait_until 300 bash -c "[ \"\$(redis-cli -h $REDIS_HOST -p $REDIS_PORT SCARD 'pgsync:{$index}:loaddone')\" -ge 1 ]"; then
    kill9_bg load1
    sleep 0.5
    done_parts=$(redis_q SCARD "pgsync:{$index}:loaddone")
    parts=$(redis_q HGET "$meta" load_parts)
    if [ "${done_parts:-0}" -gt 0 ] && [ "${done_parts:-0}" -lt "${parts:-0}" ]; then
        pass "kill -9 half-way leaves some ranges done ($done_parts of $parts)"
    else
        fail "kill -9 half-way leaves some ranges done" "done=$done_parts parts=$parts"
    fi
    # a worker must not outlive its coordinator
    sleep 1
    if pgrep -f "pgsync --config $schema" >/dev/null; then
        fail "no load worker survives its coordinator" "$(pgrep -af "pgsync --config $schema")"
    else
        pass "no load worker survives its coordinator"
    fi
else
    fail "the load finishes a first range" "load_docs=$(redis_q HGET "$meta" load_docs)"
fi
if pgsync --config "$schema" --workers 2 >"$log-resume.log" 2>&1; then
    pass "the load resumes and exits 0"
else
    fail "the load resumes and exits 0" "$(tail -3 "$log-resume.log")"
fi
resumed=$(grep -o 'ranges_resumed=[0-9]*' "$log-resume.log" | cut -d= -f2)
if [ "${resumed:-0}" -gt 0 ]; then
    pass "finished ranges are not read again ($resumed skipped)"
else
    fail "finished ranges are not read again" "ranges_resumed=$resumed"
fi
check_eq "after resume: every book indexed" "$ROWS" "$(count)"
if verify; then
    pass "after resume: the index equals what the database generates"
else
    fail "after resume: the index equals what the database generates" "$(tail -5 "$log-verify.out")"
fi

# 2. updates during a load: every one of them ends in the index
start_bg producer pgsync-producer --config "$schema"
start_bg consumer pgsync-consumer --config "$schema"
start_bg load2 pgsync --config "$schema" --resync --workers 2
# commit updates while the load runs, to rows spread over the whole table
for i in $(seq 1 40); do
    psql_q "UPDATE book SET title = 'fresh $i ' || isbn WHERE isbn IN
            (SELECT lpad((1 + (g * 9973 + $i * 31) % $ROWS)::text, 13, '0') FROM generate_series(1, 50) g)"
    psql_q "UPDATE author SET name = name || ' v$i' WHERE id = $i"
done
if wait_until 300 bash -c "! kill -0 $(bg_pid load2) 2>/dev/null"; then
    pass "a load with updates running finishes"
else
    fail "a load with updates running finishes" "still running"
fi
stream="pgsync:{$index}:changes"
drained() { [ "$(redis_q XPENDING "$stream" pgsync | head -1)" = 0 ] &&
    [ "$(redis_q XINFO GROUPS "$stream" | awk 'f{print; exit} /last-delivered-id/{f=1}')" = \
        "$(redis_q XINFO STREAM "$stream" | awk 'f{print; exit} /last-generated-id/{f=1}')" ]; }
wait_until 120 drained || fail "the stream drains" "still pending"
if verify; then
    pass "updates made during the load all win over loaded copies"
else
    fail "updates made during the load all win over loaded copies" "$(tail -8 "$log-verify.out")"
fi
stop_bg consumer

# 3. two consumers share one load's work items (the coordinator runs no worker)
start_bg consumer_a pgsync-consumer --config "$schema" --name a --log-level debug
start_bg consumer_b pgsync-consumer --config "$schema" --name b --log-level debug
if pgsync --config "$schema" --resync --workers 0 >"$log-shared.log" 2>&1; then
    pass "a load done by running consumers alone finishes"
else
    fail "a load done by running consumers alone finishes" "$(tail -3 "$log-shared.log")"
fi
a=$(grep -c '"load range done"' "$PGS_STACK_DIR/logs/consumer_a.log")
b=$(grep -c '"load range done"' "$PGS_STACK_DIR/logs/consumer_b.log")
if [ "$a" -gt 0 ] && [ "$b" -gt 0 ]; then
    pass "two consumers share the work items of one load ($a and $b ranges)"
else
    fail "two consumers share the work items of one load" "a=$a b=$b"
fi
check_eq "after the shared load: every book indexed" "$ROWS" "$(count)"

# 4. a root TRUNCATE during a load: the ranges not read yet are skipped, and
# no document read from the load's snapshot outlives the truncate
start_bg load4 pgsync --config "$schema" --resync --workers 0
wait_until 300 bash -c "[ \"\$(redis-cli -h $REDIS_HOST -p $REDIS_PORT SCARD 'pgsync:{$index}:loaddone')\" -ge 1 ]" ||
    fail "a load with a truncate finishes a first range" "none done"
psql_q "TRUNCATE book CASCADE"
psql_q "INSERT INTO book (isbn, title) VALUES ('9990000000002', 'after the truncate')"
if wait_until 300 bash -c "! kill -0 $(bg_pid load4) 2>/dev/null"; then
    pass "a load the root table's truncate cut short finishes"
else
    fail "a load the root table's truncate cut short finishes" "still running"
fi
wait_until 120 drained || fail "the stream drains after the truncate" "still pending"
only_new() { [ "$(count)" = 1 ]; }
wait_until 30 only_new
check_eq "after a truncate during the load: only the book inserted since is indexed" 1 "$(count)"
if verify; then
    pass "after a truncate during the load: the index equals the database"
else
    fail "after a truncate during the load: the index equals the database" "$(tail -5 "$log-verify.out")"
fi
skipped=$(cat "$PGS_STACK_DIR"/logs/consumer_[ab].log | grep -c '"load range skipped')
echo "truncate during the load: $skipped ranges skipped"
stop_bg consumer_a
stop_bg consumer_b
