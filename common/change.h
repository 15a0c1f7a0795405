/*
 * change.h - the compact change record carried by the Redis stream, and its
 * codec. A record names the operation, the table, the commit's LSN (the
 * version that orders writes in the index) and the transaction, and carries
 * only the values of the columns that link the row to its document (primary
 * key and join columns), old and new. Never whole rows: consumers re-read
 * current rows themselves, so unchanged TOAST values cannot leak in.
 *
 * Stream entry fields: op, s, t, lsn, xid, old, new (old/new are JSON
 * objects of column -> text value or null). Load work items (on the entry's
 * load stream) use op "L" with lo, hi (ctid range bounds, "" = open), load
 * (the load's id), part (the range's number), snap (the exported snapshot
 * to read from) and lsn (the version to write with).
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
    CHANGE_TRUNCATE = 'T',
    CHANGE_LOAD = 'L'
};

struct change {
    char op;
    char *schema;   /* owned */
    char *table;    /* owned */
    uint64_t lsn;
    uint32_t xid;
    json_t *oldv;   /* owned reference or NULL */
    json_t *newv;   /* owned reference or NULL */
    char *lo, *hi;  /* load items: range bounds, NULL = open */
    char *load_id;
    char *snapshot;
    int part;
    char *entry_id; /* the stream entry id, when read from the stream */
};

#define CHANGE_MAX_FIELDS 16

/*
 * Field/value pairs for XADD. Pointers borrow from "c" and from "scratch"
 * (the JSON texts and numbers); both must outlive the XADD. Returns the
 * number of strings written to argv/lens (an even number).
 */
struct change_scratch {
    char lsn[24], xid[16], part[16];
    char *oldtxt, *newtxt; /* owned by the scratch: change_scratch_free */
};
int change_to_fields(const struct change *c, struct change_scratch *scratch, const char **argv,
                     size_t *lens);
void change_scratch_free(struct change_scratch *s);

/* From the field/value strings of a stream entry; -1 naming the bad field. */
int change_from_fields(char **fields, size_t *lens, int n, struct change *out,
                       struct pgs_error *err) PGS_MUSTCHECK;

void change_free(struct change *c);

#endif
