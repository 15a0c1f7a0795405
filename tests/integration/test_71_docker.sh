#!/usr/bin/env bash
# The container files (issue: Operations), without a Docker engine:
# docker/docker-compose.yml must pass `docker-compose config` and describe
# the stack; docker/Dockerfile's build stage is replayed in this shell (its
# COPY and RUN make lines, in a copy of the tree) and every shared library
# the binaries need must come from the runtime stage's packages; the systemd
# units must start binaries that `make install` installs.
. "$(dirname "$0")/lib.sh"

DOCKER=$PGS_ROOT/docker
compose=$DOCKER/docker-compose.yml
work=$(mktemp -d "${TMPDIR:-/tmp}/pgsync-docker.XXXXXX")
cleanup_work() { rm -rf "$work"; }

# --- docker-compose config ------------------------------------------------------------
# docker-compose comes from scripts/install-deps.sh: a test never installs a package
if ! command -v docker-compose >/dev/null 2>&1; then
    fail "docker-compose is available" "not installed: run scripts/install-deps.sh (Debian's docker-compose)"
else
    if docker-compose -f "$compose" config >"$work/compose.yml" 2>"$work/compose.err"; then
        pass "docker-compose config accepts docker/docker-compose.yml"
    else
        fail "docker-compose config accepts docker/docker-compose.yml" "$(cat "$work/compose.err")"
    fi
    # YAML -> JSON with the python3-yaml that docker-compose depends on
    python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)' \
        <"$work/compose.yml" >"$work/compose.json" 2>>"$work/compose.err"
    c=$work/compose.json
    check_eq "compose: the services" \
        "consumer-1 consumer-2 opensearch pgsync-bootstrap postgres producer redis" \
        "$(jq -r '.services | keys | join(" ")' "$c")"
    if jq -e '.services.postgres | (.image | test("^postgres:15"))
            and (.command | join(" ") | test("wal_level=logical"))
            and ([.volumes[] | if type == "string" then split(":")[1] else .target end]
                 | index("/docker-entrypoint-initdb.d/book.sql") != null)' \
        "$c" >/dev/null; then
        pass "compose: PostgreSQL 15 with wal_level=logical and the book fixture"
    else
        fail "compose: PostgreSQL 15 with wal_level=logical and the book fixture" "$(jq -c .services.postgres "$c")"
    fi
    jq -e '.services.redis.command | join(" ") | test("--appendonly yes")' "$c" >/dev/null &&
        pass "compose: Redis with AOF" || fail "compose: Redis with AOF" "$(jq -c .services.redis "$c")"
    if jq -e '.services.opensearch | (.image | test("opensearch:2\\.19"))
            and .environment["discovery.type"] == "single-node"
            and .environment.DISABLE_SECURITY_PLUGIN == "true"' "$c" >/dev/null; then
        pass "compose: single-node OpenSearch 2.19 without the security plugin"
    else
        fail "compose: single-node OpenSearch 2.19 without the security plugin" "$(jq -c .services.opensearch "$c")"
    fi
    if jq -e '.services | [.["pgsync-bootstrap"], .producer, .["consumer-1"], .["consumer-2"]]
            | all(.environment | has("PG_HOST") and has("PG_PASSWORD") and has("REDIS_HOST")
                  and has("ELASTICSEARCH_URL") and .OPENSEARCH == "true")' "$c" >/dev/null; then
        pass "compose: every pgsync service has the connection settings"
    else
        fail "compose: every pgsync service has the connection settings" "$(jq -c '.services.producer.environment' "$c")"
    fi
    if jq -e '.services | (.["pgsync-bootstrap"].restart == "no")
            and (.["pgsync-bootstrap"].command[0] | test("^pgsync"))
            and (.producer.command[0] == "pgsync-producer")
            and (.["consumer-1"].command[0] == "pgsync-consumer")
            and (.["consumer-2"].command[0] == "pgsync-consumer")
            and (.producer.depends_on["pgsync-bootstrap"].condition == "service_completed_successfully")' \
        "$c" >/dev/null; then
        pass "compose: a run-once set-up, then one producer and two consumers"
    else
        fail "compose: a run-once set-up, then one producer and two consumers" "$(jq -c '.services.producer' "$c")"
    fi
    # every schema the services name is in the mounted folder, and every bind mount exists
    missing=
    # bind mounts: "SRC:DST[:MODE]" with an absolute SRC, or {type: bind, source}
    for src in $(jq -r '.services[] | .volumes[]? | if type == "string" then split(":")[0]
            elif .type == "bind" then .source else empty end | select(startswith("/"))' "$c"); do
        [ -e "$src" ] || missing+=" $src"
    done
    for f in $(jq -r '.services[] | .command? // [] | .[] | select(test("^/etc/pgsync/schemas/"))' "$c" | sort -u); do
        [ -f "$PGS_ROOT/schemas/${f#/etc/pgsync/schemas/}" ] || missing+=" $f"
    done
    check_eq "compose: the mounted files and schemas exist" "" "$missing"
fi

# --- the Dockerfile's build stage, replayed here -----------------------------------------
# the Dockerfile as logical lines (continuations joined), comments dropped
awk '/^[[:space:]]*#/ { next } { if (sub(/\\[[:space:]]*$/, "")) { buf = buf $0 " "; next } print buf $0; buf = "" }' \
    "$DOCKER/Dockerfile" >"$work/lines"
awk '/^FROM / { n++ } n == 1' "$work/lines" >"$work/build.stage"
awk '/^FROM / { n++ } n == 2' "$work/lines" >"$work/runtime.stage"
check_eq "Dockerfile: two stages, both debian:12-slim" "debian:12-slim AS build|debian:12-slim" \
    "$(grep '^FROM ' "$work/lines" | sed 's/^FROM //' | paste -sd'|')"

# packages named by "apt-get install" in a stage file (options dropped)
stage_packages() {
    grep -o 'apt-get install[^&;]*' "$1" | sed 's/apt-get install//' | tr ' ' '\n' |
        grep -v '^-' | grep -v '^$' | sort -u
}
stage_packages "$work/build.stage" >"$work/build.pkgs"
stage_packages "$work/runtime.stage" >"$work/runtime.pkgs"
unknown=
for p in $(cat "$work/build.pkgs" "$work/runtime.pkgs"); do
    apt-cache show "$p" >/dev/null 2>&1 || unknown+=" $p"
done
check_eq "Dockerfile: every package it installs exists in Debian" "" "$unknown"
notinst=
for p in $(cat "$work/build.pkgs"); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || notinst+=" $p"
done
check_eq "Dockerfile: this shell has the build stage's packages" "" "$notinst"

tree=$work/src
mkdir -p "$tree"
ok=1
nmake=0
while read -r kw rest; do
    case "$kw" in
    COPY)
        # COPY SRC... DST, relative to the build context (the repository)
        read -ra parts <<<"$rest"
        dst=${parts[-1]}
        for src in "${parts[@]:0:${#parts[@]}-1}"; do
            if [ -d "$PGS_ROOT/$src" ]; then # a folder's contents into DST
                mkdir -p "$tree/$dst" && cp -r "$PGS_ROOT/${src%/}/." "$tree/$dst/" || ok=0
            elif [[ $dst == */ ]]; then # a file into the folder DST
                mkdir -p "$tree/$dst" && cp "$PGS_ROOT/$src" "$tree/$dst" || ok=0
            else
                mkdir -p "$(dirname "$tree/$dst")" && cp "$PGS_ROOT/$src" "$tree/$dst" || ok=0
            fi
        done
        ;;
    RUN)
        # Only the commands that are a make call run here, each "&&" part on its
        # own: the package lines are checked above, never run (an apt-get install
        # here would upgrade packages under the suite's running servers).
        while IFS= read -r cmd; do
            cmd=$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$cmd")
            [[ $cmd == "make" || $cmd == "make "* ]] || continue
            echo "+ $cmd" >>"$work/make.log"
            # as in the image: not the sanitized build that `make SANITIZE=1 test` passes down
            (cd "$tree" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZE sh -c "$cmd") \
                >>"$work/make.log" 2>&1 || ok=0
            nmake=$((nmake + 1))
        done < <(sed 's/&&/\n/g' <<<"$rest")
        ;;
    esac
