/*
 * fuzz_change.c - libFuzzer target for the stream record decoder
 * (change_from_fields): what a consumer does with the field/value strings of
 * an XREADGROUP entry, which anything able to write to Redis can forge. The
 * input is split at '\n' into strings taken as field, value, field, ...
 * (an odd last string is passed too, as a broken reply would); load items
 * (load_item_from_fields) the same way. Each string
 * gets its own allocation of exactly its length plus the NUL that hiredis
 * adds, so ASan sees any read past it. What decodes must encode again
 * (change_to_fields, over change_encode, the producer's encoder too) and
 * decode to the same record.
 *   scripts/fuzz.sh 60            (builds and runs every target)
 * or by hand, with a scratch corpus first (libFuzzer writes new inputs into
 * the first folder):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon tests/fuzz/fuzz_change.c \
 *     common/change.c common/strbuf.c common/error.c common/log.c \
 *     $(pkg-config --cflags --libs jansson) -o /tmp/fuzz_change
 *   mkdir -p /tmp/corpus && /tmp/fuzz_change -max_total_time=60 /tmp/corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "fuzz_check.h"
#include "load_item.h"

#define MAX_STRINGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *fields[MAX_STRINGS];
    size_t lens[MAX_STRINGS];
    int n = 0;
    size_t start = 0;
    struct change c;
    struct pgs_error err;

    for (size_t i = 0; i <= size && n < MAX_STRINGS; i++) {
        if (i == size || data[i] == '\n') {
            lens[n] = i - start;
            fields[n] = malloc(lens[n] + 1);
            memcpy(fields[n], data + start, lens[n]);
            fields[n][lens[n]] = '\0';
            n++;
            start = i + 1;
        }
    }
    if (change_from_fields(fields, lens, n, &c, &err) == 0) {
        check_change_roundtrip(&c, 1); /* a record we accepted must survive its own encoding */
        change_free(&c);
    }
    struct load_item it, it2;
    if (load_item_is(fields, lens, n) && load_item_from_fields(fields, lens, n, &it, &err) == 0) {
        struct load_item_ref ref = {.load_id = it.load_id, .snapshot = it.snapshot, .lo = it.lo,
                                    .hi = it.hi, .part = it.part, .version = it.version};
        struct load_item_numbers nums;
        const char *argv[LOAD_ITEM_MAX_FIELDS];
        size_t alens[LOAD_ITEM_MAX_FIELDS];
        int m = load_item_encode(&ref, &nums, argv, alens);
        if (m > LOAD_ITEM_MAX_FIELDS ||
            load_item_from_fields((char **)argv, alens, m, &it2, &err) != 0)
            abort(); /* an item we accepted must survive its own encoding */
        if (!same_str(it.load_id, it2.load_id) || !same_str(it.snapshot, it2.snapshot) ||
            !same_str(it.lo, it2.lo) || !same_str(it.hi, it2.hi) || it.part != it2.part ||
            it.version != it2.version)
            abort();
        load_item_free(&it2);
        load_item_free(&it);
    }
    for (int i = 0; i < n; i++)
        free(fields[i]);
    return 0;
}
