#!/usr/bin/env bash
# Installs, on Debian 12, what building, the demo and the tests need, and
# only what is missing: the C libraries, PostgreSQL 15, Redis, a JDK and
# Maven for the search engine node, and the tools the tests use. Run as root
# (or with sudo available). Safe to run again: it does nothing when all is
# there.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config
    libpq-dev libhiredis-dev libev-dev libjansson-dev libcurl4-openssl-dev zlib1g-dev
    libcmocka-dev
    postgresql-15 redis-server
    openjdk-17-jdk-headless maven
    jq curl iproute2 procps
    socat stunnel4 openssl
)
[ "${PGS_WITH_EXTRAS:-0}" = 1 ] && PACKAGES+=(clang libclang-rt-14-dev docker-compose valgrind)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# the packaged servers must not start on their default ports: the stack runs its own
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
