#!/usr/bin/env bash
# The catalog loader's unit test against a real database (the book example):
# tables, keys, column types and foreign keys as PostgreSQL reports them,
# checked one by one in test_schema's test_catalog_load_live. A second
# database that is not the book example must make that test fail: it
# asserts what it reads, it does not only print it.
. "$(dirname "$0")/lib.sh"

# run_live: test_schema's live group against $PGDATABASE; sets out and rc
run_live() {
    out=$(cd "$PGS_ROOT" && PGS_TEST_PGHOST=$PG_HOST PGS_TEST_PGPORT=$PG_PORT \
        PGS_TEST_PGDATABASE=$PGDATABASE PGS_TEST_PGUSER=$PG_USER \
        "${PGS_BUILD:-build/rel}/tests/test_schema" 2>&1)
    rc=$?
}

new_db catalog >/dev/null
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
run_live
if [ $rc -eq 0 ] && grep -q "OK \] test_catalog_load_live" <<<"$out" &&
    grep -Eq "PASSED +\] 1 test\(s\)" <<<"$out"; then
    pass "catalog_load reads the book database"
else
    fail "catalog_load reads the book database" "rc=$rc: $(tail -5 <<<"$out")"
fi

# the book example with one column type changed and a fourth table
new_db catalog_other >/dev/null
sed 's/title text NOT NULL/title varchar(200) NOT NULL/' "$PGS_ROOT/tests/fixtures/book.sql" |
    psql_q >/dev/null
psql_q "CREATE TABLE extra (id int PRIMARY KEY)" >/dev/null
run_live
if [ $rc -ne 0 ] && grep -Eq "FAILED +\] test_catalog_load_live" <<<"$out"; then
    pass "catalog_load's live test fails on a database that is not the book example"
else
    fail "catalog_load's live test fails on a database that is not the book example" \
        "rc=$rc: $(tail -5 <<<"$out")"
fi
