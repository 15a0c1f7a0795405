#!/usr/bin/env bash
# Every binary: --help and --version exit 0, a bad argument exits non-zero
# with a one-line reason, and secrets never show in --help.
. "$(dirname "$0")/lib.sh"

export PG_PASSWORD=sekrit-pg ELASTICSEARCH_PASSWORD=sekrit-es REDIS_AUTH=sekrit-redis
for bin in pgsync pgsync-producer pgsync-consumer pgsync-bootstrap pgsync-verify pgsync-queue pgsync-replay pgsync-dlq pgsync-slot; do
    out=$($bin --help 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && grep -q "Usage: $bin" <<<"$out" && grep -q -- "--config" <<<"$out"; then
        pass "$bin --help"
    else
        fail "$bin --help" "rc=$rc"
    fi
    if grep -q sekrit <<<"$out"; then
        fail "$bin --help shows no secret" "a secret value appears in --help"
    else
        pass "$bin --help shows no secret"
    fi
    out=$($bin --version 2>&1)
    if [ $? -eq 0 ] && grep -Eq "^$bin [0-9]+\.[0-9]+" <<<"$out"; then
        pass "$bin --version"
    else
        fail "$bin --version" "got '$out'"
    fi
    out=$($bin --no-such-flag 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && [ "$(wc -l <<<"$out")" -le 2 ] && grep -q "$bin" <<<"$out"; then
        pass "$bin rejects a bad argument"
    else
        fail "$bin rejects a bad argument" "rc=$rc out=$out"
    fi
    sub=()
    [ "$bin" = pgsync-dlq ] && sub=(list) # its command comes first
    out=$($bin "${sub[@]}" 2>&1)
    if [ $? -ne 0 ] && grep -q -- "--config" <<<"$out"; then
        pass "$bin without --config says it is needed"
    else
        fail "$bin without --config says it is needed" "$out"
    fi
    out=$($bin "${sub[@]}" --config /nonexistent/schema.json 2>&1)
    if [ $? -ne 0 ] && grep -q "/nonexistent/schema.json" <<<"$out"; then
        pass "$bin names a missing schema file"
    else
        fail "$bin names a missing schema file" "$out"
    fi
done
