/*
 * load_item.h - a work item of the initial load, and its codec: one range
 * of the root table's heap pages (ctid bounds) to read from the load's
 * exported snapshot and to index at the load's version. The coordinator
 * (consumer/load.c) writes one per range to the entry's load stream; any
 * consumer or load worker takes it. No I/O.
 *
 * Stream entry fields, in this order: op "L", lsn (the version to write
 * with), xid "0", lo and hi (ctid bounds, "" = open), load (the load's id),
 * snap (the exported snapshot, "" = none), part (the range's number). The
 * layout predates this type: existing load streams decode unchanged.
 */
#ifndef PGS_LOAD_ITEM_H
#define PGS_LOAD_ITEM_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define LOAD_ITEM_OP 'L'
/* The strings the encoder writes: eight fields, each a name and a value. */
#define LOAD_ITEM_MAX_FIELDS 16

/* A decoded item: every string owned (load_item_free). */
struct load_item {
    char *load_id;
    char *snapshot; /* NULL: none */
    char *lo, *hi;  /* NULL: open */
    int part;
    uint64_t version;
    char *entry_id; /* the stream entry id, when read from the stream */
};

/* An item to encode: every string borrowed (NULL: ""). */
struct load_item_ref {
    const char *load_id, *snapshot, *lo, *hi;
    int part;
    uint64_t version;
};

/* The texts of an item's numbers, kept by the caller until the strings are sent. */
struct load_item_numbers {
    char lsn[24], part[16];
};

/*
 * Field/value pairs of "r" for XADD; pointers borrow from "r" and "nums",
 * which must outlive the XADD. Returns the number of strings (at most
 * LOAD_ITEM_MAX_FIELDS).
 */
int load_item_encode(const struct load_item_ref *r, struct load_item_numbers *nums,
                     const char **argv, size_t *lens);

/* Is the stream entry of these field/value strings a load item (op "L")? */
int load_item_is(char **fields, const size_t *lens, int n);

/* From the field/value strings of a stream entry; -1 naming the bad field. */
int load_item_from_fields(char **fields, size_t *lens, int n, struct load_item *out,
                          struct pgs_error *err) PGS_MUSTCHECK;

void load_item_free(struct load_item *it);

#endif
