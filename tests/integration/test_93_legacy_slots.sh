#!/usr/bin/env bash
# Moving a deployment from one slot per index to one per database (issue:
# one WAL reader per database), without a resync. Two indices on one
# database run the old layout: a slot and a publication of each one's own.
# Changes committed while no producer ran sit only in those slots. After
# pgsync-bootstrap makes the database's slot (past those changes), the
# producer reads each old slot into its index's stream up to the new slot's
# position, then drops it and its publication. Both indices converge
# exactly, the changes that only the old slots held included.
. "$(dirname "$0")/lib.sh"

new_db legacy >/dev/null
db=$PGDATABASE
a=$(unique_name legacya)
b=$(unique_name legacyb)
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
schema=$PGS_STACK_DIR/$a.json
jq --arg db "$db" --arg a "$a" --arg b "$b" \
    '[(.[0] | .database = $db | .index = $a), (.[0] | .database = $db | .index = $b)]' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
shared="pgsync_${db,,}"

if pgsync --config "$schema" --quiet >"$PGS_STACK_DIR/logs/$a-load.log" 2>&1; then
    pass "legacy slots: both indices loaded"
else
    fail "legacy slots: both indices loaded" "$(tail -5 "$PGS_STACK_DIR/logs/$a-load.log")"
fi

# the old layout, as an earlier version left it: no database slot, one slot
# and one publication per index (named after the database and the index)
psql_q >/dev/null <<SQL
SELECT pg_drop_replication_slot('$shared');
DROP PUBLICATION "$shared";
CREATE PUBLICATION "pgsync_${db,,}_$a" FOR TABLE book, author, book_author;
CREATE PUBLICATION "pgsync_${db,,}_$b" FOR TABLE book, author, book_author;
SELECT pg_create_logical_replication_slot('pgsync_${db,,}_$a', 'pgoutput');
SELECT pg_create_logical_replication_slot('pgsync_${db,,}_$b', 'pgoutput');
SQL
# committed while no producer runs: only the old slots hold these
psql_q "UPDATE book SET title = 'only in the old slots' WHERE isbn = '9788374950978'"
psql_q "UPDATE author SET name = 'George O.' WHERE id = 4"
before=$(psql_q "SELECT pg_current_wal_lsn()")

out=$(pgsync-bootstrap --config "$schema" 2>&1) ||
    fail "legacy slots: pgsync-bootstrap makes the database's slot" "$out"
made=$(psql_q "SELECT confirmed_flush_lsn >= '$before'::pg_lsn FROM pg_replication_slots
               WHERE slot_name = '$shared'")
check_eq "legacy slots: the database's slot starts past the changes only the old slots hold" t "$made"
psql_q "UPDATE book SET title = 'in every slot' WHERE isbn = '9785811243570'"

start_bg legacy_p_$$ pgsync-producer --config "$schema"
start_bg legacy_c_$$ pgsync-consumer --config "$schema"

title_of() { es_doc "$1" "$2" | jq -r .title; }
seen() {
    for ix in "$a" "$b"; do
        [ "$(title_of "$ix" 9788374950978)" = "only in the old slots" ] &&
            [ "$(title_of "$ix" 9785811243570)" = "in every slot" ] &&
            [ "$(es_doc "$ix" 9781471331435 | jq -c .authors)" = '["George O."]' ] || return 1
    done
}
if wait_until 60 seen; then
    pass "legacy slots: the changes only the old slots held reach both indices"
else
    fail "legacy slots: the changes only the old slots held reach both indices" \
        "$a: $(title_of "$a" 9788374950978) / $b: $(title_of "$b" 9788374950978)"
fi
gone() {
    [ "$(psql_q "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE database = '$db'")" = "$shared" ]
}
if wait_until 30 gone; then
    pass "legacy slots: the old slots are dropped, the database's slot alone is left"
else
    fail "legacy slots: the old slots are dropped, the database's slot alone is left" \
        "$(psql_q "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE database = '$db'")"
fi
check_eq "legacy slots: the old publications are dropped" "$shared" \
    "$(psql_q "SELECT string_agg(pubname, ',') FROM pg_publication")"
check_eq "legacy slots: the producer says so for each" 2 \
    "$(grep -c 'legacy slot done' "$PGS_STACK_DIR/logs/legacy_p_$$.log")"

# changes after the move come through the database's slot
psql_q "UPDATE book SET title = 'after the move' WHERE isbn = '9781471331435'"
after() { [ "$(title_of "$a" 9781471331435)" = "after the move" ] &&
          [ "$(title_of "$b" 9781471331435)" = "after the move" ]; }
if wait_until 30 after; then
    pass "legacy slots: changes after the move reach both indices"
else
    fail "legacy slots: changes after the move reach both indices" "$(title_of "$a" 9781471331435)"
fi
stop_bg legacy_p_$$ 30
stop_bg legacy_c_$$ 30
out=$(pgsync-verify --config "$schema" 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then
    pass "legacy slots: both indices equal the database (pgsync-verify)"
else
    fail "legacy slots: both indices equal the database (pgsync-verify)" "exit $rc: $(tail -3 <<<"$out")"
fi
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1
