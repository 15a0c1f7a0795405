#!/usr/bin/env bash
# Bootstrap and the trigger mode (issue: the producer): pgsync-bootstrap as a
# role with only LOGIN REPLICATION and SELECT prints exactly the SQL a DBA
# must run, then succeeds, twice; teardown removes everything. Then the book
# example end to end with PGSYNC_MODE=notify: outbox, triggers, LISTEN, the
# poll that covers a lost wake-up, changes made while the producer was down,
# TRUNCATE, and a teardown that leaves nothing behind.
. "$(dirname "$0")/lib.sh"

new_db notify >/dev/null
db=$PGDATABASE
index=$(unique_name notify)
stream="pgsync:{$index}:changes"
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
schema=$PGS_STACK_DIR/$index.json
jq --arg db "$db" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
slot=$(printf 'pgsync_%s_%s' "$db" "$index" | tr -c 'a-z0-9_\n' '_' | cut -c1-63)
# logical mode: one slot and one publication for the database
dbslot=$(printf 'pgsync_%s' "$db" | tr -c 'a-z0-9_\n' '_' | cut -c1-63)
role=$(unique_name sync)
psql_q "CREATE ROLE \"$role\" LOGIN REPLICATION; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"$role\""
blog=$PGS_STACK_DIR/logs/$index-bootstrap.log

# as_role CMD...: CMD as the unprivileged role; stdout+stderr to the log,
# the DBA script (the "-- pgsync-bootstrap" block) to $PGS_STACK_DIR/$index.dba
as_role() {
    PG_USER=$role "$@" >"$blog.out" 2>&1
    local rc=$?
    cat "$blog.out" >>"$blog"
    sed -n '/^-- pgsync-bootstrap/,/^$/p' "$blog.out" | grep -v '^--' | sed '/^$/d' >"$PGS_STACK_DIR/$index.dba"
    return $rc
}
dba_sql() { cat "$PGS_STACK_DIR/$index.dba"; }
run_dba() { psql_q <"$PGS_STACK_DIR/$index.dba" >/dev/null; }
count_q() { psql_q "$1"; }

# --- logical mode, unprivileged ------------------------------------------------------
if as_role pgsync-bootstrap --config "$schema"; then
    fail "bootstrap as $role without the owner's steps fails" "it succeeded"
else
    pass "bootstrap as $role without the owner's steps fails"
fi
check_eq "it prints exactly the owner's steps" \
    "CREATE PUBLICATION \"$dbslot\" FOR TABLE \"public\".\"book\", \"public\".\"author\", \"public\".\"book_author\";
ALTER TABLE \"public\".\"book_author\" REPLICA IDENTITY FULL;" "$(dba_sql)"
check_eq "nothing was created: no slot yet" 0 \
    "$(count_q "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")"
run_dba || fail "the DBA script runs" "psql failed"
if as_role pgsync-bootstrap --config "$schema" && as_role pgsync-bootstrap --config "$schema"; then
    pass "after the DBA's steps, bootstrap as $role succeeds, twice"
else
    fail "after the DBA's steps, bootstrap as $role succeeds, twice" "$(tail -3 "$blog.out")"
fi
check_eq "the slot exists" 1 \
    "$(count_q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$dbslot' AND plugin = 'pgoutput'")"
check_eq "the publication has exactly the schema's tables" "author book book_author" \
    "$(count_q "SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = '$dbslot'")"
check_eq "only book_author got REPLICA IDENTITY FULL" "author:d book:d book_author:f" \
    "$(count_q "SELECT string_agg(relname || ':' || relreplident::text, ' ' ORDER BY relname) FROM pg_class
                WHERE relname IN ('book', 'author', 'book_author')")"
as_role pgsync-bootstrap --config "$schema" --teardown
check_eq "teardown as $role: drops the slot, leaves the publication's drop to its owner" \
    "DROP PUBLICATION IF EXISTS \"$dbslot\";" "$(dba_sql)"
run_dba
if as_role pgsync-bootstrap --config "$schema" --teardown; then
    pass "teardown again after the DBA's step succeeds"
else
    fail "teardown again after the DBA's step succeeds" "$(tail -3 "$blog.out")"
fi
check_eq "teardown leaves no slot and no publication" "0 0" \
    "$(count_q "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$dbslot') || ' ' ||
                       (SELECT count(*) FROM pg_publication WHERE pubname = '$dbslot')")"

# a role without REPLICATION nor SELECT: the script says so too, and only that
psql_q "REVOKE SELECT ON book FROM \"$role\"; ALTER ROLE \"$role\" NOREPLICATION"
psql_q "CREATE PUBLICATION \"$dbslot\" FOR TABLE book, author, book_author"
as_role pgsync-bootstrap --config "$schema"
check_eq "missing REPLICATION and SELECT: the script grants exactly those" \
    "GRANT SELECT ON \"public\".\"book\" TO \"$role\";
