#!/usr/bin/env bash
# TLS (issue: reliability and security), against servers configured with
# certificates this test generates (openssl): a CA, a server certificate for
# "localhost" only (no IP address), a client certificate, and a second CA
# that signed nothing of ours.
# 1. PostgreSQL: a second, throwaway cluster with ssl=on whose pg_hba.conf
#    accepts TLS connections only (hostssl; hostnossl is rejected). The book
#    example loads and syncs through it with PG_SSLMODE=verify-full and
#    PG_SSLROOTCERT, and every connection of the daemons (the walsender too)
#    is encrypted (pg_stat_ssl); a wrong CA, a host name the certificate does
#    not name, and sslmode=disable are refused with libpq's reason.
# 2. The search engine: the test node speaks plain HTTP, so a TLS-terminating
#    proxy (stunnel) stands in front of it: what is tested is our client's TLS
#    (ELASTICSEARCH_CA_CERTS, ELASTICSEARCH_VERIFY_CERTS, host name checks,
#    ELASTICSEARCH_CLIENT_CERT/KEY against a proxy that requires a client
#    certificate signed by our CA), not the engine's own TLS.
. "$(dirname "$0")/lib.sh"
[ -z "${PGS_BIN:-}" ] || PATH=$PGS_BIN:$PATH

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=2000
tls=$PGS_STACK_DIR/tls.$$
mkdir -p "$tls"
chmod 755 "$tls"
log=$PGS_STACK_DIR/logs/tls.log

for tool in openssl stunnel4; do
    command -v "$tool" >/dev/null || command -v "${tool%4}" >/dev/null ||
        fail "TLS: $tool is installed" "apt-get install ${tool/openssl/openssl}"
done

# --- certificates ---------------------------------------------------------------------

mkcert() { # NAME CN SAN CA: key and certificate signed by CA
    openssl req -new -newkey rsa:2048 -nodes -keyout "$tls/$1.key" -subj "/CN=$2" \
        -out "$tls/$1.csr" 2>>"$log" &&
        printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$tls/$1.ext" &&
        openssl x509 -req -in "$tls/$1.csr" -CA "$tls/$4.crt" -CAkey "$tls/$4.key" -CAcreateserial \
            -days 2 -extfile "$tls/$1.ext" -out "$tls/$1.crt" 2>>"$log"
}
if openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgsync test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>>"$log" &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=some other CA" \
        -keyout "$tls/other.key" -out "$tls/other.crt" 2>>"$log" &&
    mkcert server localhost DNS:localhost ca &&
    mkcert client pgsync-client DNS:pgsync-client ca &&
    mkcert rogue pgsync-client DNS:pgsync-client other; then
    pass "TLS: certificates generated"
else
    fail "TLS: certificates generated" "see $log"
    exit 1
