#!/usr/bin/env bash
# A throwaway test stack on free loopback ports: PostgreSQL 15 (logical
# decoding on), Redis 7 and a search engine (OpenSearch 2.19.1 by default,
# Elasticsearch 7.10.2 with PGS_ENGINE=elasticsearch), all inside one folder.
# Several stacks can run side by side; nothing already running is touched.
#
#   scripts/stack.sh start DIR          start all three in DIR, write DIR/env
#   scripts/stack.sh stop DIR           stop everything started in DIR
#   scripts/stack.sh env DIR            print DIR/env (export lines)
#   scripts/stack.sh restart-pg DIR [fast|immediate]
#   scripts/stack.sh restart-redis DIR [term|kill]
#   scripts/stack.sh restart-engine DIR [term|kill]
#   scripts/stack.sh stop-engine DIR [term|kill] / start-engine DIR
#   scripts/stack.sh fetch [opensearch|elasticsearch]   fetch the engine jars only
#
# Environment: PGS_ENGINE (opensearch|elasticsearch), PGS_CACHE (jar cache,
# default ~/.cache/pgsync-c), PGS_ENGINE_TIMEOUT (seconds, default 120),
# PGS_JAVA (java binary), PGS_STACK_OWNER_PID (stop the stack when that
# process dies, so that even a SIGKILLed test run leaves nothing behind).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(dirname "$(dirname "$SELF")")
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
CACHE=${PGS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/pgsync-c}
PORTS_DIR=${PGS_PORTS_DIR:-/tmp/pgsync-c-ports}
ENGINE_TIMEOUT=${PGS_ENGINE_TIMEOUT:-120}

die() {
    echo "stack.sh: error: $*" >&2
    exit 1
}

note() {
    echo "stack.sh: $*" >&2
}

# die_log LOG MESSAGE...: fail, showing the end of the server's log.
die_log() {
    local log=$1
    shift
    echo "stack.sh: error: $*" >&2
    if [ -s "$log" ]; then
        echo "---- last 40 lines of $log ----" >&2
        tail -n 40 "$log" >&2
        echo "----" >&2
    fi
    exit 1
}

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# --- ports -------------------------------------------------------------------
# A port is taken when anything listens on it (ss) or accepts a connection.
# Ports we hand out are also reserved in PORTS_DIR, under a lock, so that two
# stacks starting at the same moment never pick the same one before binding.

port_in_use() {
    if command -v ss >/dev/null && ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then
        return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A reservation is alive while its owner folder still lists the port.
port_reserved() {
    local f=$PORTS_DIR/$1 owner
    [ -f "$f" ] || return 1
    owner=$(cat "$f" 2>/dev/null) || return 1
    [ -n "$owner" ] && grep -qx "$1" "$owner/.ports" 2>/dev/null
}

# pick_port LO HI: print a free, unreserved port in [LO, HI] and reserve it
# for DIR. Call with the PORTS_DIR lock held.
pick_port() {
    local lo=$1 hi=$2 p try
    for try in $(seq 1 300); do
        p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
        port_reserved "$p" && continue
        port_in_use "$p" && continue
        # (a stale reservation of another user cannot be overwritten)
        { echo "$DIR" >"$PORTS_DIR/$p"; } 2>/dev/null || continue
        echo "$p" >>"$DIR/.ports"
        echo "$p"
        return 0
    done
    return 1
}

# Prints "PG REDIS HTTP TRANSPORT". Our own ports come from below the kernel's
# ephemeral range, so outgoing connections cannot take them before we bind.
# The engine's HTTP port must be in 9201-9299: the runner refuses others.
reserve_ports() {
    local eph_lo
    eph_lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$eph_lo" -gt 21000 ] || eph_lo=32768
    mkdir -p "$PORTS_DIR"
    # Shared by every user's stacks; flock works on a read-only descriptor.
    chmod 1777 "$PORTS_DIR" 2>/dev/null || true
    [ -e "$PORTS_DIR/.lock" ] || : >"$PORTS_DIR/.lock"
    (
        flock -w 60 9 || die "could not lock $PORTS_DIR/.lock"
        echo "$(pick_port 20000 $((eph_lo - 1)))" \
            "$(pick_port 20000 $((eph_lo - 1)))" \
            "$(pick_port 9201 9299)" \
            "$(pick_port 20000 $((eph_lo - 1)))"
    ) 9<"$PORTS_DIR/.lock"
}

release_ports() {
    local p
    [ -f "$DIR/.ports" ] || return 0
    (
        flock -w 60 9 || exit 0
        while read -r p; do
            [ "$(cat "$PORTS_DIR/$p" 2>/dev/null)" = "$DIR" ] && rm -f "$PORTS_DIR/$p"
        done <"$DIR/.ports"
        rm -f "$DIR/.ports"
    ) 9<"$PORTS_DIR/.lock"
}

# --- processes -----------------------------------------------------------------

# pid_matches PID TEXT: PID is alive and its command line contains TEXT, so a
# recycled pid never gets a signal from us.
pid_matches() {
    [ -n "${1:-}" ] && [ -r "/proc/$1/cmdline" ] &&
        tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop_pid PID TEXT SIGNAL SECONDS: send SIGNAL, then SIGKILL after SECONDS.
stop_pid() {
    local pid=$1 text=$2 sig=$3 secs=$4 i
    pid_matches "$pid" "$text" || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 5; i++)); do
        pid_matches "$pid" "$text" || return 0
        sleep 0.2
    done
    note "pid $pid ($text) ignored SIG$sig for ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_matches "$pid" "$text" || return 0
        sleep 0.2
    done
    note "pid $pid ($text) still alive after SIGKILL"
}

