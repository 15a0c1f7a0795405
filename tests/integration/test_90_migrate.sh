#!/usr/bin/env bash
# Zero-downtime schema changes (issue #10): the schema of a live index gains a
# child table, renames a field and changes a mapping; pgsync --daemon builds
# <index>_v2 beside <index>_v1 while writes continue, then swaps the alias.
# A search loop querying the alias every 50 ms never sees an error or an
# empty result; at the end the alias serves v2, whose documents equal what
# the new schema generates (pgsync-verify), and v1, its slot and its Redis
# keys are gone. Then, with standalone producer and consumer, a one-shot
# migration killed half-way resumes; and an interrupted one is abandoned.
. "$(dirname "$0")/lib.sh"

new_db migrate >/dev/null
index=$(unique_name migrate)
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
# more books, so that the load of the new version takes a moment
psql_q "INSERT INTO book (isbn, title, description)
        SELECT 'M' || lpad(g::text, 9, '0'), 'Title ' || g, repeat('text ', 40)
        FROM generate_series(1, 20000) g" >/dev/null
psql_q "INSERT INTO book_author (book_isbn, author_id)
        SELECT 'M' || lpad(g::text, 9, '0'), 1 + g % 4 FROM generate_series(1, 20000) g" >/dev/null
psql_q "CREATE TABLE review (id serial PRIMARY KEY,
            book_isbn varchar(13) NOT NULL REFERENCES book (isbn) ON DELETE CASCADE,
            stars integer NOT NULL);
        CREATE INDEX review_book ON review (book_isbn);
        INSERT INTO review (book_isbn, stars) VALUES ('9788374950978', 5), ('9781471331435', 4)" \
    >/dev/null

v1=$PGS_STACK_DIR/$index-v1.json
v2=$PGS_STACK_DIR/$index-v2.json
v3=$PGS_STACK_DIR/$index-v3.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$v1"
# v2: a new child (reviews), "title" renamed to "name", "isbn" mapped as a keyword
jq '.[0].nodes.transform = {"rename": {"title": "name"}, "mapping": {"isbn": {"type": "keyword"}}}
    | .[0].nodes.children += [{"table": "review", "columns": ["stars"], "label": "reviews",
        "relationship": {"variant": "object", "type": "one_to_many"}}]' "$v1" >"$v2"
# v3: yet another change: description dropped
jq '.[0].nodes.columns = ["isbn", "title"]' "$v2" >"$v3"

alias_target() {
    es GET "/_alias/$index" 2>/dev/null | jq -r 'keys | join(",")'
}
count_of() {
    es POST "/$1/_refresh" >/dev/null 2>&1
    es GET "/$1/_count" 2>/dev/null | jq -r '.count // 0'
}

# 1. version 1, live, behind the alias
start_bg daemon1 pgsync --config "$v1" --daemon --quiet
has_count() { [ "$(count_of "$index")" -eq "$1" ]; }
if wait_until 120 has_count 20003; then
    pass "v1: every book indexed"
else
    fail "v1: every book indexed" "$(count_of "$index") documents"
fi
check_eq "v1: the alias points at ${index}_v1" "${index}_v1" "$(alias_target)"

