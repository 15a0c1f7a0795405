#!/usr/bin/env bash
# Installs, on Debian 12, what building, the demo and the tests need: the C
# libraries, PostgreSQL 15, Redis, a JDK and Maven for the search engine node,
# and the tools the tests use. Run as root (or with sudo available). Safe to
# run again.
#
# It also brings every listed package that is installed but older than
# Debian's candidate up to date, here and now, before any server starts: no
# test ever installs or upgrades a package (tests/run.sh fails the run when
# the installed set changes under it), because an upgrade under a running
# PostgreSQL leaves it unable to load PL/pgSQL.
#
# PGS_WITH_EXTRAS=1 adds what only CI's extra steps use (clang for fuzzing).
set -euo pipefail

PACKAGES=(
    build-essential pkg-config
    libpq-dev libpq5 libhiredis-dev libev-dev libjansson-dev libcurl4-openssl-dev zlib1g-dev
    libcmocka-dev libssl-dev
    postgresql-15 postgresql-client-15 redis-server
    openjdk-17-jdk-headless maven
    jq curl iproute2 procps
    socat stunnel4 openssl
    docker-compose
)
[ "${PGS_WITH_EXTRAS:-0}" = 1 ] && PACKAGES+=(clang libclang-rt-14-dev valgrind)

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
APT=(apt-get -o DPkg::Lock::Timeout=600)

# The package lists are refreshed when older than a day (or absent), so that
# "up to date" means Debian's current candidate, not the image's.
lists_stale() {
    local newest
    newest=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -newermt '-1 day' 2>/dev/null | head -n 1)
    [ -z "$newest" ]
}

# pending: the listed packages that are missing, or installed older than the candidate.
pending() {
    local p inst cand
    for p in "${PACKAGES[@]}"; do
        inst=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null |
            sed -n 's/^install ok installed //p') || true
        if [ -z "$inst" ]; then
            echo "$p"
            continue
        fi
        cand=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: //p') || true
        if [ -n "$cand" ] && [ "$cand" != "(none)" ] && [ "$cand" != "$inst" ]; then
            echo "$p"
        fi
    done
}

need_root() {
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
        echo "install-deps: run as root to install or upgrade: $*" >&2
        exit 1
    fi
}

if lists_stale; then
    need_root "(apt-get update)"
    $SUDO "${APT[@]}" update -qq
fi
mapfile -t todo < <(pending)
if [ ${#todo[@]} -eq 0 ]; then
    exit 0
fi
need_root "${todo[*]}"

# A PostgreSQL server running from the packaged binaries (a demo left
# running, say) must not see its package replaced under it.
if pgrep -f '^/usr/lib/postgresql/' >/dev/null 2>&1; then
    running_pg=1
else
    running_pg=0
fi
if [ "$running_pg" = 1 ]; then
    keep=()
    for p in "${todo[@]}"; do
        if dpkg-query -W "$p" >/dev/null 2>&1 && [[ $p == postgresql* || $p == libpq* ]]; then
            echo "install-deps: $p is older than Debian's, but a PostgreSQL server is running" \
                "from it: stop it (make demo-stop) and run scripts/install-deps.sh again" >&2
            continue
        fi
        keep+=("$p")
    done
    todo=("${keep[@]}")
    [ ${#todo[@]} -gt 0 ] || exit 0
fi

echo "install-deps: installing or upgrading ${todo[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# the packaged servers must not start on their default ports: the stack runs its own
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO "${APT[@]}" install -y -qq --no-install-recommends "${todo[@]}" >/dev/null
left=$(pending | xargs)
if [ -n "$left" ] && [ "$running_pg" = 0 ]; then
    echo "install-deps: still missing or old after apt-get install: $left" >&2
    exit 1
fi
echo "install-deps: done" >&2
