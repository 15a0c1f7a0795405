#!/usr/bin/env bash
# One WAL reader per database (issue: one WAL reader per database): twenty
# schema entries over the same few tables of one database, in one file, are
# served by one producer and two consumers while a mixed write workload runs.
# Every index ends equal to the database (pgsync-verify), each entry's stream
# holds records of its own tables and no others, and the database has one
# logical slot and one publication of the union of the entries' tables. Then,
# with writes still going, a 21st entry is added (over a table no other entry
# reads) and entry 3 removed: the producer restarts with the new file and the
# new index is loaded beside it (its snapshot taken while the slot streams);
# the new index converges, the removed entry's stream gets nothing more, and
# there is still one slot.
. "$(dirname "$0")/lib.sh"

export PGSYNC_CLAIM_IDLE_MS=2000 PGSYNC_BLOCK_MS=200

new_db many >/dev/null
db=$PGDATABASE
base=$(unique_name many)
# small on purpose: twenty indices multiply every row by twenty
psql_q <<'SQL' >/dev/null
CREATE TABLE author (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE post (id serial PRIMARY KEY,
                   author_id integer NOT NULL REFERENCES author (id),
                   title text NOT NULL, score integer NOT NULL DEFAULT 0);
CREATE INDEX post_author ON post (author_id);
CREATE TABLE comment (id serial PRIMARY KEY,
                      post_id integer NOT NULL REFERENCES post (id) ON UPDATE CASCADE ON DELETE CASCADE,
                      body text NOT NULL, votes integer NOT NULL DEFAULT 0);
CREATE INDEX comment_post ON comment (post_id);
-- the writer's off switch: no entry reads it, so it is in no publication
CREATE TABLE churn_stop (x integer);
INSERT INTO author (name) SELECT 'author ' || g FROM generate_series(1, 20) g;
INSERT INTO post (author_id, title, score)
    SELECT 1 + g % 20, 'post ' || g, g % 50 FROM generate_series(1, 200) g;
INSERT INTO comment (post_id, body, votes)
    SELECT 1 + g % 200, 'comment ' || g, g % 7 FROM generate_series(1, 400) g;

-- Writes until a row appears in churn_stop, one transaction per turn (a few
-- of several statements), on all three tables: inserts, updates, deletes
-- (of posts, cascading to their comments), comments moved to another post,
-- and primary-key changes of posts (cascading to comments' post_id). Gives
-- up after two minutes: a backend does not notice that a killed test's psql
-- is gone, and would otherwise write for the rest of the suite.
CREATE PROCEDURE churn(seed float8) LANGUAGE plpgsql AS $$
DECLARE
    i integer := 0;
    p integer;
    deadline timestamptz := clock_timestamp() + interval '2 minutes';
BEGIN
    PERFORM setseed(seed);
    WHILE NOT EXISTS (SELECT 1 FROM churn_stop) AND clock_timestamp() < deadline LOOP
        i := i + 1;
        SELECT id INTO p FROM post ORDER BY random() LIMIT 1;
        CASE i % 9
        WHEN 0 THEN -- a post and its first comments, in one transaction
            INSERT INTO post (author_id, title, score)
                VALUES (1 + i % 20, 'new ' || i, i % 50) RETURNING id INTO p;
            INSERT INTO comment (post_id, body, votes)
                SELECT p, 'first ' || g || ' of ' || i, g FROM generate_series(1, 3) g;
        WHEN 1 THEN
            UPDATE post SET title = 'edit ' || i, score = score + 1 WHERE id = p;
        WHEN 2 THEN
            UPDATE comment SET votes = votes + 1, body = 'edit ' || i
                WHERE id = (SELECT id FROM comment ORDER BY random() LIMIT 1);
        WHEN 3 THEN
            DELETE FROM comment WHERE id = (SELECT id FROM comment ORDER BY random() LIMIT 1);
        WHEN 4 THEN
            INSERT INTO comment (post_id, body, votes) VALUES (p, 'reply ' || i, 0);
        WHEN 5 THEN
            DELETE FROM post WHERE id = p;
        WHEN 6 THEN -- a comment moves: its old and its new post both change
            UPDATE comment SET post_id = p
                WHERE id = (SELECT id FROM comment ORDER BY random() LIMIT 1);
        WHEN 7 THEN -- several rows of two tables in one transaction
            UPDATE author SET name = 'author ' || i WHERE id = 1 + i % 20;
            UPDATE post SET author_id = 1 + i % 20, score = score + 2
                WHERE id IN (SELECT id FROM post ORDER BY random() LIMIT 3);
            UPDATE comment SET votes = votes + 1
                WHERE id IN (SELECT id FROM comment ORDER BY random() LIMIT 3);
        ELSE -- a key change: the old _id must go, the new one appear
            UPDATE post SET id = nextval('post_id_seq') WHERE id = p;
        END CASE;
        COMMIT;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SQL

# The shapes of the entries, so that a change of each table must reach only
# some streams: "post" alone, post with its comments (object or scalar),
# comment as the root with its post, comment alone; "author" with its posts
# only for the entry added later, so no stream may see author rows before.
entry_json() { # NAME SHAPE
    local nodes
    case $2 in
    post) nodes='{"table": "post", "columns": ["id", "title", "score"]}' ;;
    post_comments)
        nodes='{"table": "post", "columns": ["title", "score"],
                "children": [{"table": "comment", "columns": ["body", "votes"], "label": "comments",
                              "relationship": {"variant": "object", "type": "one_to_many"}}]}' ;;
    post_bodies)
        nodes='{"table": "post", "columns": ["title"],
                "children": [{"table": "comment", "columns": ["body"], "label": "bodies",
                              "relationship": {"variant": "scalar", "type": "one_to_many"}}]}' ;;
    comment_post)
        nodes='{"table": "comment", "columns": ["body", "votes"],
                "children": [{"table": "post", "columns": ["title"], "label": "post",
                              "relationship": {"variant": "object", "type": "one_to_one"}}]}' ;;
    comment) nodes='{"table": "comment", "columns": ["id", "body"]}' ;;
    author_posts)
        nodes='{"table": "author", "columns": ["name"],
                "children": [{"table": "post", "columns": ["title", "score"], "label": "posts",
                              "relationship": {"variant": "object", "type": "one_to_many"}}]}' ;;
    esac
    jq -nc --arg db "$db" --arg ix "$1" --argjson nodes "$nodes" \
        '{database: $db, index: $ix, nodes: $nodes}'
}
# the tables each shape reads, as the stream check lists them
declare -A shape_tables=([post]=post [post_comments]=comment,post [post_bodies]=comment,post
    [comment_post]=comment,post [comment]=comment [author_posts]=author,post)

