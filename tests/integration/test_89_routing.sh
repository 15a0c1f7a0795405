#!/usr/bin/env bash
# Shards and routing (issue: search clusters): an index of 3 shards whose
# schema names "routing" (the document's "grp" field) and carries
# number_of_shards / number_of_replicas in its "setting". Under a workload
# that changes routing values (on the root, and through a child change that
# re-indexes it), deletes rows, moves children and inserts, every write
# carries the routing: no deleted document survives on any shard, no
# re-routed one leaves a copy under its old value, and pgsync-verify (which
# compares under routing) is clean.
. "$(dirname "$0")/lib.sh"

new_db routing >/dev/null
index=$(unique_name routing)
psql_q <<'SQL' >/dev/null
CREATE TABLE item (id int PRIMARY KEY, grp text NOT NULL, title text);
CREATE TABLE tag (id int PRIMARY KEY, item_id int REFERENCES item (id) ON DELETE CASCADE, name text);
INSERT INTO item SELECT g, 'g' || (g % 7), 'item ' || g FROM generate_series(1, 600) g;
INSERT INTO tag SELECT g, 1 + (g % 600), 'tag ' || g FROM generate_series(1, 900) g;
SQL
schema=$PGS_STACK_DIR/$index.json
cat >"$schema" <<EOF
[{"database": "$PGDATABASE", "index": "$index", "routing": "grp",
  "setting": {"number_of_shards": 3, "number_of_replicas": 0},
  "nodes": {"table": "item", "columns": ["id", "grp", "title"],
            "children": [{"table": "tag", "label": "tags", "columns": ["name"],
                          "relationship": {"variant": "scalar", "type": "one_to_many"}}]}}]
EOF
log=$PGS_STACK_DIR/logs/routing_$index.log
if pgsync --config "$schema" --quiet >>"$log" 2>&1; then
    pass "routing: loaded"
else
    fail "routing: loaded" "$(tail -5 "$log")"
    exit 1
fi
phys=$(es_physical "$index")
check_eq "routing: the index has the schema's 3 shards and 0 replicas" "3 0" \
    "$(es GET "/$phys/_settings" | jq -r '.[].settings.index | "\(.number_of_shards) \(.number_of_replicas)"')"
# hits ID...: each copy of the _ids, as "_id:_routing", whatever shard holds it
copies() {
    es POST "/$index/_refresh" >/dev/null
    es POST "/$index/_search" "$(jq -nc --args '{size: 1000, _source: false,
        query: {ids: {values: $ARGS.positional}}}' "$@")" |
        jq -r '.hits.hits[] | "\(._id):\(._routing)"' | LC_ALL=C sort
}
check_eq "routing: a loaded document sits under its routing value" "7:g0" "$(copies 7)"

start_bg rp_$$ pgsync-producer --config "$schema"
start_bg rc_$$ pgsync-consumer --config "$schema" --name r1 --batch-size 40
start_bg rc2_$$ pgsync-consumer --config "$schema" --name r2 --batch-size 40

# the workload: routing values changed on the root and several times over, rows deleted
# (some right after a routing change), children moved, new rows
for round in 1 2 3; do
    psql_q <<SQL >/dev/null
UPDATE item SET grp = 'r$round-' || (id % 5) WHERE id % 4 = $((round - 1));
DELETE FROM item WHERE id % 50 = $round;
UPDATE item SET grp = 'x$round' WHERE id % 61 = $round;
DELETE FROM item WHERE id % 61 = $round AND id > 300;
UPDATE tag SET item_id = (SELECT max(id) FROM item WHERE id < 1000) WHERE id % 9 = $round;
INSERT INTO item SELECT 1000 * $round + g, 'n' || g, 'new ' || g FROM generate_series(1, 30) g;
SQL
    sleep 0.5
done
# and one document re-routed, then deleted, in one transaction
psql_q "BEGIN; UPDATE item SET grp = 'last' WHERE id = 12; DELETE FROM item WHERE id = 12; COMMIT;" >/dev/null

verify_clean() { pgsync-verify --config "$schema" --max-diffs 10 >"$log-verify.out" 2>&1; }
if wait_until 60 verify_clean; then
    pass "routing: the index converges exactly (pgsync-verify clean, under routing)"
else
    fail "routing: the index converges exactly" "$(tail -5 "$log-verify.out")"
fi
rows=$(psql_q "SELECT count(*) FROM item")
check_eq "routing: as many documents on all shards as rows (no copy left behind)" "$rows" \
    "$(es POST "/$index/_refresh" >/dev/null; es GET "/$index/_count" | jq -r .count)"
check_eq "routing: deleted documents are gone from every shard (51, 306: re-routed first; 12: in one transaction)" \
    "" "$(copies 51 306 12)"
want=$(psql_q "SELECT id || ':' || grp FROM item WHERE id IN (4, 8, 62, 123) ORDER BY 1")
check_eq "routing: re-routed documents have one copy, under their new value" \
    "$(LC_ALL=C sort <<<"$want")" "$(copies 4 8 62 123)"
# verify itself sees a copy left under an old value (made by hand here)
src4=$(es POST "/$index/_search" '{"query": {"ids": {"values": ["4"]}}}' | jq -c '.hits.hits[0]._source')
es PUT "/$index/_doc/4?routing=stale-copy&version=1&version_type=external&refresh=true" \
    "$src4" >/dev/null || fail "routing: a stale copy made by hand" "PUT refused"
if ! pgsync-verify --config "$schema" --max-diffs 10 >"$log-verify2.out" 2>&1; then
    pass "routing: pgsync-verify reports a copy under a stale routing value"
else
    fail "routing: pgsync-verify reports a copy under a stale routing value" "$(tail -3 "$log-verify2.out")"
fi
pgsync-verify --config "$schema" --repair >>"$log-verify2.out" 2>&1
if verify_clean && [ "$(copies 4)" = "$(grep '^4:' <<<"$want")" ]; then
    pass "routing: pgsync-verify --repair deletes it"
else
    fail "routing: pgsync-verify --repair deletes it" "$(copies 4) / $(tail -3 "$log-verify.out")"
fi
for n in rp_$$ rc_$$ rc2_$$; do stop_bg "$n" >/dev/null 2>&1; done
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
