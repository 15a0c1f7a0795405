#!/usr/bin/env bash
# Redis Cluster (issue: Redis beyond one node): three masters with three
# replicas on loopback, and two indices whose {hash tags} put them on
# different masters. During a steady write workload one index's slot is moved
# to another master by hand (IMPORTING / MIGRATING, its keys MIGRATEd one at a
# time, slowly, so the daemons meet ASK and then MOVED), then the master now
# holding it is killed with -9 and its replica takes over. The producer and
# the consumers follow without exiting, and both indices converge exactly
# (pgsync-verify finds no drift).
. "$(dirname "$0")/lib.sh"

WORK_SECONDS=${PGS_CLUSTER_WORK_SECONDS:-8}
dir=$PGS_STACK_DIR/cluster-$$
mkdir -p "$dir"

# --- six nodes, one cluster -----------------------------------------------------------------
declare -A node_port=() bus_port=()
names=(n1 n2 n3 n4 n5 n6)
node_start() { # NAME: (re)started in its folder (--dir: nodes.conf is written there)
    mkdir -p "$dir/$1"
    # the bus port defaults to port + 10000: in the ephemeral range, maybe taken; pick it too
    start_bg "redis_$1" redis-server --port "${node_port[$1]}" --cluster-port "${bus_port[$1]}" \
        --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout 2000 --appendonly yes --save '' --dir "$dir/$1"
}
node_q() { redis-cli -h 127.0.0.1 -p "${node_port[$1]}" "${@:2}"; }
p_q() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }
node_up() { [ "$(node_q "$1" PING 2>/dev/null)" = PONG ]; }
for n in "${names[@]}"; do
    node_port[$n]=$(free_port)
    bus_port[$n]=$(free_port)
    node_start "$n"
done
for n in "${names[@]}"; do
    wait_until 10 node_up "$n" || fail "cluster: node $n starts" "no PONG"
done
addrs=()
for n in "${names[@]}"; do addrs+=("127.0.0.1:${node_port[$n]}"); done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
    >"$dir/create.log" 2>&1 || fail "cluster: redis-cli --cluster create" "$(tail -3 "$dir/create.log")"
cluster_ok() {
    local n
    for n in "${names[@]}"; do
        node_up "$n" || continue
        node_q "$n" CLUSTER INFO | grep -q '^cluster_state:ok' || return 1
    done
}
if wait_until 30 cluster_ok; then
    pass "cluster: three masters and three replicas agree (cluster_state:ok)"
else
    fail "cluster: three masters and three replicas agree" "$(node_q n1 CLUSTER INFO | head -3)"
    exit 1
fi

