/*
 * test_pgoutput.c - the pgoutput decoder against hand-built messages (every
 * message type, every prefix of each to prove short input fails cleanly),
 * replication frames, the status update layout, LSN text, and a genuine
 * PostgreSQL 15 stream saved under tests/fixtures/pgoutput (run from the
 * repository root).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgoutput.h"

#define FIXTURE_DIR "tests/fixtures/pgoutput"

#define OID_BOOK   16384u
#define OID_AUTHOR 16390u

/* ---- building messages by hand ---- */

struct msgbuf {
    char b[1024];
    size_t n;
};

static void put8(struct msgbuf *m, uint8_t v)
{
    assert_true(m->n + 1 <= sizeof(m->b));
    m->b[m->n++] = (char)v;
}

static void put16(struct msgbuf *m, uint16_t v)
{
    put8(m, (uint8_t)(v >> 8));
    put8(m, (uint8_t)v);
}

static void put32(struct msgbuf *m, uint32_t v)
{
    put16(m, (uint16_t)(v >> 16));
    put16(m, (uint16_t)v);
}

static void put64(struct msgbuf *m, uint64_t v)
{
    put32(m, (uint32_t)(v >> 32));
    put32(m, (uint32_t)v);
}

static void putraw(struct msgbuf *m, const void *p, size_t n)
{
    assert_true(m->n + n <= sizeof(m->b));
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

/* a String: the bytes and the terminating NUL */
static void putstr(struct msgbuf *m, const char *s)
{
    putraw(m, s, strlen(s) + 1);
}

static void put_text(struct msgbuf *m, const char *s)
{
    put8(m, 't');
    put32(m, (uint32_t)strlen(s));
    putraw(m, s, strlen(s));
}

/* Relation "public"."book" (oid 16384): id int4 (key), title text, body text. */
static void build_book_relation(struct msgbuf *m)
{
    put8(m, 'R');
    put32(m, OID_BOOK);
    putstr(m, "public");
    putstr(m, "book");
    put8(m, 'd');
    put16(m, 3);
    put8(m, 1);
    putstr(m, "id");
    put32(m, 23);
    put32(m, UINT32_MAX); /* typmod -1 */
    put8(m, 0);
    putstr(m, "title");
    put32(m, 25);
    put32(m, UINT32_MAX);
    put8(m, 0);
    putstr(m, "body");
    put32(m, 25);
    put32(m, UINT32_MAX);
}

static void build_insert(struct msgbuf *m, uint32_t oid)
{
    put8(m, 'I');
    put32(m, oid);
    put8(m, 'N');
    put16(m, 3);
    put_text(m, "42");
    put_text(m, "Dune");
    put8(m, 'n');
}

/* U: old key (id 41), new row with the body unchanged in TOAST */
static void build_update_with_key(struct msgbuf *m)
{
    put8(m, 'U');
    put32(m, OID_BOOK);
    put8(m, 'K');
    put16(m, 3);
    put_text(m, "41");
    put8(m, 'n');
    put8(m, 'n');
    put8(m, 'N');
    put16(m, 3);
    put_text(m, "42");
    put_text(m, "Dune Messiah");
    put8(m, 'u');
}

static void build_delete(struct msgbuf *m, char kind)
{
    put8(m, 'D');
    put32(m, OID_BOOK);
    put8(m, (uint8_t)kind);
    put16(m, 3);
    put_text(m, "42");
    if (kind == 'O') {
        put_text(m, "Dune");
        put_text(m, "spice");
    } else {
        put8(m, 'n');
        put8(m, 'n');
    }
}

static void build_truncate(struct msgbuf *m, uint8_t options)
{
    put8(m, 'T');
    put32(m, 2);
    put8(m, options);
    put32(m, OID_BOOK);
    put32(m, OID_AUTHOR);
}

static void build_author_relation(struct msgbuf *m)
{
    put8(m, 'R');
    put32(m, OID_AUTHOR);
    putstr(m, "public");
    putstr(m, "author");
    put8(m, 'f');
    put16(m, 1);
    put8(m, 1);
    putstr(m, "name");
    put32(m, 25);
    put32(m, UINT32_MAX);
}

static void build_begin(struct msgbuf *m)
{
    put8(m, 'B');
    put64(m, 0x16B3748);
    put64(m, 700000000123456LL);
    put32(m, 731);
}

static void build_commit(struct msgbuf *m)
{
    put8(m, 'C');
    put8(m, 0);
    put64(m, 0x16B3748);
    put64(m, 0x16B3778);
    put64(m, 700000000123456LL);
}

static void build_origin(struct msgbuf *m)
{
    put8(m, 'O');
    put64(m, 0x1000);
    putstr(m, "upstream");
}

static void build_type(struct msgbuf *m)
{
    put8(m, 'Y');
    put32(m, 16385);
    putstr(m, "public");
    putstr(m, "mood");
}

static void build_message(struct msgbuf *m)
{
    put8(m, 'M');
    put8(m, 1);
    put64(m, 0x2000);
    putstr(m, "pgsync");
    put32(m, 5);
    putraw(m, "hello", 5);
}

/* ---- helpers for checking ---- */

static struct pgo_decoder *decoder_with_book(void)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    assert_non_null(d);
    build_book_relation(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    m.n = 0;
    build_author_relation(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    return d;
}

static void assert_value(const struct pgo_value *v, char kind, const char *text)
{
    assert_int_equal(v->kind, kind);
    if (text == NULL) {
        assert_null(v->data);
        assert_int_equal(v->len, 0);
        return;
    }
    assert_int_equal(v->len, strlen(text));
    assert_memory_equal(v->data, text, v->len);
}

/* Decode "m", expecting failure with "want" in the message. */
static void assert_decode_fails(struct pgo_decoder *d, const struct msgbuf *m, const char *want)
{
    struct pgo_msg msg;
    struct pgs_error err;

    pgs_error_clear(&err);
    assert_int_equal(pgo_decode(d, m->b, m->n, &msg, &err), -1);
    if (strstr(err.msg, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
}

/*
 * Every proper prefix of "m" must fail with an error text and nothing else:
 * each prefix lives in its own exact-size heap block, so ASan reports any
 * read past the end.
 */
static void assert_every_prefix_fails(struct pgo_decoder *d, const struct msgbuf *m)
{
    for (size_t len = 0; len < m->n; len++) {
        char *copy = malloc(len ? len : 1);
        struct pgo_msg msg;
        struct pgs_error err;

        assert_non_null(copy);
        memcpy(copy, m->b, len);
        pgs_error_clear(&err);
        if (pgo_decode(d, copy, len, &msg, &err) != -1)
            fail_msg("prefix of %zu of %zu bytes of '%c' decoded", len, m->n, m->b[0]);
        assert_true(err.msg[0] != '\0');
        free(copy);
    }
    /* and the whole message still decodes, so the prefixes failed for length */
    {
        struct pgo_msg msg;
        struct pgs_error err;

        assert_int_equal(pgo_decode(d, m->b, m->n, &msg, &err), 0);
    }
}

/* ---- message types ---- */

static void test_begin_gives_final_lsn_time_and_xid(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_begin(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_BEGIN);
    assert_int_equal(msg.final_lsn, 0x16B3748);
    assert_int_equal(msg.commit_time, 700000000123456LL);
    assert_int_equal(msg.xid, 731);
    pgo_decoder_free(d);
}

static void test_commit_gives_lsns_and_time(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_commit(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_COMMIT);
    assert_int_equal(msg.commit_lsn, 0x16B3748);
    assert_int_equal(msg.end_lsn, 0x16B3778);
    assert_int_equal(msg.commit_time, 700000000123456LL);
    pgo_decoder_free(d);
}

static void test_origin_gives_name(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_origin(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_ORIGIN);
    assert_string_equal(msg.origin, "upstream");
    pgo_decoder_free(d);
}

static void test_type_message_is_accepted(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_type(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_TYPE);
    pgo_decoder_free(d);
}

static void test_logical_message_gives_prefix_and_content(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_message(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_MESSAGE);
    assert_string_equal(msg.prefix, "pgsync");
    assert_int_equal(msg.content_len, 5);
    assert_memory_equal(msg.content, "hello", 5);
    pgo_decoder_free(d);
}

static void test_relation_is_returned_and_cached(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;
    const struct pgo_relation *rel;

    (void)state;
    build_book_relation(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_RELATION);
    rel = msg.rel;
    assert_non_null(rel);
    assert_int_equal(rel->oid, OID_BOOK);
    assert_string_equal(rel->nspname, "public");
    assert_string_equal(rel->relname, "book");
    assert_int_equal(rel->replident, 'd');
    assert_int_equal(rel->ncols, 3);
    assert_string_equal(rel->cols[0].name, "id");
    assert_int_equal(rel->cols[0].type_oid, 23);
    assert_int_equal(rel->cols[0].typmod, -1);
    assert_true(rel->cols[0].is_key);
    assert_string_equal(rel->cols[2].name, "body");
    assert_false(rel->cols[2].is_key);

    /* the names are copies: the input may go away */
    memset(m.b, 0xAA, m.n);
    m.n = 0;
    build_insert(&m, OID_BOOK);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_ptr_equal(msg.rel, rel);
    assert_string_equal(msg.rel->relname, "book");
    assert_string_equal(msg.rel->cols[1].name, "title");
    pgo_decoder_free(d);
}

static void test_relation_with_empty_namespace_is_pg_catalog(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    put8(&m, 'R');
    put32(&m, 1259);
    putstr(&m, "");
    putstr(&m, "pg_class");
    put8(&m, 'n');
    put16(&m, 0);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_string_equal(msg.rel->nspname, "pg_catalog");
    assert_string_equal(msg.rel->relname, "pg_class");
    assert_int_equal(msg.rel->ncols, 0);
    pgo_decoder_free(d);
}

/* ALTER TABLE ... ADD COLUMN: the server re-announces the relation */
static void test_relation_replacement_takes_the_new_columns(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    put8(&m, 'R');
    put32(&m, OID_BOOK);
    putstr(&m, "library");
    putstr(&m, "books");
    put8(&m, 'f');
    put16(&m, 1);
    put8(&m, 1);
    putstr(&m, "isbn");
    put32(&m, 1043);
    put32(&m, 17);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);

    /* the old three-column shape is gone */
    m.n = 0;
    build_insert(&m, OID_BOOK);
    assert_decode_fails(d, &m, "tuple has 3 columns, relation library.books (oid 16384) has 1");

    m.n = 0;
    put8(&m, 'I');
    put32(&m, OID_BOOK);
    put8(&m, 'N');
    put16(&m, 1);
    put_text(&m, "978-0441013593");
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_string_equal(msg.rel->nspname, "library");
    assert_string_equal(msg.rel->relname, "books");
    assert_int_equal(msg.rel->replident, 'f');
    assert_string_equal(msg.rel->cols[0].name, "isbn");
    assert_int_equal(msg.rel->cols[0].typmod, 17);
    assert_value(&msg.newtup.values[0], 't', "978-0441013593");
    pgo_decoder_free(d);
}

/* many relations make the cache grow and rehash; each stays findable */
static void test_relation_cache_holds_many_relations(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct pgo_msg msg;
    struct pgs_error err;
    char name[32];

    (void)state;
    for (uint32_t oid = 20000; oid < 21000; oid++) {
        struct msgbuf m = {0};

        snprintf(name, sizeof(name), "t%u", (unsigned)oid);
        put8(&m, 'R');
        put32(&m, oid * 7); /* strided, like oids of tables made in between others */
        putstr(&m, "public");
        putstr(&m, name);
        put8(&m, 'd');
        put16(&m, 1);
        put8(&m, 1);
        putstr(&m, "id");
        put32(&m, 23);
        put32(&m, UINT32_MAX);
        assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    }
    for (uint32_t oid = 20000; oid < 21000; oid++) {
        struct msgbuf m = {0};

        put8(&m, 'I');
        put32(&m, oid * 7);
        put8(&m, 'N');
        put16(&m, 1);
        put_text(&m, "1");
        assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
        snprintf(name, sizeof(name), "t%u", (unsigned)oid);
        assert_string_equal(msg.rel->relname, name);
    }
    pgo_decoder_free(d);
}

static void test_insert_with_text_and_null(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_insert(&m, OID_BOOK);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_INSERT);
    assert_string_equal(msg.rel->relname, "book");
    assert_int_equal(msg.newtup.nvalues, 3);
    assert_value(&msg.newtup.values[0], 't', "42");
    assert_value(&msg.newtup.values[1], 't', "Dune");
    assert_value(&msg.newtup.values[2], 'n', NULL);
    assert_int_equal(msg.old_kind, 0);
    assert_int_equal(msg.oldtup.nvalues, 0);
    pgo_decoder_free(d);
}

static void test_insert_with_binary_and_empty_values(void **state)
{
    static const char int4_42[] = {0, 0, 0, 42};
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    put8(&m, 'I');
    put32(&m, OID_BOOK);
    put8(&m, 'N');
    put16(&m, 3);
    put8(&m, 'b');
    put32(&m, 4);
    putraw(&m, int4_42, 4);
    put8(&m, 't');
    put32(&m, 0); /* '' is not NULL */
    put8(&m, 'b');
    put32(&m, 3);
    putraw(&m, "a\0b", 3);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.newtup.values[0].kind, 'b');
    assert_int_equal(msg.newtup.values[0].len, 4);
    assert_memory_equal(msg.newtup.values[0].data, int4_42, 4);
    assert_int_equal(msg.newtup.values[1].kind, 't');
    assert_int_equal(msg.newtup.values[1].len, 0);
    assert_non_null(msg.newtup.values[1].data);
    assert_int_equal(msg.newtup.values[2].len, 3);
    assert_memory_equal(msg.newtup.values[2].data, "a\0b", 3);
    pgo_decoder_free(d);
}

static void test_update_without_old_tuple(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    put8(&m, 'U');
    put32(&m, OID_BOOK);
    put8(&m, 'N');
    put16(&m, 3);
    put_text(&m, "42");
    put_text(&m, "Dune");
    put_text(&m, "spice");
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_UPDATE);
    assert_int_equal(msg.old_kind, 0);
    assert_int_equal(msg.oldtup.nvalues, 0);
    assert_null(msg.oldtup.values);
    assert_int_equal(msg.newtup.nvalues, 3);
    assert_value(&msg.newtup.values[2], 't', "spice");
    pgo_decoder_free(d);
}

