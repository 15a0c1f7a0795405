#!/usr/bin/env bash
# Least privilege in Redis (issue #23): the ACL rule of scripts/redis-acl.txt
# is all pgsync-c needs. The rule lists exactly the commands the sources send
# (no more, no fewer); on a private redis-server whose default user is off, a
# user with exactly that rule runs the load, a producer, a consumer, a
# workload, pgsync-verify, -queue, -replay and -dlq, and Redis denies it
# nothing (ACL LOG). A user without XADD: the producer says NOPERM and xadd,
# keeps retrying without confirming the WAL (/healthz 503), and catches up
# once the user gets XADD. A wrong password: the daemons keep retrying with
# /healthz 503 naming REDIS_AUTH (the password may be fixed on the server),
# pgsync-queue stops naming REDIS_URL, and no password is ever logged.
. "$(dirname "$0")/lib.sh"

export PGSYNC_BLOCK_MS=200 PGSYNC_CLAIM_IDLE_MS=2000
dir=$PGS_STACK_DIR/acl-$$
log=$PGS_STACK_DIR/logs/acl_$$.log
mkdir -p "$dir"
secret() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }

# --- 1. the rule against the sources -------------------------------------------------------
# the rule's words (read -a: no pathname expansion of ~pgsync:*)
read -ra RULE <<<"$(grep -v '^#' "$PGS_ROOT/scripts/redis-acl.txt" | tr '\n' ' ')"
allowed=$(printf '%s\n' "${RULE[@]}" | sed -n 's/^+//p' | LC_ALL=C sort -u)
# Every command the sources send, by the ways they spell one: a format string
# (redis_command, redisCommand, redisFormatCommand, redisAppendCommand), an
# argv ({"XADD", ...}, argv[0] = "XADD") or redis.call('HGET', ...) in a
# script. Subcommands as ACL names them (xgroup|create); AUTH is open to
# every user and SENTINEL goes to the sentinels, not to this user.
spelled='redis_command(_argv)?\([^,]+, *[^,]+, *"|redisCommand\([^,]+, *"'
spelled+='|redisFormatCommand\(&buf, *"|redisAppendCommand\([^,]+, *"|bare_command\([^,]+, *"'
spelled+="|argv\\[0\\] = \"|\\{ *\"|redis\\.call\\('|redis\\.call, '"
# (in a script a subcommand is an argument of its own: redis.call('XGROUP', 'CREATE', ...))
sent=$(grep -ohE "($spelled)[A-Z][A-Z]+(( |', ')[A-Za-z]+)?" "$PGS_ROOT"/common/io/{redis,rstream,rstate}.c "$PGS_ROOT"/common/routes.c |
    sed -E "s/', '/ /; s/.*[\"'{] *//" | tr 'A-Z' 'a-z' |
    awk '$1 ~ /^(xgroup|xinfo|cluster)$/ { print $1 "|" $2; next } { print $1 }' |
    grep -vxE 'auth|sentinel' | LC_ALL=C sort -u)
if [ "$(wc -l <<<"$sent")" -ge 30 ]; then
    pass "rule: $(wc -l <<<"$sent") commands found in common/io/{redis,rstream,rstate}.c and common/routes.c"
else
    fail "rule: the commands of common/io/{redis,rstream,rstate}.c and common/routes.c found" "only: $(echo $sent)"
fi
check_eq "rule: every command the sources send is allowed" "" \
    "$(LC_ALL=C comm -23 <(echo "$sent") <(echo "$allowed") | xargs)"
check_eq "rule: nothing is allowed that the sources do not send" "" \
    "$(LC_ALL=C comm -13 <(echo "$sent") <(echo "$allowed") | xargs)"
# README quotes the rule: once it does, the quote must be the rule
if grep -q -- '-@all +xadd' "$PGS_ROOT/README.md"; then
    if grep -qF -- "${RULE[*]}" "$PGS_ROOT/README.md"; then
        pass "rule: README.md quotes scripts/redis-acl.txt"
    else
        fail "rule: README.md quotes scripts/redis-acl.txt" "README's rule differs from the file's"
    fi
fi

# --- 2. a private Redis: an admin, the default user off, the product's user ------------------
port=$(free_port)
start_bg "acl_redis_$$" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
    --appendonly no
