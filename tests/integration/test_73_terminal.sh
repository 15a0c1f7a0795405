#!/usr/bin/env bash
# What a person sees: the load's progress bar on a terminal (a pseudo-terminal
# from script(1)) for a table that was never ANALYZEd, log lines that never
# land inside the bar's line, --quiet that shows nothing, and --log-format
# json whose every line is one JSON object.
. "$(dirname "$0")/lib.sh"

ROWS=${PGS_TERMINAL_ROWS:-30000}
new_db term >/dev/null
# autovacuum off: the table stays never analyzed (reltuples -1), as after a bulk import
psql_q "CREATE TABLE book (isbn varchar(13) PRIMARY KEY, title text NOT NULL, description text)
        WITH (autovacuum_enabled = false)" || fail "create book" "psql failed"
sed '/^ANALYZE/d' "$PGS_ROOT/bench/gen_books.sql" |
    psql -XAtq -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PGDATABASE" -v books="$ROWS" \
        -v authors=$((ROWS / 3)) -f - >/dev/null 2>&1 || fail "generate $ROWS books" "psql failed"
check_eq "the root table was never analyzed" "-1" \
    "$(psql_q "SELECT reltuples::bigint FROM pg_class WHERE oid = 'book'::regclass")"

index=$(unique_name term)
schema=$PGS_STACK_DIR/$index.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
log=$PGS_STACK_DIR/logs/$index

# on_tty OUT CMD...: runs CMD on a pseudo-terminal, what it writes there into OUT
on_tty() {
    local out=$1
    shift
    script -qfec "$(printf '%q ' "$@")" /dev/null >"$out" 2>&1 </dev/null
}

count() { es POST "/$index/_refresh" >/dev/null; es GET "/$index/_count" | jq .count; }

# --- the bar ----------------------------------------------------------------------------
if on_tty "$log-tty.out" pgsync --config "$schema" --workers 2 --log-level debug; then
    pass "load on a terminal exits 0"
else
    fail "load on a terminal exits 0" "$(tail -c 600 "$log-tty.out" | tr '\r' '\n' | tail -3)"
fi
check_eq "load on a terminal: every book indexed" "$ROWS" "$(count)"
# the bar's frames: each is drawn after "\r\e[K"; one frame a piece
tr '\r' '\n' <"$log-tty.out" | sed -n "s/^\x1b\[K\($index[^ ]* \[.*\)/\1/p" >"$log-frames"
frames=$(wc -l <"$log-frames")
final=$(grep -c " $ROWS/$ROWS docs .*ranges .*docs/s  [0-9]*s *$" "$log-frames")
moving=$(grep -c 'ETA' "$log-frames")
if [ "$final" -eq 1 ] && [ "$moving" -ge 1 ] && [ "$frames" -eq $((moving + 1)) ]; then
    pass "the bar moves ($moving frames), then ends on $ROWS/$ROWS docs"
else
    fail "the bar moves, then ends on $ROWS/$ROWS docs" "frames=$frames moving=$moving final=$final: $(tail -2 "$log-frames")"
fi
# never analyzed: the total comes from a count, not from what is done (the bar
# must not read N/N, full, "ETA 0s" for the whole load)
bad_total=$(awk -v rows="$ROWS" '/ETA/ {
        split($3, f, "/"); done = f[1]; total = f[2]; sub(/^~/, "", total)
        if (done < rows && total != rows) { print; exit }
    }' "$log-frames")
check_eq "while loading, the bar's total is the table's $ROWS rows" "" "$bad_total"
# log lines (workers' debug lines come while the bar is shown) start a line of
# their own: each is written after "\r\e[K", which moves to the line's start
# and erases the bar; one glued to a frame would follow the frame's text
segments() { tr '\r' '\n' <"$1" | grep -a . ; }
glued=$(segments "$log-tty.out" | grep -a ' level=' | grep -av $'^\x1b\\[K[0-9]\\{4\\}-' | head -n 2)
[ "$(segments "$log-tty.out" | grep -ac 'level=debug.*load range')" -gt 0 ] ||
    fail "log lines come while the bar is shown" "no worker debug line seen"
check_eq "no log line is written into the bar's line" "" "$(cat -v <<<"$glued")"

# --- --quiet ------------------------------------------------------------------------------
if on_tty "$log-quiet.out" pgsync --config "$schema" --resync --quiet; then
    pass "--quiet on a terminal exits 0"
else
    fail "--quiet on a terminal exits 0" "$(tr '\r' '\n' <"$log-quiet.out" | tail -3)"
fi
check_eq "--quiet shows no progress (no bar, no \"loading\" line)" "" \
    "$(segments "$log-quiet.out" | grep -a -E '\[[# ]*\] .* docs |docs/s|msg="loading"' | head -n 2 | cat -v)"
segments "$log-quiet.out" | grep -aq 'msg="load done"' &&
    pass "--quiet keeps the log lines" || fail "--quiet keeps the log lines" "no \"load done\" line"
check_eq "--quiet: every book indexed" "$ROWS" "$(count)"

# --- --log-format json ------------------------------------------------------------------------
json_lines_ok() { # FILE: every line is one JSON object with ts, level, proc, msg
    local bad
    bad=$(tr -d '\r' <"$1" | while IFS= read -r line; do
        jq -e 'type == "object" and has("ts") and has("level") and has("proc") and has("msg")' \
            <<<"$line" >/dev/null 2>&1 || { printf '%s\n' "$line"; break; }
    done)
    [ -z "$bad" ] || { echo "$bad" | head -c 300; return 1; }
}
pgsync --config "$schema" --resync --log-format json --log-level debug \
    >"$log-json.stdout" 2>"$log-json.log" || fail "json: the load exits 0" "$(tail -3 "$log-json.log")"
n=$(grep -c . "$log-json.log")
if bad=$(json_lines_ok "$log-json.log") && [ "$n" -ge 5 ]; then
    pass "json: all $n log lines of a load are JSON objects"
else
    fail "json: every log line of a load is a JSON object" "$n lines; first bad: $bad"
fi
# on a terminal too: no bar, no erase sequence in front of a JSON line (the
# result line on stdout goes to a file: it is no log line)
on_tty "$log-json-tty.out" sh -c 'out=$1; shift; exec "$@" >"$out"' sh "$log-json-tty.stdout" \
    pgsync --config "$schema" --resync --quiet --log-format json --log-level debug ||
    fail "json on a terminal: the load exits 0" "$(tr '\r' '\n' <"$log-json-tty.out" | tail -3)"
if bad=$(json_lines_ok "$log-json-tty.out"); then
    pass "json on a terminal: every line is a JSON object"
else
    fail "json on a terminal: every line is a JSON object" "$(cat -v <<<"$bad")"
fi
# error lines whose text holds quotes, backslashes and a newline: a daemon
# retrying an engine URL that has them in its path
start_bg json-err env 'ELASTICSEARCH_URL=http://127.0.0.1:1/a"b\c' pgsync-consumer --config "$schema" \
    --name json-err --log-format json
sleep 4
stop_bg json-err >/dev/null 2>&1
errs=$(grep -c '"level":"\(warn\|error\)"' "$PGS_STACK_DIR/logs/json-err.log")
if bad=$(json_lines_ok <(grep -v '^=== ' "$PGS_STACK_DIR/logs/json-err.log")) && [ "$errs" -ge 1 ]; then
    pass "json: a daemon's error lines ($errs) are JSON objects"
else
    fail "json: a daemon's error lines are JSON objects" "errors=$errs; first bad: $bad"
fi

pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
