#!/usr/bin/env bash
# The test stack itself, and the helpers of lib.sh that every other test
# relies on: PostgreSQL with logical decoding, Redis, the engine asked for
# (PGS_ENGINE) on its own, isolated node.
. "$(dirname "$0")/lib.sh"

# --- PostgreSQL ---
check_eq "postgres wal_level is logical" logical "$(psql_q 'SHOW wal_level')"
check_eq "postgres timezone is UTC" UTC "$(psql_q 'SHOW timezone')"
check_eq "postgres max_replication_slots" 200 "$(psql_q 'SHOW max_replication_slots')"
check_eq "postgres listens on loopback only" 127.0.0.1 "$(psql_q 'SHOW listen_addresses')"

new_db stack >/dev/null
db=${PGDATABASE:-}
check_eq "new_db exports PGDATABASE" "$db" "$(psql_q 'SELECT current_database()')"
psql_q <<'SQL'
CREATE TABLE book (id int PRIMARY KEY, title text);
INSERT INTO book VALUES (1, 'One'), (2, 'Two');
SQL
check_eq "psql_q runs SQL from stdin and from an argument" 2 "$(psql_q 'SELECT count(*) FROM book')"
if psql_q 'SELECT * FROM no_such_table' >/dev/null 2>&1; then
    fail "psql_q fails on an SQL error" "exit status 0"
else
    pass "psql_q fails on an SQL error"
fi

slot=$(unique_name slot)
if psql_q "SELECT pg_create_logical_replication_slot('$slot', 'pgoutput')" >/dev/null &&
    psql_q "SELECT pg_drop_replication_slot('$slot')" >/dev/null; then
    pass "pgoutput logical slot can be created"
else
    fail "pgoutput logical slot can be created" "see the psql error above"
fi
sysid=$(psql -XAtq -d "host=$PG_HOST port=$PG_PORT user=$PG_USER dbname=$db replication=database" \
    -c IDENTIFY_SYSTEM 2>&1)
if [[ $sysid =~ ^[0-9]+\|1\| ]]; then
    pass "replication connections are allowed"
else
    fail "replication connections are allowed" "IDENTIFY_SYSTEM: $sysid"
fi

# --- Redis ---
check_eq "redis answers PING" PONG "$(redis_q PING)"
stream=$(unique_name stream)
redis_q XADD "$stream" '*' k v >/dev/null
check_eq "redis streams work" 1 "$(redis_q XLEN "$stream")"
check_eq "redis appends to its AOF" yes "$(redis_q CONFIG GET appendonly | tail -n 1)"

# --- the search engine ---
root=$(es GET /)
case "${PGS_ENGINE:-opensearch}" in
opensearch)
    check_eq "engine is opensearch" opensearch "$(jq -r '.version.distribution' <<<"$root")"
    check_eq "opensearch version" 2.19.1 "$(jq -r '.version.number' <<<"$root")"
    check_eq "OPENSEARCH=true" true "${OPENSEARCH:-}"
    ;;
elasticsearch)
    check_eq "engine is elasticsearch" elasticsearch \
        "$(jq -r '.version.distribution // "elasticsearch"' <<<"$root")"
    check_eq "elasticsearch version" 7.10.2 "$(jq -r '.version.number' <<<"$root")"
    check_eq "OPENSEARCH=false" false "${OPENSEARCH:-}"
    ;;
*) fail "PGS_ENGINE is known" "PGS_ENGINE=$PGS_ENGINE" ;;
esac
check_eq "engine cluster name is this run's" "${ENGINE_CLUSTER:-}" "$(jq -r '.cluster_name' <<<"$root")"
health=$(es GET '/_cluster/health')
case "$(jq -r .status <<<"$health")" in
green | yellow) pass "engine health is green or yellow" ;;
*) fail "engine health is green or yellow" "$health" ;;
esac
check_eq "engine is a one-node cluster" 1 "$(jq -r .number_of_nodes <<<"$health")"
check_eq "engine transport port is ours" "127.0.0.1:${ENGINE_TRANSPORT_PORT:-}" \
    "$(es GET '/_nodes/_local/transport' | jq -r '.nodes[].transport.publish_address')"
