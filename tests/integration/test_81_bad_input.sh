#!/usr/bin/env bash
# Bad input (issue: reliability and security). Each case checks the message,
# and that nothing was lost or written:
# 1. schema files: invalid JSON (line:col), wrong types, unknown keys, absurd
#    depth, empty nodes and entries, a self-reference without a foreign key,
#    tables, columns and databases that do not exist: every binary exits
#    non-zero naming the problem, and no slot, publication, index or Redis key
#    is created;
# 2. rows: NULLs everywhere, non-ASCII text and emoji, 1 MB values, NaN and
#    Infinity, numerics JSON cannot hold exactly (1e400, 30 digits and 9
#    decimals, 1e-400), dates out of the engine's range (a `date` mapping),
#    nesting deeper than the engine takes, through the load and through the
#    stream: each is indexed exactly or dead-lettered with its reason, and the
#    stream drains; one book with 100,000 authors;
# 3. connections: a role or a database that does not exist, closed ports,
#    a host name that does not resolve: one-shot tools exit non-zero with the
#    reason; daemons retry what can come back (Redis, the engine);
# 4. a "search engine" answering HTML (a fake responder, socat): nothing is
#    acknowledged, nothing dead-lettered, and all of it lands once the real
#    engine is back; a one-shot load must fail rather than spin;
# 5. Redis out of memory (maxmemory 1mb, noeviction): the producer retries
#    and loses nothing once memory is back.
. "$(dirname "$0")/lib.sh"
[ -z "${PGS_BIN:-}" ] || PATH=$PGS_BIN:$PATH

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=2000
work=$PGS_STACK_DIR/bad_input.$$
mkdir -p "$work"
log=$PGS_STACK_DIR/logs/bad_input.log

# run_tool SECONDS BIN ARGS...: runs a binary with a time limit; output in $out, status in $rc
run_tool() {
    local secs=$1
    shift
    out=$(timeout -k 5 "$secs" "$@" 2>&1 </dev/null)
    rc=$?
    { echo "--- $* (exit $rc)"; echo "$out"; } >>"$log"
}
# has NAME TEXT: $out contains TEXT (an extended regex)
has() {
    if grep -qE -- "$2" <<<"$out"; then pass "$1"; else fail "$1" "no /$2/ in: $(tail -c 400 <<<"$out")"; fi
}
slots_of() { psql_q "SELECT count(*) FROM pg_replication_slots WHERE database = '$1'"; }
pubs_of() { psql -XAtq -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$1" -c "SELECT count(*) FROM pg_publication"; }
index_exists() { curl -s -o /dev/null -w '%{http_code}' -I "$ELASTICSEARCH_URL/$1" | grep -q 200; }
redis_keys() { redis_q --scan --pattern "pgsync:{$1}:*" | wc -l; }
# drained STREAM: every entry delivered and acknowledged
drained() {
    [ "$(redis_q XPENDING "$1" pgsync | head -1)" = 0 ] &&
        [ "$(redis_q XINFO GROUPS "$1" | awk 'f { print; exit } /last-delivered-id/ { f = 1 }')" = \
            "$(redis_q XINFO STREAM "$1" | awk 'f { print; exit } /last-generated-id/ { f = 1 }')" ]
}
caught_up() { # DB SLOT
    [ "$(psql -XAtq -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$1" -c \
        "SELECT confirmed_flush_lsn >= pg_current_wal_lsn() FROM pg_replication_slots WHERE slot_name = '$2'")" = t ]
}
# dlq_of INDEX: "id<TAB>error<TAB>reason" per dead letter
dlq_of() {
    redis_q --raw XRANGE "pgsync:{$1}:dlq" - + | awk '
        /^[0-9]+-[0-9]+$/ { k = ""; next }
        k == "" { k = $0; next }
        { v[k] = $0; if (k == "reason") print v["id"] "\t" v["error"] "\t" v["reason"]; k = "" }'
}

# --- 1. schema files --------------------------------------------------------------------

new_db badschema >/dev/null
sdb=$PGDATABASE
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
S=$work/schemas
mkdir -p "$S"
# case NAME EXPECTED-REGEX JSON (with @DB@ and @IX@ for the database and index)
cases=()
add_case() {
    local ix
    ix=$(unique_name "bad_$1")
    sed -e "s/@DB@/$sdb/g" -e "s/@IX@/$ix/g" >"$S/$1.json" <<<"$3"
    cases+=("$1|$ix|$2")
}
add_case syntax '^[^ ]*syntax\.json:2:[0-9]+: invalid JSON' \
    '[{"database": "@DB@", "index": "@IX@",
  "nodes": {"table": "book",,}}]'
