/*
 * pgoutput.c - decoder for START_REPLICATION CopyData frames ('w', 'k'), the
 * standby status update we send back ('r'), and the pgoutput plugin's
 * protocol version 1 messages carried in XLogData.
 *
 * Bytes in, structs out: no I/O. Every field is read through a cursor that
 * checks the remaining length first, so a short or hostile message becomes an
 * error that names the message, the field and the offset. The decoder owns a
 * relation cache (oid -> struct pgo_relation) and scratch arrays that are
 * reused, so decoding rows does not allocate once the arrays have grown.
 */
#include "pgoutput.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's timestamp epoch. */
#define PGO_EPOCH_OFFSET_SECS 946684800LL

/* XLogData: 'w', Int64 start, Int64 end, Int64 send time, then the message. */
#define PGO_XLOGDATA_HDR  25
/* Primary keepalive: 'k', Int64 end, Int64 send time, Byte1 reply requested. */
#define PGO_KEEPALIVE_LEN 18
#define PGO_STATUS_LEN    34

/*
 * Smallest encodings, used to bound counts read from the input before
 * anything is allocated: a Relation column is flags (1), an empty name (1),
 * type oid (4) and typmod (4); a tuple column is at least its kind byte; a
 * truncated relation is its oid.
 */
#define PGO_MIN_RELCOL_LEN   10
#define PGO_MIN_TUPCOL_LEN   1
#define PGO_TRUNCATE_OID_LEN 4

#define PGO_TRUNCATE_CASCADE          1
#define PGO_TRUNCATE_RESTART_IDENTITY 2

struct pgo_decoder {
    /* open addressing with linear probing; entries are never removed, only
     * replaced, so no tombstones are needed. Capacity is a power of two. */
    struct pgo_relation **rels;
    size_t rels_cap;
    size_t nrels;
    /* scratch, reused across messages */
    struct pgo_value *newvals;
    size_t newvals_cap;
    struct pgo_value *oldvals;
    size_t oldvals_cap;
    const struct pgo_relation **truncated;
    size_t truncated_cap;
};

/* A cursor over one message: every read names its field for the error text. */
struct pgo_reader {
    const unsigned char *p;
    size_t len;
    size_t off;
    const char *what; /* "Insert", "XLogData", ... */
    struct pgs_error *err;
};

/* ---- big-endian helpers ---- */