# as_pg CMD...: PostgreSQL refuses to run as root; use the postgres account.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# --- state -------------------------------------------------------------------

load_env() {
    [ -f "$DIR/env" ] || die "$DIR/env not found: no stack was started in $DIR"
    # shellcheck disable=SC1091
    . "$DIR/env"
    ENGINE=$PGS_ENGINE
}

write_env() {
    local tmp=$DIR/env.tmp
    local os=false
    [ "$ENGINE" = opensearch ] && os=true
    cat >"$tmp" <<EOF
# Test stack in $DIR ($ENGINE), written by scripts/stack.sh.
export PGS_STACK_DIR='$DIR'
export PGS_ENGINE=$ENGINE
export OPENSEARCH=$os
export PG_HOST=127.0.0.1
export PG_PORT=$PG_PORT
export PG_USER=postgres
export PG_PASSWORD=''
export PG_BIN='$PG_BIN'
export PGHOST=127.0.0.1
export PGPORT=$PG_PORT
export PGUSER=postgres
export REDIS_HOST=127.0.0.1
export REDIS_PORT=$REDIS_PORT
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export ELASTICSEARCH_SCHEME=http
export ELASTICSEARCH_HOST=127.0.0.1
export ELASTICSEARCH_PORT=$ENGINE_HTTP_PORT
export ELASTICSEARCH_URL=http://127.0.0.1:$ENGINE_HTTP_PORT
export ENGINE_HTTP_PORT=$ENGINE_HTTP_PORT
export ENGINE_TRANSPORT_PORT=$ENGINE_TRANSPORT_PORT
export ENGINE_CLUSTER=$ENGINE_CLUSTER
export PG_PID=${PG_PID:-}
export REDIS_PID=${REDIS_PID:-}
export ENGINE_PID=${ENGINE_PID:-}
export STACK_WATCH_PID=${STACK_WATCH_PID:-}
EOF
    mv "$tmp" "$DIR/env"
}

# --- the search engine ---------------------------------------------------------

engine_setup() {
    case "$ENGINE" in
    opensearch)
        ENGINE_NAME=opensearch-2.19.1.0
        ENGINE_CLASS=org.codelibs.opensearch.runner.OpenSearchRunner
        ENGINE_YML=opensearch.yml
        ;;
    elasticsearch)
        ENGINE_NAME=elasticsearch-7.10.2.0
        ENGINE_CLASS=org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner
        ENGINE_YML=elasticsearch.yml
        ;;
    *) die "PGS_ENGINE=$ENGINE: expected opensearch or elasticsearch" ;;
    esac
    ENGINE_LIB=$CACHE/$ENGINE_NAME/lib
}