# entries 1-6 post, 7-12 post_comments, 13-16 post_bodies, 17-18 comment_post,
# 19-20 comment; entry 21 (author_posts) comes with the second file
declare -A shape_of=()
for k in $(seq 1 20); do
    if [ "$k" -le 6 ]; then
        shape_of[$k]=post
    elif [ "$k" -le 12 ]; then
        shape_of[$k]=post_comments
    elif [ "$k" -le 16 ]; then
        shape_of[$k]=post_bodies
    elif [ "$k" -le 18 ]; then
        shape_of[$k]=comment_post
    else
        shape_of[$k]=comment
    fi
done
shape_of[21]=author_posts
index_of() { printf '%s_e%02d' "$base" "$1"; }
stream_of() { echo "pgsync:{$(index_of "$1")}:changes"; }

schema_file() { # OUT ENTRY-NUMBER...
    local out=$1 k
    shift
    for k in "$@"; do entry_json "$(index_of "$k")" "${shape_of[$k]}"; done | jq -s . >"$out"
}
entries1=$(seq 1 20)
entries2="1 2 $(seq 4 21)"
schema1=$PGS_STACK_DIR/$base-1.json
schema2=$PGS_STACK_DIR/$base-2.json
schema_file "$schema1" $entries1
schema_file "$schema2" $entries2

# --- helpers -----------------------------------------------------------------------

