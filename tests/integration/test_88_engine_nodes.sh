#!/usr/bin/env bash
# Search engine nodes (issue: search clusters): a three-node cluster of the
# suite's engine (OpenSearch, or Elasticsearch 7.10.2 under make test-es) on
# loopback, small heaps. An index of 3 shards and 1 replica whose schema names
# "routing". One consumer is given the three nodes in ELASTICSEARCH_URL, a
# second only one seed with ELASTICSEARCH_SNIFF=true. During a workload that
# deletes rows and changes routing values, the seed node is killed with -9:
# both consumers carry on through the other nodes, /healthz says which node
# is set aside, pgsync-queue shows it down; it comes back and rejoins. The
# index converges exactly: pgsync-verify is clean, and no deleted or
# re-routed document survives on any shard. Then a red index (unless
# PGS_RED_INDEX=0): no replicas, the only copy of a shard killed with its
# node; a routed and a plain index stall with /healthz 503 and the reason,
# nothing is dead-lettered, and both converge once the node is back.
. "$(dirname "$0")/lib.sh"

WORK_ROUNDS=${PGS_NODES_ROUNDS:-6}
CACHE=${PGS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/pgsync-c}
case "${PGS_ENGINE:-opensearch}" in
opensearch)
    LIB=$CACHE/opensearch-2.19.1.0/lib YML=opensearch.yml
    CLASS=org.codelibs.opensearch.runner.OpenSearchRunner
    MANAGERS=cluster.initial_cluster_manager_nodes
    ;;
*)
    LIB=$CACHE/elasticsearch-7.10.2.0/lib YML=elasticsearch.yml
    CLASS=org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner
    MANAGERS=cluster.initial_master_nodes
    ;;
esac
[ -f "$LIB/.complete" ] || { fail "engine nodes: the runner's jars" "$LIB missing (scripts/stack.sh fetch)"; exit 1; }
JAVA=${PGS_JAVA:-}
if [ -z "$JAVA" ]; then
    for j in /usr/lib/jvm/java-17-openjdk-*/bin/java; do [ -x "$j" ] && JAVA=$j && break; done
fi
JAVA=${JAVA:-java}
dir=$PGS_STACK_DIR/engine-nodes-$$
mkdir -p "$dir"

# --- three nodes, one cluster ---------------------------------------------------------------
# The runner takes the first free HTTP port after -baseHttpPort and refuses
# ports above 9299: pick three free ones in 9200-9297, each with a free one
# before it.
http_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
declare -A http=() tport=()
cand=$((9200 + RANDOM % 60))
for n in 1 2 3; do
    while ! { http_free "$cand" && http_free $((cand + 1)); } && [ "$cand" -lt 9297 ]; do
        cand=$((cand + 1))
    done
    http[$n]=$((cand + 1))
    cand=$((cand + 3))
    tport[$n]=$(free_port)
done
seeds="\"127.0.0.1:${tport[1]}\", \"127.0.0.1:${tport[2]}\", \"127.0.0.1:${tport[3]}\""
cluster=pgs-nodes-$$
node_start() { # N: (re)started on its folder
    local conf=$dir/n$1/node_1/config
    mkdir -p "$conf"
    [ -f "$conf/$YML" ] || cat >"$conf/$YML" <<EOF
cluster.name: $cluster
network.host: 127.0.0.1
transport.port: ${tport[$1]}
discovery.seed_hosts: [$seeds]
$MANAGERS: [$seeds]
cluster.routing.allocation.disk.threshold_enabled: false
EOF
    start_bg "engine_n$1_$$" "$JAVA" -Xms384m -Xmx384m -cp "$LIB/*" "$CLASS" \
        -basePath "$dir/n$1" -numOfNode 1 -baseHttpPort $((http[$1] - 1)) -clusterName "$cluster"
}
node_url() { echo "http://127.0.0.1:${http[$1]}"; }
health() { # N [params]: the cluster's health as node N answers it
    curl -s --max-time 20 "$(node_url "$1")/_cluster/health?${2:-}" 2>/dev/null
}
nodes_in() { [ "$(health "$1" | jq -r '.number_of_nodes // 0' 2>/dev/null)" = "${2:-3}" ]; }
green() { [ "$(health "$1" "wait_for_status=green&timeout=5s" | jq -r .status 2>/dev/null)" = green ]; }
for n in 1 2 3; do node_start "$n"; done
if wait_until 180 nodes_in 3 3 && wait_until 60 green 3; then
    pass "engine nodes: three nodes form one cluster, green"