static void test_update_with_old_key_tuple(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_update_with_key(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.old_kind, 'K');
    assert_int_equal(msg.oldtup.nvalues, 3);
    assert_value(&msg.oldtup.values[0], 't', "41");
    assert_value(&msg.oldtup.values[1], 'n', NULL);
    assert_value(&msg.newtup.values[0], 't', "42");
    assert_value(&msg.newtup.values[1], 't', "Dune Messiah");
    /* old and new live in separate scratch: one must not overwrite the other */
    assert_ptr_not_equal(msg.oldtup.values, msg.newtup.values);
    pgo_decoder_free(d);
}

static void test_update_with_old_full_row(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    put8(&m, 'U');
    put32(&m, OID_BOOK);
    put8(&m, 'O');
    put16(&m, 3);
    put_text(&m, "42");
    put_text(&m, "Dune");
    put8(&m, 'n');
    put8(&m, 'N');
    put16(&m, 3);
    put_text(&m, "42");
    put_text(&m, "Dune");
    put_text(&m, "now with a body");
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.old_kind, 'O');
    assert_value(&msg.oldtup.values[1], 't', "Dune");
    assert_value(&msg.oldtup.values[2], 'n', NULL);
    assert_value(&msg.newtup.values[2], 't', "now with a body");
    pgo_decoder_free(d);
}

