/* load_item.c - encoding and decoding the initial load's work items (load_item.h). No I/O. */
#include "load_item.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "strbuf.h"

int load_item_encode(const struct load_item_ref *r, struct load_item_numbers *nums,
                     const char **argv, size_t *lens)
{
    int n = 0;
#define FIELD(k, v, vlen)                                                                          \
    do {                                                                                           \
        argv[n] = (k), lens[n] = sizeof(k) - 1, n++;                                               \
        argv[n] = (v), lens[n] = (vlen), n++;                                                      \
    } while (0)
#define FIELD_STR(k, v) FIELD(k, (v) ? (v) : "", (v) ? strlen(v) : 0)
    FIELD("op", "L", 1);
    FIELD("lsn", nums->lsn,
          (size_t)snprintf(nums->lsn, sizeof(nums->lsn), "%" PRIu64, r->version));
    FIELD("xid", "0", 1);
    FIELD_STR("lo", r->lo);
    FIELD_STR("hi", r->hi);
    FIELD_STR("load", r->load_id);
    FIELD_STR("snap", r->snapshot);
    FIELD("part", nums->part, (size_t)snprintf(nums->part, sizeof(nums->part), "%d", r->part));
#undef FIELD_STR
#undef FIELD
    return n;
}

int load_item_is(char **fields, const size_t *lens, int n)
{
    for (int i = 0; i + 1 < n; i += 2)
        if (lens[i] == 2 && !memcmp(fields[i], "op", 2))
            return lens[i + 1] == 1 && fields[i + 1][0] == LOAD_ITEM_OP;
    return 0;
}

/* "v" of "vl" bytes as a new string, or NULL when empty. */
static char *optional(const char *v, size_t vl)
{
    return vl ? xstrndup(v, vl) : NULL;
}

int load_item_from_fields(char **fields, size_t *lens, int n, struct load_item *out,
                          struct pgs_error *err)
{
    int have_load = 0;

    memset(out, 0, sizeof(*out));
    for (int i = 0; i + 1 < n; i += 2) {
        const char *k = fields[i], *v = fields[i + 1];
        size_t kl = lens[i], vl = lens[i + 1];
        uint64_t u;

        if (change_field_check(fields, lens, i, "load item", err) < 0)
            goto fail;
        if (kl == 2 && !memcmp(k, "op", 2)) {
            if (vl != 1 || v[0] != LOAD_ITEM_OP) {
                pgs_error_set(err, PGS_ERR_DOCUMENT, "load item: op \"%.*s\" is not \"L\"",
                              (int)(vl > 8 ? 8 : vl), v);
                goto fail;
            }
        } else if (kl == 3 && !memcmp(k, "lsn", 3)) {
            if (pgs_parse_u64(v, vl, &out->version) < 0) {
                pgs_error_set(err, PGS_ERR_DOCUMENT, "load item: bad lsn");
                goto fail;
            }
        } else if (kl == 2 && !memcmp(k, "lo", 2)) {
            out->lo = optional(v, vl);
        } else if (kl == 2 && !memcmp(k, "hi", 2)) {
            out->hi = optional(v, vl);
        } else if (kl == 4 && !memcmp(k, "load", 4)) {
            out->load_id = xstrndup(v, vl);
            have_load = 1;
        } else if (kl == 4 && !memcmp(k, "snap", 4)) {
            out->snapshot = optional(v, vl);
        } else if (kl == 4 && !memcmp(k, "part", 4)) {
            if (pgs_parse_u64(v, vl, &u) < 0 || u > 1000000000) {
                pgs_error_set(err, PGS_ERR_DOCUMENT, "load item: bad part");
                goto fail;
            }
            out->part = (int)u;
        }
        /* xid and unknown fields are skipped */
    }
    if (!have_load) {
        pgs_error_set(err, PGS_ERR_DOCUMENT, "load item: no load field");
        goto fail;
    }
    return 0;
fail:
    load_item_free(out);
    return -1;
}

void load_item_free(struct load_item *it)
{
    free(it->load_id);
    free(it->snapshot);
    free(it->lo);
    free(it->hi);
    free(it->entry_id);
    memset(it, 0, sizeof(*it));
}
