/*
 * change.h - the compact change record carried by the Redis stream, and its
 * codec. A record names the operation, the table, the commit's LSN (the
 * version that orders writes in the index) and the transaction, and carries
 * only the values of the columns that link the row to its document (primary
 * key and join columns), old and new. Never whole rows: consumers re-read
 * current rows themselves, so unchanged TOAST values cannot leak in.
 *
 * Stream entry fields: op, s, t, lsn, xid, old, new (old/new are JSON
 * objects of column -> text value or null). The initial load's work items
 * have a type and codec of their own (load_item.h) on the load stream.
 */
#ifndef PGS_CHANGE_H
#define PGS_CHANGE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

enum change_op {
    CHANGE_INSERT = 'I',
    CHANGE_UPDATE = 'U',
    CHANGE_DELETE = 'D',
    CHANGE_TRUNCATE = 'T'
};

struct change {
    char op;
    char *schema;   /* owned */
    char *table;    /* owned */
    uint64_t lsn;
    uint32_t xid;
    json_t *oldv;   /* owned reference or NULL */
    json_t *newv;   /* owned reference or NULL */
    char *entry_id; /* the stream entry id, when read from the stream */
};

/* The most strings the encoder writes: seven fields, each a name and a value. */
#define CHANGE_MAX_FIELDS 14

/*
 * A record as borrowed text: what the encoder reads. The producer's fast
 * path fills one straight from a decoded tuple and its batch arena, so a
 * record costs no allocation; change_to_fields fills one from a struct
 * change. NULL "schema"/"table"/"oldv"/"newv" leave the field out.
 */
struct change_ref {
    char op;
    const char *schema, *table; /* NUL-terminated */
    uint64_t lsn;
    uint32_t xid;
    const char *oldv, *newv;    /* JSON object texts of "old_len"/"new_len" bytes */
    size_t old_len, new_len;
};

/* The texts of a record's numbers, kept by the caller until the strings are sent. */
struct change_numbers {
    char op[2], lsn[24], xid[16];
};

/*
 * Field/value pairs of "r" for XADD, in the stream's order (op, s, t, lsn,
 * xid, old, new). "r->op" must be one of enum change_op. Pointers
 * borrow from "r" and "nums"; both must outlive the XADD. Writes at most
 * CHANGE_MAX_FIELDS strings to "argv"/"lens" and returns how many (even).
 */
int change_encode(const struct change_ref *r, struct change_numbers *nums, const char **argv,
                  size_t *lens);

/*
 * change_encode for a struct change: its JSON values are written into
 * "scratch", which must outlive the XADD (change_scratch_free).
 */
struct change_scratch {
    struct change_numbers nums;
    char *oldtxt, *newtxt; /* owned by the scratch: change_scratch_free */
};
int change_to_fields(const struct change *c, struct change_scratch *scratch, const char **argv,
                     size_t *lens);
void change_scratch_free(struct change_scratch *s);

/*
 * The checks every stream entry's field "i" (a name) and "i + 1" (its
 * value) must pass, for any record kind ("kind" starts the message): no NUL
 * byte, no name given twice. 0, or -1 with "err".
 */
int change_field_check(char **fields, const size_t *lens, int i, const char *kind,
                       struct pgs_error *err) PGS_MUSTCHECK;

/* From the field/value strings of a stream entry; -1 naming the bad field. */
int change_from_fields(char **fields, size_t *lens, int n, struct change *out,
                       struct pgs_error *err) PGS_MUSTCHECK;

void change_free(struct change *c);

#endif
