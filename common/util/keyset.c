/* keyset.c - the tuple set: FNV-1a over the values, linear probing. */
#include "keyset.h"

#include <stdlib.h>
#include <string.h>

static uint64_t tuple_hash(const char *const *vals, int width)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < width; i++) {
        for (const unsigned char *p = (const unsigned char *)vals[i]; *p; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
        h ^= 0xff; /* separator: ("ab","c") differs from ("a","bc") */
        h *= 1099511628211ULL;
    }
    return h;
}

static int tuple_eq(char *const *a, const char *const *b, int width)
{
    for (int i = 0; i < width; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

void keyset_init(struct keyset *k, int width)
{
    memset(k, 0, sizeof(*k));
    k->width = width;
}

static void rehash(struct keyset *k)
{
    size_t nslots = k->nslots ? k->nslots * 2 : 64;
    int *slots = xcalloc(nslots, sizeof(int));
    for (int i = 0; i < k->n; i++) {
        uint64_t h = tuple_hash((const char *const *)keyset_tuple(k, i), k->width);
        size_t s = h & (nslots - 1);
        while (slots[s])
            s = (s + 1) & (nslots - 1);
        slots[s] = i + 1;
    }
    free(k->slots);
    k->slots = slots;
    k->nslots = nslots;
}

static int find(const struct keyset *k, const char *const *vals, size_t *slot)
{
    if (k->nslots == 0)
        return 0;
    size_t s = tuple_hash(vals, k->width) & (k->nslots - 1);
    while (k->slots[s]) {
        if (tuple_eq(keyset_tuple(k, k->slots[s] - 1), vals, k->width))
            return 1;
        s = (s + 1) & (k->nslots - 1);
    }
    if (slot)
        *slot = s;
    return 0;
}

int keyset_contains(const struct keyset *k, const char *const *vals)
{
    return find(k, vals, NULL);
}

int keyset_add(struct keyset *k, const char *const *vals)
{
    size_t slot;

    if ((size_t)(k->n + 1) * 2 > k->nslots)
        rehash(k);
    if (find(k, vals, &slot))
        return 0;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 32;
        k->vals = xrealloc(k->vals, sizeof(char *) * (size_t)k->cap * (size_t)k->width);
    }
    char **t = keyset_tuple(k, k->n);
    for (int i = 0; i < k->width; i++)
        t[i] = xstrdup(vals[i]);
    k->slots[slot] = ++k->n;
    return 1;
}

void keyset_clear(struct keyset *k)
{
    for (int i = 0; i < k->n * k->width; i++)
        free(k->vals[i]);
    k->n = 0;
    if (k->slots)
        memset(k->slots, 0, k->nslots * sizeof(int));
}

void keyset_free(struct keyset *k)
{
    keyset_clear(k);
    free(k->vals);
    free(k->slots);
    memset(k, 0, sizeof(*k));
}

void keyset_pg_array(const struct keyset *k, int col, int from, int to, struct strbuf *sb)
{
    sb_reset(sb);
    sb_addc(sb, '{');
    for (int i = from; i < to; i++) {
        if (i > from)
            sb_addc(sb, ',');
        sb_addc(sb, '"');
        for (const char *p = keyset_tuple(k, i)[col]; *p; p++) {
            if (*p == '"' || *p == '\\')
                sb_addc(sb, '\\');
            sb_addc(sb, *p);
        }
        sb_addc(sb, '"');
    }
    sb_addc(sb, '}');
}
