/*
 * strbuf.h - a growing, always NUL-terminated string buffer, with SQL
 * quoting of identifiers and literals. Allocation failure aborts (xmalloc
 * policy: the stream replays whatever was in flight).
 */
#ifndef PGS_STRBUF_H
#define PGS_STRBUF_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct strbuf {
    char *buf; /* owned; "" until the first append */
    size_t len;
    size_t cap;
};

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_add(struct strbuf *sb, const char *s);
void sb_addn(struct strbuf *sb, const char *s, size_t n);
void sb_addc(struct strbuf *sb, char c);
void sb_printf(struct strbuf *sb, const char *fmt, ...) PGS_PRINTF(2, 3);
/* "name" with embedded quotes doubled: any name is safe in SQL */
void sb_ident(struct strbuf *sb, const char *name);
/* 'text' with embedded quotes doubled (standard_conforming_strings) */
void sb_literal(struct strbuf *sb, const char *text);
/* Hand the buffer to the caller (free() it) and reset "sb". */
char *sb_steal(struct strbuf *sb);

/* Exactly "len" decimal digits, no sign, no overflow; 0 on success. */
int pgs_parse_u64(const char *s, size_t len, uint64_t *out);
/* The value of the hexadecimal digit "c" (either case); -1 when it is none. */
int str_hexval(char c);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