ALTER ROLE \"$role\" REPLICATION;" "$(dba_sql)"
run_dba
psql_q "DROP PUBLICATION \"$dbslot\""

# --- trigger mode, unprivileged --------------------------------------------------------
export PGSYNC_MODE=notify
as_role pgsync-bootstrap --config "$schema"
# one line per statement, cut to what it creates
got=$(dba_sql | grep -E '^(CREATE|GRANT|ALTER|DROP)' |
    sed -E 's/ AFTER [A-Z ]+ ON / ON /; s/ FOR EACH .*//; s/ RETURNS .*//; s/ \(id .*//')
t() { printf 'CREATE TRIGGER "%s" ON "public"."%s"\nCREATE TRIGGER "%s_t" ON "public"."%s"\n' "$slot" "$1" "$slot" "$1"; }
check_eq "trigger mode as $role: the script creates schema, outbox, function, 6 triggers, grants" \
    "CREATE SCHEMA IF NOT EXISTS pgsync;
CREATE TABLE IF NOT EXISTS pgsync.\"$slot\"
CREATE OR REPLACE FUNCTION pgsync.\"$slot\"()
$(t book; t author; t book_author)
GRANT USAGE ON SCHEMA pgsync TO \"$role\";
GRANT SELECT, DELETE ON pgsync.\"$slot\" TO \"$role\";" "$got"
run_dba || fail "the trigger mode's DBA script runs" "psql failed"
if as_role pgsync-bootstrap --config "$schema" && as_role pgsync-bootstrap --config "$schema"; then
    pass "trigger mode: bootstrap as $role succeeds after the DBA's steps, twice"
else
    fail "trigger mode: bootstrap as $role succeeds after the DBA's steps, twice" "$(tail -3 "$blog.out")"
fi
check_eq "trigger mode creates no slot and no publication" "0 0" \
    "$(count_q "SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()) || ' ' ||
                       (SELECT count(*) FROM pg_publication)")"

# --- the book example end to end in trigger mode -------------------------------------
doc() { es_doc "$index" "$1" | jq -cS .; }
authors_of() { es_doc "$index" "$1" | jq -c .authors; }
title_of() { es_doc "$index" "$1" | jq -r .title; }
authors_are() { [ "$(authors_of "$1")" = "$2" ]; }
title_is() { [ "$(title_of "$1")" = "$2" ]; }
outbox_rows() { psql_q "SELECT count(*) FROM pgsync.\"$slot\""; }
outbox_empty() { [ "$(outbox_rows)" = 0 ]; }

if PG_USER=$role pgsync --config "$schema" --quiet >"$PGS_STACK_DIR/logs/$index-load.log" 2>&1; then
    pass "trigger mode: pgsync one-shot as $role exits 0"
else
    fail "trigger mode: pgsync one-shot as $role exits 0" "$(tail -3 "$PGS_STACK_DIR/logs/$index-load.log")"
fi
check_eq "trigger mode: the load gives the three books" \
    "9781471331435 9785811243570 9788374950978" "$(es_ids "$index" | xargs)"

# written while no producer runs: drained when it starts
psql_q "INSERT INTO book_author (book_isbn, author_id) VALUES ('9781471331435', 2)"
PG_USER=$role start_bg producer pgsync-producer --config "$schema"
PG_USER=$role start_bg consumer pgsync-consumer --config "$schema"
if wait_until 20 authors_are 9781471331435 '["George Orwell","Haruki Murakami"]'; then
    pass "trigger mode: a change made while the producer was down is drained at its start"
else
    fail "trigger mode: a change made while the producer was down is drained at its start" \
        "got $(authors_of 9781471331435)"
fi
psql_q "UPDATE author SET name = 'Haruki Murakami (村上春樹)' WHERE id = 2"
if wait_until 10 authors_are 9788374950978 '["Haruki Murakami (村上春樹)","Philip Gabriel"]' &&
    wait_until 5 authors_are 9781471331435 '["George Orwell","Haruki Murakami (村上春樹)"]'; then
    pass "trigger mode: renaming an author changes every book that lists them"
else
    fail "trigger mode: renaming an author changes every book that lists them" \
        "got $(authors_of 9788374950978) and $(authors_of 9781471331435)"
fi
psql_q "INSERT INTO book (isbn, title, description) VALUES ('9780099448792', 'Norwegian Wood', 'A novel.');
        INSERT INTO book_author (book_isbn, author_id) VALUES ('9780099448792', 2)"
