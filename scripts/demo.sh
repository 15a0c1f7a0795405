#!/usr/bin/env bash
# The local demo: a private PostgreSQL, Redis and OpenSearch in .stack/demo,
# the book example loaded and synced by `pgsync --daemon`, a search shown,
# then a live change followed into the index. `scripts/demo.sh stop` (or
# `make demo-stop`) stops everything it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${PGS_DEMO_DIR:-$ROOT/.stack/demo}
cd "$ROOT"

stop() {
    if [ -f "$DIR/pgsync.pid" ]; then
        kill "$(cat "$DIR/pgsync.pid")" 2>/dev/null || true
        rm -f "$DIR/pgsync.pid"
    fi
    [ -f "$DIR/env" ] && scripts/stack.sh stop "$DIR" || true
    echo "demo stopped"
}
if [ "${1:-}" = stop ]; then
    stop
    exit 0
fi

[ -f "$DIR/pgsync.pid" ] && kill -0 "$(cat "$DIR/pgsync.pid")" 2>/dev/null && {
    echo "the demo is already running; stop it with: make demo-stop"
    exit 1
}
[ -f "$DIR/env" ] && scripts/stack.sh stop "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR"
mkdir -p "$DIR"
chmod 777 "$DIR"
echo "== starting PostgreSQL, Redis and OpenSearch in $DIR (the first run downloads OpenSearch from Maven Central)"
scripts/stack.sh start "$DIR"
. "$DIR/env"
export PATH=$ROOT/bin:$PATH

echo "== creating the book database"
createdb book
psql -q -d book -f tests/fixtures/book.sql

echo "== pgsync --config schemas/book.json --daemon (log: $DIR/pgsync.log)"
nohup pgsync --config schemas/book.json --daemon >"$DIR/pgsync.log" 2>&1 &
echo $! >"$DIR/pgsync.pid"
for _ in $(seq 1 100); do
    grep -q '"daemon running"' "$DIR/pgsync.log" 2>/dev/null && break
    kill -0 "$(cat "$DIR/pgsync.pid")" 2>/dev/null || { cat "$DIR/pgsync.log"; exit 1; }
    sleep 0.2
done
curl -s -XPOST "$ELASTICSEARCH_URL/book/_refresh" >/dev/null

echo
echo "== search: murakami"
curl -s "$ELASTICSEARCH_URL/book/_search?q=authors:murakami&filter_path=hits.hits._id,hits.hits._source" | jq .

echo
echo "== UPDATE author SET name = 'Haruki Murakami (村上春樹)' WHERE id = 2"
psql -q -d book -c "UPDATE author SET name = 'Haruki Murakami (村上春樹)' WHERE id = 2"
for _ in $(seq 1 50); do
    curl -s "$ELASTICSEARCH_URL/book/_doc/9788374950978" | grep -q '村上春樹' && break
    sleep 0.2
done
curl -s "$ELASTICSEARCH_URL/book/_doc/9788374950978?filter_path=_source" | jq .

cat <<EOT

The daemon keeps running and follows every change. Try:
  . $DIR/env
  psql -d book -c "INSERT INTO book VALUES ('9780099448792', 'Norwegian Wood', 'A novel.')"
  curl -s "\$ELASTICSEARCH_URL/book/_doc/9780099448792?pretty"
Stop everything with: make demo-stop
EOT
