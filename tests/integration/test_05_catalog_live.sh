#!/usr/bin/env bash
# The catalog loader's unit test against a real database (the book example):
# tables, keys and foreign keys as PostgreSQL reports them.
. "$(dirname "$0")/lib.sh"

new_db catalog >/dev/null
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
out=$(cd "$PGS_ROOT" && PGS_TEST_PGHOST=$PG_HOST PGS_TEST_PGPORT=$PG_PORT \
    PGS_TEST_PGDATABASE=$PGDATABASE PGS_TEST_PGUSER=$PG_USER \
    "${PGS_BUILD:-build/rel}/tests/test_schema" 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q "OK \] test_catalog_load_live" <<<"$out"; then
    pass "catalog_load reads the book database"
else
    fail "catalog_load reads the book database" "rc=$rc: $(tail -5 <<<"$out")"
fi
