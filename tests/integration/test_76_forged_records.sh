#!/usr/bin/env bash
# Records that cannot be true (issue: faults production meets), written into
# the change stream by hand: an unknown op, a root TRUNCATE whose version is
# far beyond the database's WAL, a table the schema does not name, and an
# update with a huge version. Each is dead-lettered with its reason and never
# acted on: the index is not emptied, no document is frozen (later real
# changes to it still arrive), and pgsync-verify is clean. In trigger mode an
# outbox row with an unknown op is dead-lettered too, never taken for a
# TRUNCATE.
. "$(dirname "$0")/lib.sh"

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=3000
dir=$PGS_STACK_DIR/forged-$$
mkdir -p "$dir"
new_db forged >/dev/null
index=$(unique_name forged)
psql_q "CREATE TABLE item (id int PRIMARY KEY, title text);
        CREATE TABLE secret (id int PRIMARY KEY, v text);
        INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 100) g" >/dev/null
schema=$dir/schema.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index", "nodes": {"table": "item", "columns": ["id", "title"]}}]
EOF
pgsync --config "$schema" --quiet >"$dir/load.log" 2>&1 || { fail "forged: loaded" "$(tail -3 "$dir/load.log")"; exit 1; }
start_bg "fg_p_$$" pgsync-producer --config "$schema"
start_bg "fg_c_$$" pgsync-consumer --config "$schema"
stream="pgsync:{$index}:changes"
dlq="pgsync:{$index}:dlq"
lsn_now() { # the WAL insert position as the number records carry
    psql_q "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn" | cut -d. -f1
}
count() { es POST "/$index/_refresh" >/dev/null 2>&1; es GET "/$index/_count" | jq -r .count; }
title_of() { es_doc "$index" "$1" | jq -r .title; }

now=$(lsn_now)
redis_q XADD "$stream" '*' op X s public t item lsn "$now" xid 0 new '{"id":1,"title":"x"}' >/dev/null
redis_q XADD "$stream" '*' op T s public t item lsn 9000000000000000000 xid 0 >/dev/null
redis_q XADD "$stream" '*' op U s public t secret lsn "$now" xid 0 new '{"id":1,"v":"x"}' >/dev/null
redis_q XADD "$stream" '*' op U s public t item lsn 18446744073709551000 xid 0 \
    new '{"id":2,"title":"frozen"}' >/dev/null
dead() { [ "$(redis_q XLEN "$dlq")" -ge 4 ]; }
if wait_until 30 dead; then
    pass "forged: four records that cannot be true are dead-lettered"
else
    fail "forged: four records are dead-lettered" "$(redis_q XLEN "$dlq") dead letters"
fi
reasons=$(pgsync-dlq --config "$schema" list 2>&1)
for want in 'unknown op "X"' 'is beyond the database' 'public.secret is not in the schema'; do
    if grep -qF "$want" <<<"$reasons"; then
        pass "forged: the dead letter says why ($want)"
    else
        fail "forged: the dead letter says why ($want)" "$reasons"
    fi
done
check_eq "forged: the far-ahead TRUNCATE emptied nothing" "100" "$(count)"
# a real change to the document the huge version named still arrives: nothing is frozen
psql_q "UPDATE item SET title = 'real' WHERE id = 2" >/dev/null
is_real() { [ "$(title_of 2)" = real ]; }
if wait_until 30 is_real; then
    pass "forged: the document a forged version named still takes real changes"
else
    fail "forged: the document a forged version named still takes real changes" "$(title_of 2)"
fi
verify_clean() { pgsync-verify --config "$schema" --max-diffs 5 >"$dir/verify.out" 2>&1; }
wait_until 30 verify_clean && pass "forged: pgsync-verify clean" ||
    fail "forged: pgsync-verify clean" "$(tail -5 "$dir/verify.out")"
for b in "fg_p_$$" "fg_c_$$"; do
    kill -0 "$(bg_pid "$b")" 2>/dev/null || fail "forged: $b kept running" "it exited"
    stop_bg "$b" >/dev/null 2>&1
done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 || fail "teardown" "failed"

# trigger mode: an outbox row with an op the triggers never write
nschema=$dir/notify.json
nindex=$(unique_name forgedn)
sed "s/\"$index\"/\"$nindex\"/" "$schema" >"$nschema"
export PGSYNC_MODE=notify
pgsync --config "$nschema" --quiet >"$dir/nload.log" 2>&1 || { fail "forged: notify load" "$(tail -3 "$dir/nload.log")"; exit 1; }
start_bg "fgn_p_$$" pgsync-producer --config "$nschema"
start_bg "fgn_c_$$" pgsync-consumer --config "$nschema"
outbox=$(psql_q "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgsync' AND c.relkind = 'r' LIMIT 1")
psql_q "INSERT INTO $outbox (s, t, op) VALUES ('public', 'item', 'Z')" >/dev/null
ndead() { [ "$(redis_q XLEN "pgsync:{$nindex}:dlq")" -ge 1 ]; }
if wait_until 30 ndead && grep -qF 'unknown op "Z"' <<<"$(pgsync-dlq --config "$nschema" list 2>&1)"; then
    pass "forged: an outbox row with an unknown op is dead-lettered"
else
    fail "forged: an outbox row with an unknown op is dead-lettered" "$(pgsync-dlq --config "$nschema" list 2>&1 | tail -3)"
fi
ncount() { es POST "/$nindex/_refresh" >/dev/null 2>&1; es GET "/$nindex/_count" | jq -r .count; }
check_eq "forged: ... and not taken for a TRUNCATE (the index keeps its documents)" "100" "$(ncount)"
for b in "fgn_p_$$" "fgn_c_$$"; do stop_bg "$b" >/dev/null 2>&1; done
pgsync-bootstrap --config "$nschema" --teardown >/dev/null 2>&1 || fail "teardown (notify)" "failed"
