/* change.c - encoding and decoding stream records. No I/O. */
#include "change.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

int change_encode(const struct change_ref *r, struct change_numbers *nums, const char **argv,
                  size_t *lens)
{
    int n = 0;

    nums->op[0] = r->op;
    nums->op[1] = '\0';
#define FIELD(k, v, vlen)                                                                          \
    do {                                                                                           \
        argv[n] = (k), lens[n] = sizeof(k) - 1, n++;                                               \
        argv[n] = (v), lens[n] = (vlen), n++;                                                      \
    } while (0)
#define FIELD_STR(k, v) FIELD(k, v, strlen(v))
    FIELD("op", nums->op, 1);
    if (r->schema)
        FIELD_STR("s", r->schema);
    if (r->table)
        FIELD_STR("t", r->table);
    FIELD("lsn", nums->lsn,
          (size_t)snprintf(nums->lsn, sizeof(nums->lsn), "%" PRIu64, r->lsn));
    FIELD("xid", nums->xid,
          (size_t)snprintf(nums->xid, sizeof(nums->xid), "%" PRIu32, r->xid));
    if (r->oldv)
        FIELD("old", r->oldv, r->old_len);
    if (r->newv)
        FIELD("new", r->newv, r->new_len);
#undef FIELD_STR
#undef FIELD
    return n;
}

int change_to_fields(const struct change *c, struct change_scratch *scratch, const char **argv,
                     size_t *lens)
{
    struct change_ref r = {.op = c->op,
                           .schema = c->schema,
                           .table = c->table,
                           .lsn = c->lsn,
                           .xid = c->xid};

    scratch->oldtxt = scratch->newtxt = NULL;
    if (c->oldv && (scratch->oldtxt = json_dumps(c->oldv, JSON_COMPACT | JSON_ENCODE_ANY))) {
        r.oldv = scratch->oldtxt;
        r.old_len = strlen(r.oldv);
    }
    if (c->newv && (scratch->newtxt = json_dumps(c->newv, JSON_COMPACT | JSON_ENCODE_ANY))) {
        r.newv = scratch->newtxt;
        r.new_len = strlen(r.newv);
    }
    return change_encode(&r, &scratch->nums, argv, lens);
}

void change_scratch_free(struct change_scratch *s)
{
    free(s->oldtxt);
    free(s->newtxt);
    s->oldtxt = s->newtxt = NULL;
}

static json_t *parse_obj(const char *s, size_t len, const char *name, struct pgs_error *err)
{
    json_error_t je;
    json_t *v = json_loadb(s, len, 0, &je);
    if (v == NULL || !json_is_object(v)) {
        pgs_error_set(err, PGS_ERR_DOCUMENT, "change record: field \"%s\" is not a JSON object",
                      name);
        if (v == NULL)
            pgs_error_detail(err, "%d:%d: %s", je.line, je.column, je.text);
        json_decref(v);
        return NULL;
    }
    return v;
}

int change_field_check(char **fields, const size_t *lens, int i, const char *kind,
                       struct pgs_error *err)
{
    const char *k = fields[i], *v = fields[i + 1];
    size_t kl = lens[i], vl = lens[i + 1];

    /* no field carries a NUL: one would cut the value short, silently */
    if (memchr(v, '\0', vl) != NULL || memchr(k, '\0', kl) != NULL) {
        pgs_error_set(err, PGS_ERR_DOCUMENT, "%s: a NUL byte in field \"%.*s\"", kind,
                      (int)(kl > 16 ? 16 : kl), k);
        return -1;
    }
    /* a field given twice is a malformed record, not a value to overwrite */
    for (int j = 0; j < i; j += 2) {
        if (lens[j] == kl && memcmp(fields[j], k, kl) == 0) {
            pgs_error_set(err, PGS_ERR_DOCUMENT, "%s: field \"%.*s\" given twice", kind,
                          (int)(kl > 16 ? 16 : kl), k);
            return -1;
        }
    }
    return 0;
}

/* One flat branch per field, in the record's order: longer than most, read as the layout. */
int change_from_fields(char **fields, size_t *lens, int n, struct change *out,
                       struct pgs_error *err)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i + 1 < n; i += 2) {
        const char *k = fields[i], *v = fields[i + 1];
        size_t kl = lens[i], vl = lens[i + 1];
        uint64_t u;

        if (change_field_check(fields, lens, i, "change record", err) < 0)
            goto fail;
        if (kl == 2 && !memcmp(k, "op", 2)) {
            /* a load item ("L") is no change record: load_item.h reads those */
            if (vl != 1 || !strchr("IUDT", v[0])) {
                pgs_error_set(err, PGS_ERR_DOCUMENT, "change record: unknown op \"%.*s\"",
                              (int)(vl > 8 ? 8 : vl), v);
                goto fail;
            }
            out->op = v[0];
        } else if (kl == 1 && k[0] == 's') {
            out->schema = xstrndup(v, vl);
        } else if (kl == 1 && k[0] == 't') {
            out->table = xstrndup(v, vl);
        } else if (kl == 3 && !memcmp(k, "lsn", 3)) {
            if (pgs_parse_u64(v, vl, &out->lsn) < 0) {
                pgs_error_set(err, PGS_ERR_DOCUMENT, "change record: bad lsn");
                goto fail;
            }
        } else if (kl == 3 && !memcmp(k, "xid", 3)) {
            if (pgs_parse_u64(v, vl, &u) < 0 || u > UINT32_MAX) {
                pgs_error_set(err, PGS_ERR_DOCUMENT, "change record: bad xid");
                goto fail;
            }
            out->xid = (uint32_t)u;
        } else if (kl == 3 && !memcmp(k, "old", 3)) {
            if ((out->oldv = parse_obj(v, vl, "old", err)) == NULL)
                goto fail;
        } else if (kl == 3 && !memcmp(k, "new", 3)) {
            if ((out->newv = parse_obj(v, vl, "new", err)) == NULL)
                goto fail;
        }
        /* unknown fields are skipped: newer producers may add some */
    }
    if (out->op == 0) {
        pgs_error_set(err, PGS_ERR_DOCUMENT, "change record: no op field");
        goto fail;
    }
    if (out->schema == NULL || out->table == NULL) {
        pgs_error_set(err, PGS_ERR_DOCUMENT, "change record: no table (fields s and t)");
        goto fail;
    }
    return 0;
fail:
    change_free(out);
    return -1;
}

void change_free(struct change *c)
{
    free(c->schema);
    free(c->table);
    json_decref(c->oldv);
    json_decref(c->newv);
    free(c->entry_id);
    memset(c, 0, sizeof(*c));
}