# Fetch the runner and its jars once into the cache; later runs reuse them
# without asking Maven anything. The lock keeps two first runs from racing.
engine_fetch() {
    local pom=$ROOT/scripts/maven/$ENGINE/pom.xml t0 tmp log
    [ -f "$ENGINE_LIB/.complete" ] && return 0
    command -v mvn >/dev/null || die "mvn not found: install maven (apt-get install maven)"
    [ -f "$pom" ] || die "$pom not found"
    mkdir -p "$CACHE"
    (
        flock -w 900 9 || die "could not lock $CACHE/$ENGINE_NAME.lock"
        [ -f "$ENGINE_LIB/.complete" ] && exit 0
        t0=$(now_ms)
        tmp=$ENGINE_LIB.tmp.$$
        log=$CACHE/$ENGINE_NAME.fetch.log
        note "fetching $ENGINE_NAME jars from Maven Central into $ENGINE_LIB"
        rm -rf "$tmp"
        if ! mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" >"$log" 2>&1 </dev/null; then
            rm -rf "$tmp"
            die_log "$log" "mvn could not fetch $ENGINE_NAME (pom: $pom)"
        fi
        touch "$tmp/.complete"
        rm -rf "$ENGINE_LIB"
        mv "$tmp" "$ENGINE_LIB"
        note "fetched $(ls "$ENGINE_LIB" | wc -l) jars in $(($(now_ms) - t0)) ms"
    ) 9>>"$CACHE/$ENGINE_NAME.lock"
}

java_bin() {
    local j
    if [ -n "${PGS_JAVA:-}" ]; then
        echo "$PGS_JAVA"
        return
    fi
    # Both runners are checked on JDK 17; a newer default JDK may not work.
    for j in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
        [ -x "$j" ] && {
            echo "$j"
            return
        }
    done
    command -v java || die "java not found: install openjdk-17-jdk-headless"
}

# Launches the JVM in its own session (a Ctrl-C meant for the test run reaches
# us, and we stop it in order). Does not wait; see engine_wait.
engine_launch() {
    local base=$DIR/engine conf java
    conf=$base/node_1/config
    java=$(java_bin)
    mkdir -p "$conf"
    # The runner keeps an existing config file. Without single-node discovery
    # and our own transport port, the node would join any other node on
    # 9300-9305 and die with it.
    if [ ! -f "$conf/$ENGINE_YML" ]; then
        cat >"$conf/$ENGINE_YML" <<EOF
cluster.name: $ENGINE_CLUSTER
discovery.type: single-node
network.host: 127.0.0.1
transport.port: $ENGINE_TRANSPORT_PORT
cluster.routing.allocation.disk.threshold_enabled: false
EOF
    fi
    ENGINE_LOG_FROM=$(($(wc -l 2>/dev/null <"$DIR/logs/engine.log" || echo 0) + 1))
    # The runner takes the first free port after -baseHttpPort.
    setsid "$java" -Xms512m -Xmx1g ${PGS_ENGINE_JAVA_OPTS:-} -cp "$ENGINE_LIB/*" "$ENGINE_CLASS" \
        -basePath "$base" -numOfNode 1 -baseHttpPort $((ENGINE_HTTP_PORT - 1)) \
        -clusterName "$ENGINE_CLUSTER" >>"$DIR/logs/engine.log" 2>&1 </dev/null &
    ENGINE_PID=$!
    ENGINE_DEADLINE=$((SECONDS + ENGINE_TIMEOUT))
}

engine_wait() {
    local log=$DIR/logs/engine.log deadline=$ENGINE_DEADLINE port code health
    while :; do
        # Our own child: until it has exec'ed java its command line is still
        # this script's, so ask whether it lives, not what it runs.
        kill -0 "$ENGINE_PID" 2>/dev/null ||
            die_log "$log" "$ENGINE did not start (the JVM exited)"
        port=$(tail -n +"$ENGINE_LOG_FROM" "$log" | grep -m1 -oE 'HTTP Port: *[0-9]+' |
            grep -oE '[0-9]+$' || true)
        if [ -n "$port" ] && [ "$port" != "$ENGINE_HTTP_PORT" ]; then
            if [ -n "${ENGINE_PORT_FIXED:-}" ]; then
                die_log "$log" "$ENGINE came back on port $port, not $ENGINE_HTTP_PORT (port taken?)"
            fi
            ENGINE_HTTP_PORT=$port
        fi
        if [ -n "$port" ]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
                "http://127.0.0.1:$port/" 2>/dev/null || true)
            if [ "$code" = 200 ]; then
                health=$(curl -s --max-time 10 \
                    "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=5s" |
                    jq -r '.status // empty' 2>/dev/null || true)
                [ "$health" = green ] || [ "$health" = yellow ] && return 0
            fi
        fi
        [ "$SECONDS" -lt "$deadline" ] ||
            die_log "$log" "$ENGINE did not answer on port ${port:-?} within ${ENGINE_TIMEOUT}s of its launch"
        sleep 0.5
    done
}

