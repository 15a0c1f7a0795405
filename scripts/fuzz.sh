#!/usr/bin/env bash
# Builds every libFuzzer target tests/fuzz/fuzz_*.c with clang (libFuzzer,
# AddressSanitizer, UndefinedBehaviorSanitizer) and runs each for SECONDS.
# Exits non-zero when a target crashes, leaks, hits undefined behaviour or
# does not build.
#
#   scripts/fuzz.sh [SECONDS] [NAME...]     SECONDS default 60; NAME: fuzz_change, ...
#
# The library sources (as the Makefile's LIB_SRC) are compiled once into
# $PGS_FUZZ_DIR (default build/fuzz) with -fsanitize=fuzzer-no-link, and each
# target links against them, so a target needs no build line of its own.
# Seeds: tests/fixtures/<name without fuzz_>/ when that folder exists
# (pgoutput, schema), plus built-in ones for fuzz_change and fuzz_outbox_row. libFuzzer writes the
# new inputs it finds into its first corpus folder, so the seeds are copied to
# a scratch folder first: fixtures are never written. A crash leaves its input
# in $PGS_FUZZ_DIR/artifacts/ (reproduce: BINARY ARTIFACT).
#
# Environment: PGS_FUZZ_DIR, FUZZ_CC (default clang), FUZZ_JOBS (parallel
# compiles, default the number of cores), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
SECS=${1:-60}
shift || true
[[ $SECS =~ ^[0-9]+$ ]] || {
    echo "usage: scripts/fuzz.sh [SECONDS] [NAME...]" >&2
    exit 2
}
OUT=${PGS_FUZZ_DIR:-$ROOT/build/fuzz}
CC=${FUZZ_CC:-clang}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
PKGS="libpq hiredis jansson libcurl"

die() {
    echo "fuzz.sh: error: $*" >&2
    exit 1
}

command -v "$CC" >/dev/null || die "$CC not found: apt-get install clang"
pkg-config --exists $PKGS || die "missing development packages ($PKGS): scripts/install-deps.sh"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -Icommon -Icommon/util -Icommon/io -Iproducer -Iconsumer -Itools -DPGS_VERSION=\"fuzz\"
        $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lev -lz -lm"

# --- build ---------------------------------------------------------------------

mkdir -p "$OUT/obj" "$OUT/bin" "$OUT/artifacts"
lib_src=()
for f in common/*.c common/util/*.c common/io/*.c producer/*.c consumer/*.c tools/*.c; do
    case "$f" in producer/main.c | consumer/main.c | */*_main.c) continue ;; esac
    lib_src+=("$f")
done

