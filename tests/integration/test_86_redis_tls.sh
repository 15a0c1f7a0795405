#!/usr/bin/env bash
# Managed Redis over TLS (issue: rediss://, certificates, ACL users). Debian's
# redis-server serves TLS only (--port 0), with certificates made here by
# openssl. Every binary reaches it through rediss://: the load, the producer
# and the consumers sync end to end while Redis is killed -9 and restarted
# mid-workload, and the index converges exactly; the same with client
# certificates (--tls-auth-clients yes). Each bad setting gets a clear error
# naming it: an unknown CA, an expired certificate, a name that does not
# match, a plaintext server behind rediss://, a TLS-only server behind
# redis://, a wrong password; a daemon keeps retrying with /healthz 503 and
# the reason, and no password shows up in any log.
. "$(dirname "$0")/lib.sh"

WORK_SECONDS=${PGS_TLS_WORK_SECONDS:-6}
dir=$PGS_STACK_DIR/tls-$$
mkdir -p "$dir"
PW=tls-sekrit-$RANDOM$RANDOM

# --- certificates ----------------------------------------------------------------------------
(
    cd "$dir" && set -e
    ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
    openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj /CN=pgsync-test-ca
    openssl req -x509 $ec -keyout other-ca.key -out other-ca.pem -days 30 -subj /CN=other-ca
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    sign() { # NAME CN DAYS EXTFILE
        openssl req $ec -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$3" \
            -extfile "$4" -out "$1.pem"
    }
    sign server localhost 30 san.ext
    sign expired localhost -1 san.ext # valid until the day before it was made
    sign client pgsync-client 30 client.ext
) >"$dir/openssl.log" 2>&1 || {
    fail "tls: certificates made with openssl" "$(tail -3 "$dir/openssl.log")"
    exit 1
}

# --- TLS-only Redis servers -------------------------------------------------------------------
declare -A port=()
tls_start() { # NAME CERT AUTH_CLIENTS(yes|no)
    mkdir -p "$dir/$1"
    start_bg "redis_$1" redis-server --port 0 --tls-port "${port[$1]}" --bind 127.0.0.1 \
        --tls-cert-file "$dir/$2.pem" --tls-key-file "$dir/$2.key" \
        --tls-ca-cert-file "$dir/ca.pem" --tls-auth-clients "$3" --requirepass "$PW" \
        --appendonly yes --appendfsync always --save '' --dir "$dir/$1"
}
tls_q() { # NAME ARGS...: redis-cli over TLS, with the client certificate (harmless when unasked)
    REDISCLI_AUTH=$PW redis-cli --tls --cacert "$dir/ca.pem" --cert "$dir/client.pem" \
        --key "$dir/client.key" -h 127.0.0.1 -p "${port[$1]}" "${@:2}"
}
tls_up() { [ "$(tls_q "$1" PING 2>/dev/null)" = PONG ]; }
port[main]=$(free_port)
port[mtls]=$(free_port)
port[expired]=$(free_port)
tls_start main server no
tls_start mtls server yes
tls_start expired expired no
for n in main mtls; do
    wait_until 10 tls_up "$n" || fail "tls: redis $n answers over TLS" "no PONG"
done
if [ "$(redis-cli -h 127.0.0.1 -p "${port[main]}" PING 2>&1)" != PONG ]; then
    pass "tls: the server speaks TLS only (a plaintext PING gets no answer)"
else
    fail "tls: the server speaks TLS only" "plaintext PING answered"
fi

# every binary: TLS, the test CA, a host name checked against the certificate
export REDIS_URL="rediss://:$PW@localhost:${port[main]}/0" REDIS_TLS_CA_CERT=$dir/ca.pem
unset REDIS_SENTINELS REDIS_CLUSTER_NODES REDIS_AUTH
export PGSYNC_CLAIM_IDLE_MS=3000 PGSYNC_BLOCK_MS=200

# --- end to end over TLS, Redis killed -9 and restarted mid-workload ---------------------------
new_db tls >/dev/null
index=$(unique_name tls)
schema=$PGS_STACK_DIR/$index.json
log=$PGS_STACK_DIR/logs/tls_$index.log
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/chaos.json" >"$schema"
if psql_q <"$PGS_ROOT/tests/fixtures/chaos.sql" >/dev/null &&
    pgsync --config "$schema" --quiet >>"$log" 2>&1; then
    pass "tls: loaded over rediss://"