static void test_update_marks_unchanged_toast_as_u(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_update_with_key(&m);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_value(&msg.newtup.values[2], 'u', NULL);
    pgo_decoder_free(d);
}

static void test_update_without_new_tuple_fails(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'U');
    put32(&m, OID_BOOK);
    put8(&m, 'K');
    put16(&m, 3);
    put_text(&m, "41");
    put8(&m, 'n');
    put8(&m, 'n');
    put8(&m, 'K'); /* 'N' must follow the old tuple */
    assert_decode_fails(d, &m, "pgoutput: Update at offset 17: unexpected tuple tag 0x4b");
    pgo_decoder_free(d);
}

static void test_delete_with_old_key(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_delete(&m, 'K');
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_DELETE);
    assert_string_equal(msg.rel->relname, "book");
    assert_int_equal(msg.old_kind, 'K');
    assert_value(&msg.oldtup.values[0], 't', "42");
    assert_value(&msg.oldtup.values[2], 'n', NULL);
    assert_int_equal(msg.newtup.nvalues, 0);
    pgo_decoder_free(d);
}

static void test_delete_with_old_full_row(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_delete(&m, 'O');
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.old_kind, 'O');
    assert_value(&msg.oldtup.values[2], 't', "spice");
    pgo_decoder_free(d);
}