else
    fail "engine nodes: three nodes form one cluster" "$(health 3) / $(grep -h 'HTTP Port' "$PGS_STACK_DIR"/logs/engine_n*_$$.log)"
    exit 1
fi
all="$(node_url 1),$(node_url 2),$(node_url 3)"
# the test's own calls go to node 3 (never killed); the product gets its own lists
export ELASTICSEARCH_URL=$(node_url 3)

# --- the index: 3 shards, 1 replica, routed -------------------------------------------------
new_db engnodes >/dev/null
index=$(unique_name engnodes)
psql_q <<'SQL' >/dev/null
CREATE TABLE item (id int PRIMARY KEY, grp text NOT NULL, title text);
CREATE TABLE tag (id int PRIMARY KEY, item_id int REFERENCES item (id) ON DELETE CASCADE, name text);
INSERT INTO item SELECT g, 'g' || (g % 7), 'item ' || g FROM generate_series(1, 2000) g;
INSERT INTO tag SELECT g, 1 + (g % 2000), 'tag ' || g FROM generate_series(1, 3000) g;
SQL
schema=$dir/$index.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index", "routing": "grp",
  "setting": {"number_of_shards": 3, "number_of_replicas": 1},
  "nodes": {"table": "item", "columns": ["id", "grp", "title"],
            "children": [{"table": "tag", "label": "tags", "columns": ["name"],
                          "relationship": {"variant": "scalar", "type": "one_to_many"}}]}}]
EOF
log=$dir/load.log
if ELASTICSEARCH_URL=$all pgsync --config "$schema" --quiet >>"$log" 2>&1; then
    pass "engine nodes: loaded through the node list"
else
    fail "engine nodes: loaded through the node list" "$(tail -5 "$log")"
    exit 1
fi
phys=$(es_physical "$index")
check_eq "engine nodes: 3 shards and 1 replica, spread over the nodes" "3 1 3" \
    "$(es GET "/$phys/_settings" | jq -r '.[].settings.index | "\(.number_of_shards) \(.number_of_replicas)"') $(
        es GET "/_cat/shards/$phys?h=id" | sort -u | grep -c .)"

# a bulk item for a shard with no primary (the red phase below) is answered 503 after 3 s, not 60
export PGSYNC_CLAIM_IDLE_MS=3000 PGSYNC_BLOCK_MS=200 PGSYNC_BULK_SHARD_TIMEOUT=3
mport1=$(free_port) mport2=$(free_port)
start_bg "en_p_$$" pgsync-producer --config "$schema"
ELASTICSEARCH_URL=$all start_bg "en_c1_$$" pgsync-consumer --config "$schema" --name list \
    --batch-size 50 --metrics-port "$mport1"
ELASTICSEARCH_URL=$(node_url 1) ELASTICSEARCH_SNIFF=true start_bg "en_c2_$$" pgsync-consumer \
    --config "$schema" --name sniff --batch-size 50 --metrics-port "$mport2"
ok_both() { [ "$(healthz_code "$mport1")" = 200 ] && [ "$(healthz_code "$mport2")" = 200 ]; }
wait_until 30 ok_both || fail "engine nodes: both consumers start healthy" "$(healthz "$mport1") / $(healthz "$mport2")"

# the workload: routing values changed, rows deleted (some right after a re-route), children
# moved, new rows; node 1 (the second consumer's only seed) dies with -9 in the middle
round() {
    psql_q <<SQL >/dev/null
UPDATE item SET grp = 'r$1-' || (id % 5) WHERE id % 6 = $(($1 % 6));
DELETE FROM item WHERE id % 97 = $1;
UPDATE item SET grp = 'x$1' WHERE id % 61 = $1;
DELETE FROM item WHERE id % 61 = $1 AND id > 1000;
UPDATE tag SET item_id = (SELECT max(id) FROM item WHERE id < 100000) WHERE id % 31 = $1;
INSERT INTO item SELECT 100000 * $1 + g, 'n' || g, 'new ' || g FROM generate_series(1, 40) g;
SQL
}
for ((r = 1; r <= WORK_ROUNDS / 2; r++)); do round "$r"; sleep 0.5; done
kill9_bg "engine_n1_$$"
killed_at=$SECONDS
for ((r = WORK_ROUNDS / 2 + 1; r <= WORK_ROUNDS; r++)); do round "$r"; sleep 0.5; done
psql_q "BEGIN; UPDATE item SET grp = 'last' WHERE id = 12; DELETE FROM item WHERE id = 12; COMMIT;" >/dev/null