# owner_port SLOT [NODE]: the port of the master serving SLOT, as NODE (default: any live) sees it
owner_port() {
    local slot=$1 from=${2:-} n
    if [ -z "$from" ]; then
        for n in "${names[@]}"; do node_up "$n" && from=$n && break; done
    fi
    node_q "$from" CLUSTER NODES | awk -v s="$slot" '
        $3 ~ /master/ && $3 !~ /fail/ {
            for (i = 9; i <= NF; i++) {
                if ($i ~ /^\[/) continue
                split($i, r, "-"); if (r[2] == "") r[2] = r[1]
                if (s + 0 >= r[1] + 0 && s + 0 <= r[2] + 0) { split($2, a, "[:@]"); print a[2]; exit }
            }
        }'
}
port_name() { local n; for n in "${names[@]}"; do [ "${node_port[$n]}" = "$1" ] && echo "$n"; done; }
node_id() { node_q "$1" CLUSTER MYID; }
keyslot() { node_q n1 CLUSTER KEYSLOT "$1"; }

# every binary learns the cluster from these seeds only (two, one of which dies later)
export REDIS_CLUSTER_NODES="${addrs[0]},${addrs[1]},${addrs[2]},${addrs[3]}"
export REDIS_HOST=127.0.0.1 REDIS_PORT=1
unset REDIS_URL REDIS_SENTINELS
export PGSYNC_CLAIM_IDLE_MS=3000 PGSYNC_BLOCK_MS=200

# --- two indices on two masters --------------------------------------------------------------
ix_a=$(unique_name clua)
ix_b=$(unique_name club)
# the index name is the keys' hash tag: pick one for b whose slot another master serves
for ((i = 0; i < 50; i++)); do
    [ "$(owner_port "$(keyslot "$ix_b")")" != "$(owner_port "$(keyslot "$ix_a")")" ] && break
    ix_b=$(unique_name club)
done
slot_a=$(keyslot "$ix_a") slot_b=$(keyslot "$ix_b")
owner_a=$(owner_port "$slot_a") owner_b=$(owner_port "$slot_b")
if [ -n "$owner_a" ] && [ -n "$owner_b" ] && [ "$owner_a" != "$owner_b" ]; then
    pass "cluster: the two indices' slots ($slot_a, $slot_b) are on different masters"
else
    fail "cluster: the two indices on different masters" "slots $slot_a $slot_b owners $owner_a $owner_b"
    exit 1
fi

declare -A db=() schema=()
for x in a b; do
    new_db "clu$x" >/dev/null
    db[$x]=$PGDATABASE
    psql_q <"$PGS_ROOT/tests/fixtures/chaos.sql" >/dev/null || fail "cluster: fixture $x" "psql failed"
done
both=$PGS_STACK_DIR/$ix_a-both.json
jq --arg da "${db[a]}" --arg ia "$ix_a" --arg dbb "${db[b]}" --arg ib "$ix_b" \
    '[(.[0] | .database = $da | .index = $ia), (.[0] | .database = $dbb | .index = $ib)]' \
    "$PGS_ROOT/schemas/chaos.json" >"$both"
log=$PGS_STACK_DIR/logs/cluster_$ix_a.log
if pgsync --config "$both" --quiet >>"$log" 2>&1; then
    pass "cluster: both indices loaded through the cluster"
else
    fail "cluster: both indices loaded through the cluster" "$(tail -5 "$log")"
    exit 1
fi
# each index's keys sit in its own slot, on its own master
on_owner() { # INDEX PORT: its change stream lives there
    [ "$(p_q "$2" EXISTS "pgsync:{$1}:changes")" = 1 ]
}
if on_owner "$ix_a" "$owner_a" && on_owner "$ix_b" "$owner_b"; then
    pass "cluster: each index's change stream is on the master serving its slot"
else
    fail "cluster: each index's change stream is on its master" \
        "a on $owner_a: $(p_q "$owner_a" EXISTS "pgsync:{$ix_a}:changes"), b on $owner_b: $(p_q "$owner_b" EXISTS "pgsync:{$ix_b}:changes")"
fi

start_bg cp_$$ pgsync-producer --config "$both"
start_bg cc1_$$ pgsync-consumer --config "$both" --name c1 --batch-size 50
start_bg cc2_$$ pgsync-consumer --config "$both" --name c2 --batch-size 50
daemons_alive() {
    local n
    for n in cp_$$ cc1_$$ cc2_$$; do
        kill -0 "$(bg_pid "$n")" 2>/dev/null || return 1
    done
}
verify_clean() { pgsync-verify --config "$both" --max-diffs 10 >"$log-verify.out" 2>&1; }
work_start() { # SEED
    local x
    work=()
    for x in a b; do
        PGDATABASE=${db[$x]} PGAPPNAME=cluster_work psql_q \
            "CALL chaos_workload(1000000, $1, 0.01)" >>"$log" 2>&1 &
        work+=($!)
    done
}
work_stop() {
    local x
    for x in a b; do
        PGDATABASE=${db[$x]} psql_q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE application_name = 'cluster_work'" >/dev/null
    done
    wait "${work[@]}" 2>/dev/null
}

# --- a workload, and index a's slot moved to b's master while it runs --------------------------
work_start 0.3
sleep 2
src=$(port_name "$owner_a") dst=$(port_name "$owner_b")
src_id=$(node_id "$src") dst_id=$(node_id "$dst")
node_q "$dst" CLUSTER SETSLOT "$slot_a" IMPORTING "$src_id" >/dev/null
node_q "$src" CLUSTER SETSLOT "$slot_a" MIGRATING "$dst_id" >/dev/null
moved=0
# one key at a time, a pause between: the daemons meet ASK for the keys already moved
while :; do
    key=$(node_q "$src" CLUSTER GETKEYSINSLOT "$slot_a" 1)
    [ -n "$key" ] || break
    node_q "$src" MIGRATE 127.0.0.1 "${node_port[$dst]}" "$key" 0 10000 >>"$dir/migrate.log" 2>&1
    moved=$((moved + 1))
    sleep 0.5
    [ "$moved" -lt 50 ] || break
done
for n in "${names[@]}"; do
    node_q "$n" CLUSTER SETSLOT "$slot_a" NODE "$dst_id" >/dev/null 2>&1
done
if [ "$(owner_port "$slot_a")" = "${node_port[$dst]}" ] && [ "$moved" -ge 1 ] &&
    [ -z "$(node_q "$src" CLUSTER GETKEYSINSLOT "$slot_a" 1)" ]; then
    pass "cluster: index a's slot moved to the other master during the workload ($moved keys)"
else
    fail "cluster: index a's slot moved" "owner $(owner_port "$slot_a"), moved $moved"
fi
sleep 2

# --- then the master serving both indices is killed; its replica takes over --------------------
kill9_bg "redis_$dst"
t_kill=$SECONDS
taken_over() { local p; p=$(owner_port "$slot_a"); [ -n "$p" ] && [ "$p" != "${node_port[$dst]}" ]; }
if wait_until 30 taken_over; then
    pass "cluster: a replica takes over the killed master's slots in $((SECONDS - t_kill)) s"
else
    fail "cluster: a replica takes over the killed master's slots" "$(node_q n1 CLUSTER NODES 2>&1 | head -6)"
fi
sleep "$WORK_SECONDS"
work_stop
# the killed node comes back, as a replica of the one that took over
node_start "$dst"
wait_until 20 node_up "$dst"
if wait_until 120 verify_clean; then
    pass "cluster: both indices converge exactly after the move and the failover (pgsync-verify clean)"
else
    fail "cluster: both indices converge exactly" "$(tail -5 "$log-verify.out")"
fi
if daemons_alive; then
    pass "cluster: the producer and both consumers followed the move and the failover without exiting"
else
    fail "cluster: the daemons followed without exiting" \
        "$(for n in cp_$$ cc1_$$ cc2_$$; do kill -0 "$(bg_pid "$n")" 2>/dev/null || echo "$n exited"; done)"
fi
if grep -q 'Redis Cluster slot moved' "$PGS_STACK_DIR"/logs/cc*_$$.log "$PGS_STACK_DIR/logs/cp_$$.log"; then
    pass "cluster: a daemon followed MOVED for the slot that moved"
else
    fail "cluster: a daemon followed MOVED" "no 'Redis Cluster slot moved' line"
fi
# pgsync-queue names, for each index, the master that holds it
q=$(pgsync-queue --config "$both" --json 2>>"$log")
check_eq "cluster: pgsync-queue shows each index on its own master" \
    "127.0.0.1:$(owner_port "$slot_a") 127.0.0.1:$(owner_port "$slot_b")" \
    "$(jq -r --arg a "$ix_a" --arg b "$ix_b" '[(.entries[] | select(.index == $a) | .redis.addr),
        (.entries[] | select(.index == $b) | .redis.addr)] | join(" ")' <<<"$q")"
for n in cp_$$ cc1_$$ cc2_$$; do stop_bg "$n" >/dev/null 2>&1; done
pgsync-bootstrap --config "$both" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