static uint16_t pgo_get16(const unsigned char *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static uint32_t pgo_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t pgo_get64(const unsigned char *p)
{
    return (uint64_t)pgo_get32(p) << 32 | pgo_get32(p + 4);
}

static void pgo_put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

/* ---- the cursor ---- */

static size_t pgo_left(const struct pgo_reader *r)
{
    return r->len - r->off;
}

static int pgo_need(struct pgo_reader *r, size_t n, const char *field)
{
    if (pgo_left(r) >= n)
        return 0;
    pgs_error_set(r->err, PGS_ERR_FATAL,
                  "pgoutput: %s truncated at offset %zu: %s needs %zu bytes, %zu left", r->what,
                  r->off, field, n, pgo_left(r));
    return -1;
}

static int pgo_read8(struct pgo_reader *r, const char *field, uint8_t *v)
{
    if (pgo_need(r, 1, field) < 0)
        return -1;
    *v = r->p[r->off];
    r->off += 1;
    return 0;
}

static int pgo_read16(struct pgo_reader *r, const char *field, uint16_t *v)
{
    if (pgo_need(r, 2, field) < 0)
        return -1;
    *v = pgo_get16(r->p + r->off);
    r->off += 2;
    return 0;
}

static int pgo_read32(struct pgo_reader *r, const char *field, uint32_t *v)
{
    if (pgo_need(r, 4, field) < 0)
        return -1;
    *v = pgo_get32(r->p + r->off);
    r->off += 4;
    return 0;
}

static int pgo_read64(struct pgo_reader *r, const char *field, uint64_t *v)
{
    if (pgo_need(r, 8, field) < 0)
        return -1;
    *v = pgo_get64(r->p + r->off);
    r->off += 8;
    return 0;
}

/* A NUL-terminated string; "*s" borrows from the input, NUL included. */
static int pgo_read_str(struct pgo_reader *r, const char *field, const char **s, size_t *slen)
{
    const unsigned char *nul = NULL;

    if (pgo_left(r) > 0)
        nul = memchr(r->p + r->off, '\0', pgo_left(r));
    if (nul == NULL) {
        pgs_error_set(r->err, PGS_ERR_FATAL,
                      "pgoutput: %s truncated at offset %zu: %s has no terminating NUL "
                      "in the %zu bytes left",
                      r->what, r->off, field, pgo_left(r));
        return -1;
    }
    *s = (const char *)(r->p + r->off);
    *slen = (size_t)(nul - (r->p + r->off));
    r->off += *slen + 1;
    return 0;
}

static int pgo_read_bytes(struct pgo_reader *r, const char *field, size_t n, const char **data)
{
    if (pgo_need(r, n, field) < 0)
        return -1;
    *data = (const char *)(r->p + r->off);
    r->off += n;
    return 0;
}

/* A decoded message must use every byte: leftovers mean we misread the layout
 * (a protocol version mismatch, say), and guessing on would corrupt rows. */
static int pgo_expect_end(struct pgo_reader *r)
{
    if (pgo_left(r) == 0)
        return 0;
    pgs_error_set(r->err, PGS_ERR_FATAL,
                  "pgoutput: %s has %zu unexpected trailing bytes at offset %zu", r->what,
                  pgo_left(r), r->off);
    pgs_error_detail(r->err, "the server may speak a protocol version other than 1");
    return -1;
}

static int pgo_oom(struct pgo_reader *r, const char *field)
{
    pgs_error_set(r->err, PGS_ERR_FATAL, "pgoutput: %s at offset %zu: out of memory for %s",
                  r->what, r->off, field);
    return -1;
}

/* ---- frames ---- */

int pgo_parse_frame(const char *buf, size_t len, struct pgo_frame *out, struct pgs_error *err)
{
    struct pgo_reader r = {(const unsigned char *)buf, len, 0, "replication frame", err};
    uint8_t kind, reply;
    uint64_t v;

    memset(out, 0, sizeof(*out));
    if (pgo_read8(&r, "frame kind", &kind) < 0)
        return -1;
    out->kind = (char)kind;
    switch (kind) {
    case 'w':
        r.what = "XLogData";
        if (pgo_read64(&r, "WAL start", &out->wal_start) < 0 ||
            pgo_read64(&r, "WAL end", &out->wal_end) < 0 || pgo_read64(&r, "send time", &v) < 0)
            return -1;
        out->send_time = (int64_t)v;
        out->data = buf + PGO_XLOGDATA_HDR;
        out->len = len - PGO_XLOGDATA_HDR;
        return 0;
    case 'k':
        r.what = "primary keepalive";
        if (pgo_read64(&r, "WAL end", &out->wal_end) < 0 || pgo_read64(&r, "send time", &v) < 0 ||
            pgo_read8(&r, "reply flag", &reply) < 0)
            return -1;
        out->send_time = (int64_t)v;
        out->reply_requested = reply != 0;
        /* bytes past the 18 are ignored, as pg_recvlogical does: a newer
         * server may append fields without breaking older readers */
        return 0;
    default:
        pgs_error_set(err, PGS_ERR_FATAL,
                      "pgoutput: unknown replication frame kind 0x%02x at offset 0 (%zu bytes)",
                      kind, len);
        pgs_error_detail(err, "expected 'w' (XLogData) or 'k' (primary keepalive)");
        return -1;
    }
}

size_t pgo_build_status(char *out, uint64_t written, uint64_t flushed, uint64_t applied,
                        int64_t now_us, int reply_requested)
{
    unsigned char *p = (unsigned char *)out;

    p[0] = 'r';
    pgo_put64(p + 1, written);
    pgo_put64(p + 9, flushed);
    pgo_put64(p + 17, applied);
    pgo_put64(p + 25, (uint64_t)now_us);
    p[33] = reply_requested ? 1 : 0;
    return PGO_STATUS_LEN;
}

int64_t pgo_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return ((int64_t)ts.tv_sec - PGO_EPOCH_OFFSET_SECS) * 1000000 + ts.tv_nsec / 1000;
}

/* ---- LSNs ---- */

/* ---- the relation cache ---- */