fi
chmod 644 "$tls"/*.crt
chmod 600 "$tls"/*.key


# run_tool BIN ARGS...: 90 s at most; output in $out, status in $rc
run_tool() {
    out=$(timeout -k 5 90 "$@" 2>&1 </dev/null)
    rc=$?
    { echo "--- $* (exit $rc)"; echo "$out"; } >>"$log"
}
refused() { # NAME REGEX: the last run_tool failed (not timed out) saying REGEX
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qiE -- "$2" <<<"$out"; then
        pass "$1"
    else
        fail "$1" "exit $rc: $(tail -c 300 <<<"$out")"
    fi
}

# --- 1. PostgreSQL with ssl=on ------------------------------------------------------------

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgdir=$tls/pg
pgport=$(free_port)
mkdir -p "$pgdir" "$tls/sock"
cp "$tls/server.crt" "$tls/server.key" "$tls/ca.crt" "$tls/sock/"
: >"$PGS_STACK_DIR/logs/tls_postgres.log"
[ "$(id -u)" = 0 ] && chown -R postgres: "$pgdir" "$tls/sock" "$PGS_STACK_DIR/logs/tls_postgres.log"
chmod 700 "$pgdir"
chmod 600 "$tls/sock/server.key"
if as_pg "$PG_BIN/initdb" -D "$pgdir" -U postgres -A trust -E UTF8 --no-locale --no-sync >>"$log" 2>&1; then
    cat >>"$pgdir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pgport
unix_socket_directories = '$tls/sock'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
timezone = 'UTC'
fsync = off
ssl = on
ssl_cert_file = '$tls/sock/server.crt'
ssl_key_file = '$tls/sock/server.key'
EOF
    cat >"$pgdir/pg_hba.conf" <<EOF
local      all          all                  trust
hostssl    all          all   127.0.0.1/32   trust
hostssl    replication  all   127.0.0.1/32   trust
hostnossl  all          all   127.0.0.1/32   reject
hostnossl  replication  all   127.0.0.1/32   reject
EOF
    as_pg "$PG_BIN/pg_ctl" -D "$pgdir" -l "$PGS_STACK_DIR/logs/tls_postgres.log" -w -t 60 start \
        >>"$log" 2>&1
    # lib.sh stops its background processes on any exit: this one stops the cluster then
    pgctl_stop="$PG_BIN/pg_ctl -D $pgdir -m immediate -w stop"
    [ "$(id -u)" = 0 ] && pgctl_stop="runuser -u postgres -- $pgctl_stop"
    start_bg tls_postgres_guard bash -c "trap '$pgctl_stop; exit 0' TERM; while :; do sleep 1; done"
fi
tls_pg_up() { "$PG_BIN/pg_isready" -q -h "$tls/sock" -p "$pgport"; }
if wait_until 30 tls_pg_up; then
    pass "TLS: a PostgreSQL with ssl=on and hostssl only"
else
    fail "TLS: a PostgreSQL with ssl=on and hostssl only" "see logs/tls_postgres.log"
    exit 1
fi
tpsql() { psql -XAtq -v ON_ERROR_STOP=1 -h "$tls/sock" -p "$pgport" -U postgres "$@"; }
tpsql -d postgres -c "CREATE DATABASE tlsbook" &&
    tpsql -d tlsbook -f "$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
index=$(unique_name tls_pg)
schema=$tls/pg.json
jq --arg ix "$index" '.[0].database = "tlsbook" | .[0].index = $ix' "$PGS_ROOT/schemas/book.json" >"$schema"

# the settings of the TLS server, for the binaries (unset: the stack's own)
PGTLS=(PG_HOST=localhost PG_PORT=$pgport PG_SSLMODE=verify-full PG_SSLROOTCERT=$tls/ca.crt)
run_tool env "${PGTLS[@]}" PG_SSLMODE=disable pgsync --config "$schema" --quiet
refused "TLS pg: sslmode=disable is refused by the server" 'pg_hba|no encryption|reject'
run_tool env "${PGTLS[@]}" PG_SSLROOTCERT="$tls/other.crt" pgsync-bootstrap --config "$schema"
refused "TLS pg: verify-full with the wrong CA is refused" 'certificate verify failed'
run_tool env "${PGTLS[@]}" PG_HOST=127.0.0.1 pgsync-bootstrap --config "$schema"
refused "TLS pg: verify-full to a host the certificate does not name is refused" \
    'does not match host name|server certificate for "localhost"'
run_tool env "${PGTLS[@]}" PG_SSLROOTCERT="$tls/nosuch.crt" pgsync-bootstrap --config "$schema"
refused "TLS pg: a missing root certificate file is named" 'nosuch\.crt|root certificate file'
check_eq "TLS pg: the refused attempts created nothing" 0 \
    "$(tpsql -d tlsbook -c "SELECT count(*) FROM pg_replication_slots")"
# a CA given and no sslmode: verify-full, so a host the certificate does not name is refused
run_tool env -u PG_SSLMODE -u PGSSLMODE PG_HOST=127.0.0.1 PG_PORT="$pgport" \
    PG_SSLROOTCERT="$tls/ca.crt" pgsync-bootstrap --config "$schema"
refused "TLS pg: PG_SSLROOTCERT without PG_SSLMODE means verify-full (host name checked)" \
    'does not match host name|server certificate for "localhost"'
run_tool env "${PGTLS[@]}" PG_HOST=127.0.0.1 PG_SSLMODE=verify-ca pgsync-bootstrap --config "$schema" \
    --log-level error
check_eq "TLS pg: verify-ca does not check the host name: bootstrap exit 0" 0 "$rc"
run_tool env "${PGTLS[@]}" pgsync --config "$schema" --quiet
check_eq "TLS pg: verify-full: the load exits 0" 0 "$rc"
check_eq "TLS pg: verify-full: the documents are indexed" \
    "9781471331435 9785811243570 9788374950978" "$(es_ids "$index" | tr '\n' ' ' | sed 's/ $//')"
start_bg tls_pg_producer env "${PGTLS[@]}" pgsync-producer --config "$schema"
start_bg tls_pg_consumer env "${PGTLS[@]}" pgsync-consumer --config "$schema"
tpsql -d tlsbook -c "UPDATE book SET title = 'Over TLS' WHERE isbn = '9781471331435'"
title_is() { [ "$(es_doc "$index" 9781471331435 | jq -r .title)" = "Over TLS" ]; }
if wait_until 30 title_is; then
    pass "TLS pg: verify-full: a change flows through the producer and the consumer"
else
    fail "TLS pg: verify-full: a change flows through the producer and the consumer" \
        "title $(es_doc "$index" 9781471331435 | jq -c .title)"
fi
check_eq "TLS pg: every connection of the daemons is encrypted (pg_stat_ssl), the walsender too" \
    "0 yes" "$(tpsql -d postgres -c "SELECT count(*) FILTER (WHERE NOT s.ssl),
        CASE WHEN count(*) FILTER (WHERE a.backend_type = 'walsender') > 0 THEN 'yes' ELSE 'no' END
        FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'pgsync%'" |
        tr '|' ' ')"
run_tool env "${PGTLS[@]}" pgsync-verify --config "$schema"
check_eq "TLS pg: pgsync-verify over verify-full: no drift" 0 "$rc"
stop_bg tls_pg_consumer
stop_bg tls_pg_producer
stop_bg tls_postgres_guard

# --- 2. the search engine behind a TLS proxy ------------------------------------------------

stunnel=$(command -v stunnel4 || command -v stunnel || true)
if [ -z "$stunnel" ]; then
    fail "TLS engine: stunnel is installed" "apt-get install stunnel4"
    exit 1
fi
p_tls=$(free_port)
p_mtls=$(free_port)
while [ "$p_mtls" = "$p_tls" ]; do p_mtls=$(free_port); done
engine_hostport=${ELASTICSEARCH_URL#http://}
cat >"$tls/stunnel.conf" <<EOF
foreground = yes
pid =
debug = 5
[engine-tls]
accept = 127.0.0.1:$p_tls
connect = $engine_hostport
cert = $tls/server.crt
key = $tls/server.key
[engine-mtls]
accept = 127.0.0.1:$p_mtls
connect = $engine_hostport
cert = $tls/server.crt
key = $tls/server.key
CAfile = $tls/ca.crt
verifyChain = yes
requireCert = yes
EOF
start_bg tls_stunnel_$$ "$stunnel" "$tls/stunnel.conf"
proxy_up() { curl -s --cacert "$tls/ca.crt" "https://localhost:$p_tls/" >/dev/null; }
if wait_until 20 proxy_up; then
    pass "TLS engine: stunnel terminates TLS in front of the engine"
else
    fail "TLS engine: stunnel terminates TLS in front of the engine" "see logs/tls_stunnel_$$.log"
    exit 1
fi

new_db tls_engine >/dev/null
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
eindex=$(unique_name tls_es)
eschema=$tls/es.json
jq --arg db "$PGDATABASE" --arg ix "$eindex" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$eschema"
TLSURL="https://localhost:$p_tls"
MTLSURL="https://localhost:$p_mtls"
run_tool env ELASTICSEARCH_URL="$TLSURL" pgsync --config "$eschema" --quiet
refused "TLS engine: no CA file: the engine's certificate is refused" 'certificate|SSL'
run_tool env ELASTICSEARCH_URL="$TLSURL" ELASTICSEARCH_CA_CERTS="$tls/other.crt" pgsync --config "$eschema" --quiet
refused "TLS engine: the wrong CA file: refused" 'certificate|SSL'
run_tool env ELASTICSEARCH_URL="https://127.0.0.1:$p_tls" ELASTICSEARCH_CA_CERTS="$tls/ca.crt" \
    pgsync --config "$eschema" --quiet
refused "TLS engine: a host name the certificate does not name: refused" \
    'certificate|SSL|does not match|subject'
run_tool env ELASTICSEARCH_URL="$MTLSURL" ELASTICSEARCH_CA_CERTS="$tls/ca.crt" pgsync --config "$eschema" --quiet
refused "TLS engine: no client certificate where one is required: refused" \
    'SSL|certificate|handshake|alert|reset|closed|no answer'
run_tool env ELASTICSEARCH_URL="$MTLSURL" ELASTICSEARCH_CA_CERTS="$tls/ca.crt" \
    ELASTICSEARCH_CLIENT_CERT="$tls/rogue.crt" ELASTICSEARCH_CLIENT_KEY="$tls/rogue.key" \
    pgsync --config "$eschema" --quiet
refused "TLS engine: a client certificate from another CA: refused" \
    'SSL|certificate|handshake|alert|reset|closed|no answer'
check_eq "TLS engine: the refused attempts wrote nothing" "" "$(es_ids "$eindex" 2>/dev/null | tr '\n' ' ')"

run_tool env ELASTICSEARCH_URL="$TLSURL" ELASTICSEARCH_VERIFY_CERTS=false pgsync --config "$eschema" --quiet
check_eq "TLS engine: ELASTICSEARCH_VERIFY_CERTS=false: the load exits 0" 0 "$rc"
run_tool env ELASTICSEARCH_URL="$TLSURL" ELASTICSEARCH_CA_CERTS="$tls/ca.crt" pgsync --config "$eschema" --quiet
check_eq "TLS engine: CA file: the load exits 0" 0 "$rc"
es_drop_index "$eindex" 2>/dev/null
MTLS=(ELASTICSEARCH_URL="$MTLSURL" ELASTICSEARCH_CA_CERTS="$tls/ca.crt"
    ELASTICSEARCH_CLIENT_CERT="$tls/client.crt" ELASTICSEARCH_CLIENT_KEY="$tls/client.key")
run_tool env "${MTLS[@]}" pgsync --config "$eschema" --quiet
check_eq "TLS engine: CA file and client certificate: the load exits 0" 0 "$rc"
check_eq "TLS engine: CA file and client certificate: the documents are indexed" \
    "9781471331435 9785811243570 9788374950978" "$(es_ids "$eindex" | tr '\n' ' ' | sed 's/ $//')"
start_bg tls_es_producer pgsync-producer --config "$eschema"
start_bg tls_es_consumer env "${MTLS[@]}" pgsync-consumer --config "$eschema"
psql_q "UPDATE book SET title = 'Through the proxy' WHERE isbn = '9781471331435'"
etitle_is() { [ "$(es_doc "$eindex" 9781471331435 | jq -r .title)" = "Through the proxy" ]; }
if wait_until 30 etitle_is; then
    pass "TLS engine: client certificate: a change flows through the consumer"
else
    fail "TLS engine: client certificate: a change flows through the consumer" \
        "title $(es_doc "$eindex" 9781471331435 | jq -c .title)"
fi
run_tool env "${MTLS[@]}" pgsync-verify --config "$eschema"
check_eq "TLS engine: pgsync-verify through the client-certificate proxy: no drift" 0 "$rc"
if grep -q "Service \[engine-mtls\] accepted connection" "$PGS_STACK_DIR/logs/tls_stunnel_$$.log"; then
    pass "TLS engine: the traffic went through the proxy"
else
    fail "TLS engine: the traffic went through the proxy" "no accepted connection in the stunnel log"
fi
stop_bg tls_es_consumer
stop_bg tls_es_producer
psql_q "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
        WHERE database = current_database() AND NOT active" >/dev/null