else
    fail "tls: loaded over rediss://" "$(tail -5 "$log")"
    exit 1
fi
pport=$(free_port) cport=$(free_port)
start_bg tp_$$ pgsync-producer --config "$schema" --metrics-port "$pport"
start_bg tc1_$$ pgsync-consumer --config "$schema" --name c1 --batch-size 50
start_bg tc2_$$ pgsync-consumer --config "$schema" --name c2 --batch-size 50 --metrics-port "$cport"
verify_clean() { pgsync-verify --config "$schema" --max-diffs 10 >"$log-verify.out" 2>&1; }
PGAPPNAME=tls_work psql_q "CALL chaos_workload(1000000, 0.4, 0.01)" >>"$log" 2>&1 &
work=$!
sleep $((WORK_SECONDS / 2))
kill9_bg redis_main
sleep 1
tls_start main server no
wait_until 10 tls_up main || fail "tls: redis restarts" "no PONG"
sleep $((WORK_SECONDS / 2))
psql_q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tls_work'" >/dev/null
wait "$work" 2>/dev/null
if wait_until 90 verify_clean; then
    pass "tls: the index converges exactly over TLS, Redis killed -9 and restarted mid-workload"
else
    fail "tls: the index converges exactly over TLS" "$(tail -5 "$log-verify.out")"
fi
alive=1
for n in tp_$$ tc1_$$ tc2_$$; do kill -0 "$(bg_pid "$n")" 2>/dev/null || alive=0; done
if [ "$alive" = 1 ]; then
    pass "tls: the producer and both consumers reconnected over TLS without exiting"
else
    fail "tls: the daemons reconnected without exiting" "one exited"
fi
if [ "$(tls_q main XLEN "pgsync:{$index}:changes")" -gt 0 ] 2>/dev/null; then
    pass "tls: the change stream lives on the TLS server"
else
    fail "tls: the change stream lives on the TLS server" "$(tls_q main XLEN "pgsync:{$index}:changes" 2>&1)"
fi

# --- the same with client certificates (mutual TLS) ---------------------------------------------
mtls_env=(REDIS_URL="rediss://:$PW@localhost:${port[mtls]}/0"
    REDIS_TLS_CERT="$dir/client.pem" REDIS_TLS_KEY="$dir/client.key")
new_db tlsm >/dev/null
mindex=$(unique_name tlsm)
mschema=$PGS_STACK_DIR/$mindex.json
jq --arg db "$PGDATABASE" --arg ix "$mindex" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/chaos.json" >"$mschema"
psql_q <"$PGS_ROOT/tests/fixtures/chaos.sql" >/dev/null
if env "${mtls_env[@]}" pgsync --config "$mschema" --quiet >>"$log" 2>&1; then
    pass "mtls: loaded with a client certificate"
else
    fail "mtls: loaded with a client certificate" "$(tail -5 "$log")"
fi
# exported, not on the command line: a password must not show in ps (nor in start_bg's log)
saved_url=$REDIS_URL
export "${mtls_env[@]}"
start_bg tmp_$$ pgsync-producer --config "$mschema"
start_bg tmc_$$ pgsync-consumer --config "$mschema" --name m1
export REDIS_URL=$saved_url
unset REDIS_TLS_CERT REDIS_TLS_KEY
PGAPPNAME=tlsm_work psql_q "CALL chaos_workload(300, 0.6, 0.01)" >>"$log" 2>&1
mverify() { env "${mtls_env[@]}" pgsync-verify --config "$mschema" --max-diffs 10 >"$log-mverify.out" 2>&1; }
if wait_until 60 mverify; then
    pass "mtls: the index converges exactly with client certificates"
else
    fail "mtls: the index converges exactly with client certificates" "$(tail -5 "$log-mverify.out")"
fi
stop_bg tmp_$$ >/dev/null 2>&1
stop_bg tmc_$$ >/dev/null 2>&1

# --- bad settings: a clear error naming the setting ---------------------------------------------
# bad NAME WANT ENV...: pgsync-queue fails, and its error says WANT
bad() {
    local name=$1 want=$2 out rc
    shift 2
    out=$(env REDIS_TIMEOUT_MS=1500 "$@" pgsync-queue --config "$schema" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ] && grep -qF -- "$want" <<<"$out" && ! grep -qF -- "$PW" <<<"$out"; then
        pass "bad: $name: $want"
    else
        fail "bad: $name" "exit $rc, want \"$want\": $out"
    fi
}
bad "a CA that did not sign the server's certificate" "set REDIS_TLS_CA_CERT" \
    REDIS_TLS_CA_CERT="$dir/other-ca.pem"
