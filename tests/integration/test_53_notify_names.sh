#!/usr/bin/env bash
# Trigger mode's function (issue: faults production meets): table and column
# names go into the function's body, so a name that holds the dollar-quote
# tag ($pgsync$) must not end the quoting; the SECURITY DEFINER function is
# nobody else's to call (EXECUTE revoked from PUBLIC); and changes still
# flow through the triggers.
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
for b in "nn_p_$$" "nn_c_$$"; do stop_bg "$b" >/dev/null 2>&1; done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 || fail "teardown" "failed"