static void test_delete_needs_an_old_tuple(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'D');
    put32(&m, OID_BOOK);
    put8(&m, 'N');
    put16(&m, 3);
    assert_decode_fails(d, &m, "pgoutput: Delete at offset 5: unexpected tuple tag 0x4e");
    pgo_decoder_free(d);
}

static void test_truncate_with_cascade_and_restart_identity(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_truncate(&m, 3);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_int_equal(msg.type, PGO_TRUNCATE);
    assert_int_equal(msg.ntruncated, 2);
    assert_string_equal(msg.truncated[0]->relname, "book");
    assert_string_equal(msg.truncated[1]->relname, "author");
    assert_true(msg.truncate_cascade);
    assert_true(msg.truncate_restart_identity);
    pgo_decoder_free(d);
}

static void test_truncate_options_are_separate_bits(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_truncate(&m, 0);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_false(msg.truncate_cascade);
    assert_false(msg.truncate_restart_identity);
    m.n = 0;
    build_truncate(&m, 2);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_false(msg.truncate_cascade);
    assert_true(msg.truncate_restart_identity);
    m.n = 0;
    build_truncate(&m, 1);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_true(msg.truncate_cascade);
    assert_false(msg.truncate_restart_identity);
    pgo_decoder_free(d);
}

/* ---- errors ---- */

static void test_insert_for_unknown_oid_names_it_and_the_offset(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    build_insert(&m, OID_BOOK);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), -1);
    assert_string_equal(err.msg, "pgoutput: Insert for unknown relation oid 16384 at offset 1");
    assert_int_equal(err.kind, PGS_ERR_FATAL);
    pgo_decoder_free(d);
}

static void test_update_delete_truncate_for_unknown_oid_fail(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};

    (void)state;
    build_update_with_key(&m);
    assert_decode_fails(d, &m, "pgoutput: Update for unknown relation oid 16384 at offset 1");
    m.n = 0;
    build_delete(&m, 'K');
    assert_decode_fails(d, &m, "pgoutput: Delete for unknown relation oid 16384 at offset 1");
    pgo_decoder_free(d);

    /* the second oid of a truncate is unknown: the error points at it */
    d = pgo_decoder_new();
    m.n = 0;
    build_book_relation(&m);
    {
        struct pgo_msg msg;
        struct pgs_error err;

        assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    }
    m.n = 0;
    build_truncate(&m, 0);
    assert_decode_fails(d, &m, "pgoutput: Truncate for unknown relation oid 16390 at offset 10");
    pgo_decoder_free(d);
}

static void test_tuple_with_wrong_column_count_fails(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'I');
    put32(&m, OID_BOOK);
    put8(&m, 'N');
    put16(&m, 2);
    put_text(&m, "42");
    put_text(&m, "Dune");
    assert_decode_fails(d, &m,
                        "pgoutput: Insert at offset 6: tuple has 2 columns, relation public.book "
                        "(oid 16384) has 3");
    pgo_decoder_free(d);
}

/* a 10-byte Relation claiming 65535 columns fails before allocating them */
static void test_relation_with_hostile_column_count_fails(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'R');
    put32(&m, 77);
    putstr(&m, "");
    putstr(&m, "");
    put8(&m, 'd');
    put16(&m, 65535);
    assert_int_equal(m.n, 10);
    assert_decode_fails(d, &m, "Relation 77 at offset 8 claims 65535 columns but only 0 bytes");
    pgo_decoder_free(d);
}

/* a relation with many columns, then a short insert claiming them all */
static void test_tuple_count_is_bounded_by_message_length(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    put8(&m, 'R');
    put32(&m, 5);
    putstr(&m, "p");
    putstr(&m, "wide");
    put8(&m, 'd');
    put16(&m, 60);
    for (int i = 0; i < 60; i++) {
        put8(&m, 0);
        putstr(&m, "");
        put32(&m, 23);
        put32(&m, UINT32_MAX);
    }
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    m.n = 0;
    put8(&m, 'I');
    put32(&m, 5);
    put8(&m, 'N');
    put16(&m, 60);
    put8(&m, 'n');
    assert_decode_fails(d, &m, "Insert truncated at offset 8: 60 tuple columns but only 1 bytes");
    pgo_decoder_free(d);
}

static void test_truncate_with_hostile_count_fails(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'T');
    put32(&m, UINT32_MAX);
    put8(&m, 0);
    put32(&m, OID_BOOK);
    assert_decode_fails(d, &m, "Truncate at offset 1 claims 4294967295 relations but only 4 bytes");
    pgo_decoder_free(d);
}

static void test_value_length_past_the_end_fails(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'I');
    put32(&m, OID_BOOK);
    put8(&m, 'N');
    put16(&m, 3);
    put8(&m, 't');
    put32(&m, UINT32_MAX);
    put8(&m, 'x');
    assert_decode_fails(d, &m, "Insert truncated at offset 13: column value needs 4294967295");
    pgo_decoder_free(d);
}