add_case types 'types\.json:1:[0-9]+: .*"columns" of node "book" must be an array of strings, not a string' \
    '[{"database": "@DB@", "index": "@IX@", "nodes": {"table": "book", "columns": "title", "children": {}}}]'
add_case unknown 'unknown\.json:1:[0-9]+: .*unknown key "childern" in node "book" \(did you mean "children"\?\)' \
    '[{"database": "@DB@", "index": "@IX@", "nodes": {"table": "book", "childern": []}}]'
add_case emptynode '"nodes" is empty' '[{"database": "@DB@", "index": "@IX@", "nodes": {}}]'
add_case noentries 'no entries' '[]'
add_case notable 'table "public\.nosuch" does not exist in database' \
    '[{"database": "@DB@", "index": "@IX@", "nodes": {"table": "nosuch"}}]'
add_case nocolumn 'column "nosuch" does not exist in table "public\.book"' \
    '[{"database": "@DB@", "index": "@IX@", "nodes": {"table": "book", "columns": ["isbn", "nosuch"]}}]'
add_case selfref 'no foreign key between "public\.book" and "public\.book"' \
    '[{"database": "@DB@", "index": "@IX@", "nodes": {"table": "book", "children": [{"table": "book", "label": "again", "relationship": {"variant": "object", "type": "one_to_one"}}]}}]'
add_case nodb 'database "nosuchdb_[0-9]+" does not exist' \
    "[{\"database\": \"nosuchdb_$$\", \"index\": \"@IX@\", \"nodes\": {\"table\": \"book\"}}]"
# 40 levels of book > author > book ... through book_author (the cap is 32)
node='{"table": "author", "relationship": {"variant": "scalar", "type": "one_to_many", "through_tables": ["book_author"]}}'
for ((i = 1; i < 40; i++)); do
    t=author
    ((i % 2)) && t=book
    node="{\"table\": \"$t\", \"label\": \"l$i\", \"relationship\": {\"variant\": \"object\", \"type\": \"one_to_many\", \"through_tables\": [\"book_author\"]}, \"children\": [$node]}"
done
add_case deep 'nested deeper than [0-9]+ levels' \
    "[{\"database\": \"@DB@\", \"index\": \"@IX@\", \"nodes\": {\"table\": \"book\", \"children\": [$node]}}]"
# 100,000 nested arrays: beyond any JSON parser's depth limit
add_case nesting 'nesting\.json:1:[0-9]+: invalid JSON: .*depth' "$(printf '%*s' 100000 '' | tr ' ' '[')"

for c in "${cases[@]}"; do
    IFS='|' read -r name ix want <<<"$c"
    for bin in pgsync-bootstrap pgsync pgsync-producer pgsync-consumer pgsync-verify; do
        run_tool 30 "$bin" --config "$S/$name.json"
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -lt 128 ]; then
            pass "schema $name: $bin exits non-zero ($rc)"
        else
            fail "schema $name: $bin exits non-zero" "exit status $rc"
        fi
        [ "$bin" = pgsync-bootstrap ] && has "schema $name: $bin names the problem" "$want"
    done
    check_eq "schema $name: nothing created (slots, publications, index, Redis keys)" "0 0 no 0" \
        "$(slots_of "$sdb") $(pubs_of "$sdb") $(index_exists "$ix" && echo yes || echo no) $(redis_keys "$ix")"
done

# --- 2. rows ----------------------------------------------------------------------------