# while node 1 is down: the consumers say so and keep going
set_aside() { healthz "$1" | grep -q "2 of 3 search engine nodes up; set aside: $(node_url 1)"; }
if wait_until 60 set_aside "$mport1"; then
    pass "engine nodes: /healthz names the node set aside ($(healthz "$mport1" | tail -1 | cut -c1-120))"
else
    fail "engine nodes: /healthz names the node set aside" "$(healthz "$mport1")"
fi
# the sniffing consumer was given one node and knows three
if wait_until 30 set_aside "$mport2"; then
    pass "engine nodes: ELASTICSEARCH_SNIFF: one seed given, the cluster's three nodes used"
else
    fail "engine nodes: ELASTICSEARCH_SNIFF: one seed given, three nodes used" "$(healthz "$mport2")"
fi
ELASTICSEARCH_URL=$all pgsync-queue --config "$schema" --json >"$dir/queue.json" 2>"$dir/queue.err"
check_eq "engine nodes: pgsync-queue shows node 1 down, 2 and 3 up" "false true true" \
    "$(jq -r '[.engine.nodes[].up | tostring] | join(" ")' "$dir/queue.json" 2>/dev/null)"
ELASTICSEARCH_URL=$all pgsync-queue --config "$schema" >"$dir/queue.txt" 2>&1
if grep -q "engine 2 of 3 nodes up" "$dir/queue.txt" && grep -q "$(node_url 1) DOWN" "$dir/queue.txt"; then
    pass "engine nodes: pgsync-queue's table says which node is down"
else
    fail "engine nodes: pgsync-queue's table says which node is down" "$(grep -A3 engine "$dir/queue.txt")"
fi
# a marker written after the kill reaches the index (a search: the _id alone does not say the shard)
psql_q "UPDATE item SET title = 'after the kill' WHERE id = 1999" >/dev/null
title_of() {
    es POST "/$index/_refresh" >/dev/null 2>&1
    es POST "/$index/_search" '{"query": {"ids": {"values": ["1999"]}}}' | jq -r '.hits.hits[0]._source.title'
}
after_kill() { [ "$(title_of)" = "after the kill" ]; }
if wait_until 60 after_kill; then
    pass "engine nodes: writes go on while a node is down ($((SECONDS - killed_at)) s after the kill)"
else
    fail "engine nodes: writes go on while a node is down" "$(title_of)"
fi
for c in list sniff; do
    n=$(grep -c '"search engine node set aside"\|msg="search engine node set aside"' \
        "$PGS_STACK_DIR/logs/en_c$([ $c = list ] && echo 1 || echo 2)_$$.log")
    if [ "$n" -ge 1 ]; then
        pass "engine nodes: the $c consumer set node 1 aside (logged once per failure streak: $n)"
    else
        fail "engine nodes: the $c consumer set node 1 aside" "no log line"
    fi
done
for b in "en_c1_$$" "en_c2_$$"; do
    kill -0 "$(bg_pid "$b")" 2>/dev/null || fail "engine nodes: $b still runs" "it exited"
done

# node 1 comes back on its data and rejoins
node_start 1
if wait_until 180 nodes_in 3 3 && wait_until 120 green 3; then
    pass "engine nodes: node 1 rejoins, the cluster is green again"
else
    fail "engine nodes: node 1 rejoins" "$(health 3)"
fi
back() { ! healthz "$1" | grep -q "set aside"; }
if wait_until 60 back "$mport1" && wait_until 30 back "$mport2"; then
    pass "engine nodes: idle consumers find the node back (/healthz: $(healthz "$mport1" | tr '\n' ' '))"
else
    fail "engine nodes: idle consumers find the node back" "$(healthz "$mport1") / $(healthz "$mport2")"
fi

verify_clean() { ELASTICSEARCH_URL=$all pgsync-verify --config "$schema" --max-diffs 10 >"$dir/verify.out" 2>&1; }
if wait_until 90 verify_clean; then
    pass "engine nodes: the index converges exactly (pgsync-verify clean, under routing)"
else
    fail "engine nodes: the index converges exactly" "$(tail -5 "$dir/verify.out")"
fi
copies() { # ID...: every copy of the _ids, as "_id:_routing", whatever shard holds it
    es POST "/$index/_refresh" >/dev/null
    es POST "/$index/_search" "$(jq -nc --args '{size: 1000, _source: false,
        query: {ids: {values: $ARGS.positional}}}' "$@")" |
        jq -r '.hits.hits[] | "\(._id):\(._routing)"' | LC_ALL=C sort
}
rows=$(psql_q "SELECT count(*) FROM item")
check_eq "engine nodes: as many documents on all shards as rows" "$rows" \
    "$(es POST "/$index/_refresh" >/dev/null; es GET "/$index/_count" | jq -r .count)"