# drained ENTRY...: every entry's stream delivered and acknowledged all it holds
drained() {
    local k s
    for k in "$@"; do
        s=$(stream_of "$k")
        [ "$(redis_q XPENDING "$s" pgsync | head -1)" = 0 ] || return 1
        [ "$(redis_q XINFO GROUPS "$s" | awk 'f { print; exit } /last-delivered-id/ { f = 1 }')" = \
            "$(redis_q XINFO STREAM "$s" | awk 'f { print; exit } /last-generated-id/ { f = 1 }')" ] ||
            return 1
    done
}
# caught_up LSN: every slot of the database that a producer reads confirmed LSN
# (inactive ones are left out: with a slot per entry, the removed entry's
# slot never moves again)
caught_up() {
    [ "$(psql_q "SELECT count(*) > 0 AND bool_and(confirmed_flush_lsn >= '$1'::pg_lsn)
                 FROM pg_replication_slots WHERE database = '$db' AND active")" = t ]
}
# converge FILE WHAT ENTRY...: the writer has stopped; wait until the producer
# has read all of it and the consumers applied it, then pgsync-verify FILE
converge() {
    local file=$1 what=$2 lsn out rc
    shift 2
    lsn=$(psql_q "SELECT pg_current_wal_lsn()")
    if wait_until 60 caught_up "$lsn" && wait_until 90 drained "$@"; then
        pass "$what: the producer and the consumers catch up"
    else
        fail "$what: the producer and the consumers catch up" \
            "caught_up=$(caught_up "$lsn" && echo yes || echo no) drained=$(drained "$@" && echo yes || echo no)"
    fi
    out=$(pgsync-verify --config "$file" --quiet 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$what: pgsync-verify finds every index equal to the database"
    else
        fail "$what: pgsync-verify finds every index equal to the database" \
            "exit $rc: $(grep -v '^ *$' <<<"$out" | tail -6)"
    fi
}
# stream_tables ENTRY [AFTER-ID]: the tables of the records in the entry's
# stream (after AFTER-ID), sorted, comma-separated
stream_tables() {
    redis_q --raw XRANGE "$(stream_of "$1")" "${2:--}" + |
        awk 'prev == "t" { seen[$0] = 1 } { prev = $0 } END { for (t in seen) print t }' |
        LC_ALL=C sort | paste -sd, -
}
# routed WHAT ENTRY...: each entry's stream holds records of exactly its own
# tables (the workload writes all of them, so each must appear, and no other)
routed() {
    local what=$1 k bad=
    shift
    for k in "$@"; do
        [ "$(stream_tables "$k")" = "${shape_tables[${shape_of[$k]}]}" ] ||
            bad+=" e$k(${shape_of[$k]}): [$(stream_tables "$k")]"
    done
    if [ -z "$bad" ]; then
        pass "$what: each stream holds records of its entry's tables only"
    else
        fail "$what: each stream holds records of its entry's tables only" "${bad# }"
    fi
}
# one_reader WHAT TABLES: one logical slot for the database, and one
# publication whose tables are TABLES (the union of the entries' tables)
one_reader() {
    local what=$1 tables=$2 slots pubs n
    slots=$(psql_q "SELECT slot_name FROM pg_replication_slots WHERE database = '$db' ORDER BY slot_name")
    n=$(grep -c . <<<"$slots")
    if [ "$n" = 1 ]; then
        pass "$what: one replication slot for the database"
    else
        fail "$what: one replication slot for the database" \
            "$n slots: $(head -2 <<<"$slots" | paste -sd' ' -)$([ "$n" -le 2 ] || echo ' ...')"
    fi
    pubs=$(psql_q "SELECT p.pubname || ':' || coalesce(string_agg(t.tablename, ',' ORDER BY t.tablename), '')
                   FROM pg_publication p LEFT JOIN pg_publication_tables t USING (pubname)
                   GROUP BY p.pubname ORDER BY p.pubname")
    n=$(grep -c . <<<"$pubs")
    if [ "$n" = 1 ] && [ "${pubs#*:}" = "$tables" ]; then
        pass "$what: one publication, of the tables $tables"
    else
        fail "$what: one publication, of the tables $tables" \
            "$n publications: $(head -3 <<<"$pubs" | paste -sd' ' -)$([ "$n" -le 3 ] || echo ' ...')"
    fi
}
# last_id ENTRY: the id of the newest record in the entry's stream ("" if none)
last_id() {
    redis_q --raw XREVRANGE "$(stream_of "$1")" + - COUNT 1 | head -1
}
start_daemons() { # FILE TAG
    start_bg "producer_$2" pgsync-producer --config "$1"
    start_bg "consumer_$2_1" pgsync-consumer --config "$1" --name c1
    start_bg "consumer_$2_2" pgsync-consumer --config "$1" --name c2
}
stop_daemons() { # TAG
    stop_bg "consumer_$1_1" 30
    stop_bg "consumer_$1_2" 30
    stop_bg "producer_$1" 30
}
start_writer() { # SEED
    psql_q "DELETE FROM churn_stop"
    psql_q "CALL churn($1)" >"$PGS_STACK_DIR/logs/$base-writer.log" 2>&1 &
    writer=$!
}
stop_writer() {
    psql_q "INSERT INTO churn_stop VALUES (1)"
    wait "$writer" || fail "the write workload runs" "$(tail -3 "$PGS_STACK_DIR/logs/$base-writer.log")"
}

# --- 1. twenty entries: load, then one producer and two consumers under writes ------

if pgsync --config "$schema1" --quiet >"$PGS_STACK_DIR/logs/$base-load1.log" 2>&1; then
    pass "20 entries: pgsync loads every index"
else
    fail "20 entries: pgsync loads every index" "$(tail -5 "$PGS_STACK_DIR/logs/$base-load1.log")"
fi
count_of() {
    es POST "/$(index_of "$1")/_refresh" >/dev/null 2>&1
    es GET "/$(index_of "$1")/_count" 2>/dev/null | jq -r '.count // 0'
}
check_eq "20 entries: a post index holds every post" 200 "$(count_of 1)"
check_eq "20 entries: a comment index holds every comment" 400 "$(count_of 20)"

start_daemons "$schema1" 1
start_writer 0.17
sleep "${PGS_MANY_WRITE_SECONDS:-10}" # CI scales it down (.ci/run)
stop_writer
converge "$schema1" "20 entries" $entries1
routed "20 entries" $entries1
one_reader "20 entries" comment,post

# --- 2. the schema changes under writes: entry 21 added, entry 3 removed -------------

start_writer 0.29
sleep 2
stop_daemons 1
# nothing writes to the streams now: what entry 3 (removed) and entry 2 (kept,
# the same tables) hold so far
e3_before=$(last_id 3)
e2_before=$(last_id 2)
# the producer first, with the new file: the load of entry 21 then takes its
# snapshot while the one slot streams (pgsync waits until the producer writes
# the new stream), and its table joins the publication under writes
start_bg "producer_2" pgsync-producer --config "$schema2"
if pgsync --config "$schema2" --quiet >"$PGS_STACK_DIR/logs/$base-load2.log" 2>&1; then
    pass "entry 21 added: pgsync loads the new index beside the running producer"
else
    fail "entry 21 added: pgsync loads the new index beside the running producer" \
        "$(tail -5 "$PGS_STACK_DIR/logs/$base-load2.log")"
fi
start_bg "consumer_2_1" pgsync-consumer --config "$schema2" --name c1
start_bg "consumer_2_2" pgsync-consumer --config "$schema2" --name c2
# writes after the restart, on every table
sleep $(((${PGS_MANY_WRITE_SECONDS:-10} + 1) / 2))
stop_writer
converge "$schema2" "after the change" $entries2
check_eq "after the change: the new index holds every author" 20 "$(count_of 21)"
check_eq "after the change: entry 21's stream holds author and post records" author,post \
    "$(stream_tables 21)"
check_eq "after the change: the removed entry 3's stream gets no new record" "" \
    "$(stream_tables 3 "${e3_before:+($e3_before}")"
# the same tables as entry 3: proves the producer did read the writes after the restart
if [ -n "$e2_before" ] && [ -n "$(stream_tables 2 "($e2_before")" ]; then
    pass "after the change: entry 2 (the same tables) gets the new records"
else
    fail "after the change: entry 2 (the same tables) gets the new records" \
        "nothing after ${e2_before:-(empty stream)}"
fi
one_reader "after the change" author,comment,post

# a producer started with the old file (entry 3, which the running one does not
# write) can only stand by: it says that its index would get nothing
mport=$(free_port)
start_bg "producer_old" pgsync-producer --config "$schema1" --metrics-port "$mport"
lacks() {
    [ "$(healthz_code "$mport")" = 503 ] &&
        healthz "$mport" | grep -qF "does not write index \"$(index_of 3)\"'s stream"
}
if wait_until 30 lacks; then
    pass "a standby with another schema file: /healthz says which index gets nothing"
else
    fail "a standby with another schema file: /healthz says which index gets nothing" \
        "$(healthz "$mport")"
fi
stop_bg "producer_old" 30

stop_daemons 2
# the slots of this database would hold WAL for the rest of the suite
psql_q "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots
        WHERE database = '$db' AND NOT active" >/dev/null 2>&1