done <"$work/build.stage"
check_eq "Dockerfile: the build stage has its two make steps" 2 "$nmake"
if [ $ok = 1 ] && [ -x "$tree/stage/usr/local/bin/pgsync-consumer" ]; then
    pass "Dockerfile: the build stage's make steps build and install the binaries"
else
    fail "Dockerfile: the build stage's make steps build and install the binaries" "$(tail -15 "$work/make.log")"
fi
absent=
for p in pgsync pgsync-producer pgsync-consumer pgsync-bootstrap \
    $(ls "$PGS_ROOT"/tools/*_main.c | sed -n 's|.*/\(.*\)_main\.c$|pgsync-\1|p'); do
    case $p in pgsync-pgsync | pgsync-bootstrap_main) continue ;; esac
    [ -x "$tree/stage/usr/local/bin/$p" ] || absent+=" $p"
done
check_eq "Dockerfile: every program is installed" "" "$absent"
nman=$(ls "$tree/stage/usr/local/share/man/man1/"*.1 2>/dev/null | wc -l)
[ "$nman" -ge 8 ] && pass "Dockerfile: the man pages are installed" ||
    fail "Dockerfile: the man pages are installed" "$nman pages"
grep -q 'COPY --from=build /src/stage/usr/local/ /usr/local/' "$work/runtime.stage" &&
    grep -q '^WORKDIR /src' "$work/build.stage" &&
    pass "Dockerfile: the runtime stage copies what the build stage installed" ||
    fail "Dockerfile: the runtime stage copies what the build stage installed"

