#!/usr/bin/env bash
# Least privilege (issue: reliability and security), the README's recipe end
# to end on the book example: a role with LOGIN and REPLICATION and SELECT on
# the tables, nothing else (not a superuser, not the tables' owner, no CREATE
# on the database). pgsync-bootstrap run as that role stops and prints the
# owner-only SQL (the publication, REPLICA IDENTITY FULL); the owner runs
# exactly that; from then on bootstrap, the load, the producer, two consumers
# and pgsync-verify all run as the role, through a workload, and the index
# equals the database. A role without REPLICATION, or without SELECT on a
# table, is refused with a message that says what is missing.
. "$(dirname "$0")/lib.sh"
[ -z "${PGS_BIN:-}" ] || PATH=$PGS_BIN:$PATH

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=2000
new_db privileges >/dev/null
db=$PGDATABASE
index=$(unique_name privileges)
role=$(unique_name sync)
schema=$PGS_STACK_DIR/$index.json
stream="pgsync:{$index}:changes"
log=$PGS_STACK_DIR/logs/privileges_$index.log
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
psql_q <"$PGS_ROOT/tests/fixtures/book_workload.sql" >/dev/null
jq --arg db "$db" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"

# The README's grants, and no more.
psql_q >/dev/null <<EOF
CREATE ROLE "$role" LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO "$role";
EOF
check_eq "the role is not a superuser and owns nothing" "f 0" \
    "$(psql_q "SELECT rolsuper, (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
               FROM pg_roles r WHERE rolname = '$role'" | tr '|' ' ')"
check_eq "the role may not create in the database" f \
    "$(psql_q "SELECT has_database_privilege('$role', current_database(), 'CREATE')")"

# as_role BIN ARGS...: runs as the role (stdout in $out, stderr in $errout, status in $rc)
as_role() {
    out=$(PG_USER=$role timeout -k 5 120 "$@" 2>"$PGS_STACK_DIR/privileges.err" </dev/null)
    rc=$?
    errout=$(cat "$PGS_STACK_DIR/privileges.err")
    { echo "--- as $role: $* (exit $rc)"; echo "$out"; echo "$errout"; } >>"$log"
}

# 1. bootstrap stops and prints the owner-only SQL
as_role pgsync-bootstrap --config "$schema"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
    pass "bootstrap as the role stops (exit $rc): it may not create the publication"
else
    fail "bootstrap as the role stops" "exit status $rc"
fi
sql=$(printf '%s\n%s\n' "$out" "$errout" | grep -E '^(CREATE|ALTER) [A-Z ]+"' | grep -E ';$')
if grep -qF "CREATE PUBLICATION \"pgsync_${db}\" FOR TABLE" <<<"$sql"; then
    pass "bootstrap prints the CREATE PUBLICATION to run as the owner"
else
    fail "bootstrap prints the CREATE PUBLICATION to run as the owner" "stdout: $out stderr: $errout"
fi
if grep -qF 'ALTER TABLE "public"."book_author" REPLICA IDENTITY FULL;' <<<"$sql"; then
    pass "bootstrap prints the REPLICA IDENTITY FULL to run as the owner"
else
    fail "bootstrap prints the REPLICA IDENTITY FULL to run as the owner" "stdout: $out stderr: $errout"
fi
check_eq "nothing created by the refused bootstrap (no slot)" 0 \
    "$(psql_q "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")"

# 2. the owner runs exactly what was printed; then the role is enough
if [ -n "$sql" ] && psql_q "$sql" >>"$log" 2>&1; then
    pass "the owner runs the printed SQL"
else
    fail "the owner runs the printed SQL" "$sql"
fi
as_role pgsync-bootstrap --config "$schema"
check_eq "bootstrap as the role, after the owner's SQL: exit 0" 0 "$rc" ||
    echo "    bootstrap said: $(tail -c 400 <<<"$out$errout")"
check_eq "bootstrap as the role created the slot" 1 \
    "$(psql_q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgsync_${db}'")"
