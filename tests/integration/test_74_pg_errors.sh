#!/usr/bin/env bash
# PostgreSQL errors on a live connection (issue: faults production meets) are
# judged by SQLSTATE. The consumer's role has a statement_timeout; a DBA holds
# a lock the document query needs, then cancels the waiting query by hand
# (pg_cancel_backend): every one of those errors (57014) is retried with
# backoff, nothing is dead-lettered, the consumer never exits, and the index
# converges once the lock goes. (A row's own error, class 22, still
# dead-letters that row alone: test_81 and the unit test test_pgerr.)
. "$(dirname "$0")/lib.sh"

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=3000
new_db pgerr >/dev/null
index=$(unique_name pgerr)
role=pgs_timeout_$$
psql_q <<SQL >/dev/null
CREATE TABLE item (id int PRIMARY KEY, title text, code text);
CREATE TABLE tag (id int PRIMARY KEY, item_id int REFERENCES item (id), name text);
INSERT INTO item SELECT g, 'item ' || g, g::text FROM generate_series(1, 300) g;
INSERT INTO tag SELECT g, 1 + g % 300, 'tag ' || g FROM generate_series(1, 300) g;
CREATE ROLE $role LOGIN SUPERUSER;
ALTER ROLE $role SET statement_timeout = '1500ms';
SQL
dir=$PGS_STACK_DIR/pgerr-$$
mkdir -p "$dir"
schema=$dir/schema.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index",
  "nodes": {"table": "item", "columns": ["id", "title", "code"],
            "children": [{"table": "tag", "label": "tags", "columns": ["name"],
                          "relationship": {"variant": "scalar", "type": "one_to_many"}}]}}]
EOF
log=$dir/load.log
pgsync --config "$schema" --quiet >>"$log" 2>&1 || { fail "pg errors: loaded" "$(tail -5 "$log")"; exit 1; }
mport=$(free_port)
start_bg "pe_p_$$" pgsync-producer --config "$schema"
PG_USER=$role start_bg "pe_c_$$" pgsync-consumer --config "$schema" --name to --metrics-port "$mport"
title_of() { es POST "/$index/_refresh" >/dev/null 2>&1; es_doc "$index" "$1" | jq -r .title; }

# the lock first (held 8 s), then the changes: the document query waits on "tag" and times out
psql -XAtq -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PGDATABASE" >"$dir/lock.out" 2>&1 <<'SQL' &
SET statement_timeout = 0;
BEGIN;
LOCK TABLE tag IN ACCESS EXCLUSIVE MODE;
SELECT pg_sleep(8);
COMMIT;
SQL
locker=$!
locked() { [ "$(psql_q "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE c.relname = 'tag' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ]; }
wait_until 10 locked || fail "pg errors: the lock is taken" "$(cat "$dir/lock.out")"
psql_q "UPDATE item SET title = 'changed ' || id WHERE id <= 40" >/dev/null
# the consumer's query waits on the lock: cancel it by hand too, as a DBA would
waiting() { [ "$(psql_q "SELECT count(*) FROM pg_stat_activity WHERE usename = '$role'
    AND wait_event_type = 'Lock'")" -ge 1 ]; }
if wait_until 10 waiting; then
    psql_q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE usename = '$role'
            AND wait_event_type = 'Lock'" >/dev/null
fi
timed_out() { grep -q "57014" "$PGS_STACK_DIR/logs/pe_c_$$.log"; }
if wait_until 15 timed_out; then
    pass "pg errors: the cancelled and timed-out queries are logged with their SQLSTATE ($(grep -o 'query canceled[^"]*' "$PGS_STACK_DIR/logs/pe_c_$$.log" | head -1))"
else
    fail "pg errors: the timed-out query is logged with its SQLSTATE" "$(tail -3 "$PGS_STACK_DIR/logs/pe_c_$$.log")"
fi
wait "$locker"
changed() { [ "$(title_of 40)" = "changed 40" ] && [ "$(title_of 1)" = "changed 1" ]; }
if wait_until 60 changed; then
    pass "pg errors: once the lock is gone, the changes arrive"
else
    fail "pg errors: once the lock is gone, the changes arrive" "$(title_of 40)"
fi
check_eq "pg errors: nothing dead-lettered for a timeout or a cancel" "0" \
    "$(redis_q XLEN "pgsync:{$index}:dlq")"
if kill -0 "$(bg_pid "pe_c_$$")" 2>/dev/null; then
    pass "pg errors: the consumer never exited"
else
    fail "pg errors: the consumer never exited" "$(tail -3 "$PGS_STACK_DIR/logs/pe_c_$$.log")"
fi

verify_clean() { pgsync-verify --config "$schema" --max-diffs 5 >"$dir/verify.out" 2>&1; }
if wait_until 60 verify_clean; then
    pass "pg errors: the index converges exactly (pgsync-verify clean)"
else
    fail "pg errors: the index converges exactly" "$(tail -5 "$dir/verify.out")"
fi
for b in "pe_p_$$" "pe_c_$$"; do stop_bg "$b" >/dev/null 2>&1; done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 || fail "teardown" "failed"
psql_q "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