static size_t pgo_rel_slot(const struct pgo_decoder *d, uint32_t oid)
{
    /* murmur3's finaliser: oids come in runs and strides, so mix every bit
     * into the low ones before masking */
    uint32_t h = oid;
    size_t i;

    h ^= h >> 16;
    h *= UINT32_C(0x85ebca6b);
    h ^= h >> 13;
    h *= UINT32_C(0xc2b2ae35);
    h ^= h >> 16;
    i = (size_t)h & (d->rels_cap - 1);

    while (d->rels[i] != NULL && d->rels[i]->oid != oid)
        i = (i + 1) & (d->rels_cap - 1);
    return i;
}

static const struct pgo_relation *pgo_rel_find(const struct pgo_decoder *d, uint32_t oid)
{
    return d->rels[pgo_rel_slot(d, oid)];
}

/* Store "rel" (handing it over), replacing and freeing an entry with its oid. */
static int pgo_rel_put(struct pgo_decoder *d, struct pgo_relation *rel)
{
    size_t i;

    /* keep the load under one half so probe runs stay short */
    if ((d->nrels + 1) * 2 > d->rels_cap) {
        struct pgo_relation **old = d->rels;
        size_t old_cap = d->rels_cap;
        struct pgo_relation **grown = calloc(old_cap * 2, sizeof(*grown));

        if (grown == NULL)
            return -1;
        d->rels = grown;
        d->rels_cap = old_cap * 2;
        for (size_t j = 0; j < old_cap; j++)
            if (old[j] != NULL)
                d->rels[pgo_rel_slot(d, old[j]->oid)] = old[j];
        free(old);
    }
    i = pgo_rel_slot(d, rel->oid);
    if (d->rels[i] == NULL)
        d->nrels++;
    free(d->rels[i]); /* one block: struct, columns and names */
    d->rels[i] = rel;
    return 0;
}

struct pgo_decoder *pgo_decoder_new(void)
{
    struct pgo_decoder *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    d->rels_cap = 64;
    d->rels = calloc(d->rels_cap, sizeof(*d->rels));
    if (d->rels == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

void pgo_decoder_free(struct pgo_decoder *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->rels_cap; i++)
        free(d->rels[i]);
    free(d->rels);
    free(d->newvals);
    free(d->oldvals);
    free(d->truncated);
    free(d);
}

/* Grow "*arr" to hold "n" elements of "size" bytes; the old contents are
 * scratch and need not survive. */
static int pgo_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    size_t want;
    void *p;

    if (n <= *cap)
        return 0;
    want = *cap ? *cap : 16;
    while (want < n)
        want *= 2;
    p = realloc(*arr, want * size);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = want;
    return 0;
}

/* ---- message bodies ---- */

/*
 * A Relation message, read field by field in the protocol's order with each
 * length checked where it is read: one function, so that the order on the
 * wire can be followed top to bottom.
 */
