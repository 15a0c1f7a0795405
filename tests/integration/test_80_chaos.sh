#!/usr/bin/env bash
# Chaos (issue: reliability and security): a random workload runs over every
# table of a nested schema (schemas/chaos.json, tests/fixtures/chaos.sql:
# customer > orders > order_line > product, customer <-> tag through
# customer_tag) with inserts, updates, deletes, moves, key changes and an
# occasional TRUNCATE, while a chaos loop, at random moments, kill -9s the
# producer, kill -9s one of three consumers, kill -9s Redis (AOF on, so its
# data survives), restarts the search engine and restarts PostgreSQL (fast or
# immediate). Killed daemons are started again after a short pause; a daemon
# that exits by itself is a failure (they must survive every fault). When the
# workload stops and the stream drains, pgsync-verify must find no missing,
# extra or different document, nothing may be dead-lettered, and no daemon
# log may hold a sanitizer report. The figures go to stdout. Before the
# chaos, one race a chaos run found is forced deterministically: a stale
# document written after a root TRUNCATE emptied the index.
#
#   PGS_CHAOS_SECONDS   how long the workload and the faults run [60]
#   PGS_CHAOS_SEED      the workload's seed (printed) [random]
#   PGS_CHAOS_PAUSE     seconds slept after each 10-change transaction [0.02]
#   PGS_CHAOS_GAP       most seconds between two faults [5]
#   PGS_CHAOS_CONVERGE  seconds allowed to drain after the faults stop [240]
#   PGS_BIN             a folder of binaries to test instead of bin/ (e.g. a
#                       `make SANITIZE=1 BIN=...` build)
. "$(dirname "$0")/lib.sh"
[ -z "${PGS_BIN:-}" ] || PATH=$PGS_BIN:$PATH

RUN_SECONDS=${PGS_CHAOS_SECONDS:-60}
SEED=${PGS_CHAOS_SEED:-$((RANDOM * 32768 + RANDOM))}
PAUSE=${PGS_CHAOS_PAUSE:-0.02}
GAP=${PGS_CHAOS_GAP:-5}
CONVERGE=${PGS_CHAOS_CONVERGE:-240}
STACK=$PGS_ROOT/scripts/stack.sh
CONSUMERS=(c1 c2 c3)
export PGSYNC_CLAIM_IDLE_MS=2000 PGSYNC_BLOCK_MS=200
RANDOM=$SEED # the faults' schedule follows the seed too (their timing cannot)

# --- 1. the root TRUNCATE race, forced (a chaos run found it at random) ---------------
# Consumer a reads two documents, then stalls before its bulk request (an
# engine restart does that); the root table is truncated and consumer b
# empties the index; a's older copies must not come back when it finally
# sends them: neither the one b found in the index and deleted, nor the new
# one b could not see (it was not in the index yet; a chaos run found that).
new_db truncrace >/dev/null
index=$(unique_name truncrace)
schema=$PGS_STACK_DIR/$index.json
stream="pgsync:{$index}:changes"
log=$PGS_STACK_DIR/logs/chaos_$index.log
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
pgsync --config "$schema" --quiet >>"$log" 2>&1 || fail "truncate race: load" "$(tail -3 "$log")"
start_bg truncrace_producer pgsync-producer --config "$schema"
pause=$PGS_STACK_DIR/$index.pause
touch "$pause"
# (log names unique to this run: the greps below must not see an earlier run's lines)
ta=truncrace_a_$$ tb=truncrace_b_$$
# both changes in the stream before a starts, so that a reads them in one batch
len0=$(redis_q XLEN "$stream")
psql_q "UPDATE book SET title = 'read before the truncate' WHERE isbn = '9788374950978'"
psql_q "INSERT INTO book (isbn, title) VALUES ('9990000000001', 'inserted before the truncate')"
truncrace_queued() { [ "$(redis_q XLEN "$stream")" -ge $((${len0:-0} + 2)) ]; }
wait_until 20 truncrace_queued || fail "truncate race: the producer queues both changes" "XLEN $(redis_q XLEN "$stream")"
PGSYNC_TEST_PAUSE_FILE=$pause PGSYNC_CLAIM_IDLE_MS=600000 start_bg "$ta" \
    pgsync-consumer --config "$schema" --name a