new_db badrows >/dev/null
rdb=$PGDATABASE
rix=$(unique_name badrows)
rschema=$work/rows.json
psql_q >/dev/null <<'EOF'
CREATE TABLE oddity (id text PRIMARY KEY, t text, n numeric, f float8, d date, ts timestamptz, j jsonb);
-- ins(prefix): one row per case; the same rows go through the load (L-) and the stream (S-)
CREATE FUNCTION ins(p text) RETURNS void LANGUAGE sql AS $$
INSERT INTO oddity VALUES
    (p || 'normal', 'plain', 1.5, 2.5, '2024-02-29', '2024-02-29 12:00:00+00', '{"a": 1}'),
    (p || 'nulls', NULL, NULL, NULL, NULL, NULL, NULL),
    (p || 'unicode', E'Zoë — 日本語 😀🇫🇷 "quoted" \\ back\tslash\nnew line \u0001 ctrl', NULL, NULL, NULL, NULL,
        '{"ключ": "значение", "emoji": "🦀"}'),
    (p || 'onemb', repeat('x', 1048576), NULL, NULL, NULL, NULL, NULL),
    (p || 'onemb_utf8', repeat('é', 524288), NULL, NULL, NULL, NULL, NULL),
    (p || 'nan', NULL, 'NaN', 'NaN', NULL, NULL, NULL),
    (p || 'inf', NULL, 'Infinity', '-Infinity', NULL, NULL, NULL),
    (p || 'huge', NULL, 1e400, 1e308, NULL, NULL, NULL),
    (p || 'precise', NULL, 123456789012345678901234567890.123456789, NULL, NULL, NULL, NULL),
    (p || 'tiny', NULL, 1e-400, 5e-324, NULL, NULL, NULL),
    (p || 'year10000', NULL, NULL, NULL, '10000-01-01', '10000-01-01 00:00:00+00', NULL),
    (p || 'yearmax', NULL, NULL, NULL, '5874897-12-31', '294276-12-31 23:59:59+00', NULL),
    (p || 'infinity', NULL, NULL, NULL, 'infinity', '-infinity', NULL),
    (p || 'bc', NULL, NULL, NULL, '0044-03-15 BC', '0044-03-15 12:00:00+00 BC', NULL),
    (p || 'deepjson', NULL, NULL, NULL, NULL, NULL,
        (SELECT (repeat('{"deep": ', 30) || '1' || repeat('}', 30))::jsonb));
$$;
SELECT ins('L-');
EOF
cat >"$rschema" <<EOF
[{"database": "$rdb", "index": "$rix",
  "mapping": {"properties": {"t": {"type": "text"}, "n": {"type": "double"}, "f": {"type": "double"},
                             "d": {"type": "date"}, "ts": {"type": "date"}}},
  "nodes": {"table": "oddity", "columns": ["id", "t", "n", "f", "d", "ts", "j"]}}]
EOF
run_tool 180 pgsync --config "$rschema"
check_eq "rows: the load finishes" 0 "$rc"
start_bg badrows_producer pgsync-producer --config "$rschema"
start_bg badrows_consumer pgsync-consumer --config "$rschema"
psql_q "SELECT ins('S-')" >/dev/null
rstream="pgsync:{$rix}:changes"
if wait_until 60 caught_up "$rdb" "pgsync_${rdb}" && wait_until 120 drained "$rstream"; then
    pass "rows: the stream drains"
else
    fail "rows: the stream drains" "pending $(redis_q XPENDING "$rstream" pgsync | head -1)"
fi
if kill -0 "$(bg_pid badrows_consumer)" 2>/dev/null && kill -0 "$(bg_pid badrows_producer)" 2>/dev/null; then
    pass "rows: producer and consumer survive the odd rows"
else
    fail "rows: producer and consumer survive the odd rows" "one exited: see logs"
fi
dead=$(dlq_of "$rix")
echo "$dead" >"$work/rows.dlq"
# each row: indexed exactly as PostgreSQL renders it, or dead-lettered with a reason
for id in $(psql_q "SELECT id FROM oddity ORDER BY id"); do
    want=$(psql_q "SELECT row_to_json(o) FROM oddity o WHERE id = '$id'" | jq -cS .)
    got=$(es_doc "$rix" "$id" | jq -cS .)
    line=$(awk -F'\t' -v id="$id" '$1 == id' <<<"$dead" | head -1)
    if [ -n "$got" ] && [ "$got" = "$want" ]; then
        pass "rows: $id indexed exactly"
    elif [ -n "$got" ]; then
        fail "rows: $id indexed exactly" "index: ${got:0:200} database: ${want:0:200}"
    elif [ -n "$line" ] && [ -n "$(cut -f2 <<<"$line")" ] && [ -n "$(cut -f3 <<<"$line")" ]; then
        pass "rows: $id dead-lettered with its reason ($(cut -f2 <<<"$line"): $(cut -f3 <<<"$line" | cut -c1-80))"
    else
        fail "rows: $id is indexed or dead-lettered" "neither in the index nor in pgsync:{$rix}:dlq"
    fi