wait_until 10 authors_are 9780099448792 '["Haruki Murakami (村上春樹)"]' &&
    pass "trigger mode: inserting a book adds a document" ||
    fail "trigger mode: inserting a book adds a document" "got '$(es_doc "$index" 9780099448792)'"
psql_q "UPDATE book SET isbn = '9780099448793' WHERE isbn = '9780099448792'"
gone() { ! es_doc "$index" "$1" >/dev/null; }
if wait_until 10 authors_are 9780099448793 '["Haruki Murakami (村上春樹)"]' && wait_until 5 gone 9780099448792; then
    pass "trigger mode: a primary-key update moves the document"
else
    fail "trigger mode: a primary-key update moves the document" "$(es_ids "$index" | xargs)"
fi
psql_q "DELETE FROM book_author WHERE book_isbn = '9788374950978' AND author_id = 3"
wait_until 10 authors_are 9788374950978 '["Haruki Murakami (村上春樹)"]' &&
    pass "trigger mode: deleting a book_author row removes the name" ||
    fail "trigger mode: deleting a book_author row removes the name" "got $(authors_of 9788374950978)"
psql_q "DELETE FROM book WHERE isbn = '9785811243570'"
wait_until 10 gone 9785811243570 && pass "trigger mode: deleting a book removes its document" ||
    fail "trigger mode: deleting a book removes its document" "still there"
wait_until 10 outbox_empty && pass "trigger mode: the outbox is emptied once Redis holds the records" ||
    fail "trigger mode: the outbox is emptied once Redis holds the records" "$(outbox_rows) rows left"

# a lost wake-up: a row that comes without a notification is taken by the poll
psql_q "ALTER TABLE book DISABLE TRIGGER \"$slot\";
        UPDATE book SET title = 'Nineteen Eighty-Four' WHERE isbn = '9781471331435';
        ALTER TABLE book ENABLE TRIGGER \"$slot\";
        INSERT INTO pgsync.\"$slot\" (s, t, op, old, new)
        VALUES ('public', 'book', 'U', '{\"isbn\": \"9781471331435\"}', '{\"isbn\": \"9781471331435\"}')"
if wait_until 12 title_is 9781471331435 "Nineteen Eighty-Four"; then
    pass "trigger mode: the 5 s poll drains a row whose notification was lost"
else
    fail "trigger mode: the 5 s poll drains a row whose notification was lost" "got $(title_of 9781471331435)"
fi

# versions: drains in commit order, strictly increasing between drains
lsns=$(redis_q --raw XRANGE "$stream" - + | awk 'p { print; p = 0 } $0 == "lsn" { p = 1 }')
if [ -n "$lsns" ] && [ "$lsns" = "$(sort -n <<<"$lsns")" ] && [ "$(sort -un <<<"$lsns" | wc -l)" -ge 5 ]; then
    pass "trigger mode: record versions never go back ($(sort -un <<<"$lsns" | wc -l) drains)"
else
    fail "trigger mode: record versions never go back" "$(xargs <<<"$lsns")"
fi

psql_q "TRUNCATE book_author"
wait_until 10 authors_are 9788374950978 '[]' || wait_until 1 authors_are 9788374950978 'null' &&
    pass "trigger mode: TRUNCATE of a child table reaches the documents" ||
    fail "trigger mode: TRUNCATE of a child table reaches the documents" "got $(authors_of 9788374950978)"

# SIGTERM, and a final check that the index equals the database
psql_q "UPDATE book SET title = 'last' WHERE isbn = '9788374950978'"
wait_until 10 title_is 9788374950978 last || fail "trigger mode: last change" "got $(title_of 9788374950978)"
if stop_bg producer && stop_bg consumer; then
    pass "trigger mode: producer and consumer stop cleanly on SIGTERM"
else
    fail "trigger mode: producer and consumer stop cleanly on SIGTERM" "non-zero exit"
fi

# --- teardown: nothing of either mode is left -------------------------------------------
as_role pgsync-bootstrap --config "$schema" --teardown
run_dba
if pgsync-bootstrap --config "$schema" --teardown >>"$blog" 2>&1; then
    pass "trigger mode: teardown succeeds"
else
    fail "trigger mode: teardown succeeds" "$(tail -3 "$blog")"
fi
check_eq "teardown removes triggers, function, outbox and the pgsync schema" "0 0 0 0" \
    "$(count_q "SELECT (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal) || ' ' ||
                       (SELECT count(*) FROM pg_proc WHERE proname = '$slot') || ' ' ||
                       (SELECT count(*) FROM pg_class WHERE relname = '$slot') || ' ' ||
                       (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgsync')")"
unset PGSYNC_MODE
psql_q "DROP OWNED BY \"$role\"; DROP ROLE \"$role\"" >/dev/null 2>&1
