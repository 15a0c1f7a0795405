/*
 * fuzz_change.c - libFuzzer target for the stream record decoder
 * (change_from_fields): what a consumer does with the field/value strings of
 * an XREADGROUP entry, which anything able to write to Redis can forge. The
 * input is split at '\n' into strings taken as field, value, field, ...
 * (an odd last string is passed too, as a broken reply would). Each string
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

#define MAX_STRINGS 64

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_json(json_t *a, json_t *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && json_equal(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *fields[MAX_STRINGS];
    size_t lens[MAX_STRINGS];
    int n = 0;
    size_t start = 0;
    struct change c, again;
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
        struct change_scratch scratch;
        const char *argv[CHANGE_MAX_FIELDS];
        size_t alens[CHANGE_MAX_FIELDS];
        int m = change_to_fields(&c, &scratch, argv, alens);

        if (m > CHANGE_MAX_FIELDS || m % 2 != 0)
            abort();
        if (change_from_fields((char **)argv, alens, m, &again, &err) != 0)
            abort(); /* a record we accepted must survive its own encoding */
        if (again.op != c.op || again.lsn != c.lsn || again.xid != c.xid ||
            !same_str(again.schema, c.schema) || !same_str(again.table, c.table) ||
            !same_json(again.oldv, c.oldv) || !same_json(again.newv, c.newv))
            abort();
        if (c.op == CHANGE_LOAD &&
            (!same_str(again.lo, c.lo) || !same_str(again.hi, c.hi) || again.part != c.part))
            abort();
        change_free(&again);
        change_scratch_free(&scratch);
        change_free(&c);
    }
    for (int i = 0; i < n; i++)
        free(fields[i]);
    return 0;
}
