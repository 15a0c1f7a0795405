#!/usr/bin/env bash
# pgsync-verify: after a load it finds no drift; after tampering with the
# index (a document deleted, one added, one changed with a plain PUT) and with
# the database while no consumer runs (a title updated) it reports exactly
# that, with field diffs, and exits 1; --repair fixes it with versioned
# writes; --sample checks random documents; a copy written after the
# snapshot is never judged nor overwritten; and 20,000 large documents are
# checked with bounded memory (peak RSS printed).
. "$(dirname "$0")/lib.sh"

new_db verify >/dev/null
index=$(unique_name verify)
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
schema=$PGS_STACK_DIR/$index.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
log=$PGS_STACK_DIR/logs/$index.log

# verify ARGS...: runs pgsync-verify on $schema; stdout in $out, exit status in $rc
verify() {
    out=$(pgsync-verify --config "$schema" "$@" 2>>"$log")
    rc=$?
    { echo "--- pgsync-verify $* (exit $rc)"; echo "$out"; } >>"$log"
}
# has NAME TEXT: passes when $out contains TEXT (a fixed string)
has() {
    if grep -qF -- "$2" <<<"$out"; then pass "$1"; else fail "$1" "no '$2' in: $out"; fi
}
counts() { jq -r '.entries[0] | "\(.checked) \(.missing) \(.extra) \(.different) \(.repaired)"' <<<"$out"; }

if pgsync --config "$schema" --quiet >>"$log" 2>&1; then
    pass "load before verify"
else
    fail "load before verify" "$(tail -5 "$log")"
fi

# 1. right after the load: no drift
verify
check_eq "no drift after the load: exit 0" 0 "$rc"
has "no drift after the load: summary" "$index: 3 documents checked: no drift"
verify --json
check_eq "--json after the load" "3 0 0 0 0" "$(counts)"

# 2. tamper: one index document deleted, one added, one changed; one title changed in the database
A=9785811243570 B=9788374950978 C=9781471331435
es DELETE "/$index/_doc/$A" >/dev/null || fail "tamper: delete" "DELETE failed"
es PUT "/$index/_doc/extra-1" '{"title": "Not in the database"}' >/dev/null ||
    fail "tamper: extra" "PUT failed"
changed=$(es_doc "$index" "$B" | jq -c '.authors[1] = "Phil Gabriel"')
es PUT "/$index/_doc/$B" "$changed" >/dev/null || fail "tamper: change" "PUT failed"
psql_q "UPDATE book SET title = 'Nineteen Eighty-Four' WHERE isbn = '$C'"

verify
check_eq "drift: exit 1" 1 "$rc"
has "drift: summary line" "$index: 4 documents checked: 1 missing, 1 extra, 2 different"
has "drift: the missing document" "missing   $A"
has "drift: the extra document" "extra     extra-1"
has "drift: index change shown as a field diff" 'authors[1]: "Philip Gabriel" != "Phil Gabriel"'
has "drift: database change shown as a field diff" 'title: "Nineteen Eighty-Four" != "1984"'
verify --json
check_eq "drift: --json counts (checked missing extra different repaired)" "4 1 1 2 0" "$(counts)"
check_eq "drift: --json diff paths" "authors[1] title" \
    "$(jq -r '[.entries[0].diffs[] | .fields[]?.path] | sort | join(" ")' <<<"$out")"
verify --max-diffs 1
check_eq "--max-diffs 1: one document in detail" 1 "$(grep -cE '^(missing|extra|different) ' <<<"$out")"
has "--max-diffs 1: says more exist" "(first 1 shown, see --max-diffs)"
verify --sample 10
check_eq "--sample 10 (all 3 roots): exit 1" 1 "$rc"
has "--sample 10: finds what a sample can" "sample of 3 documents checked: 1 missing, 2 different"
has "--sample: says extra documents cannot be found" "a sample cannot find extra documents"

# 3. repair, then nothing left
verify --repair
check_eq "--repair: exit 1 (drift was found)" 1 "$rc"
has "--repair: reports what it did" "$index: repaired 4 documents (0 left alone"
check_eq "--repair: missing document back" '"Kafka on the Shore"' "$(es_doc "$index" "$B" | jq -c .title)"
check_eq "--repair: changed document restored" '["Haruki Murakami","Philip Gabriel"]' \
    "$(es_doc "$index" "$B" | jq -c .authors)"
check_eq "--repair: database change indexed" '"Nineteen Eighty-Four"' \
    "$(es_doc "$index" "$C" | jq -c .title)"
check_eq "--repair: extra document deleted" "$C $A $B" "$(es_ids "$index" | xargs)"
verify
check_eq "after --repair: exit 0" 0 "$rc"
has "after --repair: no drift" "$index: 3 documents checked: no drift"

# 4. sampling
verify --sample 2 --json
check_eq "--sample 2: exit 0" 0 "$rc"
check_eq "--sample 2: two checked, marked as a sample" "2 true" \
    "$(jq -r '.entries[0] | "\(.checked) \(.sampled)"' <<<"$out")"

