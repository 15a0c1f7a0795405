#!/usr/bin/env bash
# Redis under Sentinel (issue: Redis beyond one node): a primary, a replica
# and three sentinels on loopback. During a steady write workload the primary
# is killed with -9, at a different moment each round; the sentinels promote
# the replica, the producer and the consumers follow it without exiting, the
# killed node comes back as a replica of the new primary, and the index
# converges exactly (pgsync-verify finds no drift) after every round.
. "$(dirname "$0")/lib.sh"

ROUNDS=${PGS_SENTINEL_ROUNDS:-3}
WORK_SECONDS=${PGS_SENTINEL_WORK_SECONDS:-10}
MASTER=pgsync
dir=$PGS_STACK_DIR/sentinel-$$
mkdir -p "$dir"

# --- the Redis nodes and the sentinels ----------------------------------------------------
declare -A node_port=()
node_start() { # NAME [REPLICAOF_PORT]
    local name=$1 of=${2:-}
    mkdir -p "$dir/$name"
    start_bg "redis_$name" redis-server --port "${node_port[$name]}" --bind 127.0.0.1 \
        --dir "$dir/$name" --appendonly yes --save '' ${of:+--replicaof 127.0.0.1 "$of"}
}
node_q() { redis-cli -h 127.0.0.1 -p "${node_port[$1]}" "${@:2}"; }
node_up() { [ "$(node_q "$1" PING 2>/dev/null)" = PONG ]; }
node_role() { node_q "$1" ROLE 2>/dev/null | head -n 1; }
link_up() { node_q "$1" INFO replication 2>/dev/null | grep -q '^master_link_status:up'; }

node_port[a]=$(free_port)
node_port[b]=$(free_port)
node_start a
wait_until 10 node_up a || fail "sentinel: node a starts" "no PONG"
node_start b "${node_port[a]}"
wait_until 10 link_up b || fail "sentinel: node b replicates a" "link not up"
sentinels=()
for i in 1 2 3; do
    sp=$(free_port)
    cat >"$dir/sentinel-$i.conf" <<EOF
port $sp
bind 127.0.0.1
dir $dir
sentinel monitor $MASTER 127.0.0.1 ${node_port[a]} 2
sentinel down-after-milliseconds $MASTER 1000
sentinel failover-timeout $MASTER 5000
sentinel parallel-syncs $MASTER 1
EOF
    start_bg "sentinel_$i" redis-server "$dir/sentinel-$i.conf" --sentinel
    sentinels+=("127.0.0.1:$sp")
done
quorum_ok() {
    local s
    for s in "${sentinels[@]}"; do
        redis-cli -h 127.0.0.1 -p "${s##*:}" SENTINEL CKQUORUM "$MASTER" 2>/dev/null |
            grep -q '^OK 3 usable' || return 1
    done
}
if wait_until 30 quorum_ok; then
    pass "sentinel: three sentinels agree on the primary"