wait_until 20 grep -q "test pause" "$PGS_STACK_DIR/logs/$ta.log" ||
    fail "truncate race: consumer a holds its bulk request" "no pause seen"
psql_q "TRUNCATE book CASCADE" 2>/dev/null
PGSYNC_CLAIM_IDLE_MS=600000 start_bg "$tb" pgsync-consumer --config "$schema" --name b
wait_until 30 grep -q "root table truncated" "$PGS_STACK_DIR/logs/$tb.log" ||
    fail "truncate race: consumer b empties the index" "not seen in its log"
rm -f "$pause"
truncrace_drained() {
    [ "$(redis_q XPENDING "$stream" pgsync | head -1)" = 0 ]
}
wait_until 30 truncrace_drained || fail "truncate race: consumer a finishes its batch" "still pending"
check_eq "truncate race: the index of a truncated root table stays empty (no stale copy comes back)" \
    "" "$(es_ids "$index" | tr '\n' ' ')"
if grep -q "older than a root TRUNCATE deleted again" "$PGS_STACK_DIR/logs/$ta.log"; then
    pass "truncate race: consumer a deletes again what it wrote after the truncate's sweep"
else
    fail "truncate race: consumer a deletes again what it wrote after the truncate's sweep" \
        "no such line in its log"
fi
stop_bg "$ta"
stop_bg "$tb"
stop_bg truncrace_producer

# --- 2. chaos ------------------------------------------------------------------------
new_db chaos >/dev/null
index=$(unique_name chaos)
schema=$PGS_STACK_DIR/$index.json
stream="pgsync:{$index}:changes"
log=$PGS_STACK_DIR/logs/chaos_$index.log
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/chaos.json" >"$schema"
echo "chaos: seed $SEED, $RUN_SECONDS s, database $PGDATABASE, index $index, logs $log"
if psql_q <"$PGS_ROOT/tests/fixtures/chaos.sql" >/dev/null &&
    pgsync --config "$schema" --quiet >>"$log" 2>&1; then
    pass "chaos: schema loaded"
else
    fail "chaos: schema loaded" "$(tail -5 "$log")"
    exit 1
fi

# --- the daemons -------------------------------------------------------------------

# The logs of the daemons are appended to from run to run: each check below
# reads only what this run wrote (from the offsets noted here).
declare -A log_from=()
for name in chaos_producer chaos_c1 chaos_c2 chaos_c3 chaos_workload; do
    log_from[$name]=$(($(stat -c %s "$PGS_STACK_DIR/logs/$name.log" 2>/dev/null || echo 0) + 1))
done
this_run() { tail -c +"${log_from[$1]}" "$PGS_STACK_DIR/logs/$1.log" 2>/dev/null; }

start_producer() { start_bg chaos_producer pgsync-producer --config "$schema"; }
start_consumer() { start_bg "chaos_$1" pgsync-consumer --config "$schema" --name "$1" --batch-size 50; }
start_producer
for c in "${CONSUMERS[@]}"; do start_consumer "$c"; done

declare -A kills=([producer]=0 [consumer]=0 [redis]=0 [engine]=0 [pg_fast]=0 [pg_immediate]=0)
unexpected=()

# A daemon that exited on its own (not killed by us) is a bug: note it, with
# its exit status, and start it again so that the run can go on.
check_alive() {
    local name pid rc
    for name in chaos_producer "${CONSUMERS[@]/#/chaos_}"; do
        pid=$(bg_pid "$name")
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            rc=$?
            unset "_PGS_BG[$name]"
            unexpected+=("$name exited with status $rc at +$((SECONDS - t_start))s (after: ${last_fault:-none})")
            echo "chaos: $name exited by itself (status $rc)" >>"$log"
            if [ "$name" = chaos_producer ]; then start_producer; else start_consumer "${name#chaos_}"; fi
        fi
    done
}

