#!/usr/bin/env bash
# Trigger mode's function (issue: faults production meets): table and column
# names go into the function's body, so a name that holds the dollar-quote
# tag ($pgsync$) must not end the quoting; the SECURITY DEFINER function is
# nobody else's to call (EXECUTE revoked from PUBLIC); and changes still
# flow through the triggers. A schema pgsync that another role made first is
# refused, and the SQL printed for a DBA is safe to paste into psql.
. "$(dirname "$0")/lib.sh"

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=3000 PGSYNC_MODE=notify
dir=$PGS_STACK_DIR/notifynames-$$
mkdir -p "$dir"
new_db notifynames >/dev/null
index=$(unique_name notifynames)
psql_q 'CREATE TABLE "odd$pgsync$name" (id int PRIMARY KEY, "ti$pgsync$tle" text);
        INSERT INTO "odd$pgsync$name" SELECT g, '"'"'row '"'"' || g FROM generate_series(1, 20) g' >/dev/null
schema=$dir/schema.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index",
  "nodes": {"table": "odd\$pgsync\$name", "columns": ["id", "ti\$pgsync\$tle"]}}]
EOF
# a schema "pgsync" someone else made first is not adopted
mal=$(unique_name mallory)
psql_q "CREATE ROLE \"$mal\"; CREATE SCHEMA pgsync AUTHORIZATION \"$mal\"" >/dev/null
if pgsync-bootstrap --config "$schema" >"$dir/hostile.log" 2>&1; then
    fail "notify names: a pgsync schema owned by another role is refused" "bootstrap succeeded"
elif grep -q "schema pgsync is owned by role $mal" "$dir/hostile.log"; then
    pass "notify names: a pgsync schema owned by another role is refused, naming both"
else
    fail "notify names: a pgsync schema owned by another role is refused, naming both" \
        "$(tail -3 "$dir/hostile.log")"
fi
check_eq "notify names: nothing was made in the refused schema" 0 \
    "$(psql_q "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'pgsync'")"
psql_q "ALTER SCHEMA pgsync OWNER TO CURRENT_USER" >/dev/null

if pgsync-bootstrap --config "$schema" >"$dir/bootstrap.log" 2>&1; then
    pass "notify names: bootstrap makes the function for a table named with the tag"
else
    fail "notify names: bootstrap makes the function" "$(tail -5 "$dir/bootstrap.log")"
fi
fn=$(psql_q "SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'pgsync' AND p.prorettype = 'trigger'::regtype LIMIT 1")
check_eq "notify names: the function's body holds the names whole" "t" \
    "$(psql_q "SELECT prosrc LIKE '%odd\$pgsync\$name%' FROM pg_proc WHERE oid = '$fn'::regprocedure")"
check_eq "notify names: EXECUTE is revoked from PUBLIC" "f" \
    "$(psql_q "SELECT EXISTS (SELECT 1 FROM pg_proc p,
        aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
        WHERE p.oid = '$fn'::regprocedure AND a.grantee = 0 AND a.privilege_type = 'EXECUTE')")"
pgsync-bootstrap --config "$schema" >>"$dir/bootstrap.log" 2>&1 ||
    fail "notify names: bootstrap runs again" "$(tail -3 "$dir/bootstrap.log")"
# the script printed for a DBA is safe to paste into psql: a role whose name
# holds a newline and a psql backslash command cannot end a comment line
evil="sync_$$"$'\n\\! touch '"$dir/pwned #"
psql_q "CREATE ROLE \"$evil\" LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"$evil\";
        GRANT USAGE ON SCHEMA pgsync TO \"$evil\"" >/dev/null
jq --arg ix "${index}_b" '.[0].index = $ix' "$schema" >"$dir/schema_b.json"
PG_USER=$evil pgsync-bootstrap --config "$dir/schema_b.json" >"$dir/evil.out" 2>&1
sed -n '/^-- pgsync-bootstrap/,$p' "$dir/evil.out" >"$dir/evil.sql"
if grep -q '^GRANT' "$dir/evil.sql"; then
    psql_q <"$dir/evil.sql" >>"$dir/evil.log" 2>&1
    check_eq "notify names: the DBA script of a role named with a newline and \\! runs no command" \
        absent "$([ -e "$dir/pwned" ] && echo created || echo absent)"
else
    fail "notify names: the unprivileged role gets a DBA script" "$(tail -5 "$dir/evil.out")"
fi
psql_q "DROP OWNED BY \"$evil\"; DROP ROLE \"$evil\"" >/dev/null 2>&1

pgsync --config "$schema" --quiet >"$dir/load.log" 2>&1 || fail "notify names: loads" "$(tail -3 "$dir/load.log")"
start_bg "nn_p_$$" pgsync-producer --config "$schema"
start_bg "nn_c_$$" pgsync-consumer --config "$schema"
psql_q 'UPDATE "odd$pgsync$name" SET "ti$pgsync$tle" = '"'"'changed'"'"' WHERE id = 3' >/dev/null
title_is() { [ "$(es_doc "$index" 3 | jq -r '."ti$pgsync$tle"')" = changed ]; }
if wait_until 30 title_is; then
    pass "notify names: a change flows through the trigger"
else
    fail "notify names: a change flows through the trigger" "$(es_doc "$index" 3)"
fi
if pgsync-verify --config "$schema" >"$PGS_STACK_DIR/logs/test_53_notify_names-verify-$$.log" 2>&1; then
    pass "notify names: the index converges exactly (pgsync-verify clean)"
else
    fail "notify names: the index converges exactly" "$(tail -3 "$PGS_STACK_DIR/logs/test_53_notify_names-verify-$$.log")"
fi
check_eq "notify names: nothing dead-lettered" 0 "$(redis_q XLEN "pgsync:{$index}:dlq")"
for b in "nn_p_$$" "nn_c_$$"; do stop_bg "$b" >/dev/null 2>&1; done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 || fail "teardown" "failed"
