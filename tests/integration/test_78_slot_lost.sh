#!/usr/bin/env bash
# A slot PostgreSQL invalidated (issue: faults production meets): with
# max_slot_wal_keep_size set, a producer stopped for long enough finds its
# slot "lost". It does not retry blindly: one error line, /healthz 503 with
# what happened and the exact commands, and a slow re-check.
# pgsync-bootstrap --recreate-slot (refused for a usable slot) makes a new
# slot, pgsync --resync brings the index back, the producer notices by
# itself and changes flow again; pgsync-verify is clean.
. "$(dirname "$0")/lib.sh"

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=3000
dir=$PGS_STACK_DIR/slotlost-$$
mkdir -p "$dir"
new_db slotlost >/dev/null
index=$(unique_name slotlost)
psql_q "CREATE TABLE item (id int PRIMARY KEY, title text);
        CREATE TABLE filler (id int, pad text);
        INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 50) g" >/dev/null
schema=$dir/schema.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index", "nodes": {"table": "item", "columns": ["id", "title"]}}]
EOF
pgsync --config "$schema" --quiet >"$dir/load.log" 2>&1 || fail "slot lost: loads" "$(tail -3 "$dir/load.log")"
slot=$(psql_q "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()")

# the server's own limit, set back whatever happens
reset_keep() {
    psql_q "ALTER SYSTEM RESET max_slot_wal_keep_size" >/dev/null 2>&1
    psql_q "SELECT pg_reload_conf()" >/dev/null 2>&1
}
trap reset_keep EXIT
psql_q "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'" >/dev/null
psql_q "SELECT pg_reload_conf()" >/dev/null

pport=$(free_port) cport=$(free_port)
start_bg "sl_p_$$" pgsync-producer --config "$schema" --metrics-port "$pport"
start_bg "sl_c_$$" pgsync-consumer --config "$schema" --metrics-port "$cport"
title_of() { es_doc "$index" "$1" | jq -r .title; }
is_title() { [ "$(title_of "$1")" = "$2" ]; }
psql_q "UPDATE item SET title = 'before' WHERE id = 1" >/dev/null
wait_until 30 is_title 1 before || fail "slot lost: changes flow at first" "$(title_of 1)"

# the producer is away while the database writes well past the limit
stop_bg "sl_p_$$" >/dev/null 2>&1
psql_q "UPDATE item SET title = 'while away' WHERE id = 2" >/dev/null
status() { psql_q "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '$slot'"; }
i=0
while [ "$i" -lt 12 ] && [ "$(status)" != lost ]; do
    psql_q "INSERT INTO filler SELECT g, repeat('x', 900) FROM generate_series(1, 20000) g;
            SELECT pg_switch_wal(); CHECKPOINT;" >/dev/null
    i=$((i + 1))
done
check_eq "slot lost: PostgreSQL invalidated the slot (wal_status)" "lost" "$(status)"

start_bg "sl_p_$$" pgsync-producer --config "$schema" --metrics-port "$pport"
says() { [ "$(healthz_code "$pport")" = 503 ] && healthz "$pport" | grep -q "was invalidated by PostgreSQL"; }
if wait_until 30 says; then
    pass "slot lost: the producer's /healthz turns 503 saying what happened ($(healthz "$pport" | head -1 | cut -c1-120))"
else
    fail "slot lost: the producer's /healthz turns 503" "$(healthz "$pport")"
fi
if healthz "$pport" | grep -q -- "--recreate-slot, then pgsync --config FILE --resync"; then
    pass "slot lost: /healthz gives the commands that recover"
else
    fail "slot lost: /healthz gives the commands that recover" "$(healthz "$pport")"
fi
sleep 12 # past one slow re-check
plog=$PGS_STACK_DIR/logs/sl_p_$$.log
check_eq "slot lost: one error line, not one per retry" "1" \
    "$(awk '/=== /{n=0} /level=error.*replication slot unusable/{n++} END{print n}' "$plog")"
retries=$(awk '/=== /{n=0} /level=warn.*replication stream interrupted/{n++} END{print n}' "$plog")
check_eq "slot lost: no warning per blind retry" "0" "$retries"

# recovery: a new slot, then the index again
out=$(pgsync-bootstrap --config "$schema" --recreate-slot 2>&1)
if grep -q "recreated .* now run pgsync --config .* --resync" <<<"$out"; then
    pass "slot lost: pgsync-bootstrap --recreate-slot makes a new slot and says to resync"
else
    fail "slot lost: pgsync-bootstrap --recreate-slot" "$out"
fi
check_eq "slot lost: the new slot is usable" "reserved" "$(status)"
pgsync --config "$schema" --resync --quiet >"$dir/resync.log" 2>&1 ||
    fail "slot lost: pgsync --resync" "$(tail -3 "$dir/resync.log")"
is_title 2 "while away" && pass "slot lost: the change the lost WAL held is in the index after the resync" ||
    fail "slot lost: the change the lost WAL held is in the index after the resync" "$(title_of 2)"
healthy() { [ "$(healthz_code "$pport")" = 200 ]; }
if wait_until 40 healthy; then
    pass "slot lost: the producer notices the new slot by itself"
else
    fail "slot lost: the producer notices the new slot" "$(healthz "$pport")"
fi
psql_q "UPDATE item SET title = 'after' WHERE id = 3" >/dev/null
if wait_until 30 is_title 3 after; then
    pass "slot lost: changes flow again"
else
    fail "slot lost: changes flow again" "$(title_of 3)"
fi
out=$(pgsync-bootstrap --config "$schema" --recreate-slot 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && grep -q "is usable" <<<"$out"; then
    pass "slot lost: --recreate-slot refuses a usable slot"
else
    fail "slot lost: --recreate-slot refuses a usable slot" "exit $rc: $out"
fi
if pgsync-verify --config "$schema" >"$dir/verify.out" 2>&1; then
    pass "slot lost: the index converges exactly (pgsync-verify clean)"
else
    fail "slot lost: the index converges exactly" "$(tail -5 "$dir/verify.out")"
fi
for b in "sl_p_$$" "sl_c_$$"; do stop_bg "$b" >/dev/null 2>&1; done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 || fail "teardown" "failed"
reset_keep
trap - EXIT
true