static void test_unknown_value_kind_fails(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'I');
    put32(&m, OID_BOOK);
    put8(&m, 'N');
    put16(&m, 3);
    put_text(&m, "1");
    put8(&m, 'x');
    assert_decode_fails(d, &m,
                        "pgoutput: Insert at offset 14: unknown kind 0x78 for column 2 (title) "
                        "of public.book");
    pgo_decoder_free(d);
}

static void test_unknown_and_streaming_message_types_fail(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'S'); /* Stream Start: protocol version 2 only */
    put32(&m, 731);
    put8(&m, 1);
    assert_decode_fails(d, &m, "pgoutput: unknown message type 0x53 ('S') at offset 0");
    m.n = 0;
    put8(&m, 0);
    assert_decode_fails(d, &m, "unknown message type 0x00 ('?')");
    pgo_decoder_free(d);
}

static void test_trailing_bytes_fail(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};

    (void)state;
    build_begin(&m);
    put8(&m, 0);
    assert_decode_fails(d, &m, "pgoutput: Begin has 1 unexpected trailing bytes at offset 21");
    m.n = 0;
    build_insert(&m, OID_BOOK);
    put32(&m, 0);
    assert_decode_fails(d, &m, "Insert has 4 unexpected trailing bytes");
    pgo_decoder_free(d);
}

static void test_empty_message_fails(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    assert_int_equal(pgo_decode(d, NULL, 0, &msg, &err), -1);
    assert_non_null(strstr(err.msg, "message type needs 1 bytes, 0 left"));
    pgo_decoder_free(d);
}

static void test_string_without_nul_fails(void **state)
{
    struct pgo_decoder *d = pgo_decoder_new();
    struct msgbuf m = {0};

    (void)state;
    put8(&m, 'O');
    put64(&m, 1);
    putraw(&m, "upstream", 8);
    assert_decode_fails(d, &m,
                        "Origin truncated at offset 9: origin name has no terminating NUL in the "
                        "8 bytes left");
    pgo_decoder_free(d);
}

/* every prefix of every message type: -1 with a text, never a crash */
static void test_every_truncation_of_every_message_fails_cleanly(void **state)
{
    void (*plain[])(struct msgbuf *) = {
        build_begin,   build_commit,        build_origin,          build_type,
        build_message, build_book_relation, build_author_relation, build_update_with_key};
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m;

    (void)state;
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        memset(&m, 0, sizeof(m));
        plain[i](&m);
        assert_every_prefix_fails(d, &m);
    }
    memset(&m, 0, sizeof(m));
    build_insert(&m, OID_BOOK);
    assert_every_prefix_fails(d, &m);
    memset(&m, 0, sizeof(m));
    build_delete(&m, 'K');
    assert_every_prefix_fails(d, &m);
    memset(&m, 0, sizeof(m));
    build_delete(&m, 'O');
    assert_every_prefix_fails(d, &m);
    memset(&m, 0, sizeof(m));
    build_truncate(&m, 3);
    assert_every_prefix_fails(d, &m);
    pgo_decoder_free(d);
}

/* a broken Relation must leave the cached one in place */
static void test_truncated_relation_keeps_the_cached_one(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;

    (void)state;
    put8(&m, 'R');
    put32(&m, OID_BOOK);
    putstr(&m, "public");
    putstr(&m, "renamed");
    put8(&m, 'd');
    put16(&m, 1);
    put8(&m, 1);
    putstr(&m, "id");
    put32(&m, 23); /* typmod missing */
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), -1);
    m.n = 0;
    build_insert(&m, OID_BOOK);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    assert_string_equal(msg.rel->relname, "book");
    pgo_decoder_free(d);
}

/* steady state: the same scratch arrays serve every row */
static void test_tuple_scratch_is_reused(void **state)
{
    struct pgo_decoder *d = decoder_with_book();
    struct msgbuf m = {0};
    struct pgo_msg msg;
    struct pgs_error err;
    const struct pgo_value *first;

    (void)state;
    build_insert(&m, OID_BOOK);
    assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
    first = msg.newtup.values;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(pgo_decode(d, m.b, m.n, &msg, &err), 0);
        assert_ptr_equal(msg.newtup.values, first);
    }
    pgo_decoder_free(d);
}

/* ---- frames, status, time, LSNs ---- */

static void test_xlogdata_frame_points_at_the_message(void **state)
{
    struct msgbuf m = {0};
    struct pgo_frame f;
    struct pgs_error err;

    (void)state;
    put8(&m, 'w');
    put64(&m, 0x16B3748);
    put64(&m, 0x16B4000);
    put64(&m, 700000000000001LL);
    build_begin(&m);
    assert_int_equal(pgo_parse_frame(m.b, m.n, &f, &err), 0);
    assert_int_equal(f.kind, 'w');
    assert_int_equal(f.wal_start, 0x16B3748);
    assert_int_equal(f.wal_end, 0x16B4000);
    assert_int_equal(f.send_time, 700000000000001LL);
    assert_ptr_equal(f.data, m.b + 25);
    assert_int_equal(f.len, 21);
    assert_int_equal(f.data[0], 'B');
}

static void test_xlogdata_frame_may_be_empty(void **state)
{
    struct msgbuf m = {0};
    struct pgo_frame f;
    struct pgs_error err;

    (void)state;
    put8(&m, 'w');
    put64(&m, 1);
    put64(&m, 2);
    put64(&m, 3);
    assert_int_equal(pgo_parse_frame(m.b, m.n, &f, &err), 0);
    assert_int_equal(f.len, 0);
}