static int pgo_read_relation(struct pgo_decoder *d, struct pgo_reader *r, struct pgo_msg *out)
{
    uint32_t oid;
    const char *nsp, *name;
    size_t nsplen, namelen, nspsize, strbytes;
    uint8_t replident;
    uint16_t ncols;
    struct pgo_relation *rel;
    char *strs;

    if (pgo_read32(r, "relation oid", &oid) < 0 ||
        pgo_read_str(r, "namespace", &nsp, &nsplen) < 0 ||
        pgo_read_str(r, "relation name", &name, &namelen) < 0 ||
        pgo_read8(r, "replica identity", &replident) < 0 ||
        pgo_read16(r, "column count", &ncols) < 0)
        return -1;
    if ((size_t)ncols > pgo_left(r) / PGO_MIN_RELCOL_LEN) {
        pgs_error_set(r->err, PGS_ERR_FATAL,
                      "pgoutput: Relation %" PRIu32 " at offset %zu claims %u columns but only "
                      "%zu bytes follow",
                      oid, r->off - 2, (unsigned)ncols, pgo_left(r));
        return -1;
    }

    /*
     * One block for the struct, the columns and every name, so replacing an
     * entry is one free(). The names come from this message, so the rest of
     * it bounds their size; "pg_catalog" covers the empty namespace.
     */
    nspsize = nsplen == 0 ? sizeof("pg_catalog") : nsplen + 1;
    strbytes = nspsize + namelen + 1 + pgo_left(r);
    rel = malloc(sizeof(*rel) + (size_t)ncols * sizeof(*rel->cols) + strbytes);
    if (rel == NULL)
        return pgo_oom(r, "the relation");
    rel->cols = (struct pgo_relcol *)(rel + 1);
    strs = (char *)(rel->cols + ncols);
    rel->oid = oid;
    rel->replident = (char)replident;
    rel->ncols = ncols;

    /* pgoutput sends "" for pg_catalog to save bytes; say it in full */
    rel->nspname = strs;
    if (nsplen == 0)
        memcpy(strs, "pg_catalog", sizeof("pg_catalog"));
    else
        memcpy(strs, nsp, nsplen + 1);
    strs += nspsize;
    rel->relname = strs;
    memcpy(strs, name, namelen + 1);
    strs += namelen + 1;

    for (int i = 0; i < (int)ncols; i++) {
        struct pgo_relcol *c = &rel->cols[i];
        uint8_t flags;
        const char *cname;
        size_t clen;
        uint32_t typmod;

        if (pgo_read8(r, "column flags", &flags) < 0 ||
            pgo_read_str(r, "column name", &cname, &clen) < 0 ||
            pgo_read32(r, "column type oid", &c->type_oid) < 0 ||
            pgo_read32(r, "column typmod", &typmod) < 0) {
            free(rel);
            return -1;
        }
        c->typmod = (int32_t)typmod;
        c->is_key = flags & 1;
        c->name = strs;
        memcpy(strs, cname, clen + 1);
        strs += clen + 1;
    }
    if (pgo_expect_end(r) < 0) {
        free(rel);
        return -1;
    }
    if (pgo_rel_put(d, rel) < 0) {
        free(rel);
        return pgo_oom(r, "the relation cache");
    }
    out->rel = rel;
    return 0;
}

/* The relation named by the oid at the cursor; unknown oids are an error. */
static int pgo_read_relref(struct pgo_decoder *d, struct pgo_reader *r,
                           const struct pgo_relation **rel)
{
    size_t at = r->off;
    uint32_t oid;

    if (pgo_read32(r, "relation oid", &oid) < 0)
        return -1;
    *rel = pgo_rel_find(d, oid);
    if (*rel == NULL) {
        pgs_error_set(r->err, PGS_ERR_FATAL,
                      "pgoutput: %s for unknown relation oid %" PRIu32 " at offset %zu", r->what,
                      oid, at);
        pgs_error_detail(r->err, "no Relation message announced it on this connection");
        return -1;
    }
    return 0;
}

/* TupleData into "*vals" (decoder scratch), checked against "rel". */
static int pgo_read_tuple(struct pgo_reader *r, const struct pgo_relation *rel,
                          struct pgo_value **vals, size_t *cap, struct pgo_tuple *tup)
{
    size_t at = r->off;
    uint16_t ncols;

    if (pgo_read16(r, "tuple column count", &ncols) < 0)
        return -1;
    if ((int)ncols != rel->ncols) {
        pgs_error_set(r->err, PGS_ERR_FATAL,
                      "pgoutput: %s at offset %zu: tuple has %u columns, relation %s.%s "
                      "(oid %" PRIu32 ") has %d",
                      r->what, at, (unsigned)ncols, rel->nspname, rel->relname, rel->oid,
                      rel->ncols);
        return -1;
    }
    /* rel->ncols is already bounded by its Relation message; this bound is
     * about this message, so a short one cannot make us grow the scratch */
    if ((size_t)ncols > pgo_left(r) / PGO_MIN_TUPCOL_LEN) {
        pgs_error_set(r->err, PGS_ERR_FATAL,
                      "pgoutput: %s truncated at offset %zu: %u tuple columns but only %zu "
                      "bytes follow",
                      r->what, r->off, (unsigned)ncols, pgo_left(r));
        return -1;
    }
    if (pgo_grow((void **)vals, cap, ncols, sizeof(**vals)) < 0)
        return pgo_oom(r, "tuple values");