wait_until 10 eval '[ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ]' ||
    { fail "acl: the private redis-server starts" "no PONG"; exit 1; }
admin_pw=$(secret) pw1=$(secret) pw2=$(secret)
redis-cli -p "$port" ACL SETUSER admin on ">$admin_pw" '~*' '&*' +@all >/dev/null
redis-cli -p "$port" ACL SETUSER default off resetpass >/dev/null
adm() { REDISCLI_AUTH=$admin_pw redis-cli -p "$port" --user admin "$@"; }
u1=pgsync_$$
check_eq "acl: the user takes the rule" OK "$(adm ACL SETUSER "$u1" reset on ">$pw1" "${RULE[@]}")"
if [[ "$(redis-cli -p "$port" PING 2>&1)" == *NOAUTH* ]]; then
    pass "acl: the default user is off (nothing silently uses it)"
else
    fail "acl: the default user is off" "$(redis-cli -p "$port" PING 2>&1)"
fi
denied() { [[ "$(adm ACL DRYRUN "$u1" "$@" 2>&1)" == *"no permissions"* ]]; }
n_denied=0
for c in "SET pgsync:{x}:meta 1" "XADD other * a b" "KEYS *" "FLUSHALL" "CONFIG GET *" \
    "XGROUP DESTROY pgsync:{x}:changes pgsync" "CLUSTER RESET" "SUBSCRIBE pgsync:x"; do
    read -ra words <<<"$c"
    denied "${words[@]}" && n_denied=$((n_denied + 1))
done
check_eq "acl: the user may not SET, touch other keys, KEYS, FLUSHALL, CONFIG, ..." 8 "$n_denied"

export REDIS_HOST=127.0.0.1 REDIS_PORT=$port REDIS_USER=$u1 REDIS_AUTH=$pw1 REDIS_DB=0
unset REDIS_URL REDIS_SENTINELS REDIS_CLUSTER_NODES

# --- 3. end to end as that user --------------------------------------------------------------
new_db redis_acl >/dev/null
index=$(unique_name redis_acl)
slot=pgsync_${PGDATABASE}
stream="pgsync:{$index}:changes"
schema=$PGS_STACK_DIR/$index.json
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
psql_q <"$PGS_ROOT/tests/fixtures/book_workload.sql" >/dev/null
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"
run() { # BIN ARGS...: output in $out, status in $rc
    out=$(timeout -k 5 60 "$@" 2>&1 </dev/null)
    rc=$?
    { echo "--- $* (exit $rc)"; echo "$out"; } >>"$log"
}
run pgsync --config "$schema" --quiet
check_eq "as the ACL user: the load exits 0" 0 "$rc" || echo "    $(tail -c 400 <<<"$out")"
check_eq "as the ACL user: the load gives the three books" \
    "9781471331435 9785811243570 9788374950978" "$(es_ids "$index" | xargs)"

start_bg "acl_producer_$$" pgsync-producer --config "$schema"
start_bg "acl_consumer_$$" pgsync-consumer --config "$schema" --batch-size 25
caught_up() {
    [ "$(psql_q "SELECT confirmed_flush_lsn >= pg_current_wal_lsn() FROM pg_replication_slots
                 WHERE slot_name = '$slot'")" = t ]
}
drained() {
    [ "$(adm XPENDING "$stream" pgsync | head -1)" = 0 ] &&
        [ "$(adm XINFO GROUPS "$stream" | awk 'f { print; exit } /last-delivered-id/ { f = 1 }')" = \
            "$(adm XINFO STREAM "$stream" | awk 'f { print; exit } /last-generated-id/ { f = 1 }')" ]
}
verify_clean() { run pgsync-verify --config "$schema" --max-diffs 10 && [ "$rc" = 0 ]; }
alive() { kill -0 "$(bg_pid "$1")" 2>/dev/null; }
psql_q "CALL book_workload(300, 0.87)" || fail "the workload runs" "psql failed"
if wait_until 30 caught_up && wait_until 30 drained; then
    pass "as the ACL user: the producer and the consumer follow the workload"
else
    fail "as the ACL user: the producer and the consumer follow the workload" "not drained"
fi
if verify_clean; then
    pass "as the ACL user: pgsync-verify finds no drift"