gone=$(psql_q "SELECT string_agg(g::text, ' ') FROM generate_series(1, 2000) g
               WHERE g NOT IN (SELECT id FROM item)")
# shellcheck disable=SC2086
check_eq "engine nodes: deleted documents (re-routed first) are gone from every shard" "" \
    "$(copies 12 $gone)"
want=$(psql_q "SELECT id || ':' || grp FROM item WHERE id IN (6, 61, 62, 123, 1500) ORDER BY 1")
check_eq "engine nodes: re-routed documents have one copy, under their new value" \
    "$(LC_ALL=C sort <<<"$want")" "$(copies 6 61 62 123 1500)"
check_eq "engine nodes: nothing dead-lettered" "0" "$(redis_q XLEN "pgsync:{$index}:dlq" 2>/dev/null || echo 0)"

if [ "${PGS_RED_INDEX:-1}" = 1 ]; then # (the block is not indented: it holds heredocs)
# --- a red index: the only copy of a shard is lost -------------------------------------------
# Beside the routed index, one without routing, with a consumer of its own: its writes meet the
# missing shard in the bulk itself (the routed index's stop earlier, at the search for every copy
# of a document). One producer serves every index of a database: it restarts with a file that
# has both, and the plain index loads beside it.
pindex=$(unique_name engplain)
pschema=$dir/$pindex.json
cat >"$pschema" <<EOF
[{"database": "$PGDATABASE", "index": "$pindex",
  "setting": {"number_of_shards": 3, "number_of_replicas": 0},
  "nodes": {"table": "tag", "columns": ["id", "item_id", "name"]}}]
EOF
jq -s add "$schema" "$pschema" >"$dir/both.json"
stop_bg "en_p_$$" >/dev/null 2>&1
start_bg "en_pp_$$" pgsync-producer --config "$dir/both.json"
ELASTICSEARCH_URL=$all pgsync --config "$pschema" --quiet >>"$log" 2>&1 ||
    fail "red index: the plain index loads" "$(tail -5 "$log")"
pphys=$(es_physical "$pindex")
mport3=$(free_port)
ELASTICSEARCH_URL=$all start_bg "en_c3_$$" pgsync-consumer --config "$pschema" --name plain \
    --batch-size 50 --metrics-port "$mport3"
# No replicas, and no shard on node 3 (the test's own): the one copy of a shard dies with its node.
node_of() { # N: the node id of engine node N
    es GET /_nodes/http | jq -r --arg a "127.0.0.1:${http[$1]}" \
        '.nodes | to_entries[] | select(.value.http.publish_address == $a) | .key'
}
node3=$(node_of 3)
es PUT "/$phys,$pphys/_settings" "{\"index\": {\"number_of_replicas\": 0,
    \"routing.allocation.exclude._id\": \"$node3\"}}" >/dev/null
settled() {
    [ "$(health 3 "wait_for_status=green&wait_for_no_relocating_shards=true&timeout=5s" |
        jq -r .status)" = green ] && ! es GET "/_cat/shards/$phys,$pphys?h=id" | grep -q "$node3"
}
wait_until 90 settled || fail "red index: shards moved off node 3" "$(es GET "/_cat/shards/$phys,$pphys")"
primaries_on() { # INDEX ID: how many primaries of INDEX node ID holds
    es GET "/_cat/shards/$1?format=json&h=prirep,id" |
        jq --arg id "$2" '[.[] | select(.prirep == "p" and .id == $id)] | length'
}
victim=
for n in 1 2; do
    id=$(node_of "$n")
    if [ "$(primaries_on "$phys" "$id")" -gt 0 ] && [ "$(primaries_on "$pphys" "$id")" -gt 0 ]; then
        victim=$n
        break
    fi
done
red() { [ "$(health 3 | jq -r .status)" = red ]; }
# PORT PATTERN: that consumer's /healthz is 503 and says PATTERN ("why" keeps the words)
says() {
    [ "$(healthz_code "$1")" = 503 ] && why=$(healthz "$1" | grep -m1 -oiE ".{0,60}($2).{0,40}")
}
routed_stalled() { says "$mport1" "missing shards|shards did not answer" ||
    says "$mport2" "missing shards|shards did not answer"; }
if [ -n "$victim" ]; then
    kill9_bg "engine_n${victim}_$$"
    wait_until 60 red || fail "red index: the index turns red" "$(health 3)"
    # deletes, routing changes (whose old copies must be found on every shard), new rows and
    # renamed tags
    round 50
    round 51
    psql_q "UPDATE tag SET name = name || ' (red)' WHERE id % 10 = 0" >/dev/null
    if wait_until 60 routed_stalled; then
        pass "red index: routed: /healthz turns 503 and says why (...$why...)"
    else
        fail "red index: routed: /healthz turns 503 and says why" "$(healthz "$mport1") / $(healthz "$mport2")"
    fi
    if wait_until 60 says "$mport3" "unavailable_shards_exception"; then
        pass "red index: plain: bulk items answered 503 after PGSYNC_BULK_SHARD_TIMEOUT; /healthz says so (...$why...)"
    else
        fail "red index: plain: /healthz turns 503 and says why" "$(healthz "$mport3")"
    fi
    sleep 5 # several retries of both
    for ix in "$index" "$pindex"; do
        check_eq "red index: $ix: nothing dead-lettered while it is red" "0" \
            "$(redis_q XLEN "pgsync:{$ix}:dlq" 2>/dev/null || echo 0)"
    done
    for b in "en_c1_$$" "en_c2_$$" "en_c3_$$"; do
        kill -0 "$(bg_pid "$b")" 2>/dev/null || fail "red index: $b still runs" "it exited"
    done
    node_start "$victim"
    if wait_until 180 nodes_in 3 3 && wait_until 120 green 3; then
        pass "red index: node $victim comes back on its data, the indices are green"
    else
        fail "red index: node $victim comes back" "$(health 3)"
    fi
    healthy() {
        local p
        for p in "$mport1" "$mport2" "$mport3"; do
            [ "$(healthz_code "$p")" = 200 ] && ! healthz "$p" | grep -q "set aside" || return 1
        done
    }
    wait_until 90 healthy ||
        fail "red index: the consumers are healthy again" "$(healthz "$mport1") / $(healthz "$mport2") / $(healthz "$mport3")"
    if wait_until 90 verify_clean; then
        pass "red index: routed: converges exactly once the shard is back (pgsync-verify clean)"
    else
        fail "red index: routed: converges exactly" "$(tail -5 "$dir/verify.out")"
    fi
    pverify() { ELASTICSEARCH_URL=$all pgsync-verify --config "$pschema" --max-diffs 10 >"$dir/pverify.out" 2>&1; }
    if wait_until 90 pverify; then
        pass "red index: plain: converges exactly once the shard is back (pgsync-verify clean)"
    else
        fail "red index: plain: converges exactly" "$(tail -5 "$dir/pverify.out")"
    fi
    want=$(psql_q "SELECT id || ':' || grp FROM item WHERE id % 61 IN (50, 51) AND id <= 1000 ORDER BY 1")
    gone=$(psql_q "SELECT string_agg(g::text, ' ') FROM generate_series(1, 2000) g
                   WHERE g NOT IN (SELECT id FROM item) AND g % 97 IN (50, 51)")
    # shellcheck disable=SC2086
    check_eq "red index: re-routed documents have one copy, under their new value; deleted ones none" \
        "$(LC_ALL=C sort <<<"$want")" "$(copies $(psql_q "SELECT string_agg(id::text, ' ')
            FROM item WHERE id % 61 IN (50, 51) AND id <= 1000") $gone)"
    for ix in "$index" "$pindex"; do
        check_eq "red index: $ix: nothing dead-lettered" "0" \
            "$(redis_q XLEN "pgsync:{$ix}:dlq" 2>/dev/null || echo 0)"
    done
else
    fail "red index: node 1 or 2 holds a primary of both indices" "$(es GET "/_cat/shards/$phys,$pphys")"
fi
for b in "en_pp_$$" "en_c3_$$"; do stop_bg "$b" >/dev/null 2>&1; done
ELASTICSEARCH_URL=$all pgsync-bootstrap --config "$dir/both.json" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed (both indices)"
else
    echo "INFO: red index phase not run (PGS_RED_INDEX=0)"
fi

for b in "en_p_$$" "en_c1_$$" "en_c2_$$"; do stop_bg "$b" >/dev/null 2>&1; done
ELASTICSEARCH_URL=$all pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
# a JVM stopped by SIGTERM exits 143: not the file's status
for n in 1 2 3; do stop_bg "engine_n${n}_$$" 20 >/dev/null 2>&1 || true; done
