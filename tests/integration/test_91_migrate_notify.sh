#!/usr/bin/env bash
# Zero-downtime schema changes in trigger mode (--mode notify): the new
# version gets its own outbox and triggers beside the old one's, is caught up
# through them, and the old version's triggers and outbox go after the swap.
. "$(dirname "$0")/lib.sh"

new_db mignotify >/dev/null
index=$(unique_name mignotify)
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
psql_q "INSERT INTO book (isbn, title) SELECT 'M' || lpad(g::text, 9, '0'), 'Title ' || g
        FROM generate_series(1, 5000) g" >/dev/null

v1=$PGS_STACK_DIR/$index-v1.json
v2=$PGS_STACK_DIR/$index-v2.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$v1"
jq '.[0].nodes.transform = {"rename": {"title": "name"}}' "$v1" >"$v2"

alias_target() { es GET "/_alias/$index" 2>/dev/null | jq -r 'keys | join(",")'; }
count_is() {
    es POST "/$index/_refresh" >/dev/null 2>&1
    [ "$(es GET "/$index/_count" 2>/dev/null | jq -r .count)" = "$1" ]
}
triggers() {
    psql_q "SELECT string_agg(DISTINCT tgname, ',' ORDER BY tgname) FROM pg_trigger
            WHERE tgrelid = 'book'::regclass AND NOT tgisinternal"
}

start_bg d1 pgsync --config "$v1" --daemon --quiet --mode notify
if wait_until 60 count_is 5003; then pass "notify v1: every book indexed"; else
    fail "notify v1: every book indexed" "$(es GET "/$index/_count")"; fi

writer_stop=$PGS_STACK_DIR/$index-writer.stop
(
    i=0
    while [ ! -e "$writer_stop" ]; do
        i=$((i + 1))
        psql_q "UPDATE book SET title = 'Rev $i' WHERE isbn = 'M' || lpad('$(((i % 5000) + 1))', 9, '0');
                INSERT INTO book (isbn, title) VALUES ('N' || lpad('$i', 9, '0'), 'New $i')" \
            >/dev/null 2>&1
        sleep 0.1
    done
) &
writer=$!
sleep 1
stop_bg d1 30
start_bg d2 pgsync --config "$v2" --daemon --quiet --mode notify --grace 0
migrated() { [ "$(alias_target)" = "${index}_v2" ]; }
if wait_until 180 migrated; then pass "notify: the alias moves to v2"; else
    fail "notify: the alias moves to v2" "alias points at $(alias_target)"; fi
touch "$writer_stop"
wait "$writer"
old_gone() { ! es GET "/${index}_v1" >/dev/null 2>&1; }
wait_until 30 old_gone && pass "notify: the old index is deleted" ||
    fail "notify: the old index is deleted" "still there"
# two triggers (row and TRUNCATE), both the new version's (names are cut at 63 bytes)
only_v2_triggers() {
    local t
    t=$(triggers)
    [ "$(tr ',' '\n' <<<"$t" | wc -l)" -eq 2 ] && [[ $t != *"pgsync_${PGDATABASE}_${index},"* ]] &&
        [[ $t == *"_v2"* ]]
}
if wait_until 30 only_v2_triggers; then pass "notify: only the new version's triggers are left"; else
    fail "notify: only the new version's triggers are left" "$(triggers)"; fi
check_eq "notify: the old outbox is gone" "" \
    "$(psql_q "SELECT to_regclass('pgsync.\"pgsync_${PGDATABASE}_${index}\"')")"

sleep 3
out=$(PGSYNC_MODE=notify pgsync-verify --config "$v2" 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then pass "notify: pgsync-verify: v2 equals the database"; else
    fail "notify: pgsync-verify: v2 equals the database" "exit $rc: $(tail -5 <<<"$out")"; fi
stop_bg d2 30