done
for p in L- S-; do
    check_eq "rows: ${p}normal is indexed" yes "$(es_doc "$rix" "${p}normal" >/dev/null && echo yes || echo no)"
    # numbers go through as PostgreSQL wrote them: the engine keeps the source's digits
    if es_doc "$rix" "${p}precise" >/dev/null; then
        if curl -s "$ELASTICSEARCH_URL/$rix/_source/${p}precise" | grep -qF '123456789012345678901234567890.123456789'; then
            pass "rows: ${p}precise keeps every digit in _source"
        else
            fail "rows: ${p}precise keeps every digit in _source" \
                "$(curl -s "$ELASTICSEARCH_URL/$rix/_source/${p}precise")"
        fi
    fi
done
# pgsync-verify copes with every value: what it misses is exactly what was dead-lettered
run_tool 120 pgsync-verify --config "$rschema" --json
check_eq "rows: pgsync-verify: missing = the dead-lettered documents, nothing extra or different" \
    "$(cut -f1 <<<"$dead" | grep -c .) 0 0" \
    "$(jq -r '.entries[0] | "\(.missing) \(.extra) \(.different)"' <<<"$out" 2>/dev/null || echo "exit $rc: ${out:0:300}")"
stop_bg badrows_consumer
stop_bg badrows_producer

# one book with 100,000 authors: indexed whole by the load, then half of the
# links deleted in one transaction (50,000 stream records for one document)
new_db many >/dev/null
mdb=$PGDATABASE
mix=$(unique_name many)
mschema=$work/many.json
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
psql_q >/dev/null <<'EOF'
INSERT INTO book VALUES ('many', 'A book with 100,000 authors', NULL);
INSERT INTO author SELECT 1000 + i, 'author ' || i FROM generate_series(1, 100000) i;
INSERT INTO book_author (book_isbn, author_id) SELECT 'many', 1000 + i FROM generate_series(1, 100000) i;
EOF
jq --arg db "$mdb" --arg ix "$mix" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$mschema"
t0=$SECONDS
run_tool 180 pgsync --config "$mschema"
check_eq "100,000 children: the load indexes the whole document ($((SECONDS - t0)) s)" 100000 \
    "$(es_doc "$mix" many | jq '.authors | length')"
start_bg many_producer pgsync-producer --config "$mschema"
start_bg many_consumer pgsync-consumer --config "$mschema"
t0=$SECONDS
psql_q "DELETE FROM book_author WHERE book_isbn = 'many' AND author_id % 2 = 0"
mstream="pgsync:{$mix}:changes"
if wait_until 60 caught_up "$mdb" "pgsync_${mdb}" && wait_until 180 drained "$mstream"; then
    pass "100,000 children: 50,000 link deletes drain ($((SECONDS - t0)) s)"
else
    fail "100,000 children: 50,000 link deletes drain" "pending $(redis_q XPENDING "$mstream" pgsync | head -1)"
fi
check_eq "100,000 children: the document has the 50,000 authors left" 50000 \
    "$(es_doc "$mix" many | jq '.authors | length')"
stop_bg many_consumer
stop_bg many_producer

# --- 3. connections -----------------------------------------------------------------------

new_db badconn >/dev/null
cdb=$PGDATABASE
cix=$(unique_name badconn)
cschema=$work/conn.json
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
jq --arg db "$cdb" --arg ix "$cix" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$cschema"
# conn_case NAME EXPECTED-REGEX ENV...: every PostgreSQL-facing binary exits non-zero, naming it
conn_case() {
    local name=$1 want=$2 bin
    shift 2
    for bin in pgsync-bootstrap pgsync pgsync-producer pgsync-consumer pgsync-verify; do
        run_tool 60 env "$@" "$bin" --config "$cschema"
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -lt 128 ]; then
            pass "$name: $bin exits non-zero ($rc)"
        else
            fail "$name: $bin exits non-zero" "exit status $rc"
        fi
        has "$name: $bin says why" "$want"
    done
}
conn_case "unknown role" 'role "nosuch_role" does not exist' PG_USER=nosuch_role
conn_case "PostgreSQL port closed" 'Connection refused' PG_PORT=1
conn_case "PostgreSQL host does not resolve" 'could not translate host name "nosuch\.invalid"' PG_HOST=nosuch.invalid
conn_case "PostgreSQL URL with a bad password and unknown role" 'role "nobody_here" does not exist' \
    "PG_URL=postgresql://nobody_here:wrong@$PG_HOST:$PG_PORT/postgres"