# --- the workload ----------------------------------------------------------------------

# Runs until the deadline in the background; a session killed by a PostgreSQL
# restart is simply started again (its committed transactions are counted in
# chaos_counter, the rest rolled back).
workload() {
    local i=0 rc
    while [ "$SECONDS" -lt "$t_stop" ]; do
        i=$((i + 1))
        if ((i % 40 == 0)); then
            psql_q "CALL chaos_truncate($((RANDOM % 4)))" >/dev/null 2>&1 && echo "workload: truncate"
        fi
        psql_q "CALL chaos_workload(100, $(awk -v s="$SEED" -v i="$i" 'BEGIN { srand(s + i); print rand() }'), $PAUSE)" \
            >/dev/null 2>&1
        rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "workload: session lost (psql exit $rc)"
            sleep 0.5
        fi
    done
    echo "workload: done after $i calls"
}

# --- faults ---------------------------------------------------------------------------

pause_short() { sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.1f", 0.5 + (r % 25) / 10 }')"; }

fault() {
    local c mode
    last_fault="$1 at +$((SECONDS - t_start))s"
    case "$1" in
    producer)
        kill9_bg chaos_producer
        pause_short
        start_producer
        kills[producer]=$((kills[producer] + 1))
        ;;
    consumer)
        c=${CONSUMERS[RANDOM % ${#CONSUMERS[@]}]}
        kill9_bg "chaos_$c"
        pause_short
        start_consumer "$c"
        kills[consumer]=$((kills[consumer] + 1))
        last_fault+=" ($c)"
        ;;
    redis)
        "$STACK" restart-redis "$PGS_STACK_DIR" kill >>"$log" 2>&1 || fail "chaos: Redis restarts" "see $log"
        kills[redis]=$((kills[redis] + 1))
        ;;
    engine)
        mode=term
        ((RANDOM % 2)) && mode=kill
        "$STACK" restart-engine "$PGS_STACK_DIR" "$mode" >>"$log" 2>&1 ||
            fail "chaos: the engine restarts" "see $log"
        kills[engine]=$((kills[engine] + 1))
        ;;
    pg)
        mode=fast
        ((RANDOM % 2)) && mode=immediate
        "$STACK" restart-pg "$PGS_STACK_DIR" "$mode" >>"$log" 2>&1 ||
            fail "chaos: PostgreSQL restarts" "see $log"
        kills[pg_$mode]=$((kills[pg_$mode] + 1))
        ;;
    esac
    echo "chaos: +$((SECONDS - t_start))s $last_fault" >>"$log"
}

