#!/usr/bin/env bash
# Operations (issue: Operations): the producer and the consumer serve
# /metrics (Prometheus text 0.0.4) and /healthz on --metrics-port from their
# own loop; the counters move with the work; /healthz turns 503 with the
# reason when Redis is gone, when the engine is unreachable, and when work
# waits and nothing moves (the watchdog logs it); and no password or API key
# ever shows in any output, whatever fails.
. "$(dirname "$0")/lib.sh"

new_db metrics >/dev/null
index=$(unique_name metrics)
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
schema=$PGS_STACK_DIR/$index.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
logs=$PGS_STACK_DIR/logs


# scrape PORT PATH: the body; http_code PORT PATH: the status
scrape() { curl -s --max-time 5 "http://127.0.0.1:$1$2"; }
http_code() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$1$2"; }
# metric PORT SERIES: the value of one series ("name" or 'name{labels}'), else empty
metric() { scrape "$1" /metrics | awk -v s="$2" '$1 == s { print $2; exit }'; }
metric_above() { # PORT SERIES N: the series is above N
    local v
    v=$(metric "$1" "$2")
    [ -n "$v" ] && awk -v a="$v" -v b="$3" 'BEGIN { exit !(a > b) }'
}
healthz_is() { [ "$(http_code "$1" /healthz)" = "$2" ]; }
healthz_says() { scrape "$1" /healthz | grep -q -- "$2"; }
# stack_pid NAME: a server's pid as the stack's env file says now (restarts change it)
stack_pid() { (. "$PGS_STACK_DIR/env" && eval "echo \"\${$1:-}\""); }

pgsync --config "$schema" --quiet >"$logs/$index-load.log" 2>&1 ||
    fail "setup: one-shot load" "$(tail -5 "$logs/$index-load.log")"

pport=$(free_port) && cport=$(free_port) && dport=$(free_port) ||
    fail "setup: free ports" "none found"
start_bg producer pgsync-producer --config "$schema" --metrics-port "$pport"
# the port may also come from the environment
PGSYNC_METRICS_PORT=$cport start_bg consumer pgsync-consumer --config "$schema" --name c1

# 1. both answer, in the text format
if wait_until 20 healthz_is "$pport" 200 && wait_until 20 healthz_is "$cport" 200; then
    pass "/healthz: 200 when connected and idle"
else
    fail "/healthz: 200 when connected and idle" \
        "producer $(http_code "$pport" /healthz) $(scrape "$pport" /healthz); consumer $(http_code "$cport" /healthz) $(scrape "$cport" /healthz)"
fi
check_eq "/healthz body" "ok" "$(scrape "$cport" /healthz)"
ctype=$(curl -s -o /dev/null --max-time 5 -w '%{content_type}' "http://127.0.0.1:$cport/metrics")
check_eq "/metrics content type" "text/plain; version=0.0.4; charset=utf-8" "$ctype"

