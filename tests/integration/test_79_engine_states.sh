#!/usr/bin/env bash
# Engine states that are not the document's fault (issue: faults production
# meets): a closed index, a flood-stage block (read_only_allow_delete), and
# a missing index with auto-create turned off. (A missing ingest pipeline is
# classed the same way, tests/unit/test_es.c: the suite's engine node has no
# ingest role, so no pipeline can run here.)
# Every document would fail alike, so none is dead-lettered and the consumer
# never exits: it stalls, /healthz turns 503 saying why, and the change made
# meanwhile arrives once the state is fixed. pgsync-verify ends clean.
. "$(dirname "$0")/lib.sh"

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=3000
dir=$PGS_STACK_DIR/engstates-$$
mkdir -p "$dir"
new_db engstates >/dev/null
index=$(unique_name engstates)
psql_q "CREATE TABLE item (id int PRIMARY KEY, title text);
        INSERT INTO item SELECT g, 'item ' || g FROM generate_series(1, 50) g" >/dev/null
schema=$dir/schema.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index",
  "nodes": {"table": "item", "columns": ["id", "title"]}}]
EOF
pgsync --config "$schema" --quiet >"$dir/load.log" 2>&1 || fail "engine states: loads" "$(tail -3 "$dir/load.log")"
phys=$(es_physical "$index")
restore() {
    es PUT /_cluster/settings '{"persistent": {"action.auto_create_index": null}}' >/dev/null 2>&1
}
trap restore EXIT

cport=$(free_port)
start_bg "es_p_$$" pgsync-producer --config "$schema"
start_bg "es_c_$$" pgsync-consumer --config "$schema" --metrics-port "$cport"
# a second consumer, to take over what the first leaves idle (it must not, below)
cport2=$(free_port)
start_bg "es_c2_$$" pgsync-consumer --config "$schema" --name second --metrics-port "$cport2"
title_of() { es_doc "$index" "$1" | jq -r .title; }
is_title() { [ "$(title_of "$1")" = "$2" ]; }
# whichever consumer holds the change says why it stalls
says() {
    local p
    for p in "$cport" "$cport2"; do
        [ "$(healthz_code "$p")" = 503 ] && healthz "$p" | grep -q "$1" && return 0
    done
    return 1
}
healthy() { [ "$(healthz_code "$cport")" = 200 ] && [ "$(healthz_code "$cport2")" = 200 ]; }
both_healthz() { echo "first: $(healthz "$cport") / second: $(healthz "$cport2")"; }
dlq() { redis_q XLEN "pgsync:{$index}:dlq" 2>/dev/null || echo 0; }
psql_q "UPDATE item SET title = 'start' WHERE id = 1" >/dev/null
wait_until 30 is_title 1 start || fail "engine states: changes flow at first" "$(title_of 1)"

# STATE FIX-COMMAND... : the fault is on, a change is made, the consumer stalls and says
# STATE; the fix is applied; the change arrives. "n" numbers the rows.
n=1
stall() {
    local what=$1 want=$2
    shift 2
    n=$((n + 1))
    psql_q "UPDATE item SET title = '$what' WHERE id = $n" >/dev/null
    if wait_until 40 says "$want"; then
        pass "engine states: $what: /healthz 503 says why ($(both_healthz | grep -o ".\{0,40\}$want.\{0,60\}" | head -1))"
    else
        fail "engine states: $what: /healthz 503 says why" "$(both_healthz)"
    fi
    sleep 2
    check_eq "engine states: $what: nothing dead-lettered" "0" "$(dlq)"
    kill -0 "$(bg_pid "es_c_$$")" 2>/dev/null && kill -0 "$(bg_pid "es_c2_$$")" 2>/dev/null &&
        pass "engine states: $what: the consumers still run" ||
        fail "engine states: $what: the consumers still run" "one exited"
    "$@"
    if wait_until 60 is_title "$n" "$what" && wait_until 30 healthy; then
        pass "engine states: $what: fixed, the change arrives and /healthz is 200"
    else
        fail "engine states: $what: fixed, the change arrives" "$(title_of "$n") / $(both_healthz)"
    fi
}
reopen() { es POST "/$phys/_open?wait_for_active_shards=1" >/dev/null; }
unblock() { es PUT "/$phys/_settings" '{"index.blocks.read_only_allow_delete": null}' >/dev/null; }

es POST "/$phys/_close" >/dev/null
stall "closed index" "index_closed_exception" reopen
# While a consumer retries what the block refuses, it keeps its claim: the
# entries stay delivered once, though they wait longer than PGSYNC_CLAIM_IDLE_MS
# (3 s) and the second consumer would take over anything idle that long.
deliveries() { # the pending entries' delivery counts, one per line
    redis_q XPENDING "pgsync:{$index}:changes" pgsync - + 100 | awk 'NR % 4 == 0'
}
unblock_after_claims() {
    sleep 8
    local d
    d=$(deliveries | sort | uniq -c | xargs)
    if [ -n "$d" ] && [ "$(deliveries | sort -u)" = 1 ]; then
        pass "engine states: flood-stage block: the retrying consumer keeps its claim 8 s ($d)"
    else
        fail "engine states: flood-stage block: the retrying consumer keeps its claim" \
            "delivery counts (count value): ${d:-no entry pending}"
    fi
    unblock
}
es PUT "/$phys/_settings" '{"index.blocks.read_only_allow_delete": true}' >/dev/null
stall "flood-stage block" "cluster_block_exception" unblock_after_claims

# the index itself is gone and may not be auto-created: pgsync --resync makes it again
es PUT /_cluster/settings '{"persistent": {"action.auto_create_index": "false"}}' >/dev/null
es DELETE "/$phys" >/dev/null
resync() {
    pgsync --config "$schema" --resync --quiet >"$dir/resync.log" 2>&1 ||
        fail "engine states: pgsync --resync" "$(tail -3 "$dir/resync.log")"
}
stall "missing index" "index_not_found_exception" resync

if pgsync-verify --config "$schema" >"$dir/verify.out" 2>&1; then
    pass "engine states: the index converges exactly (pgsync-verify clean)"
else
    fail "engine states: the index converges exactly" "$(tail -5 "$dir/verify.out")"
fi
for b in "es_p_$$" "es_c_$$" "es_c2_$$"; do stop_bg "$b" >/dev/null 2>&1; done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 || fail "teardown" "failed"
restore
trap - EXIT
true
