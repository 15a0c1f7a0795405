#!/usr/bin/env bash
# PGSync's command line and settings (issue: switching from PGSync): its
# flags on pgsync and pgsync-bootstrap (-c, -d, -t, -v, -a, -n, -p, -u,
# --host, --port, --user, --password, --sslmode, --sslrootcert) and its
# environment (SCHEMA, ELASTICSEARCH_CHUNK_SIZE, QUERY_CHUNK_SIZE) mean what
# they mean in PGSync; what cannot apply says so and names what to use.
# A schema's plugins are refused unless --ignore-plugins; null keys are absent.
. "$(dirname "$0")/lib.sh"

new_db flags >/dev/null
index=$(unique_name flags)
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
schema=$PGS_STACK_DIR/$index.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
log=$PGS_STACK_DIR/logs/$index.log
slots() { psql_q "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"; }

# refused with the alternative named: "what" must appear, exit 2
refused() { # NAME WHAT CMD...
    local name=$1 what=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    echo "--- $* (exit $rc): $out" >>"$log"
    if [ "$rc" -eq 2 ] && grep -qF -- "$what" <<<"$out"; then
        pass "flags: $name is refused, saying what to use ($what)"
    else
        fail "flags: $name is refused, saying what to use" "exit $rc: $out"
    fi
}
refused "pgsync --producer" "pgsync-producer --config" pgsync -c "$schema" --producer
refused "pgsync --consumer" "pgsync-consumer --config" pgsync -c "$schema" --consumer
refused "pgsync --polling" "--mode notify" pgsync -c "$schema" --polling
refused "pgsync --schema_url" "--config (or SCHEMA)" pgsync --schema_url http://x/s.json
refused "pgsync-bootstrap -nc" "--no-create (-nc) does not apply" pgsync-bootstrap -c "$schema" -nc

# SCHEMA stands for --config; -t tears down, as PGSync's bootstrap
if SCHEMA=$schema pgsync-bootstrap >>"$log" 2>&1 && [ "$(slots)" = 1 ]; then
    pass "flags: SCHEMA names the schema file (bootstrap made the slot)"
else
    fail "flags: SCHEMA names the schema file" "$(tail -3 "$log")"
fi
if SCHEMA=$schema pgsync-bootstrap -t >>"$log" 2>&1 && [ "$(slots)" = 0 ]; then
    pass "flags: pgsync-bootstrap -t tears down"
else
    fail "flags: pgsync-bootstrap -t tears down" "$(tail -3 "$log")"
fi

# --host/--port/--user override PG_HOST/PG_PORT/PG_USER, and PG_URL's parts too
if PG_PORT=1 pgsync-bootstrap -c "$schema" -p "$PGPORT" >>"$log" 2>&1; then
    pass "flags: -p overrides PG_PORT"
else
    fail "flags: -p overrides PG_PORT" "$(tail -3 "$log")"
fi
out=$(pgsync-bootstrap -c "$schema" --port 1 2>&1)
if [ $? -ne 0 ] && grep -q ":1 database" <<<"$out"; then
    pass "flags: --port is the port connected to (the error names it)"
else
    fail "flags: --port is the port connected to" "$out"
fi
if PG_URL="postgresql://postgres@127.0.0.1:1/postgres" pgsync-bootstrap -c "$schema" \
    --host 127.0.0.1 --port "$PGPORT" --user "${PGUSER:-postgres}" >>"$log" 2>&1; then
    pass "flags: --host/--port/--user win over PG_URL's"
else
    fail "flags: --host/--port/--user win over PG_URL's" "$(tail -3 "$log")"
fi
out=$(pgsync-bootstrap -c "$schema" -u "no_such_role_$$" 2>&1)
if [ $? -ne 0 ] && grep -q "no_such_role_$$" <<<"$out"; then
    pass "flags: -u is the role connected as"
else
    fail "flags: -u is the role connected as" "$out"
fi
if echo not-needed | pgsync-bootstrap -c "$schema" --password --sslmode disable >>"$log" 2>&1; then
    pass "flags: --password reads a line of stdin without a terminal; --sslmode is taken"
else
    fail "flags: --password and --sslmode" "$(tail -3 "$log")"
fi