check_eq "connection failures: nothing created" "0 0 no 0" \
    "$(slots_of "$cdb") $(pubs_of "$cdb") $(index_exists "$cix" && echo yes || echo no) $(redis_keys "$cix")"
run_tool 30 pgsync-bootstrap --config "$cschema" --log-level error
check_eq "bootstrap with good settings (for the Redis and engine cases)" 0 "$rc"

# Redis or the engine unreachable: a one-shot load exits non-zero naming the
# server; the daemons keep retrying (they may come back)
run_tool 60 env REDIS_URL=redis://127.0.0.1:1/0 pgsync --config "$cschema"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && pass "Redis port closed: pgsync exits non-zero ($rc)" ||
    fail "Redis port closed: pgsync exits non-zero" "exit status $rc"
has "Redis port closed: pgsync says why" 'cannot connect to Redis at 127\.0\.0\.1:1'
run_tool 60 env REDIS_URL=redis://nosuch.invalid:6379/0 pgsync --config "$cschema"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && pass "Redis host does not resolve: pgsync exits non-zero ($rc)" ||
    fail "Redis host does not resolve: pgsync exits non-zero" "exit status $rc"
has "Redis host does not resolve: pgsync says why" 'Redis host "nosuch\.invalid"'
run_tool 60 env ELASTICSEARCH_URL=http://127.0.0.1:1 pgsync --config "$cschema"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && pass "engine port closed: pgsync exits non-zero ($rc)" ||
    fail "engine port closed: pgsync exits non-zero" "exit status $rc"
has "engine port closed: pgsync says why" '127\.0\.0\.1:1.*(Couldn.t connect|Connection refused|Failed to connect)'
run_tool 60 env ELASTICSEARCH_URL=http://127.0.0.1:1 pgsync-verify --config "$cschema"
check_eq "engine port closed: pgsync-verify exits 2" 2 "$rc"
for what in "REDIS_URL=redis://127.0.0.1:1/0" "ELASTICSEARCH_URL=http://127.0.0.1:1"; do
    start_bg badconn_daemon env "$what" pgsync-consumer --config "$cschema"
    sleep 4
    if kill -0 "$(bg_pid badconn_daemon)" 2>/dev/null; then
        pass "${what%%=*} unreachable: pgsync-consumer keeps retrying"
    else
        fail "${what%%=*} unreachable: pgsync-consumer keeps retrying" "it exited"
    fi
    stop_bg badconn_daemon
done
psql_q "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$cdb'" >/dev/null

# --- 4. a search engine answering HTML -------------------------------------------------------

if ! command -v socat >/dev/null; then
    fail "engine answering HTML" "socat is not installed (apt-get install socat)"