# Compiles what changed (a source newer than its object, or any header newer).
newest_header=$(stat -c %Y common/*.h common/util/*.h common/io/*.h producer/*.h consumer/*.h \
    tools/*.h | sort -n | tail -1)
stale=()
for f in "${lib_src[@]}"; do
    o=$OUT/obj/${f//\//_}
    o=${o%.c}.o
    if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ "$(stat -c %Y "$o")" -lt "$newest_header" ]; then
        stale+=("$f")
    fi
done
if [ ${#stale[@]} -gt 0 ]; then
    echo "fuzz.sh: compiling ${#stale[@]} library files with $CC"
    export CC CFLAGS SAN OUT
    printf '%s\n' "${stale[@]}" | xargs -P "$JOBS" -I{} sh -c '
        o=$OUT/obj/$(echo "$1" | tr / _); o=${o%.c}.o
        $CC $CFLAGS $SAN -fsanitize=fuzzer-no-link -c -o "$o" "$1"' sh {} ||
        die "the library does not build with $CC"
fi
# exactly the objects of today's sources: one of a file since moved or removed must not link
objs=()
for f in "${lib_src[@]}"; do
    o=$OUT/obj/${f//\//_}
    objs+=("${o%.c}.o")
done
rm -f "$OUT/libpgsync-fuzz.a"
ar rcs "$OUT/libpgsync-fuzz.a" "${objs[@]}"

targets=()
if [ $# -gt 0 ]; then
    for n in "$@"; do
        [ -f "tests/fuzz/${n%.c}.c" ] || die "no target tests/fuzz/${n%.c}.c"
        targets+=("tests/fuzz/${n%.c}.c")
    done
else
    targets=(tests/fuzz/fuzz_*.c)
fi

# --- seeds ----------------------------------------------------------------------

# seeds NAME DIR: writes NAME's seeds into DIR
seeds() {
    local base=${1#fuzz_}
    if [ -d "tests/fixtures/$base" ]; then
        cp -r "tests/fixtures/$base/." "$2/"
    fi
    case "$1" in
    fuzz_change)
        # field\nvalue\n... as the producer writes them (change_to_fields)
        printf 'op\nI\ns\npublic\nt\nbook\nlsn\n23456789\nxid\n745\nnew\n{"isbn":"9788374950978"}' >"$2/insert"
        printf 'op\nU\ns\npublic\nt\nbook_author\nlsn\n23456790\nxid\n746\nold\n{"id":"3","book_isbn":"a","author_id":"2"}\nnew\n{"id":"3","book_isbn":"b","author_id":null}' >"$2/update"
        printf 'op\nD\ns\npublic\nt\nauthor\nlsn\n1\nxid\n4294967295\nold\n{"id":"1"}' >"$2/delete"
        printf 'op\nT\ns\npublic\nt\nbook\nlsn\n18446744073709551615\nxid\n0' >"$2/truncate"
        printf 'op\nL\nlsn\n99\nxid\n0\nlo\n(0,1)\nhi\n(42,0)\nload\n1a17390-21812\nsnap\n00000003-00000002-1\npart\n7' >"$2/load"
        printf 'op\nI\ns\npublic\nt\nbook\nlsn\n5\nxid\n5\nnew\n{"k":"\\u00e9\\ud83d\\ude00","n":[1,2.5,{"x":null}]}\nfuture\nfield' >"$2/unicode"
        ;;
    fuzz_outbox_row)
        # a flag byte (bit 0: old NULL, bit 1: new NULL), then id\nxid\ns\nt\nop\nold\nnew
        printf '\001%s' $'17\n745\npublic\nbook\nI\n\n{"isbn":"9788374950978"}' >"$2/insert"
        printf '\000%s' $'18\n746\npublic\nbook_author\nU\n{"id":"3","book_isbn":"a"}\n{"id":"3","book_isbn":"b"}' >"$2/update"
        printf '\003%s' $'19\n4294967295\npublic\nbook\nT\n\n' >"$2/truncate"
        printf '\000%s' $'20\n-1\npub"lic\nbo$$ok\nTRUNCATE\n[1]\n"x"' >"$2/hostile"
        ;;
    esac
}

# --- run --------------------------------------------------------------------------

failed=()
for src in "${targets[@]}"; do
    name=$(basename "$src" .c)
    bin=$OUT/bin/$name
    if ! $CC $CFLAGS $SAN -fsanitize=fuzzer -o "$bin" "$src" "$OUT/libpgsync-fuzz.a" $LIBS; then
        echo "FAIL: fuzz/$name: does not build"
        failed+=("$name")
        continue
    fi
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/pgsync-fuzz-$name.XXXXXX")
    mkdir -p "$scratch/corpus" "$scratch/seeds"
    seeds "$name" "$scratch/seeds"
    echo "==> fuzz: $name for ${SECS}s ($(find "$scratch/seeds" -type f | wc -l) seeds)"
    rc=0
    # -max_total_time ends the run; -timeout flags a hang; new inputs go to
    # the scratch corpus, crashes to artifacts/.
    "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$name-" ${FUZZ_ARGS:-} \
        "$scratch/corpus" "$scratch/seeds" >"$scratch/log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$scratch/log" || true
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: fuzz/$name: exit status $rc; the end of its log:"
        grep -vE '^#[0-9]+ ' "$scratch/log" | tail -n 40
        ls "$OUT/artifacts/$name-"* 2>/dev/null | sed 's/^/    artifact: /'
        cp "$scratch/log" "$OUT/artifacts/$name.log"
        failed+=("$name")
    else
        echo "PASS: fuzz/$name: $(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$scratch/log" |
            grep -oE '[0-9]+$') runs, corpus $(find "$scratch/corpus" -type f | wc -l) inputs"
    fi
    rm -rf "$scratch"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (inputs in $OUT/artifacts)"
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, no crash in ${SECS}s each"