static void test_keepalive_frame_gives_end_and_reply_flag(void **state)
{
    struct msgbuf m = {0};
    struct pgo_frame f;
    struct pgs_error err;

    (void)state;
    put8(&m, 'k');
    put64(&m, 0xAB00000001ULL);
    put64(&m, (uint64_t)-5); /* send time before the epoch: still signed */
    put8(&m, 1);
    assert_int_equal(pgo_parse_frame(m.b, m.n, &f, &err), 0);
    assert_int_equal(f.kind, 'k');
    assert_int_equal(f.wal_end, 0xAB00000001ULL);
    assert_int_equal(f.send_time, -5);
    assert_int_equal(f.reply_requested, 1);
    assert_null(f.data);
    m.b[17] = 0;
    assert_int_equal(pgo_parse_frame(m.b, m.n, &f, &err), 0);
    assert_int_equal(f.reply_requested, 0);
}

static void test_every_truncation_of_a_frame_fails_cleanly(void **state)
{
    struct msgbuf frames[2] = {{{0}, 0}, {{0}, 0}};

    (void)state;
    put8(&frames[0], 'w');
    put64(&frames[0], 1);
    put64(&frames[0], 2);
    put64(&frames[0], 3);
    put8(&frames[1], 'k');
    put64(&frames[1], 1);
    put64(&frames[1], 2);
    put8(&frames[1], 0);
    for (int i = 0; i < 2; i++) {
        for (size_t len = 0; len < frames[i].n; len++) {
            char *copy = malloc(len ? len : 1);
            struct pgo_frame f;
            struct pgs_error err;

            memcpy(copy, frames[i].b, len);
            pgs_error_clear(&err);
            assert_int_equal(pgo_parse_frame(copy, len, &f, &err), -1);
            assert_true(err.msg[0] != '\0');
            free(copy);
        }
    }
}

static void test_unknown_frame_kind_fails(void **state)
{
    struct pgo_frame f;
    struct pgs_error err;

    (void)state;
    assert_int_equal(pgo_parse_frame("r123", 4, &f, &err), -1);
    assert_string_equal(err.msg,
                        "pgoutput: unknown replication frame kind 0x72 at offset 0 (4 bytes)");
}

static void test_status_update_is_34_bytes_big_endian(void **state)
{
    static const unsigned char want[34] = {
        'r',  0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, /* written */
        0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x00,       /* flushed */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,       /* applied */
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,       /* now: -2 */
        1};
    char out[40];

    (void)state;
    memset(out, 0x55, sizeof(out));
    assert_int_equal(pgo_build_status(out, 0x0102030405ULL, 0x0102030400ULL, 0x10, -2, 7), 34);
    assert_memory_equal(out, want, 34);
    assert_int_equal((unsigned char)out[34], 0x55); /* nothing past the 34 */
    pgo_build_status(out, 0, 0, 0, 0, 0);
    assert_int_equal(out[33], 0);
}

static void test_now_counts_from_2000(void **state)
{
    int64_t now = pgo_now();
    int64_t unix_us = (int64_t)time(NULL) * 1000000;

    (void)state;
    /* 946684800 s separate 1970-01-01 from 2000-01-01 */
    assert_true(now > (unix_us - 946684800LL * 1000000) - 2000000);
    assert_true(now < (unix_us - 946684800LL * 1000000) + 2000000);
}

/* ---- a genuine PostgreSQL 15 stream ---- */

struct fixture {
    char name[64];
    char *data;
    size_t len;
};

static int fixture_cmp(const void *a, const void *b)
{
    return strcmp(((const struct fixture *)a)->name, ((const struct fixture *)b)->name);
}

/* Every *.bin of "dir", sorted by name; returns how many. */
static size_t fixtures_load(const char *dir, struct fixture *out, size_t max)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (dh == NULL)
        fail_msg("cannot open %s: run the tests from the repository root", dir);
    while ((e = readdir(dh)) != NULL) {
        size_t nlen = strlen(e->d_name);
        char path[512];
        FILE *f;
        long size;

        if (nlen < 5 || strcmp(e->d_name + nlen - 4, ".bin") != 0)
            continue;
        assert_true(n < max);
        assert_true(nlen < sizeof(out[n].name));
        memcpy(out[n].name, e->d_name, nlen + 1);
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        assert_true(size > 0);
        rewind(f);
        /* exact size, so ASan sees any read past a message */
        out[n].data = malloc((size_t)size);
        assert_non_null(out[n].data);
        assert_int_equal(fread(out[n].data, 1, (size_t)size, f), (size_t)size);
        out[n].len = (size_t)size;
        fclose(f);
        n++;
    }
    closedir(dh);
    qsort(out, n, sizeof(*out), fixture_cmp);
    return n;
}

static void fixtures_free(struct fixture *fx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(fx[i].data);
}

/* What each message of the captured stream is (see the README beside it). */
static const struct {
    char type;
    const char *relname; /* R, I, U, D: the relation; T: the first one */
} stream_expect[] = {
    {'B', NULL},     {'Y', NULL},     {'R', "author"}, {'I', "author"}, {'R', "book"},
    {'I', "book"},   {'I', "book"},   {'C', NULL},     {'B', NULL},     {'U', "book"},
    {'C', NULL},     {'B', NULL},     {'U', "book"},   {'C', NULL},     {'B', NULL},
    {'R', "review"}, {'I', "review"}, {'C', NULL},     {'B', NULL},     {'U', "review"},
    {'C', NULL},     {'B', NULL},     {'D', "review"}, {'C', NULL},     {'B', NULL},
    {'D', "book"},   {'C', NULL},     {'B', NULL},     {'R', "review"}, {'T', "review"},
    {'C', NULL},     {'B', NULL},     {'M', NULL},     {'C', NULL},     {'B', NULL},
    {'O', NULL},     {'I', "author"}, {'C', NULL},
};