# -v: debug lines; -w and -b are what pgsync does anyway; -a analyzes; ELASTICSEARCH_CHUNK_SIZE
# cuts the load's _bulk requests, QUERY_CHUNK_SIZE its fetches (PGSync's meanings)
out=$(ELASTICSEARCH_CHUNK_SIZE=2 QUERY_CHUNK_SIZE=1 pgsync -c "$schema" -w -b -v --workers 1 2>&1)
rc=$?
echo "$out" >>"$log"
check_eq "flags: pgsync -w -b -v loads (exit 0)" 0 "$rc"
check_eq "flags: the three books are indexed" 3 "$(es_ids "$index" | wc -l)"
sizes=$(grep -o 'msg="bulk request" items=[0-9]*' <<<"$out" | grep -o '[0-9]*$' | sort -u | xargs)
if [ -n "$sizes" ] && ! grep -qE '(^| )([3-9]|[1-9][0-9]+)( |$)' <<<"$sizes"; then
    pass "flags: -v shows each bulk request; ELASTICSEARCH_CHUNK_SIZE=2 caps them (sizes: $sizes)"
else
    fail "flags: ELASTICSEARCH_CHUNK_SIZE=2 caps the bulk requests" "sizes: ${sizes:-none logged}"
fi
out=$(pgsync -c "$schema" -a 2>&1)
rc=$?
if { [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ]; } && grep -qi "plan" <<<"$out"; then
    pass "flags: pgsync -a prints the plans (exit $rc)"
else
    fail "flags: pgsync -a prints the plans" "exit $rc: $(tail -3 <<<"$out")"
fi
out=$(pgsync -c "$schema" --num_workers 0 2>&1)
if [ $? -eq 2 ] && grep -q "consumers must be from 1" <<<"$out"; then
    pass "flags: --num_workers is --consumers"
else
    fail "flags: --num_workers is --consumers" "$out"
fi

# PGSync settings that do not apply: a warning naming what does the job
out=$(ELASTICSEARCH_MAX_RETRIES=3 NUM_WORKERS=4 pgsync-bootstrap -c "$schema" 2>&1)
if grep -q "setting=ELASTICSEARCH_MAX_RETRIES" <<<"$out" && grep -q "setting=NUM_WORKERS .*--consumers" <<<"$out"; then
    pass "flags: PGSync settings that do not apply are named, with what to use"
else
    fail "flags: PGSync settings that do not apply are named" "$out"
fi
# a PGSync schema with plugins: refused, naming them, unless --ignore-plugins;
# optional keys given as null are absent, as in PGSync
jq --arg ix "${index}_p" '.[0].index = $ix | .[0].plugins = ["TitleCase", "Geo"] | .[0].routing = null | .[0].nodes.transform = null' \
    "$schema" >"$schema.plugins"
out=$(pgsync-bootstrap -c "$schema.plugins" 2>&1)
if [ $? -ne 0 ] && grep -q 'plugins TitleCase, Geo are Python classes' <<<"$out" &&
    grep -q -- '--ignore-plugins' <<<"$out"; then
    pass "plugins: refused, naming each and the two ways on"
else
    fail "plugins: refused, naming each and the two ways on" "$out"
fi
out=$(pgsync-bootstrap -c "$schema.plugins" --ignore-plugins 2>&1)
if [ $? -eq 0 ] && grep -q 'plugins TitleCase, Geo are ignored' <<<"$out"; then
    pass "plugins: --ignore-plugins goes on with a warning; null keys are absent"
else
    fail "plugins: --ignore-plugins goes on with a warning" "$out"
fi
pgsync-bootstrap -c "$schema.plugins" --ignore-plugins -t >/dev/null 2>&1

# "mappings" (the engine's own body) is taken as given; "mapping" with only
# dynamic_templates is a whole body too, as PGSync reads it
jq --arg ix "${index}_m" '.[0].index = $ix |
    .[0].mappings = {"properties": {"title": {"type": "keyword"}}}' "$schema" >"$schema.mappings"
jq --arg ix "${index}_d" '.[0].index = $ix | .[0].mapping = {"dynamic_templates":
    [{"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword"}}}]}' \
    "$schema" >"$schema.dynamic"
for kind in mappings dynamic; do
    ix=$(jq -r '.[0].index' "$schema.$kind")
    if pgsync -c "$schema.$kind" --quiet >>"$log" 2>&1; then
        got=$(es GET "/$ix/_mapping" | jq -r '.[].mappings.properties.title.type')
        check_eq "schema: \"$kind\" shapes the index (title is a keyword)" keyword "$got"
    else
        fail "schema: \"$kind\" loads" "$(tail -3 "$log")"
    fi
    pgsync-bootstrap -c "$schema.$kind" -t >/dev/null 2>&1
done
pgsync-bootstrap -c "$schema" -t >/dev/null 2>&1