check_eq "engine disk threshold is off" false \
    "$(es GET '/_cluster/settings?include_defaults=true' |
        jq -r '.. | objects | .disk.threshold_enabled? // empty' | head -n 1)"

index=$(unique_name books)
es PUT "/$index" '{"settings": {"number_of_shards": 1, "number_of_replicas": 0}}' >/dev/null
es PUT "/$index/_doc/2" '{"title": "Two"}' >/dev/null
es PUT "/$index/_doc/10" '{"title": "Ten"}' >/dev/null
es PUT "/$index/_doc/a%2Fb" '{"title": "Slash"}' >/dev/null
check_eq "es_doc prints _source" '{"title":"Two"}' "$(es_doc "$index" 2)"
check_eq "es_doc encodes the id" '{"title":"Slash"}' "$(es_doc "$index" a/b)"
if es_doc "$index" 3 >/dev/null; then
    fail "es_doc fails on a missing document" "exit status 0"
else
    pass "es_doc fails on a missing document"
fi
check_eq "es_ids lists the ids sorted" "10 2 a/b" "$(es_ids "$index" | tr '\n' ' ' | sed 's/ $//')"
if es GET "/$(unique_name missing)" >/dev/null 2>&1; then
    fail "es fails on HTTP 404" "exit status 0"
else
    pass "es fails on HTTP 404"
fi
bulk=$(printf '%s\n' "{\"index\":{\"_index\":\"$index\",\"_id\":\"3\"}}" '{"title":"Three"}')
es POST /_bulk "$bulk" >/dev/null
check_eq "es sends _bulk as NDJSON" '{"title":"Three"}' "$(es_doc "$index" 3)"
es DELETE "/$index" >/dev/null
if es_ids "$index" >/dev/null 2>&1; then
    fail "es DELETE removes the index" "still there"
else
    pass "es DELETE removes the index"
fi

# --- lib.sh: waiting and background processes ---
if wait_until 2 true; then pass "wait_until returns on success"; else fail "wait_until returns on success" "timed out"; fi
t0=${EPOCHREALTIME/./}
if wait_until 0.6 false; then
    fail "wait_until times out" "returned 0"
else
    ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
    if [ "$ms" -ge 500 ] && [ "$ms" -lt 3000 ]; then
        pass "wait_until times out"
    else
        fail "wait_until times out" "after $ms ms, expected about 600"
    fi
fi
flag=$PGS_STACK_DIR/$(unique_name flag)
start_bg flagger bash -c "sleep 0.5; touch '$flag'; exec sleep 300"
if wait_until 10 test -e "$flag"; then
    pass "wait_until sees a later change"
else
    fail "wait_until sees a later change" "$flag never appeared"
fi
pid=$(bg_pid flagger)
stop_bg flagger 3
if kill -0 "$pid" 2>/dev/null; then fail "stop_bg stops the process" "pid $pid alive"; else pass "stop_bg stops the process"; fi
start_bg sleeper sleep 300
pid=$(bg_pid sleeper)
kill9_bg sleeper
if kill -0 "$pid" 2>/dev/null; then fail "kill9_bg kills the process" "pid $pid alive"; else pass "kill9_bg kills the process"; fi
check_eq "start_bg logs to logs/NAME.log" 1 "$(grep -c 'sleep 300$' "$PGS_STACK_DIR/logs/sleeper.log")"
a=$(unique_name Foo-Bar)
b=$(unique_name Foo-Bar)
if [ "$a" != "$b" ] && [[ $a =~ ^foo_bar_[0-9]+_[0-9]+$ ]]; then
    pass "unique_name gives fresh lowercase names"
else
    fail "unique_name gives fresh lowercase names" "$a / $b"
fi