#define NSTREAM (sizeof(stream_expect) / sizeof(stream_expect[0]))

static void check_stream_message(size_t i, const struct pgo_msg *msg)
{
    const struct pgo_value *v = msg->newtup.values;
    const struct pgo_value *o = msg->oldtup.values;

    switch (i) {
    case 0: /* Begin of the first transaction */
        assert_int_equal(msg->xid, 731);
        assert_int_equal(msg->final_lsn, 0x1553C78);
        break;
    case 2:
        assert_string_equal(msg->rel->nspname, "public");
        assert_int_equal(msg->rel->ncols, 3);
        assert_string_equal(msg->rel->cols[2].name, "mood");
        assert_true(msg->rel->cols[0].is_key);
        assert_false(msg->rel->cols[1].is_key);
        break;
    case 3:
        assert_value(&v[0], 't', "1");
        assert_value(&v[1], 't', "Frank Herbert");
        assert_value(&v[2], 't', "happy");
        break;
    case 4: /* numeric(8,2): typmod is ((8 << 16) | 2) + 4 */
        assert_int_equal(msg->rel->ncols, 5);
        assert_string_equal(msg->rel->cols[3].name, "price");
        assert_int_equal(msg->rel->cols[3].type_oid, 1700);
        assert_int_equal(msg->rel->cols[3].typmod, (8 << 16 | 2) + 4);
        break;
    case 5: /* the large body arrives whole on insert */
        assert_value(&v[1], 't', "Dune");
        assert_int_equal(v[2].kind, 't');
        assert_int_equal(v[2].len, 12000);
        assert_memory_equal(v[2].data, "spice spice ", 12);
        assert_value(&v[3], 't', "9.99");
        break;
    case 6:
        assert_value(&v[1], 't', "Untitled");
        assert_value(&v[2], 'n', NULL);
        assert_value(&v[3], 'n', NULL);
        break;
    case 7:
        assert_int_equal(msg->commit_lsn, 0x1553C78);
        assert_int_equal(msg->end_lsn, 0x1553CA8);
        break;
    case 9: /* UPDATE book SET price: body untouched, so not sent */
        assert_int_equal(msg->old_kind, 0);
        assert_value(&v[0], 't', "1");
        assert_value(&v[1], 't', "Dune");
        assert_value(&v[2], 'u', NULL);
        assert_value(&v[3], 't', "12.50");
        break;
    case 12: /* UPDATE book SET id = 3 WHERE id = 2: the old key comes along */
        assert_int_equal(msg->old_kind, 'K');
        assert_value(&o[0], 't', "2");
        assert_value(&o[1], 'n', NULL);
        assert_value(&v[0], 't', "3");
        assert_value(&v[1], 't', "Untitled");
        break;
    case 15:
        assert_int_equal(msg->rel->replident, 'f');
        break;
    case 19: /* REPLICA IDENTITY FULL: the whole old row */
        assert_int_equal(msg->old_kind, 'O');
        assert_value(&o[1], 't', "great");
        assert_value(&v[1], 't', "superb");
        break;
    case 22:
        assert_int_equal(msg->old_kind, 'O');
        assert_value(&o[0], 't', "1");
        assert_value(&o[1], 't', "superb");
        break;
    case 25:
        assert_int_equal(msg->old_kind, 'K');
        assert_value(&o[0], 't', "3");
        break;
    case 29: /* TRUNCATE review RESTART IDENTITY CASCADE */
        assert_int_equal(msg->ntruncated, 1);
        assert_true(msg->truncate_cascade);
        assert_true(msg->truncate_restart_identity);
        break;
    case 32:
        assert_string_equal(msg->prefix, "pgsync");
        assert_int_equal(msg->content_len, 5);
        assert_memory_equal(msg->content, "hello", 5);
        break;
    case 35:
        assert_string_equal(msg->origin, "upstream");
        break;
    case 36:
        assert_value(&v[1], 't', "Ursula K. Le Guin");
        assert_value(&v[2], 't', "sad");
        break;
    default:
        break;
    }
}

static void test_fixture_stream_from_postgres_decodes(void **state)
{
    struct fixture fx[64];
    size_t n = fixtures_load(FIXTURE_DIR, fx, 64);
    struct pgo_decoder *d = pgo_decoder_new();

    (void)state;
    assert_int_equal(n, NSTREAM);
    for (size_t i = 0; i < n; i++) {
        struct pgo_msg msg;
        struct pgs_error err;

        if (pgo_decode(d, fx[i].data, fx[i].len, &msg, &err) != 0)
            fail_msg("%s: %s", fx[i].name, err.msg);
        assert_int_equal(msg.type, stream_expect[i].type);
        if (stream_expect[i].relname != NULL) {
            const struct pgo_relation *rel = msg.type == PGO_TRUNCATE ? msg.truncated[0] : msg.rel;

            assert_string_equal(rel->nspname, "public");
            assert_string_equal(rel->relname, stream_expect[i].relname);
            if (msg.type == PGO_INSERT || msg.type == PGO_UPDATE)
                assert_int_equal(msg.newtup.nvalues, rel->ncols);
        }
        check_stream_message(i, &msg);
    }
    pgo_decoder_free(d);
    fixtures_free(fx, n);
}