bad "an expired server certificate" "has expired" \
    REDIS_URL="rediss://:$PW@localhost:${port[expired]}/0"
bad "a host name the certificate does not hold" "REDIS_TLS_SERVER_NAME" \
    REDIS_TLS_SERVER_NAME=cache.example.com
bad "a plaintext server behind rediss://" "use redis://" \
    REDIS_URL="rediss://$REDIS_HOST:$REDIS_PORT/0"
bad "a TLS-only server behind redis://" "use rediss://" \
    REDIS_URL="redis://:$PW@127.0.0.1:${port[main]}/0" REDIS_TLS_CA_CERT=
bad "a CA file that does not exist" "REDIS_TLS_CA_CERT=$dir/nope.pem" \
    REDIS_TLS_CA_CERT="$dir/nope.pem"
bad "a wrong password" "check REDIS_USER and REDIS_AUTH" \
    REDIS_URL="rediss://:wrong-$PW@localhost:${port[main]}/0"
bad "no client certificate where the server asks for one" "REDIS_TLS_CERT" \
    REDIS_URL="rediss://:$PW@localhost:${port[mtls]}/0"
bad "certificates without TLS" "rediss://" REDIS_URL="redis://:$PW@127.0.0.1:${port[main]}/0"
# REDIS_TLS_VERIFY=none connects anyway, and says so
out=$(REDIS_TLS_CA_CERT="$dir/other-ca.pem" REDIS_TLS_VERIFY=none pgsync-queue --config "$schema" 2>&1)
if [ $? -eq 0 ] && grep -q 'REDIS_TLS_VERIFY=none' <<<"$out"; then
    pass "REDIS_TLS_VERIFY=none: connects without checking, with a warning"
else
    fail "REDIS_TLS_VERIFY=none: connects with a warning" "$out"
fi

# a daemon with a bad CA keeps retrying, /healthz 503 naming the setting; fixed, it goes on
bport=$(free_port)
start_bg tbad_$$ env REDIS_TLS_CA_CERT="$dir/other-ca.pem" pgsync-consumer --config "$schema" \
    --name bad --metrics-port "$bport"
healthz_says() { curl -s --max-time 5 "http://127.0.0.1:$bport/healthz" | grep -q -- "$1"; }
healthz_code() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$bport/healthz"; }
if wait_until 20 healthz_says REDIS_TLS_CA_CERT && [ "$(healthz_code)" = 503 ]; then
    sleep 3
    if kill -0 "$(bg_pid tbad_$$)" 2>/dev/null; then
        pass "a consumer with an untrusted CA keeps retrying, /healthz 503 naming REDIS_TLS_CA_CERT"
    else
        fail "a consumer with an untrusted CA keeps retrying" "it exited"
    fi
else
    fail "a consumer with an untrusted CA: /healthz 503 naming the setting" \
        "$(healthz_code) $(curl -s --max-time 5 "http://127.0.0.1:$bport/healthz")"
fi
stop_bg tbad_$$ >/dev/null 2>&1

for n in tp_$$ tc1_$$ tc2_$$; do stop_bg "$n" >/dev/null 2>&1; done
# no password in any log line of the product (the servers' own logs hold their command lines)
product_logs=("$log" "$PGS_STACK_DIR"/logs/t{p,c1,c2,mp,mc,bad}_$$.log)
if grep -lF -- "$PW" "${product_logs[@]}" >/dev/null 2>&1; then
    fail "tls: no Redis password in any log" "$(grep -lF -- "$PW" "${product_logs[@]}" | head -3)"
elif [ "$(cat "${product_logs[@]}" 2>/dev/null | wc -l)" -lt 20 ]; then
    fail "tls: no Redis password in any log" "the logs are missing"
else
    pass "tls: no Redis password in any log"
fi
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
env "${mtls_env[@]}" pgsync-bootstrap --config "$mschema" --teardown >/dev/null 2>&1 ||
    fail "teardown (mtls)" "pgsync-bootstrap --teardown failed"