else
    new_db html >/dev/null
    hdb=$PGDATABASE
    hix=$(unique_name html)
    hschema=$work/html.json
    psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
    jq --arg db "$hdb" --arg ix "$hix" '.[0].database = $db | .[0].index = $ix' \
        "$PGS_ROOT/schemas/book.json" >"$hschema"
    body='<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>'
    printf 'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        ${#body} "$body" >"$work/html.http"
    hport=$(( (RANDOM % 4000) + 24000 ))
    start_bg fake_engine socat "TCP-LISTEN:$hport,bind=127.0.0.1,reuseaddr,fork" \
        "SYSTEM:cat $work/html.http; sleep 0.2"
    wait_until 10 curl -s "http://127.0.0.1:$hport/" || fail "HTML: the fake responder answers" "no answer"
    fake="http://127.0.0.1:$hport"
    # the load: it must not take an HTML page for a search engine
    run_tool 30 env ELASTICSEARCH_URL="$fake" OPENSEARCH= pgsync --config "$hschema"
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
        pass "HTML: pgsync exits non-zero ($rc)"
    else
        fail "HTML: pgsync exits non-zero" "exit status $rc (124: still retrying after 30 s)"
    fi
    has "HTML: pgsync says the answer is not a search engine's" 'not a (search engine|bulk) (answer|response)'
    # the real load, then changes while the consumer talks to the fake
    run_tool 60 pgsync --config "$hschema"
    hstream="pgsync:{$hix}:changes"
    start_bg html_producer pgsync-producer --config "$hschema"
    start_bg html_consumer_$$ env ELASTICSEARCH_URL="$fake" pgsync-consumer --config "$hschema" --name fake
    psql_q "UPDATE book SET title = title || ' (html)'; INSERT INTO book VALUES ('html1', 'new', NULL)"
    wait_until 30 caught_up "$hdb" "pgsync_${hdb}"
    wait_until 20 grep -q 'not a bulk response\|not a search engine' "$PGS_STACK_DIR/logs/html_consumer_$$.log"
    sleep 3
    if kill -0 "$(bg_pid html_consumer_$$)" 2>/dev/null; then
        pass "HTML: the consumer survives the garbage"
    else
        fail "HTML: the consumer survives the garbage" "it exited"
    fi
    check_eq "HTML: nothing acknowledged while the engine talks HTML" no "$(drained "$hstream" && echo yes || echo no)"
    check_eq "HTML: nothing dead-lettered (garbage is not the document's fault)" 0 \
        "$(redis_q XLEN "pgsync:{$hix}:dlq")"
    stop_bg html_consumer_$$
    stop_bg fake_engine
    start_bg html_consumer2 pgsync-consumer --config "$hschema" --name real
    if wait_until 60 drained "$hstream"; then
        pass "HTML: the real engine back, the stream drains"
    else
        fail "HTML: the real engine back, the stream drains" "still pending"
    fi
    run_tool 60 pgsync-verify --config "$hschema"
    check_eq "HTML: nothing lost (pgsync-verify)" 0 "$rc"
    stop_bg html_consumer2
    stop_bg html_producer
fi

# --- 5. Redis out of memory ------------------------------------------------------------------

new_db oom >/dev/null
odb=$PGDATABASE
oix=$(unique_name oom)
oschema=$work/oom.json
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
jq --arg db "$odb" --arg ix "$oix" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$oschema"
run_tool 60 pgsync --config "$oschema"
ostream="pgsync:{$oix}:changes"
start_bg oom_producer_$$ pgsync-producer --config "$oschema"
start_bg oom_consumer pgsync-consumer --config "$oschema"
sleep 1
old_max=$(redis_q CONFIG GET maxmemory | sed -n 2p)
old_policy=$(redis_q CONFIG GET maxmemory-policy | sed -n 2p)
redis_q CONFIG SET maxmemory-policy noeviction >/dev/null
redis_q CONFIG SET maxmemory 1mb >/dev/null
psql_q "UPDATE book SET title = title || ' (oom)'"
oom_seen() { grep -q 'OOM' "$PGS_STACK_DIR/logs/oom_producer_$$.log"; }
wait_until 20 oom_seen
sleep 5 # several retries while Redis refuses
redis_q CONFIG SET maxmemory "${old_max:-0}" >/dev/null
redis_q CONFIG SET maxmemory-policy "${old_policy:-noeviction}" >/dev/null
if oom_seen; then
    pass "OOM: the producer reports Redis's refusal"
else
    fail "OOM: the producer reports Redis's refusal" "no OOM in its log"
fi
if kill -0 "$(bg_pid oom_producer_$$)" 2>/dev/null; then
    pass "OOM: the producer keeps retrying"
else
    fail "OOM: the producer keeps retrying" "it exited"
fi
wait_until 60 caught_up "$odb" "pgsync_${odb}"
wait_until 60 drained "$ostream"
oom_titles() { [ "$(es_doc "$oix" 9781471331435 | jq -r .title)" = "1984 (oom)" ]; }
if wait_until 30 oom_titles; then
    pass "OOM: memory back, the change refused meanwhile is indexed"
else
    fail "OOM: memory back, the change refused meanwhile is indexed" \
        "title $(es_doc "$oix" 9781471331435 | jq -c .title), stream length $(redis_q XLEN "$ostream")"
fi
run_tool 60 pgsync-verify --config "$oschema"
check_eq "OOM: nothing lost (pgsync-verify)" 0 "$rc"
stop_bg oom_consumer
stop_bg oom_producer_$$
rm -rf "$work"