else
    fail "as the ACL user: pgsync-verify finds no drift" "$(tail -c 400 <<<"$out")"
fi
run pgsync-queue --config "$schema" --json
check_eq "as the ACL user: pgsync-queue --json (XINFO, XPENDING, TIME, INFO)" "0 $u1 master" \
    "$rc $REDIS_USER $(jq -r '.redis.role' <<<"$out" 2>/dev/null)"
first=$(adm XRANGE "$stream" - + COUNT 1 | head -1)
run pgsync-replay --config "$schema" --from "$first"
check_eq "as the ACL user: pgsync-replay moves the group back (XGROUP SETID)" 0 "$rc"
run pgsync-dlq --config "$schema" list --json
check_eq "as the ACL user: pgsync-dlq list" "0 0" "$rc $(jq length <<<"$out" 2>/dev/null)"
run pgsync-dlq --config "$schema" purge --yes
check_eq "as the ACL user: pgsync-dlq purge (DEL)" 0 "$rc"
if wait_until 30 drained && verify_clean; then
    pass "as the ACL user: the replayed stream is consumed again, no drift"
else
    fail "as the ACL user: the replayed stream is consumed again, no drift" "$(tail -c 400 <<<"$out")"
fi
for p in "acl_producer_$$" "acl_consumer_$$"; do
    alive "$p" && pass "as the ACL user: ${p%_*} still running" ||
        fail "as the ACL user: ${p%_*} still running" "it exited"
done
# what the run above did not send (a version switch, a trim, pgsync-dlq delete,
# WAIT, REDIS_DB, Sentinel, Cluster), as Redis would judge it for this user
refused=
for c in MULTI EXEC "XTRIM $stream MINID 0" "XDEL $stream 0-1" "XREVRANGE $stream + - COUNT 1" \
    "WAIT 1 1000" "SELECT 1" ROLE "CLUSTER SLOTS" ASKING; do
    read -ra words <<<"$c"
    [ "$(adm ACL DRYRUN "$u1" "${words[@]}" 2>&1)" = OK ] || refused+="$c; "
done
check_eq "as the ACL user: allowed what the run did not send (MULTI, XTRIM, WAIT, ROLE, ...)" "" \
    "$refused"
echo "commands run: $(adm INFO commandstats | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\).*/\1=\2/p' | xargs)" >>"$log"
stop_bg "acl_producer_$$"

# --- 4. a user without XADD: the producer says so, retries, catches up once allowed ----------
u2=pgsync_noxadd_$$
rule2=()
for w in "${RULE[@]}"; do [ "$w" = +xadd ] || rule2+=("$w"); done
check_eq "no XADD: the second user takes the rule without +xadd" OK \
    "$(adm ACL SETUSER "$u2" reset on ">$pw2" "${rule2[@]}")"
mport=$(free_port)
plog=$PGS_STACK_DIR/logs/acl_noxadd_$$.log
# through the environment: start_bg writes its command line to the log
REDIS_USER=$u2 REDIS_AUTH=$pw2
start_bg "acl_noxadd_$$" pgsync-producer --config "$schema" --metrics-port "$mport"
REDIS_USER=$u1 REDIS_AUTH=$pw1
psql_q "INSERT INTO book VALUES ('acl-1', 'written while XADD is denied', NULL)"
if wait_until 20 grep -q NOPERM "$plog"; then
    line=$(grep -m1 NOPERM "$plog")
    echo "    the producer says: $line"
    if grep -qi xadd <<<"$line"; then
        pass "no XADD: the producer's error says NOPERM and names xadd"
    else
        fail "no XADD: the producer's error names xadd" "$line"
    fi
else
    fail "no XADD: the producer reports NOPERM" "$(tail -3 "$plog")"
fi
sleep 2
alive "acl_noxadd_$$" && pass "no XADD: the producer keeps running (retrying)" ||
    fail "no XADD: the producer keeps running" "it exited"
caught_up && fail "no XADD: nothing is confirmed to PostgreSQL" "the slot caught up" ||
    pass "no XADD: nothing is confirmed to PostgreSQL"