# the package that ships a library file (usr-merge: try both spellings);
# dpkg -S is slow, so each path is asked once
declare -A _lib_pkg=()
lib_package() {
    local p=$1 real q pkg=
    if [ -z "${_lib_pkg[$p]+x}" ]; then
        real=$(readlink -f "$p")
        for q in "/usr${p#/usr}" "${p#/usr}" "/usr${real#/usr}" "${real#/usr}"; do
            pkg=$(dpkg -S "$q" 2>/dev/null | head -1 | cut -d: -f1)
            [ -n "$pkg" ] && break
        done
        _lib_pkg[$p]=$pkg
    fi
    echo "${_lib_pkg[$p]}"
}
# what the runtime packages bring with them (their Depends, recursively)
# shellcheck disable=SC2046
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances $(cat "$work/runtime.pkgs") 2>/dev/null |
    grep -v '^ ' | sed 's/:.*//' | sort -u >"$work/runtime.closure"
direct_bad= trans_bad=
for b in "$tree"/stage/usr/local/bin/*; do
    # a direct dependency must be named in the runtime list (or be libc6)
    for lib in $(readelf -d "$b" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
        path=$(ldd "$b" | awk -v l="$lib" '$1 == l { print $3 }')
        lib_package "$path" >"$work/pkg"
        pkg=$(<"$work/pkg")
        grep -qx "$pkg" "$work/runtime.pkgs" || [ "$pkg" = libc6 ] ||
            direct_bad+=" $(basename "$b"):$lib($pkg)"
    done
    # everything ldd resolves must come with those packages
    for path in $(ldd "$b" | awk '$3 ~ /^\// { print $3 }'); do
        lib_package "$path" >"$work/pkg"
        pkg=$(<"$work/pkg")
        grep -qx "$pkg" "$work/runtime.closure" || trans_bad+=" $(basename "$path")($pkg)"
    done
done
check_eq "Dockerfile: the runtime stage names every library the binaries link" "" \
    "$(tr ' ' '\n' <<<"$direct_bad" | sort -u | xargs)"
check_eq "Dockerfile: every library ldd resolves comes with the runtime packages" "" \
    "$(tr ' ' '\n' <<<"$trans_bad" | sort -u | xargs)"

# --- systemd units -----------------------------------------------------------------------
for unit in pgsync-producer.service pgsync-consumer@.service; do
    f=$DOCKER/$unit
    exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$f" 2>/dev/null)
    if [ -f "$f" ] && grep -q '^\[Unit\]' "$f" && grep -q '^\[Service\]' "$f" &&
        grep -q '^\[Install\]' "$f" && grep -q '^Restart=' "$f" && [ "$exe" != "" ] &&
        [ -x "$tree/stage/usr/local/bin/$(basename "$exe")" ] && [[ $exe == /usr/local/bin/* ]]; then
        pass "systemd: $unit starts an installed binary and restarts it"
    else
        fail "systemd: $unit starts an installed binary and restarts it" "ExecStart=$exe"
    fi
done
cleanup_work