engine_stop() {
    local sig=TERM
    [ "${1:-term}" = kill ] && sig=KILL
    # Node close waits up to 10 s for itself; give it a little more.
    stop_pid "${ENGINE_PID:-}" "$DIR/engine" "$sig" 15
}

# --- PostgreSQL ------------------------------------------------------------------

pg_init() {
    local data=$DIR/pg sock=$DIR/pgsock
    [ ${#sock} -le 80 ] || die "$DIR is too long a path for a unix socket folder; use a shorter one"
    mkdir -p "$data" "$sock"
    touch "$DIR/logs/postgres.log"
    chmod 700 "$data"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "no postgres account: install postgresql-15"
        chown postgres: "$data" "$sock" "$DIR/logs/postgres.log"
        as_pg test -w "$data" ||
            die "the postgres account cannot write $data: make $DIR and its parents reachable (chmod 755)"
    fi
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
        >"$DIR/logs/initdb.log" 2>&1 || die_log "$DIR/logs/initdb.log" "initdb failed in $data"
    cat >>"$data/postgresql.conf" <<EOF

# --- test stack (scripts/stack.sh) ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
wal_level = logical
max_replication_slots = 200
max_wal_senders = 200
timezone = 'UTC'
log_timezone = 'UTC'
fsync = off
full_page_writes = off
EOF
    cat >"$data/pg_hba.conf" <<EOF
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
EOF
}

pg_start() {
    local log=$DIR/logs/postgres.log i
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg" -l "$log" -w -t 60 start >/dev/null 2>>"$log" ||
        die_log "$log" "PostgreSQL did not start on port $PG_PORT"
    for ((i = 0; i < 150; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres && break
        sleep 0.2
    done
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres ||
        die_log "$log" "PostgreSQL does not answer on 127.0.0.1:$PG_PORT"
    PG_PID=$(head -n 1 "$DIR/pg/postmaster.pid")
}

pg_stop() {
    local mode=${1:-fast}
    [ -f "$DIR/pg/postmaster.pid" ] || return 0
    if ! as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg" -m "$mode" -w -t 20 stop >/dev/null 2>&1; then
        stop_pid "$(head -n 1 "$DIR/pg/postmaster.pid" 2>/dev/null)" "$DIR/pg" KILL 5
    fi
}

# --- Redis -------------------------------------------------------------------------

redis_start() {
    local log=$DIR/logs/redis.log i
    mkdir -p "$DIR/redis"
    rm -f "$DIR/redis/redis.pid"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DIR/redis" \
        --appendonly yes --save '' --daemonize yes --pidfile "$DIR/redis/redis.pid" \
        --logfile "$log" </dev/null >>"$log" 2>&1 ||
        die_log "$log" "redis-server did not start on port $REDIS_PORT"
    for ((i = 0; i < 150; i++)); do
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] &&
            [ -s "$DIR/redis/redis.pid" ] && break
        sleep 0.2
    done
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] ||
        die_log "$log" "Redis does not answer PING on 127.0.0.1:$REDIS_PORT"
    REDIS_PID=$(cat "$DIR/redis/redis.pid")
}

redis_stop() {
    local sig=TERM
    [ "${1:-term}" = kill ] && sig=KILL
    # SIGTERM makes Redis flush its append-only file before it exits.
    stop_pid "${REDIS_PID:-}" "127.0.0.1:$REDIS_PORT" "$sig" 10
}

# --- commands ----------------------------------------------------------------------

# Stops the whole stack if the owning process (the test run) dies without
# stopping it, e.g. on SIGKILL.
start_watch() {
    local owner=${PGS_STACK_OWNER_PID:-}
    [ -n "$owner" ] || return 0
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; exec "$0" stop "$2"' \
        "$SELF" "$owner" "$DIR" </dev/null >>"$DIR/logs/stack.log" 2>&1 &
    STACK_WATCH_PID=$!
}

cmd_start() {
    local t0 t1 t2 t3 t4 ports
    t0=$(now_ms)
    ENGINE=${PGS_ENGINE:-opensearch}
    engine_setup
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd -P)
    [ -e "$DIR/pg" ] || [ -e "$DIR/env" ] &&
        die "$DIR already holds a stack: use an empty folder (or restart-*/stop)"
    command -v redis-server >/dev/null || die "redis-server not found: install redis-server"
    [ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb not found: install postgresql-15"
    command -v jq >/dev/null || die "jq not found: install jq"
    command -v curl >/dev/null || die "curl not found: install curl"
    # The postgres account must reach folders inside DIR (mktemp makes 0700).
    [ "$(id -u)" = 0 ] && chmod go+rx "$DIR"
    mkdir -p "$DIR/logs"
    engine_fetch

    # From here on, a failure stops whatever has been started.
    trap 'rc=$?; if [ $rc -ne 0 ]; then note "start failed: stopping what was started"; cmd_stop >/dev/null 2>&1 || true; fi' EXIT

    ports=$(reserve_ports)
    [[ "$ports" =~ ^[0-9]+\ [0-9]+\ [0-9]+\ [0-9]+$ ]] ||
        die "could not find four free loopback ports (got: $ports)"
    read -r PG_PORT REDIS_PORT ENGINE_HTTP_PORT ENGINE_TRANSPORT_PORT <<<"$ports"
    ENGINE_CLUSTER=pgsync-c-$(date +%s)-$$-$RANDOM
    write_env

    # The JVM takes longest: launch it first and set up the rest meanwhile.
    engine_launch
    write_env
    start_watch
    write_env
    t1=$(now_ms)
    pg_init
    pg_start
    write_env
    t2=$(now_ms)
    redis_start
    write_env
    t3=$(now_ms)
    engine_wait
    write_env
    t4=$(now_ms)
    trap - EXIT
    note "stack up in $(((t4 - t0) / 1000)).$(((t4 - t0) % 1000 / 100))s:" \
        "postgres :$PG_PORT ($((t2 - t1)) ms), redis :$REDIS_PORT ($((t3 - t2)) ms)," \
        "$ENGINE :$ENGINE_HTTP_PORT (ready $((t4 - t1)) ms after launch)"
}

cmd_stop() {
    if [ ! -f "$DIR/env" ]; then
        release_ports
        note "no stack in $DIR (no env file): nothing to stop"
        return 0
    fi
    load_env
    if [ -n "${STACK_WATCH_PID:-}" ] && [ "$STACK_WATCH_PID" != "$$" ] &&
        pid_matches "$STACK_WATCH_PID" "$DIR"; then
        kill -TERM -- "-$STACK_WATCH_PID" 2>/dev/null || true
    fi
    engine_stop term
    redis_stop term
    pg_stop fast
    release_ports
    note "stack in $DIR stopped"
}

cmd_fetch() {
    ENGINE=${1:-${PGS_ENGINE:-opensearch}}
    engine_setup
    engine_fetch
    echo "$ENGINE_LIB"
}

usage() {
    sed -n '2,20s/^# \{0,1\}//p' "$SELF" >&2
    exit 2
}

main() {
    local cmd=${1:-}
    [ -n "$cmd" ] || usage
    if [ "$cmd" = fetch ]; then
        cmd_fetch "${2:-}"
        return
    fi
    [ -n "${2:-}" ] || usage
    DIR=$2
    if [ "$cmd" != start ]; then
        [ -d "$DIR" ] || die "$DIR: no such folder"
        DIR=$(cd "$DIR" && pwd -P)
    fi
    case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cat "$DIR/env" 2>/dev/null || die "$DIR/env not found: no stack was started in $DIR" ;;
    restart-pg)
        load_env
        pg_stop "${3:-fast}"
        pg_start
        write_env
        ;;
    restart-redis)
        load_env
        redis_stop "${3:-term}"
        redis_start
        write_env
        ;;
    stop-engine)
        load_env
        engine_stop "${3:-term}"
        ;;
    start-engine | restart-engine)
        load_env
        engine_setup
        [ "$cmd" = restart-engine ] && engine_stop "${3:-term}"
        pid_matches "${ENGINE_PID:-}" "$DIR/engine" && die "$ENGINE is already running (pid $ENGINE_PID)"
        # Same port as before: the tests hold ELASTICSEARCH_URL.
        ENGINE_PORT_FIXED=1
        engine_launch
        write_env
        trap 'rc=$?; [ $rc -eq 0 ] || engine_stop kill' EXIT
        engine_wait
        ;;
    *) usage ;;
    esac
}

main "$@"