code=$(curl -s -o "$dir/healthz" --max-time 5 -w '%{http_code}' "http://127.0.0.1:$mport/healthz")
echo "    /healthz: $code $(cat "$dir/healthz")"
check_eq "no XADD: /healthz is 503" 503 "$code"
if grep -q 'Redis refuses the records' "$dir/healthz" && grep -qi xadd "$dir/healthz"; then
    pass "no XADD: /healthz says Redis refuses the records, naming XADD"
else
    fail "no XADD: /healthz says Redis refuses the records" "$(cat "$dir/healthz")"
fi
check_eq "no XADD: the grant is in place" OK "$(adm ACL SETUSER "$u2" +xadd)"
if wait_until 30 caught_up && wait_until 30 drained && verify_clean; then
    pass "no XADD: once granted, the producer catches up and nothing is lost (verify clean)"
else
    fail "no XADD: once granted, the producer catches up" "$(tail -c 400 <<<"$out")"
fi
check_eq "no XADD: the row written while denied is indexed" "written while XADD is denied" \
    "$(es_doc "$index" acl-1 | jq -r .title)"
alive "acl_noxadd_$$" && pass "no XADD: the producer never exited" ||
    fail "no XADD: the producer never exited" "it exited"
stop_bg "acl_noxadd_$$"

# --- 5. a wrong password: daemons retry with /healthz 503, names REDIS_AUTH, never logged -------
bad=wrong$(secret)
wlog=$PGS_STACK_DIR/logs/acl_wrongpw_$$.log
for bin in pgsync-producer pgsync-consumer; do
    mport=$(free_port)
    # the password through the environment: start_bg logs its command line
    REDIS_AUTH=$bad start_bg "acl_wrong_${bin}_$$" "$bin" --config "$schema" --metrics-port "$mport"
    says_auth() { curl -s --max-time 5 "http://127.0.0.1:$mport/healthz" | grep -q REDIS_AUTH; }
    code=
    if wait_until 20 says_auth; then
        code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$mport/healthz")
    fi
    sleep 1
    if [ "$code" = 503 ] && alive "acl_wrong_${bin}_$$"; then
        pass "wrong password: $bin keeps retrying, /healthz 503 naming REDIS_AUTH"
    else
        fail "wrong password: $bin keeps retrying, /healthz 503 naming REDIS_AUTH" \
            "code ${code:-none}: $(curl -s --max-time 5 "http://127.0.0.1:$mport/healthz")"
    fi
    stop_bg "acl_wrong_${bin}_$$" >/dev/null 2>&1
    cat "$PGS_STACK_DIR/logs/acl_wrong_${bin}_$$.log" >>"$wlog"
done
out=$(REDIS_URL="redis://$u1:$bad@127.0.0.1:$port/0" timeout -k 5 30 pgsync-queue --config "$schema" 2>&1)
rc=$?
{ echo "--- pgsync-queue with a wrong password in REDIS_URL (exit $rc)"; echo "$out"; } >>"$wlog"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q REDIS_URL <<<"$out"; then
    pass "wrong password in REDIS_URL: pgsync-queue exits ($rc) naming REDIS_URL"
else
    fail "wrong password in REDIS_URL: pgsync-queue exits naming REDIS_URL" "exit $rc: ${out:0:300}"
fi
echo "    $(grep -m1 REDIS_AUTH "$wlog")"
leaks=$(grep -lF -e "$bad" -e "$pw1" -e "$pw2" -e "$admin_pw" "$PGS_STACK_DIR"/logs/*.log 2>/dev/null)
check_eq "no password appears in any log" "" "$leaks"

# --- 6. Redis refused the ACL user nothing all along ------------------------------------------
stop_bg "acl_consumer_$$"
# ACL LOG: every command or key Redis refused, per user (but failed AUTHs: step 5's)
refusals() {
    adm ACL LOG 200 | awk -v u="$1" 'p == "reason" { r = $0 } p == "object" { o = $0 }
        p == "username" && $0 == u && r != "auth" { print r " " o } { p = $0 }'
}
check_eq "no XADD: Redis logged the refused xadd" "command xadd" "$(refusals "$u2" | sort -u | xargs)"
check_eq "as the ACL user: Redis refused nothing, from the load to the end (ACL LOG)" "" \
    "$(refusals "$u1" | xargs)"
pgsync-bootstrap --config "$schema" --teardown >>"$log" 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