# every sample belongs to a family announced by HELP and TYPE; counters end in _total;
# a histogram's +Inf bucket equals its _count
format_ok() {
    scrape "$1" /metrics | awk '
        /^# HELP / { help[$3] = 1; next }
        /^# TYPE / { type[$3] = $4; if ($4 == "counter" && $3 !~ /_total$/) { print "counter without _total: " $3; bad = 1 } next }
        /^#/ { next }
        {
            if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [^ ]+$/) { print "bad line: " $0; bad = 1; next }
            name = $1; sub(/\{.*/, "", name); fam = name
            if (!(fam in type)) { sub(/_(bucket|sum|count)$/, "", fam) }
            if (!(fam in type) || !(fam in help)) { print "no HELP/TYPE for " name; bad = 1 }
            if (name ~ /_bucket$/ && $1 ~ /le="\+Inf"/) { k = $1; sub(/_bucket\{/, "{", k); sub(/,?le="\+Inf"/, "", k); sub(/\{\}/, "", k); inf[k] = $2 }
            if (name ~ /_count$/ && (fam != name)) { k = $1; sub(/_count/, "", k); cnt[k] = $2 }
        }
        END {
            for (k in cnt) if (inf[k] != cnt[k]) { print "histogram " k ": +Inf " inf[k] " != count " cnt[k]; bad = 1 }
            exit bad
        }'
}
for who in producer:$pport consumer:$cport; do
    if out=$(format_ok "${who#*:}"); then
        pass "$who: /metrics is valid Prometheus text"
    else
        fail "$who: /metrics is valid Prometheus text" "$out"
    fi
done
for s in pgsync_producer_changes_read_total pgsync_producer_records_written_total \
    pgsync_producer_transactions_total pgsync_producer_confirmed_lsn \
    pgsync_producer_replication_lag_bytes pgsync_producer_connected; do
    scrape "$pport" /metrics | grep -q "^# TYPE $s " || fail "producer exposes $s" "missing"
done
for s in pgsync_consumer_batches_total pgsync_consumer_documents_indexed_total \
    pgsync_consumer_documents_deleted_total pgsync_consumer_documents_dead_lettered_total \
    pgsync_consumer_bulk_retries_total pgsync_consumer_bulk_request_duration_seconds \
    pgsync_consumer_batch_duration_seconds pgsync_consumer_stream_lag_entries \
    pgsync_consumer_records_total; do
    scrape "$cport" /metrics | grep -q "^# TYPE $s " || fail "consumer exposes $s" "missing"
done
pass "both expose the operational series"

# 2. the counters move with the work
slot_l="{slot=\"pgsync_${PGDATABASE}\"}"
ix_l="{index=\"$index\"}"
written0=$(metric "$pport" "pgsync_producer_records_written_total$slot_l")
indexed0=$(metric "$cport" "pgsync_consumer_documents_indexed_total$ix_l")
batches0=$(metric "$cport" "pgsync_consumer_batches_total$ix_l")
psql_q "UPDATE book SET title = title || '!' WHERE isbn = '9781471331435';
        INSERT INTO book (isbn, title, description) VALUES ('9780000000001', 'Metrics', 'x')"
if wait_until 20 metric_above "$pport" "pgsync_producer_records_written_total$slot_l" "${written0:-0}"; then
    pass "producer: records written move"
else
    fail "producer: records written move" "still $(metric "$pport" "pgsync_producer_records_written_total$slot_l")"
fi
if wait_until 20 metric_above "$cport" "pgsync_consumer_documents_indexed_total$ix_l" $((${indexed0:-0} + 1)) &&
    wait_until 5 metric_above "$cport" "pgsync_consumer_batches_total$ix_l" "${batches0:-0}"; then
    pass "consumer: documents indexed and batches move"
else
    fail "consumer: documents indexed and batches move" \
        "indexed $(metric "$cport" "pgsync_consumer_documents_indexed_total$ix_l") batches $(metric "$cport" "pgsync_consumer_batches_total$ix_l")"
fi
if metric_above "$cport" pgsync_consumer_bulk_request_duration_seconds_count 0 &&
    metric_above "$cport" "pgsync_consumer_batch_duration_seconds_count$ix_l" 0 &&
    metric_above "$pport" "pgsync_producer_confirmed_lsn$slot_l" 0; then
    pass "latency histograms and the confirmed LSN are filled"
else
    fail "latency histograms and the confirmed LSN are filled" "$(scrape "$cport" /metrics | grep _count)"
fi
lag_zero() { [ "$(metric "$cport" "pgsync_consumer_stream_lag_entries{index=\"$index\",stream=\"changes\"}")" = 0 ]; }
if wait_until 15 lag_zero; then
    pass "consumer: stream lag back to 0 once caught up"
else
    fail "consumer: stream lag back to 0 once caught up" "$(scrape "$cport" /metrics | grep lag_entries)"
fi

# 3. a consumer pointed at a dead engine: 503 with the reason, it keeps trying,
# and the stream lag counts what waits meanwhile
stop_bg consumer || fail "consumer stops cleanly on SIGTERM" "non-zero exit"
psql_q "UPDATE book SET description = 'lag ' || isbn"
deadport=$(free_port)
ELASTICSEARCH_URL=http://127.0.0.1:$deadport start_bg deadengine pgsync-consumer --config "$schema" \
    --name dead --metrics-port "$dport"
if wait_until 20 healthz_is "$dport" 503 && healthz_says "$dport" "not connected to the search engine"; then
    pass "/healthz: 503 naming the unreachable search engine"
else
    fail "/healthz: 503 naming the unreachable search engine" "$(http_code "$dport" /healthz) $(scrape "$dport" /healthz)"
fi
check_eq "metrics say the engine is not connected" 0 \
    "$(metric "$dport" 'pgsync_consumer_connected{to="search_engine"}')"
lag_series="pgsync_consumer_stream_lag_entries{index=\"$index\",stream=\"changes\"}"
if wait_until 10 metric_above "$dport" "$lag_series" 0; then
    pass "stream lag counts the entries waiting ($(metric "$dport" "$lag_series"))"
else
    fail "stream lag counts the entries waiting" "$(scrape "$dport" /metrics | grep lag_entries)"
fi
kill -0 "$(bg_pid deadengine)" 2>/dev/null && pass "the consumer keeps retrying" ||
    fail "the consumer keeps retrying" "it exited"
stop_bg deadengine || fail "a failing consumer stops cleanly on SIGTERM" "non-zero exit"
PGSYNC_METRICS_PORT=$cport start_bg consumer pgsync-consumer --config "$schema" --name c1
wait_until 20 healthz_is "$cport" 200 || fail "consumer restarts healthy" "$(scrape "$cport" /healthz)"
if wait_until 20 lag_zero; then
    pass "the lag drains once a working consumer runs"
else
    fail "the lag drains once a working consumer runs" "$(scrape "$cport" /metrics | grep lag_entries)"
fi

# 5. the engine stops answering mid-batch: the loop still serves, and the stall is seen
start_bg stall env PGSYNC_STALL_SECONDS=3 pgsync-consumer --config "$schema" --name stall \
    --metrics-port "$dport"
wait_until 20 healthz_is "$dport" 200 || fail "stall consumer starts healthy" "$(scrape "$dport" /healthz)"
stop_bg consumer
ENGINE_PID=$(stack_pid ENGINE_PID)
if [ -n "$ENGINE_PID" ] && kill -STOP "$ENGINE_PID" 2>/dev/null; then
    # whatever happens to this file, the engine resumes
    (sleep 25 && kill -CONT "$ENGINE_PID") >/dev/null 2>&1 </dev/null &
    guard=$!
    psql_q "UPDATE book SET title = 'stalled' WHERE isbn = '9788374950978'"
    if wait_until 20 healthz_says "$dport" "stalled:"; then
        pass "/healthz: 503 'stalled' while entries wait and the engine hangs"
    else
        fail "/healthz: 503 'stalled' while entries wait and the engine hangs" \
            "$(http_code "$dport" /healthz) $(scrape "$dport" /healthz)"
    fi
    check_eq "/metrics still served during the hung request" 1 "$(metric "$dport" pgsync_stalled)"
    kill -CONT "$ENGINE_PID"
    kill "$guard" 2>/dev/null
    if grep -q 'msg="watchdog: stalled' "$logs/stall.log"; then
        pass "the watchdog logs the stall"
    else
        fail "the watchdog logs the stall" "no line in logs/stall.log"
    fi
    title_is() { [ "$(es_doc "$index" 9788374950978 | jq -r .title)" = "$1" ]; }
    if wait_until 60 healthz_is "$dport" 200 && wait_until 30 title_is stalled; then
        pass "engine back: healthy again and the change arrives"
    else
        fail "engine back: healthy again and the change arrives" "$(scrape "$dport" /healthz)"
    fi
    grep -q 'msg="watchdog: progressing again"' "$logs/stall.log" &&
        pass "the watchdog logs the recovery" || fail "the watchdog logs the recovery" "no line"
else
    fail "stall test" "no ENGINE_PID in the stack's env"
fi
stop_bg stall
PGSYNC_METRICS_PORT=$cport start_bg consumer pgsync-consumer --config "$schema" --name c1
wait_until 20 healthz_is "$cport" 200 || fail "consumer restarts healthy" "$(scrape "$cport" /healthz)"

# 6. Redis goes away: both say so; it comes back: both recover
redis_down() { ! redis_q ping >/dev/null 2>&1; }
REDIS_PID=$(stack_pid REDIS_PID)
if [ -n "$REDIS_PID" ] && kill -TERM "$REDIS_PID" 2>/dev/null; then
    # the producer notices at its next write: make one once Redis is really gone
    wait_until 20 redis_down || fail "redis stops" "still answers"
    psql_q "UPDATE book SET title = 'while redis was down' WHERE isbn = '9781471331435'"
    if wait_until 20 healthz_says "$cport" "not connected to Redis" &&
        wait_until 20 healthz_says "$pport" "not connected to Redis" &&
        healthz_is "$cport" 503 && healthz_is "$pport" 503; then
        pass "/healthz: 503 naming Redis, producer and consumer"
    else
        fail "/healthz: 503 naming Redis, producer and consumer" \
            "producer: $(scrape "$pport" /healthz) consumer: $(scrape "$cport" /healthz)"
    fi
    "$PGS_ROOT/scripts/stack.sh" restart-redis "$PGS_STACK_DIR" >/dev/null 2>&1 ||
        fail "redis restarts" "stack.sh restart-redis failed"
    title_is() { [ "$(es_doc "$index" 9781471331435 | jq -r .title)" = "$1" ]; }
    if wait_until 40 healthz_is "$pport" 200 && wait_until 40 healthz_is "$cport" 200 &&
        wait_until 30 title_is "while redis was down"; then
        pass "Redis back: both healthy and the change arrives"
    else
        fail "Redis back: both healthy and the change arrives" \
            "producer: $(scrape "$pport" /healthz) consumer: $(scrape "$cport" /healthz)"
    fi
else
    fail "redis test" "no REDIS_PID in the stack's env"
fi

if stop_bg producer && stop_bg consumer; then
    pass "producer and consumer stop cleanly on SIGTERM"
else
    fail "producer and consumer stop cleanly on SIGTERM" "non-zero exit"
fi
grep -h 'msg="serving metrics"' "$logs/producer.log" "$logs/consumer.log" | grep -q "address=127.0.0.1" &&
    pass "metrics listen on 127.0.0.1 by default" || fail "metrics listen on 127.0.0.1 by default" "no log line"

# 7. secrets never show: every binary, every failure we can provoke
S_PG=pgS3cret-1 S_PGURL=urlS3cret-2 S_ES=esS3cret-3 S_ESURL=esurlS3cret-4 S_KEY=apiKeyS3cret-5
S_REDIS=redisS3cret-6 S_REDISURL=redisurlS3cret-7
dead=$(free_port)
secret_out=$PGS_STACK_DIR/logs/$index-secrets.out
: >"$secret_out"
run_secret() { # NAME ENV... -- CMD...: output appended to $secret_out, 6 s at most
    local name=$1
    shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    echo "=== $name: $*" >>"$secret_out"
    env "${envs[@]}" timeout -s TERM -k 3 6 "$@" >>"$secret_out" 2>&1 </dev/null
}
pg_ok=(PG_HOST="$PG_HOST" PG_PORT="$PG_PORT" PG_USER="$PG_USER" PG_PASSWORD="$S_PG")
es_bad=(ELASTICSEARCH_URL="http://elastic:$S_ESURL@127.0.0.1:$dead" ELASTICSEARCH_USER=elastic
    ELASTICSEARCH_PASSWORD="$S_ES" ELASTICSEARCH_API_KEY="$S_KEY")
redis_bad=(REDIS_URL="redis://:$S_REDISURL@127.0.0.1:$dead/0" REDIS_AUTH="$S_REDIS")
redis_ok_auth=(REDIS_URL= REDIS_HOST="$REDIS_HOST" REDIS_PORT="$REDIS_PORT" REDIS_AUTH="$S_REDIS")
for bin in pgsync-producer pgsync-consumer pgsync-bootstrap pgsync pgsync-verify pgsync-queue; do
    # PostgreSQL unreachable, by URL and by parts
    run_secret "$bin pg_url" PG_URL="postgres://postgres:$S_PGURL@127.0.0.1:$dead/x" "${es_bad[@]}" \
        "${redis_bad[@]}" -- "$bin" --config "$schema"
    run_secret "$bin pg_url malformed" PG_URL="postgres://postgres:$S_PGURL@[::1/x" -- "$bin" --config "$schema"
    run_secret "$bin pg parts" PG_HOST=127.0.0.1 PG_PORT="$dead" PG_PASSWORD="$S_PG" -- "$bin" --config "$schema"
    # PostgreSQL fine, Redis unreachable, engine unreachable
    run_secret "$bin redis+engine" "${pg_ok[@]}" "${es_bad[@]}" "${redis_bad[@]}" -- \
        "$bin" --config "$schema" --log-level debug
    # Redis reachable but refusing the password; engine unreachable; JSON logs
    run_secret "$bin redis auth" "${pg_ok[@]}" "${es_bad[@]}" "${redis_ok_auth[@]}" -- \
        "$bin" --config "$schema" --log-format json --log-level debug
    # --help with every secret in the environment
    run_secret "$bin help" "${pg_ok[@]}" "${es_bad[@]}" "${redis_bad[@]}" \
        PG_URL="postgres://u:$S_PGURL@h/x" -- "$bin" --help
done
# the consumer against a live Redis and a dead engine with secrets: its /healthz too
sport=$(free_port)
env "${pg_ok[@]}" "${es_bad[@]}" REDIS_URL= REDIS_HOST="$REDIS_HOST" REDIS_PORT="$REDIS_PORT" \
    pgsync-consumer --config "$schema" --name secrets --metrics-port "$sport" >>"$secret_out" 2>&1 &
spid=$!
wait_until 15 healthz_is "$sport" 503
{ scrape "$sport" /healthz; scrape "$sport" /metrics; } >>"$secret_out"
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
leaks=$(grep -n -E "$S_PG|$S_PGURL|$S_ES|$S_ESURL|$S_KEY|$S_REDIS|$S_REDISURL" "$secret_out" | head -5)
if [ -z "$leaks" ]; then
    pass "no secret in any output ($(grep -c . "$secret_out") lines checked)"
else
    fail "no secret in any output" "$leaks"
fi
for what in "Connection refused" "search engine" "Redis" "PostgreSQL"; do
    grep -q "$what" "$secret_out" || fail "the secrets run produced errors ($what)" "not seen"
done
grep -q "http://\*\*\*@127.0.0.1:$dead" "$secret_out" &&
    pass "the engine URL is shown redacted" || fail "the engine URL is shown redacted" "not seen"

pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