t_start=$SECONDS
t_stop=$((SECONDS + RUN_SECONDS))
start_bg chaos_workload workload
schedule=()
while [ "$SECONDS" -lt "$t_stop" ]; do
    # every kind of fault once per round, in a random order
    if [ ${#schedule[@]} -eq 0 ]; then
        schedule=($(printf '%s\n' producer consumer consumer redis engine pg | shuf --random-source=<(yes "$RANDOM")))
    fi
    sleep "$(awk -v r="$RANDOM" -v g="$GAP" 'BEGIN { printf "%.1f", 1 + (r % (10 * g)) / 10 }')"
    check_alive
    [ "$SECONDS" -lt "$t_stop" ] || break
    fault "${schedule[0]}"
    schedule=("${schedule[@]:1}")
    check_alive
done
wait "$(bg_pid chaos_workload)" 2>/dev/null
unset "_PGS_BG[chaos_workload]"
t_faults_end=$SECONDS
check_alive

# --- convergence ------------------------------------------------------------------------

caught_up() {
    [ "$(psql_q "SELECT confirmed_flush_lsn >= pg_current_wal_lsn() FROM pg_replication_slots
                 WHERE slot_name = 'pgsync_${PGDATABASE}'")" = t ]
}
drained() {
    [ "$(redis_q XPENDING "$stream" pgsync | head -1)" = 0 ] &&
        [ "$(redis_q XINFO GROUPS "$stream" | awk 'f { print; exit } /last-delivered-id/ { f = 1 }')" = \
            "$(redis_q XINFO STREAM "$stream" | awk 'f { print; exit } /last-generated-id/ { f = 1 }')" ]
}
t0=${EPOCHREALTIME/./}
converged=0
if wait_until "$CONVERGE" caught_up; then
    if wait_until "$CONVERGE" drained; then
        converged=1
    fi
fi
t_converge=$(((${EPOCHREALTIME/./} - t0) / 1000))
check_alive

changes=$(psql_q "SELECT n FROM chaos_counter")
truncates=$(this_run chaos_workload | grep -c '^workload: truncate')
lost_sessions=$(this_run chaos_workload | grep -c '^workload: session lost')
entries=$(redis_q XINFO STREAM "$stream" | awk 'f { print; exit } /^entries-added$/ { f = 1 }')
dead=$(redis_q XLEN "pgsync:{$index}:dlq")
docs=$(psql_q "SELECT count(*) FROM customer")

if [ "$converged" = 1 ]; then
    pass "chaos: the slot catches up and the stream drains after the faults"
else
    fail "chaos: the slot catches up and the stream drains after the faults" \
        "not within ${CONVERGE}s: caught_up=$(caught_up && echo yes || echo no) pending=$(redis_q XPENDING "$stream" pgsync | head -1)"
fi
vout=$PGS_STACK_DIR/logs/chaos_$index-verify.out
if pgsync-verify --config "$schema" --max-diffs 10 >"$vout" 2>&1; then
    pass "chaos: pgsync-verify finds no missing, extra or different document"
else
    # say whether the drift stays (a lost change) or goes (a slow consumer)
    sleep 10
    if pgsync-verify --config "$schema" >/dev/null 2>&1; then later="gone 10 s later"; else later="still there 10 s later"; fi
    fail "chaos: pgsync-verify finds no missing, extra or different document" \
        "$later: $(grep -E 'checked|^(missing|extra|different) ' "$vout" | head -12 | tr '\n' ';')"
fi
check_eq "chaos: nothing dead-lettered" 0 "${dead:-0}"
if [ ${#unexpected[@]} -eq 0 ]; then
    pass "chaos: no daemon exited by itself"
else
    fail "chaos: no daemon exited by itself" "$(printf '%s; ' "${unexpected[@]}")"
fi
# a clean stop (LeakSanitizer reports at exit, under SANITIZE=1)
stops=
for name in chaos_producer "${CONSUMERS[@]/#/chaos_}"; do
    stop_bg "$name" 15 || stops+="$name:$? "
done
check_eq "chaos: the daemons stop cleanly on SIGTERM (exit 0)" "" "$stops"
san=
for name in chaos_producer chaos_c1 chaos_c2 chaos_c3; do
    this_run "$name" | grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' && san+="$name "
done
check_eq "chaos: no sanitizer report in the daemons' logs" "" "$san"

echo "chaos figures: seed=$SEED seconds=$((t_faults_end - t_start)) changes_committed=$changes" \
    "truncates=$truncates stream_entries=${entries:-?} documents=$docs" \
    "kills: producer=${kills[producer]} consumer=${kills[consumer]} redis=${kills[redis]}" \
    "engine=${kills[engine]} pg_fast=${kills[pg_fast]} pg_immediate=${kills[pg_immediate]}" \
    "workload_sessions_lost=$lost_sessions unexpected_exits=${#unexpected[@]}" \
    "converge_ms=$t_converge"