    for (int i = 0; i < (int)ncols; i++) {
        struct pgo_value *v = &(*vals)[i];
        uint8_t kind;
        uint32_t len;

        if (pgo_read8(r, "column kind", &kind) < 0)
            return -1;
        v->kind = (char)kind;
        v->data = NULL;
        v->len = 0;
        switch (kind) {
        case 'n':
        case 'u':
            break;
        case 't':
        case 'b':
            if (pgo_read32(r, "column length", &len) < 0 ||
                pgo_read_bytes(r, "column value", len, &v->data) < 0)
                return -1;
            v->len = len;
            break;
        default:
            pgs_error_set(r->err, PGS_ERR_FATAL,
                          "pgoutput: %s at offset %zu: unknown kind 0x%02x for column %d (%s) "
                          "of %s.%s",
                          r->what, r->off - 1, kind, i + 1, rel->cols[i].name, rel->nspname,
                          rel->relname);
            pgs_error_detail(r->err, "expected 'n', 'u', 't' or 'b'");
            return -1;
        }
    }
    tup->values = *vals;
    tup->nvalues = ncols;
    return 0;
}

static int pgo_expect_byte(struct pgo_reader *r, const char *field, const char *allowed,
                           uint8_t *got)
{
    if (pgo_read8(r, field, got) < 0)
        return -1;
    if (*got != '\0' && strchr(allowed, *got) != NULL)
        return 0;
    pgs_error_set(r->err, PGS_ERR_FATAL,
                  "pgoutput: %s at offset %zu: unexpected %s 0x%02x, expected one of \"%s\"",
                  r->what, r->off - 1, field, *got, allowed);
    return -1;
}

static int pgo_read_insert(struct pgo_decoder *d, struct pgo_reader *r, struct pgo_msg *out)
{
    uint8_t tag;

    if (pgo_read_relref(d, r, &out->rel) < 0 || pgo_expect_byte(r, "tuple tag", "N", &tag) < 0 ||
        pgo_read_tuple(r, out->rel, &d->newvals, &d->newvals_cap, &out->newtup) < 0)
        return -1;
    return pgo_expect_end(r);
}

static int pgo_read_update(struct pgo_decoder *d, struct pgo_reader *r, struct pgo_msg *out)
{
    uint8_t tag;

    if (pgo_read_relref(d, r, &out->rel) < 0 || pgo_expect_byte(r, "tuple tag", "KON", &tag) < 0)
        return -1;
    /* the old row or key comes first, and only when the key changed or the
     * table has REPLICA IDENTITY FULL */
    if (tag != 'N') {
        out->old_kind = (char)tag;
        if (pgo_read_tuple(r, out->rel, &d->oldvals, &d->oldvals_cap, &out->oldtup) < 0 ||
            pgo_expect_byte(r, "tuple tag", "N", &tag) < 0)
            return -1;
    }
    if (pgo_read_tuple(r, out->rel, &d->newvals, &d->newvals_cap, &out->newtup) < 0)
        return -1;
    return pgo_expect_end(r);
}

static int pgo_read_delete(struct pgo_decoder *d, struct pgo_reader *r, struct pgo_msg *out)
{
    uint8_t tag;

    if (pgo_read_relref(d, r, &out->rel) < 0 || pgo_expect_byte(r, "tuple tag", "KO", &tag) < 0)
        return -1;
    out->old_kind = (char)tag;
    if (pgo_read_tuple(r, out->rel, &d->oldvals, &d->oldvals_cap, &out->oldtup) < 0)
        return -1;
    return pgo_expect_end(r);
}

static int pgo_read_truncate(struct pgo_decoder *d, struct pgo_reader *r, struct pgo_msg *out)
{
    uint32_t nrels;
    uint8_t options;

    if (pgo_read32(r, "relation count", &nrels) < 0 || pgo_read8(r, "options", &options) < 0)
        return -1;
    if (nrels > pgo_left(r) / PGO_TRUNCATE_OID_LEN) {
        pgs_error_set(r->err, PGS_ERR_FATAL,
                      "pgoutput: Truncate at offset %zu claims %" PRIu32
                      " relations but only %zu bytes follow",
                      r->off - 5, nrels, pgo_left(r));
        return -1;
    }
    if (pgo_grow((void **)&d->truncated, &d->truncated_cap, nrels, sizeof(*d->truncated)) < 0)
        return pgo_oom(r, "truncated relations");
    for (uint32_t i = 0; i < nrels; i++)
        if (pgo_read_relref(d, r, &d->truncated[i]) < 0)
            return -1;
    out->truncated = d->truncated;
    out->ntruncated = (int)nrels;
    out->truncate_cascade = (options & PGO_TRUNCATE_CASCADE) != 0;
    out->truncate_restart_identity = (options & PGO_TRUNCATE_RESTART_IDENTITY) != 0;
    return pgo_expect_end(r);
}