# 5. a copy written after the snapshot (a higher external version) is neither drift nor overwritten
es PUT "/$index/_doc/$A?version=9000000000000000000&version_type=external" \
    '{"title": "written by a consumer later"}' >/dev/null || fail "newer copy" "PUT failed"
verify --repair
check_eq "a newer index copy is not drift: exit 0" 0 "$rc"
has "a newer index copy is reported as changed during the check" "1 changed during the check"
check_eq "a newer index copy is not overwritten by --repair" '"written by a consumer later"' \
    "$(es_doc "$index" "$A" | jq -c .title)"

# 6. usage and configuration errors exit 2
pgsync-verify >/dev/null 2>&1
check_eq "no --config: exit 2" 2 "$?"
pgsync-verify --config "$schema" --sample 0 >/dev/null 2>&1
check_eq "--sample 0: exit 2" 2 "$?"
pgsync-verify --config "$schema" --max-diffs many >/dev/null 2>&1
check_eq "--max-diffs many: exit 2" 2 "$?"
jq '.[0].nodes.table = "no_such_table"' "$schema" >"$schema.bad"
pgsync-verify --config "$schema.bad" >/dev/null 2>&1
check_eq "a schema that does not match the database: exit 2" 2 "$?"

# 7. 20,000 documents of about 2 kB each (~40 MB of JSON): memory stays bounded
new_db verifybig >/dev/null
bigindex=$(unique_name verifybig)
bigschema=$PGS_STACK_DIR/$bigindex.json
jq --arg db "$PGDATABASE" --arg ix "$bigindex" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$bigschema"
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
psql_q "INSERT INTO book (isbn, title, description)
            SELECT 'B' || lpad(i::text, 8, '0'), 'Book ' || i, repeat(md5(i::text), 60)
            FROM generate_series(1, 20000) i;
        INSERT INTO book_author (book_isbn, author_id)
            SELECT 'B' || lpad(i::text, 8, '0'), 1 + i % 4 FROM generate_series(1, 20000) i;
        INSERT INTO book_author (book_isbn, author_id)
            SELECT 'B' || lpad(i::text, 8, '0'), 1 + (i + 1) % 4 FROM generate_series(1, 20000) i;
        ANALYZE"
t0=$EPOCHREALTIME
if pgsync --config "$bigschema" --quiet >>"$log" 2>&1; then
    pass "20,000 documents loaded ($(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'))"
else
    fail "20,000 documents loaded" "$(tail -5 "$log")"
fi
# a little drift to find among them
es DELETE "/$bigindex/_doc/B00012345" >/dev/null || fail "big: tamper" "DELETE failed"
psql_q "UPDATE book SET title = 'Changed' WHERE isbn = 'B00000777'"

# measure CMD...: runs CMD; sets $out (stdout), $rc, $rss (peak resident set, kB) and $secs
measure() {
    local tf=$PGS_STACK_DIR/$bigindex.time f=$PGS_STACK_DIR/$bigindex.out t0=$EPOCHREALTIME v
    rss=0
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v -o "$tf" "$@" >"$f" 2>>"$log"
        rc=$?
        rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
    else
        # no GNU time: poll the process's high-water mark
        "$@" >"$f" 2>>"$log" &
        local pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
            [ -n "$v" ] && [ "$v" -gt "$rss" ] && rss=$v
            sleep 0.05
        done
        wait "$pid"
        rc=$?
    fi
    out=$(cat "$f")
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    echo "--- $* (exit $rc, ${secs}s, peak RSS ${rss} kB)" >>"$log"
    echo "$out" >>"$log"
}
measure pgsync-verify --config "$bigschema" --json
echo "INFO: pgsync-verify on 20,003 documents (~40 MB of JSON): ${secs}s, peak RSS $((${rss:-0} / 1024)) MB (${rss} kB)"
check_eq "20,000: exit 1 for the drift" 1 "$rc"
check_eq "20,000: finds exactly the drift (checked missing extra different)" "20003 1 0 1" \
    "$(jq -r '.entries[0] | "\(.checked) \(.missing) \(.extra) \(.different)"' <<<"$out")"
if [[ ${PGS_BUILD:-} == *san* ]]; then
    # AddressSanitizer's shadow memory and quarantine make RSS meaningless
    echo "INFO: 20,000: RSS not judged under sanitizers (${rss} kB)"
elif [ -n "$rss" ] && [ "$rss" -lt 65536 ]; then
    pass "20,000: peak RSS under 64 MB (${rss} kB)"
else
    fail "20,000: peak RSS under 64 MB" "peak RSS ${rss:-unknown} kB"
fi
measure pgsync-verify --config "$bigschema" --repair --quiet
echo "INFO: pgsync-verify --repair on 20,003 documents: ${secs}s, peak RSS $((${rss:-0} / 1024)) MB (${rss} kB)"
check_eq "20,000: --repair fixes both" "1 repaired 2" "$rc $(grep -o 'repaired [0-9]*' <<<"$out")"
measure pgsync-verify --config "$bigschema" --quiet
check_eq "20,000: no drift after --repair" 0 "$rc"
