#!/usr/bin/env bash
# A standby producer (issue: Redis beyond one node): two pgsync-producer for
# one slot; PostgreSQL lets one read it, the other waits. The active one is
# killed with -9 in the middle of a write workload: the standby takes the
# slot over within a few seconds, and nothing is lost. `pgsync --daemon
# --standby-producer` runs both.
. "$(dirname "$0")/lib.sh"

new_db standby >/dev/null
index=$(unique_name standby)
schema=$PGS_STACK_DIR/$index.json
log=$PGS_STACK_DIR/logs/standby_$index.log
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
pgsync --config "$schema" --quiet >>"$log" 2>&1 || fail "standby: load" "$(tail -3 "$log")"
export PGSYNC_BLOCK_MS=200

pa=standby_a_$$ pb=standby_b_$$
start_bg "$pa" pgsync-producer --config "$schema"
wait_until 15 grep -q 'msg="streaming"' "$PGS_STACK_DIR/logs/$pa.log" ||
    fail "standby: the first producer streams" "no streaming line"
start_bg "$pb" pgsync-producer --config "$schema"
if wait_until 15 grep -q 'msg="standby: another producer reads the slot' "$PGS_STACK_DIR/logs/$pb.log"; then
    pass "standby: the second producer waits as a standby (PostgreSQL lets one read the slot)"
else
    fail "standby: the second producer waits as a standby" "$(tail -3 "$PGS_STACK_DIR/logs/$pb.log")"
fi
grep -q 'level=warn' "$PGS_STACK_DIR/logs/$pb.log" &&
    fail "standby: waiting is no failure (no warning)" "$(grep 'level=warn' "$PGS_STACK_DIR/logs/$pb.log" | head -2)"
start_bg "standby_c_$$" pgsync-consumer --config "$schema" --name c

# a workload of 400 new books, one a transaction, over about 8 s
PGAPPNAME=standby_work psql_q "DO \$\$ BEGIN FOR i IN 1..400 LOOP
    INSERT INTO book (isbn, title) VALUES ('97700000' || lpad(i::text, 5, '0'), 'standby ' || i);
    COMMIT; PERFORM pg_sleep(0.02); END LOOP; END \$\$" >>"$log" 2>&1 &
work=$!
sleep 2
kill9_bg "$pa"
t_kill=$SECONDS
if wait_until 10 grep -q 'msg="standby producer taking over the slot"' "$PGS_STACK_DIR/logs/$pb.log"; then
    pass "standby: the standby takes the slot over $((SECONDS - t_kill)) s after the kill"
else
    fail "standby: the standby takes the slot over" "$(tail -3 "$PGS_STACK_DIR/logs/$pb.log")"
fi
wait "$work" || fail "standby: the workload ran" "psql exit $?"
all_there() { [ "$(es_ids "$index" | grep -c '^97700000')" = 400 ]; }
if wait_until 60 all_there; then
    pass "standby: every book written during the kill is indexed (400)"
else
    fail "standby: every book written during the kill is indexed" "$(es_ids "$index" | grep -c '^97700000')"
fi
if pgsync-verify --config "$schema" >"$log-verify.out" 2>&1; then
    pass "standby: the index equals the database (pgsync-verify)"
else
    fail "standby: the index equals the database" "$(tail -3 "$log-verify.out")"
fi
stop_bg "$pb"
stop_bg "standby_c_$$"

# the orchestrator runs both
start_bg "standby_daemon_$$" pgsync --config "$schema" --daemon --standby-producer --no-load
two_producers() { [ "$(pgrep -fc "pgsync-producer --config $schema")" -eq 2 ]; }
if wait_until 15 two_producers && wait_until 15 grep -q 'standby: another producer' \
    "$PGS_STACK_DIR/logs/standby_daemon_$$.log"; then
    pass "standby: pgsync --daemon --standby-producer runs a producer and its standby"
else
    fail "standby: pgsync --daemon --standby-producer runs a producer and its standby" \
        "$(pgrep -fa "pgsync-producer --config $schema")"
fi
stop_bg "standby_daemon_$$"
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
