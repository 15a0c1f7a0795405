/*
 * keyset.h - a set of key tuples (a fixed number of text values each), in
 * insertion order, de-duplicated by hash. Used for the root keys a batch
 * touches and for the join values handed to reverse queries.
 */
#ifndef PGS_KEYSET_H
#define PGS_KEYSET_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

struct keyset {
    int width;      /* values per tuple */
    char **vals;    /* n * width strings, owned */
    int n, cap;
    int *slots;     /* open addressing: index + 1, 0 = empty */
    size_t nslots;
};

void keyset_init(struct keyset *k, int width);
/* Copies the values; returns 1 when the tuple is new, 0 when already there. */
int keyset_add(struct keyset *k, const char *const *vals);
int keyset_contains(const struct keyset *k, const char *const *vals);
static inline char **keyset_tuple(const struct keyset *k, int i)
{
    return k->vals + (size_t)i * (size_t)k->width;
}
void keyset_clear(struct keyset *k);
void keyset_free(struct keyset *k);

/*
 * PostgreSQL array literals for tuples [from, to): column "col" of each
 * tuple as {"v1","v2",...} into "sb" (reset first).
 */
void keyset_pg_array(const struct keyset *k, int col, int from, int to, struct strbuf *sb);

#endif