as_role pgsync --config "$schema" --quiet
check_eq "the load as the role: exit 0" 0 "$rc" || echo "    pgsync said: $(tail -c 400 <<<"$errout")"
check_eq "the load as the role: 3 documents" \
    "9781471331435 9785811243570 9788374950978" "$(es_ids "$index" | tr '\n' ' ' | sed 's/ $//')"

# 3. producer and consumers as the role, through a workload
start_bg priv_producer env PG_USER="$role" pgsync-producer --config "$schema"
start_bg priv_c1 env PG_USER="$role" pgsync-consumer --config "$schema" --name c1 --batch-size 25
start_bg priv_c2 env PG_USER="$role" pgsync-consumer --config "$schema" --name c2 --batch-size 25
psql_q "CALL book_workload(600, 0.33)" || fail "the workload runs" "psql failed"
psql_q "INSERT INTO book VALUES ('priv-1', 'inserted by the owner', NULL)"
caught_up() {
    [ "$(psql_q "SELECT confirmed_flush_lsn >= pg_current_wal_lsn() FROM pg_replication_slots
                 WHERE slot_name = 'pgsync_${db}'")" = t ]
}
drained() {
    [ "$(redis_q XPENDING "$stream" pgsync | head -1)" = 0 ] &&
        [ "$(redis_q XINFO GROUPS "$stream" | awk 'f { print; exit } /last-delivered-id/ { f = 1 }')" = \
            "$(redis_q XINFO STREAM "$stream" | awk 'f { print; exit } /last-generated-id/ { f = 1 }')" ]
}
if wait_until 60 caught_up && wait_until 90 drained; then
    pass "as the role: the producer and the consumers follow the workload"
else
    fail "as the role: the producer and the consumers follow the workload" "not drained"
fi
check_eq "as the role: every connection of the daemons is the role's" "$role" \
    "$(psql_q "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity
               WHERE application_name LIKE 'pgsync%' AND (datname = current_database() OR backend_type = 'walsender')")"
as_role pgsync-verify --config "$schema"
check_eq "as the role: pgsync-verify finds no drift" 0 "$rc" || echo "    $(tail -c 400 <<<"$out$errout")"
for p in priv_producer priv_c1 priv_c2; do
    if kill -0 "$(bg_pid "$p")" 2>/dev/null; then pass "as the role: $p still running"; else fail "as the role: $p still running" "it exited"; fi
done
stop_bg priv_c1
stop_bg priv_c2
stop_bg priv_producer

# 4. what is missing is named
norep=$(unique_name norep)
psql_q "CREATE ROLE \"$norep\" LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"$norep\"" >/dev/null
index2=$(unique_name privileges2)
jq --arg ix "$index2" '.[0].index = $ix' "$schema" >"$schema.2"
out=$(PG_USER=$norep timeout -k 5 60 pgsync-bootstrap --config "$schema.2" 2>&1 </dev/null)
rc=$?
echo "$out" >>"$log"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qi 'replication' <<<"$out"; then
    pass "a role without REPLICATION: bootstrap refuses and says REPLICATION"
else
    fail "a role without REPLICATION: bootstrap refuses and says REPLICATION" "exit $rc: ${out:0:300}"
fi
psql_q "REVOKE SELECT ON author FROM \"$role\"" >/dev/null
out=$(PG_USER=$role timeout -k 5 60 pgsync --config "$schema.2" --quiet 2>&1 </dev/null)
rc=$?
echo "$out" >>"$log"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qE 'author' <<<"$out" && grep -qiE 'permission|privilege|SELECT' <<<"$out"; then
    pass "a role without SELECT on a table: refused, naming the table"
else
    fail "a role without SELECT on a table: refused, naming the table" "exit $rc: ${out:0:300}"
fi
psql_q "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
        WHERE database = current_database() AND NOT active" >/dev/null