# 2. a search loop on the alias, every 50 ms, and writes that never stop
probe_log=$PGS_STACK_DIR/$index-probe.log
(
    while :; do
        out=$(curl -s -w '\n%{http_code}' --max-time 5 \
            "$ELASTICSEARCH_URL/$index/_search?size=0&track_total_hits=true")
        code=${out##*$'\n'}
        total=$(jq -r '.hits.total.value // .hits.total // 0' <<<"${out%$'\n'*}" 2>/dev/null)
        echo "$code ${total:-0}"
        sleep 0.05
    done
) >"$probe_log" 2>/dev/null &
probe=$!
writer_stop=$PGS_STACK_DIR/$index-writer.stop
(
    i=0
    while [ ! -e "$writer_stop" ]; do
        i=$((i + 1))
        psql_q "UPDATE book SET title = 'Title ' || $i || ' rev' WHERE isbn = 'M' || lpad('$(((i % 20000) + 1))', 9, '0');
                UPDATE author SET name = 'Author ' || $i WHERE id = $((i % 4 + 1));
                INSERT INTO review (book_isbn, stars) VALUES ('M' || lpad('$(((i * 7 % 20000) + 1))', 9, '0'), $((i % 5 + 1)));
                INSERT INTO book (isbn, title) VALUES ('N' || lpad('$i', 9, '0'), 'New $i')" \
            >/dev/null 2>&1
        sleep 0.1
    done
) &
writer=$!

# 3. the schema changes: restart the daemon with v2
sleep 2
stop_bg daemon1 30
start_bg daemon2 pgsync --config "$v2" --daemon --quiet --grace 3
migrated() { [ "$(alias_target)" = "${index}_v2" ]; }
if wait_until 240 migrated; then
    pass "the alias moves to ${index}_v2"
else
    fail "the alias moves to ${index}_v2" "alias points at $(alias_target)"
fi
sleep 2
touch "$writer_stop"
wait "$writer"
old_gone() { ! es GET "/${index}_v1" >/dev/null 2>&1; }
if wait_until 60 old_gone; then
    pass "the old index is deleted after the grace period"
else
    fail "the old index is deleted after the grace period" "${index}_v1 still there"
fi
sleep 1
kill "$probe" 2>/dev/null
wait "$probe" 2>/dev/null

probes=$(wc -l <"$probe_log")
bad=$(awk '$1 != 200 || $2 == 0' "$probe_log" | wc -l)
if [ "$probes" -gt 50 ] && [ "$bad" -eq 0 ]; then
    pass "the search loop saw no error and no empty result ($probes searches)"
else
    fail "the search loop saw no error and no empty result" \
        "$bad bad of $probes: $(awk '$1 != 200 || $2 == 0' "$probe_log" | sort | uniq -c | head -3)"
fi

# 4. the new version equals what the new schema generates
# the group has read everything and acknowledged it: pending 0 and lag 0
settled() {
    redis_q XINFO GROUPS "pgsync:{${index}_v2}:changes" |
        awk 'NR % 2 == 1 { k = $0; next } { v[k] = $0 } END { exit !(v["pending"] == "0" && v["lag"] == "0") }'
}
wait_until 60 settled >/dev/null
sleep 2
out=$(pgsync-verify --config "$v2" 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then
    pass "pgsync-verify: v2 equals the database"
else
    fail "pgsync-verify: v2 equals the database" "exit $rc: $(tail -5 <<<"$out")"
fi
doc=$(es_doc "$index" 9788374950978)
check_eq "v2 documents have the renamed field" "Kafka on the Shore" "$(jq -r .name <<<"$doc")"
check_eq "v2 documents have the new child" '[5]' "$(jq -c '[.reviews[].stars]' <<<"$doc")"
check_eq "v2 maps isbn as a keyword" keyword \
    "$(es GET "/${index}_v2/_mapping" | jq -r ".[\"${index}_v2\"].mappings.properties.isbn.type")"
slots=$(psql_q "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots
                WHERE database = current_database()" | tr -d ' ')
check_eq "one slot serves both versions: the database's" "pgsync_${PGDATABASE,,}" "$slots"
routes=$(redis_q HGET "pgsync:{pgsync_${PGDATABASE,,}}:routes" streams)
check_eq "the producer writes the new version's stream, not the old one's" \
    "pgsync:{${index}_v2}:changes" "$(grep -F ":{${index}" <<<"$routes")"
check_eq "the old version's Redis stream is gone" 0 "$(redis_q EXISTS "pgsync:{$index}:changes")"
check_eq "the version state says v2 is live" 2 "$(redis_q HGET "pgsync:{$index}:versions" live)"

# Redis loses the version state: it is rebuilt from the alias and the index's _meta
redis_q DEL "pgsync:{$index}:versions" >/dev/null
out=$(pgsync-verify --config "$v2" 2>&1)
rc=$?
check_eq "without the Redis state pgsync-verify still checks v2" 0 "$rc"
check_eq "the state is rebuilt from the engine" "2 ${index}_v2" \
    "$(redis_q HGET "pgsync:{$index}:versions" live) $(redis_q HGET "pgsync:{$index}:versions" live_index)"

# a change after the swap reaches the new version
psql_q "UPDATE book SET title = 'After the swap' WHERE isbn = '9785811243570'"
name_is() { [ "$(es_doc "$index" 9785811243570 | jq -r .name)" = "$1" ]; }
if wait_until 30 name_is "After the swap"; then
    pass "changes after the swap reach the new version"
else
    fail "changes after the swap reach the new version" "$(es_doc "$index" 9785811243570)"
fi

# 5. without the daemon: standalone producer and consumer follow the versions by
#    themselves; a one-shot pgsync killed during the load resumes on the next run
stop_bg daemon2 30
start_bg producer pgsync-producer --config "$v2"
start_bg consumer pgsync-consumer --config "$v2"
start_bg mig3 pgsync --config "$v3" --quiet --workers 1 --grace 0
# kill it once a range of the new version's load is finished
v3_ranges_done() { [ "$(redis_q SCARD "pgsync:{${index}_v3}:loaddone")" -ge 1 ]; }
wait_until 120 v3_ranges_done >/dev/null
kill9_bg mig3
done_at_kill=$(redis_q SCARD "pgsync:{${index}_v3}:loaddone")
pkill -KILL -f "pgsync --config $v3" 2>/dev/null
check_eq "a killed migration leaves the alias on v2" "${index}_v2" "$(alias_target)"
check_eq "the one-shot migration did not reload the live v2" 0 \
    "$(grep -c "load started index=${index}_v2 " "$PGS_STACK_DIR/logs/mig3.log")"
psql_q "UPDATE book SET title = 'During v3' WHERE isbn = '9788374950978'"
if timeout 300 pgsync --config "$v3" --quiet --grace 0 >"$PGS_STACK_DIR/logs/$index-v3.log" 2>&1 &&
    grep -q "now serves \"${index}_v3\"" "$PGS_STACK_DIR/logs/$index-v3.log"; then
    pass "the migration resumes and finishes with standalone producer and consumer"
else
    fail "the migration resumes and finishes with standalone producer and consumer" \
        "$(tail -5 "$PGS_STACK_DIR/logs/$index-v3.log")"
fi
check_eq "the alias serves v3" "${index}_v3" "$(alias_target)"
# the rerun starts with every range finished before the kill marked done (or, when the
# whole load had finished, does not load again)
again=$(grep -o "load started index=${index}_v3 .*already_done=[0-9]*" "$PGS_STACK_DIR/logs/$index-v3.log" |
    grep -o 'already_done=[0-9]*' | cut -d= -f2)
if [ "${done_at_kill:-0}" -ge 1 ] && { [ -z "$again" ] || [ "$again" -ge "$done_at_kill" ]; }; then
    pass "the resumed load does not read finished ranges again"
else
    fail "the resumed load does not read finished ranges again" \
        "done at the kill: ${done_at_kill:-?}, already_done at the rerun: ${again:-none}"
fi
v2_gone() { ! es GET "/${index}_v2" >/dev/null 2>&1; }
wait_until 30 v2_gone && pass "v2 is deleted (--grace 0)" || fail "v2 is deleted (--grace 0)" "still there"
v3_title() { [ "$(es_doc "$index" 9788374950978 | jq -r .name)" = "During v3" ]; }
wait_until 30 v3_title && pass "v3 has the change made during its migration" ||
    fail "v3 has the change made during its migration" "$(es_doc "$index" 9788374950978)"
stop_bg consumer 30
stop_bg producer 30

# 6. an interrupted migration, abandoned: the live index is untouched
v4=$PGS_STACK_DIR/$index-v4.json
jq '.[0].nodes.columns = ["isbn", "description"]' "$v3" >"$v4"
start_bg mig4 pgsync --config "$v4" --quiet --workers 1
v4_started() { es GET "/${index}_v4" >/dev/null 2>&1; }
wait_until 60 v4_started >/dev/null
kill9_bg mig4
pkill -KILL -f "pgsync --config $v4" 2>/dev/null
if pgsync --config "$v4" --abort >"$PGS_STACK_DIR/logs/$index-abort.log" 2>&1; then
    pass "pgsync --abort exits 0"
else
    fail "pgsync --abort exits 0" "$(tail -5 "$PGS_STACK_DIR/logs/$index-abort.log")"
fi
check_eq "after --abort the alias still serves v3" "${index}_v3" "$(alias_target)"
check_eq "after --abort the v4 index is gone" 1 "$(v4_started && echo 0 || echo 1)"
slots=$(psql_q "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()" | tr -d ' ')
check_eq "after --abort the database's slot stays, the only one" 1 "$slots"
check_eq "after --abort the v4 stream is gone" 0 "$(redis_q EXISTS "pgsync:{${index}_v4}:changes")"
check_eq "after --abort no target is recorded" "" "$(redis_q HGET "pgsync:{$index}:versions" target)"
out=$(pgsync-consumer --config "$v4" --exit-when-idle 2>&1)
if [ $? -ne 0 ] && grep -q "differs from its live version 3" <<<"$out"; then
    pass "a consumer with a schema nobody migrated to says so and exits"
else
    fail "a consumer with a schema nobody migrated to says so and exits" "$(tail -3 <<<"$out")"
fi
