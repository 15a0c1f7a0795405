/*
 * fuzz_check.h - what the fuzz targets check alike: a change record must
 * survive its own encoding (change_to_fields, the producer's encoder too)
 * and decode (change_from_fields) to the same record. Any difference aborts,
 * which libFuzzer reports as a crash with its input.
 */
#ifndef PGS_FUZZ_CHECK_H
#define PGS_FUZZ_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "change.h"

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_json(json_t *a, json_t *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && json_equal(a, b));
}

/*
 * Encode "c" and decode it again: the same record, or abort(). A record the
 * decoder refuses aborts only when "must_decode" (one it accepted before).
 */
static void check_change_roundtrip(const struct change *c, int must_decode)
{
    struct change_scratch scratch;
    struct change again;
    struct pgs_error err;
    const char *argv[CHANGE_MAX_FIELDS];
    size_t alens[CHANGE_MAX_FIELDS];
    int m = change_to_fields(c, &scratch, argv, alens);

    if (m > CHANGE_MAX_FIELDS || m % 2 != 0)
        abort();
    if (change_from_fields((char **)argv, alens, m, &again, &err) == 0) {
        if (again.op != c->op || again.lsn != c->lsn || again.xid != c->xid ||
            !same_str(again.schema, c->schema) || !same_str(again.table, c->table) ||
            !same_json(again.oldv, c->oldv) || !same_json(again.newv, c->newv))
            abort();
        change_free(&again);
    } else if (must_decode) {
        abort();
    }
    change_scratch_free(&scratch);
}

#endif
