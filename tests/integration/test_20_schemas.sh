#!/usr/bin/env bash
# The catalogue of example schemas (issue: The document engine), end to end.
# For each NAME in CATALOGUE:
#   schemas/NAME.json                         the schema, as a PGSync user writes it
#   tests/fixtures/schemas/NAME.sql           tables and rows
#   tests/fixtures/schemas/NAME.expected.json the exact documents after the load
#   tests/fixtures/schemas/NAME.oracle.sql    a hand-written query giving every
#                                             document (_id, doc) from the tables
#   tests/fixtures/schemas/NAME.steps         changes, one a line: "IDS<TAB>SQL",
#                                             IDS the _ids (space separated, "-"
#                                             for none) the change must re-index
#                                             or delete, and no others
# A one-shot load must give exactly the expected documents; then, with a
# producer and a consumer running, after each step the index must equal the
# oracle, and exactly the documents named must have a new version.
# PGS_SCHEMAS="library tree" runs only those.
. "$(dirname "$0")/lib.sh"

CATALOGUE=${PGS_SCHEMAS:-"library composite views jsonpath multischema transform tree types"}
FIX=$PGS_ROOT/tests/fixtures/schemas

# canonical JSON: keys sorted at every level (jq 1.6 has no sort for tojson)
CANON='def canon: walk(if type == "object" then to_entries | sort_by(.key) | from_entries else . end);'

# index_state INDEX: "_id<TAB>version<TAB>source" per document, sorted; source canonical
index_state() {
    local body
    es POST "/$1/_refresh" >/dev/null 2>&1 || return 1
    body=$(es POST "/$1/_search" \
        '{"size": 10000, "version": true, "query": {"match_all": {}}}' 2>/dev/null) || return 1
    jq -r "$CANON"' .hits.hits[] | "\(._id)\t\(._version)\t\(._source | canon | tojson)"' \
        <<<"$body" | LC_ALL=C sort
}

# docs_of STATE: "_id<TAB>source" lines (the version dropped)
docs_of() {
    cut -f1,3 <<<"$1"
}

# oracle NAME: "_id<TAB>doc" per row of the oracle query, canonical, sorted
oracle() {
    psql -XAtq -F $'\t' -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" \
        -d "$PGDATABASE" -f "$FIX/$1.oracle.sql" |
        jq -rR "$CANON"' split("\t") | "\(.[0])\t\(.[1] | fromjson | canon | tojson)"' |
        LC_ALL=C sort
}

# changed_ids BEFORE AFTER: ids whose version changed, that appeared or went
changed_ids() {
    join -t $'\t' -a1 -a2 -e NONE -o 0,1.2,2.2 <(cut -f1,2 <<<"$1") <(cut -f1,2 <<<"$2") |
        awk -F'\t' '$2 != $3 { print $1 }' | LC_ALL=C sort | xargs
}

stream_last() { # last-generated-id of the entry's stream
    redis_q XINFO STREAM "pgsync:{$1}:changes" 2>/dev/null |
        awk 'f { print; exit } $0 == "last-generated-id" { f = 1 }'
}

# drained INDEX LAST0: the stream moved past LAST0 and the group has read and
# acknowledged everything in it
drained() {
    local last delivered pending
    last=$(stream_last "$1")
    [ -n "$last" ] && [ "$last" != "$2" ] || return 1
    delivered=$(redis_q XINFO GROUPS "pgsync:{$1}:changes" |
        awk 'f { print; exit } $0 == "last-delivered-id" { f = 1 }')
    pending=$(redis_q XINFO GROUPS "pgsync:{$1}:changes" |
        awk 'f { print; exit } $0 == "pending" { f = 1 }')
    [ "$delivered" = "$last" ] && [ "$pending" = 0 ]
}

# settled INDEX NAME LAST0: drained, and the index holds the oracle's documents
settled() {
    drained "$1" "$3" || return 1
    STATE=$(index_state "$1") || return 1
    [ "$(docs_of "$STATE")" = "$(oracle "$2")" ]
}