else
    fail "sentinel: three sentinels agree on the primary" \
        "$(redis-cli -p "${sentinels[0]##*:}" SENTINEL CKQUORUM "$MASTER" 2>&1)"
    exit 1
fi
sentinel_primary_port() {
    redis-cli -h 127.0.0.1 -p "${sentinels[0]##*:}" SENTINEL get-master-addr-by-name "$MASTER" |
        sed -n 2p
}

# every binary reaches Redis through the sentinels only
export REDIS_SENTINELS
REDIS_SENTINELS=$(
    IFS=,
    echo "${sentinels[*]}"
)
export REDIS_SENTINEL_MASTER=$MASTER REDIS_HOST=127.0.0.1 REDIS_PORT=1
unset REDIS_URL
export PGSYNC_CLAIM_IDLE_MS=3000 PGSYNC_BLOCK_MS=200

# --- the data and the daemons --------------------------------------------------------------
new_db sentinel >/dev/null
index=$(unique_name sentinel)
schema=$PGS_STACK_DIR/$index.json
log=$PGS_STACK_DIR/logs/sentinel_$index.log
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/chaos.json" >"$schema"
if psql_q <"$PGS_ROOT/tests/fixtures/chaos.sql" >/dev/null &&
    pgsync --config "$schema" --quiet >>"$log" 2>&1; then
    pass "sentinel: loaded through the sentinels"
else
    fail "sentinel: loaded through the sentinels" "$(tail -5 "$log")"
    exit 1
fi
start_bg sp_$$ pgsync-producer --config "$schema"
start_bg sc1_$$ pgsync-consumer --config "$schema" --name c1 --batch-size 50
start_bg sc2_$$ pgsync-consumer --config "$schema" --name c2 --batch-size 50
wait_until 15 grep -q '"Redis primary"\|msg="Redis primary"' "$PGS_STACK_DIR/logs/sp_$$.log" ||
    fail "sentinel: the producer finds the primary through the sentinels" "no such log line"

daemons_alive() {
    local n
    for n in sp_$$ sc1_$$ sc2_$$; do
        kill -0 "$(bg_pid "$n")" 2>/dev/null || return 1
    done
}
verify_clean() { pgsync-verify --config "$schema" --max-diffs 10 >"$log-verify.out" 2>&1; }

work_start() { # SEED: the chaos workload in the background (its psql's pid in $work)
    PGAPPNAME=sentinel_work psql_q "CALL chaos_workload(1000000, $1, 0.01)" >>"$log" 2>&1 &
    work=$!
}
work_stop() { # the procedure runs on in the server when its client goes: ended by name
    psql_q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE application_name = 'sentinel_work'" >/dev/null
    wait "$work" 2>/dev/null
}
promoted() { # NODE: the sentinels name it, and it says it is the primary
    [ "$(sentinel_primary_port)" = "${node_port[$1]}" ] && [ "$(node_role "$1")" = master ]
}

# --- round 0: writes the primary acknowledged and never sent to its replica ---------------
# The replica is stopped (SIGSTOP) and its link cut while the workload runs:
# the primary acknowledges every XADD, the replica gets none of them. Then the primary
# is killed and the replica resumes and is promoted without those entries.
# Only the producer's WAIT stands between them and a silent loss: it must
# not have confirmed their WAL, and must write them again to the new primary.
wait_until 30 link_up b || fail "round 0: the replica is in sync" "link not up"
work_start 0.5
sleep 2
# the consumers are held too: what they read before the failover is no loss;
# the replication link is cut so that nothing sent later waits in b's socket
kill -STOP "$(bg_pid redis_b)" "$(bg_pid sc1_$$)" "$(bg_pid sc2_$$)"
node_q a CLIENT KILL TYPE replica >/dev/null
sleep 3
if grep -q 'not yet on enough Redis replicas' "$PGS_STACK_DIR/logs/sp_$$.log"; then
    pass "round 0: with the replica stopped, the producer confirms nothing new (WAIT short)"
else
    fail "round 0: with the replica stopped, the producer confirms nothing new" "no such log line"
fi
kill9_bg redis_a
kill -CONT "$(bg_pid redis_b)"
wait_until 30 promoted b
kill -CONT "$(bg_pid sc1_$$)" "$(bg_pid sc2_$$)"
if promoted b; then
    pass "round 0: the sentinels promote the replica that missed the last writes"
else
    fail "round 0: the sentinels promote the replica that missed the last writes" \
        "primary port $(sentinel_primary_port)"
fi
sleep 2
work_stop
node_start a "${node_port[b]}"
wait_until 30 link_up a || fail "round 0: the old primary rejoins as a replica" "link not up"
if wait_until 90 verify_clean; then
    pass "round 0: nothing the old primary acknowledged is lost (pgsync-verify clean)"
else
    fail "round 0: nothing the old primary acknowledged is lost" "$(tail -5 "$log-verify.out")"
fi

# --- rounds: a workload, the primary killed at a different moment each time ---------------
primary=b replica=a
for ((round = 1; round <= ROUNDS; round++)); do
    delay=$((1 + (round - 1) * (WORK_SECONDS - 2) / (ROUNDS > 1 ? ROUNDS - 1 : 1)))
    wait_until 30 link_up "$replica" ||
        fail "round $round: the replica is in sync before the kill" "link not up"
    work_start "0.$round$round"
    sleep "$delay"
    kill9_bg "redis_$primary"
    t_kill=$SECONDS
    if wait_until 30 promoted "$replica"; then
        pass "round $round (kill at +${delay}s): the sentinels promote the replica in $((SECONDS - t_kill)) s"
    else
        fail "round $round: the sentinels promote the replica" "primary port $(sentinel_primary_port)"
    fi
    sleep $((WORK_SECONDS - delay > 0 ? WORK_SECONDS - delay : 1))
    work_stop
    # the killed node comes back as a replica of the new primary
    node_start "$primary" "${node_port[$replica]}"
    wait_until 30 link_up "$primary" ||
        fail "round $round: the old primary rejoins as a replica" "link not up"
    if wait_until 90 verify_clean; then
        pass "round $round: the index converges exactly (pgsync-verify clean)"
    else
        fail "round $round: the index converges exactly" "$(tail -5 "$log-verify.out")"
    fi
    if daemons_alive; then
        pass "round $round: the producer and both consumers followed the failover without exiting"
    else
        fail "round $round: the producer and both consumers followed the failover without exiting" \
            "$(for n in sp_$$ sc1_$$ sc2_$$; do kill -0 "$(bg_pid "$n")" 2>/dev/null || echo "$n exited"; done)"
    fi
    tmp=$primary primary=$replica replica=$tmp
done

changes=$(grep -c 'changed=1' "$PGS_STACK_DIR/logs/sp_$$.log")
if [ "$changes" -ge $((ROUNDS + 1)) ]; then
    pass "sentinel: the producer logged each new primary ($changes)"
else
    fail "sentinel: the producer logged each new primary" "$changes of $ROUNDS"
fi
# pgsync-queue names the node that holds the index and its replica
q=$(pgsync-queue --config "$schema" --json 2>>"$log")
check_eq "sentinel: pgsync-queue shows the primary and its replica" \
    "127.0.0.1:${node_port[$primary]} master 1 online" \
    "$(jq -r '.redis | "\(.addr) \(.role) \(.replicas | length) \(.replicas[0].state)"' <<<"$q")"
for n in sp_$$ sc1_$$ sc2_$$; do stop_bg "$n" >/dev/null 2>&1; done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