/* the same first transaction with 'binary' 'true': values in send format */
static void test_fixture_binary_stream_from_postgres_decodes(void **state)
{
    struct fixture fx[16];
    size_t n = fixtures_load(FIXTURE_DIR "/binary", fx, 16);
    struct pgo_decoder *d = pgo_decoder_new();
    static const char int4_1[] = {0, 0, 0, 1};

    (void)state;
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++) {
        struct pgo_msg msg;
        struct pgs_error err;

        if (pgo_decode(d, fx[i].data, fx[i].len, &msg, &err) != 0)
            fail_msg("binary/%s: %s", fx[i].name, err.msg);
        assert_int_equal(msg.type, stream_expect[i].type);
        if (i == 3) {
            assert_int_equal(msg.newtup.values[0].kind, 'b');
            assert_int_equal(msg.newtup.values[0].len, 4);
            assert_memory_equal(msg.newtup.values[0].data, int4_1, 4);
            assert_int_equal(msg.newtup.values[1].kind, 'b');
            assert_memory_equal(msg.newtup.values[1].data, "Frank Herbert", 13);
        }
        if (i == 6)
            assert_value(&msg.newtup.values[2], 'n', NULL);
    }
    pgo_decoder_free(d);
    fixtures_free(fx, n);
}

/* each genuine message, cut short anywhere, fails cleanly too */
static void test_every_truncation_of_fixture_messages_fails_cleanly(void **state)
{
    struct fixture fx[64];
    size_t n = fixtures_load(FIXTURE_DIR, fx, 64);
    struct pgo_decoder *d = pgo_decoder_new();

    (void)state;
    for (size_t i = 0; i < n; i++) {
        struct pgo_msg msg;
        struct pgs_error err;

        for (size_t len = 0; len < fx[i].len; len++) {
            char *copy = malloc(len ? len : 1);

            memcpy(copy, fx[i].data, len);
            if (pgo_decode(d, copy, len, &msg, &err) != -1)
                fail_msg("%s cut to %zu bytes decoded", fx[i].name, len);
            free(copy);
        }
        /* whole, so the relations are cached for the messages after it */
        assert_int_equal(pgo_decode(d, fx[i].data, fx[i].len, &msg, &err), 0);
    }
    pgo_decoder_free(d);
    fixtures_free(fx, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_begin_gives_final_lsn_time_and_xid),
        cmocka_unit_test(test_commit_gives_lsns_and_time),
        cmocka_unit_test(test_origin_gives_name),
        cmocka_unit_test(test_type_message_is_accepted),
        cmocka_unit_test(test_logical_message_gives_prefix_and_content),
        cmocka_unit_test(test_relation_is_returned_and_cached),
        cmocka_unit_test(test_relation_with_empty_namespace_is_pg_catalog),
        cmocka_unit_test(test_relation_replacement_takes_the_new_columns),
        cmocka_unit_test(test_relation_cache_holds_many_relations),
        cmocka_unit_test(test_insert_with_text_and_null),
        cmocka_unit_test(test_insert_with_binary_and_empty_values),
        cmocka_unit_test(test_update_without_old_tuple),
        cmocka_unit_test(test_update_with_old_key_tuple),
        cmocka_unit_test(test_update_with_old_full_row),
        cmocka_unit_test(test_update_marks_unchanged_toast_as_u),
        cmocka_unit_test(test_update_without_new_tuple_fails),
        cmocka_unit_test(test_delete_with_old_key),
        cmocka_unit_test(test_delete_with_old_full_row),
        cmocka_unit_test(test_delete_needs_an_old_tuple),
        cmocka_unit_test(test_truncate_with_cascade_and_restart_identity),
        cmocka_unit_test(test_truncate_options_are_separate_bits),
        cmocka_unit_test(test_insert_for_unknown_oid_names_it_and_the_offset),
        cmocka_unit_test(test_update_delete_truncate_for_unknown_oid_fail),
        cmocka_unit_test(test_tuple_with_wrong_column_count_fails),
        cmocka_unit_test(test_relation_with_hostile_column_count_fails),
        cmocka_unit_test(test_tuple_count_is_bounded_by_message_length),
        cmocka_unit_test(test_truncate_with_hostile_count_fails),
        cmocka_unit_test(test_value_length_past_the_end_fails),
        cmocka_unit_test(test_unknown_value_kind_fails),
        cmocka_unit_test(test_unknown_and_streaming_message_types_fail),
        cmocka_unit_test(test_trailing_bytes_fail),
        cmocka_unit_test(test_empty_message_fails),
        cmocka_unit_test(test_string_without_nul_fails),
        cmocka_unit_test(test_every_truncation_of_every_message_fails_cleanly),
        cmocka_unit_test(test_truncated_relation_keeps_the_cached_one),
        cmocka_unit_test(test_tuple_scratch_is_reused),
        cmocka_unit_test(test_xlogdata_frame_points_at_the_message),
        cmocka_unit_test(test_xlogdata_frame_may_be_empty),
        cmocka_unit_test(test_keepalive_frame_gives_end_and_reply_flag),
        cmocka_unit_test(test_every_truncation_of_a_frame_fails_cleanly),
        cmocka_unit_test(test_unknown_frame_kind_fails),
        cmocka_unit_test(test_status_update_is_34_bytes_big_endian),
        cmocka_unit_test(test_now_counts_from_2000),
        cmocka_unit_test(test_fixture_stream_from_postgres_decodes),
        cmocka_unit_test(test_fixture_binary_stream_from_postgres_decodes),
        cmocka_unit_test(test_every_truncation_of_fixture_messages_fails_cleanly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
