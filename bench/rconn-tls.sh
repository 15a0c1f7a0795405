#!/usr/bin/env bash
# bench/rconn-tls.sh - what TLS costs an rconn connection: one redis-server
# with a plaintext and a TLS port (a throwaway CA and certificate), and
# bench/rconn-tls.c measuring PING pipelined by 100 and single SETs on each,
# alternating; prints commands/s side by side and the TLS/plain ratios.
#
#   bench/rconn-tls.sh [SECONDS_PER_ROUND [ROUNDS]]    (defaults 1 and 5)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build/rel}
OUT=$(mktemp -d /tmp/pgs-rconn-bench-XXXXXX)
cleanup() {
    [ -z "${SERVER_PID:-}" ] || kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$OUT"
}
trap cleanup EXIT

make -C "$ROOT" -s "$BUILD/libpgsync.a" >/dev/null
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -I"$ROOT/common" -I"$ROOT/common/util" -I"$ROOT/common/io" \
    $(pkg-config --cflags hiredis openssl) -o "$OUT/rconn-tls" "$ROOT/bench/rconn-tls.c" \
    "$ROOT/$BUILD/libpgsync.a" $(pkg-config --libs libpq hiredis jansson libcurl openssl) \
    -lev -lz -lm -pthread

cd "$OUT"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
{
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=localhost
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile san.ext -out server.pem
} >openssl.log 2>&1

free_port() {
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}
PORT=$(free_port 26379)
TLS_PORT=$(free_port $((PORT + 1)))
redis-server --port "$PORT" --tls-port "$TLS_PORT" --bind 127.0.0.1 --dir "$OUT" \
    --tls-cert-file server.pem --tls-key-file server.key --tls-ca-cert-file ca.pem \
    --tls-auth-clients no --save "" --appendonly no --daemonize no >redis.log 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null && break
    sleep 0.05
done

echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(openssl version |
    cut -d' ' -f1-2), $(nproc) CPUs, loopback"
"$OUT/rconn-tls" "$PORT" "$TLS_PORT" "$OUT/ca.pem" "${1:-1}" "${2:-5}"