run_schema() {
    local name=$1 index schema load_log expected state oracle_docs n=0
    local ids sql before last0 got
    new_db "$name" >/dev/null || {
        fail "$name: database" "cannot create"
        return
    }
    index=$(unique_name "$name")
    if ! psql_q <"$FIX/$name.sql" >/dev/null; then
        fail "$name: fixture loads" "$FIX/$name.sql failed"
        return
    fi
    schema=$PGS_STACK_DIR/$index.json
    jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
        "$PGS_ROOT/schemas/$name.json" >"$schema"

    # 1. the one-shot load gives exactly the expected documents
    load_log=$PGS_STACK_DIR/logs/$index-load.log
    if ! pgsync --config "$schema" --quiet >"$load_log" 2>&1; then
        fail "$name: pgsync one-shot load" "$(tail -5 "$load_log")"
        return
    fi
    expected=$(jq -r "$CANON"' .[] | "\(._id)\t\(._source | canon | tojson)"' \
        "$FIX/$name.expected.json" | LC_ALL=C sort)
    state=$(index_state "$index")
    check_eq "$name: the load gives exactly the expected documents" "$expected" \
        "$(docs_of "$state")"
    oracle_docs=$(oracle "$name")
    check_eq "$name: the oracle query agrees with the expected documents" "$expected" \
        "$oracle_docs"
    [ "$(type -t "extra_$name")" = function ] && "extra_$name" "$index" "$schema"

    # 2. every step re-indexes exactly the documents it touches
    start_bg "producer-$name" pgsync-producer --config "$schema"
    start_bg "consumer-$name" pgsync-consumer --config "$schema"
    while IFS=$'\t' read -r ids sql; do
        [ -z "$ids" ] || [[ $ids == \#* ]] && continue
        n=$((n + 1))
        [ "$ids" = - ] && ids=
        before=$(index_state "$index")
        last0=$(stream_last "$index")
        if ! psql_q "$sql" >/dev/null; then
            fail "$name: step $n runs" "$sql"
            continue
        fi
        STATE=
        if ! wait_until 30 settled "$index" "$name" "$last0"; then
            fail "$name: step $n ($sql) reaches the oracle's documents" \
                "$(diff <(docs_of "$(index_state "$index")") <(oracle "$name") | head -10)"
            continue
        fi
        got=$(changed_ids "$before" "$STATE")
        check_eq "$name: step $n ($sql) re-indexes exactly: ${ids:-nothing}" "$ids" "$got"
    done <"$FIX/$name.steps"
    stop_bg "producer-$name" || fail "$name: producer stops cleanly"
    stop_bg "consumer-$name" || fail "$name: consumer stops cleanly"
    pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
        fail "$name: teardown" "pgsync-bootstrap --teardown failed"
}

# transform.mapping reaches the index's mappings, at the node's place
extra_transform() {
    local m
    m=$(es GET "/$1/_mapping" | jq -c '.[].mappings.properties')
    check_eq "transform: mapping of a root field" '"keyword"' "$(jq -c '.code.type' <<<"$m")"
    check_eq "transform: mapping of a child field" '"long"' \
        "$(jq -c '.items.properties.qty.type' <<<"$m")"
}

# the plan of every generated query, and the foreign keys with no index
# (pgsync --analyze exits 3 when it warns: the library leaves some unindexed)
extra_library() {
    local out rc
    out=$(pgsync --config "$2" --analyze 2>&1)
    rc=$?
    if [ "$rc" = 3 ] && grep -q 'reverse of node "continent"' <<<"$out" &&
        grep -q 'Index Scan using book_pkey' <<<"$out" &&
        grep -q 'CREATE INDEX ON "public"."book_author" ("author_id")' <<<"$out" &&
        ! grep -q '"public"."review" ("book_isbn")' <<<"$out"; then
        pass "library: --analyze prints every plan and each foreign key no index backs"
    else
        fail "library: --analyze prints every plan and each foreign key no index backs" \
            "rc=$rc $(tail -3 <<<"$out")"
    fi
}

# Each schema has its own database, index, slot and daemons: they run side
# by side, each in a subshell whose output is shown whole, in catalogue order.
outdir=$(mktemp -d "$PGS_STACK_DIR/schemas.XXXXXX")
pids=()
for name in $CATALOGUE; do
    (
        # a subshell has no EXIT trap of lib.sh's: stop this schema's daemons
        trap 'for n in "${!_PGS_BG[@]}"; do stop_bg "$n" 5 >/dev/null 2>&1; done' EXIT
        run_schema "$name"
    ) >"$outdir/$name.out" 2>&1 &
    pids+=($!)
    _PGS_BG_NAMES+=("producer-$name" "consumer-$name")
done
for pid in "${pids[@]}"; do
    wait "$pid"
done
for name in $CATALOGUE; do
    cat "$outdir/$name.out"
    _PGS_FAILS=$((_PGS_FAILS + $(grep -c '^FAIL:' "$outdir/$name.out")))
done
rm -rf "$outdir"