static const char *pgo_msg_name(uint8_t type)
{
    switch (type) {
    case PGO_BEGIN:
        return "Begin";
    case PGO_COMMIT:
        return "Commit";
    case PGO_ORIGIN:
        return "Origin";
    case PGO_RELATION:
        return "Relation";
    case PGO_TYPE:
        return "Type";
    case PGO_INSERT:
        return "Insert";
    case PGO_UPDATE:
        return "Update";
    case PGO_DELETE:
        return "Delete";
    case PGO_TRUNCATE:
        return "Truncate";
    case PGO_MESSAGE:
        return "Message";
    default:
        return NULL;
    }
}

int pgo_decode(struct pgo_decoder *d, const char *buf, size_t len, struct pgo_msg *out,
               struct pgs_error *err)
{
    struct pgo_reader r = {(const unsigned char *)buf, len, 0, "pgoutput message", err};
    uint8_t type, flags;
    uint64_t v;
    uint32_t n;
    const char *s;
    size_t slen;

    memset(out, 0, sizeof(*out));
    if (pgo_read8(&r, "message type", &type) < 0)
        return -1;
    r.what = pgo_msg_name(type);
    if (r.what == NULL) {
        pgs_error_set(err, PGS_ERR_FATAL,
                      "pgoutput: unknown message type 0x%02x ('%c') at offset 0 (%zu bytes)", type,
                      type >= 0x20 && type < 0x7f ? type : '?', len);
        pgs_error_detail(err, "only protocol version 1 without streaming is supported");
        return -1;
    }
    out->type = (enum pgo_type)type;

    switch (type) {
    case PGO_BEGIN:
        if (pgo_read64(&r, "final LSN", &out->final_lsn) < 0 ||
            pgo_read64(&r, "commit time", &v) < 0 || pgo_read32(&r, "xid", &out->xid) < 0)
            return -1;
        out->commit_time = (int64_t)v;
        return pgo_expect_end(&r);
    case PGO_COMMIT:
        /* flags are unused in version 1 and deliberately not checked */
        if (pgo_read8(&r, "flags", &flags) < 0 ||
            pgo_read64(&r, "commit LSN", &out->commit_lsn) < 0 ||
            pgo_read64(&r, "end LSN", &out->end_lsn) < 0 || pgo_read64(&r, "commit time", &v) < 0)
            return -1;
        out->commit_time = (int64_t)v;
        return pgo_expect_end(&r);
    case PGO_ORIGIN:
        if (pgo_read64(&r, "origin LSN", &v) < 0 ||
            pgo_read_str(&r, "origin name", &out->origin, &slen) < 0)
            return -1;
        return pgo_expect_end(&r);
    case PGO_RELATION:
        return pgo_read_relation(d, &r, out);
    case PGO_TYPE:
        /* nothing in pgo_msg for it: we re-query rows, so type names are not
         * needed; the layout is still checked */
        if (pgo_read32(&r, "type oid", &n) < 0 || pgo_read_str(&r, "namespace", &s, &slen) < 0 ||
            pgo_read_str(&r, "type name", &s, &slen) < 0)
            return -1;
        return pgo_expect_end(&r);
    case PGO_INSERT:
        return pgo_read_insert(d, &r, out);
    case PGO_UPDATE:
        return pgo_read_update(d, &r, out);
    case PGO_DELETE:
        return pgo_read_delete(d, &r, out);
    case PGO_TRUNCATE:
        return pgo_read_truncate(d, &r, out);
    case PGO_MESSAGE:
        if (pgo_read8(&r, "flags", &flags) < 0 || pgo_read64(&r, "message LSN", &v) < 0 ||
            pgo_read_str(&r, "prefix", &out->prefix, &slen) < 0 ||
            pgo_read32(&r, "content length", &out->content_len) < 0 ||
            pgo_read_bytes(&r, "content", out->content_len, &out->content) < 0)
            return -1;
        return pgo_expect_end(&r);
    default:
        return -1; /* unreachable: pgo_msg_name() knows the same set */
    }
}
