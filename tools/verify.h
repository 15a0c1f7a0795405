/*
 * verify.h - does the index hold exactly the documents the database would
 * build today? Both sides are streamed in _id byte order (the database
 * through a cursor over the document query, the index through a scroll
 * piped into an external `LC_ALL=C sort`) and merged: documents missing from
 * the index, extra in it, or different, with a per-field diff. Optionally
 * repairs the drift with versioned writes. Memory stays bounded whatever the
 * number of documents.
 *
 * The pure parts (JSON equality and diff, the merge over two sorted
 * iterators, the order-preserving hex coding of ids) do no I/O and are
 * exposed for the unit tests.
 */
#ifndef PGS_VERIFY_H
#define PGS_VERIFY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "app.h"
#include "config.h"
#include "error.h"
#include "es.h"
#include "strbuf.h"

/* ---- pure parts ---- */

/*
 * Semantic JSON equality: object key order does not matter, numbers compare
 * as numbers (integer 1 equals real 1.0), strings byte for byte.
 */
int verify_json_equal(const json_t *a, const json_t *b);

/*
 * Every JSON path where "db" and "ix" differ, depth first, object keys in
 * byte order. Appends up to "max_paths" objects {"path": "authors[1]",
 * "database": v, "index": v} to the array "out" (a side's key is left out
 * when the value is absent there); returns the number of differing paths,
 * all of them, even those beyond "max_paths".
 */
int verify_json_diff(const json_t *db, const json_t *ix, json_t *out, int max_paths);

/*
 * One diff object as a line for people, into "sb" (appended, no newline):
 *   authors[1]: "Philip Gabriel" != "Phil Gabriel"
 * Values are compact JSON cut at 120 bytes with "..."; an absent side is "(absent)".
 */
void verify_diff_line(const json_t *d, struct strbuf *sb);

/*
 * Parse a document; an integer too large for 64 bits makes the whole text
 * parse again with integers as reals rather than fail. Returns a new
 * reference or NULL (with "err").
 */
json_t *verify_json_parse(const char *text, size_t len, struct pgs_error *err);

/* Lowercase hex of "len" bytes, appended to "sb": byte order is kept, so ids sort the same. */
void verify_hex_encode(const char *s, size_t len, struct strbuf *sb);
/* The reverse, into "sb" (reset first); -1 on an odd length or a bad digit. */
int verify_hex_decode(const char *hex, size_t len, struct strbuf *sb);

/* One document from either side, borrowed until that side's next call. */
struct verify_item {
    const char *id;  /* NUL-terminated _id */
    const char *doc; /* JSON text, "doclen" bytes */
    size_t doclen;
    uint64_t version;        /* the index's _version; 0 on the database side */
    const char *routing;     /* the index's _routing, or NULL */
    const char *const *keys; /* the database side's root key values as text, or NULL */
};

/* 1: "*out" is the next item (ids ascending in byte order), 0: the end, -1: "err" set. */
typedef int (*verify_next_fn)(void *ctx, struct verify_item *out, struct pgs_error *err);

struct verify_iter {
    verify_next_fn next;
    void *ctx;
};

enum verify_kind {
    VERIFY_SAME = 0,
    VERIFY_MISSING,   /* in the database, not in the index */
    VERIFY_EXTRA,     /* in the index, not in the database */
    VERIFY_DIFFERENT, /* in both, not equal */
    VERIFY_NEWER      /* the index copy was written after the snapshot: not judged */
};

struct verify_counts {
    long long checked; /* distinct _ids looked at (an index duplicate counts again) */
    long long same, missing, extra, different, newer;
};

/*
 * Called once per _id. "db"/"ix" are NULL on the side that lacks it; the
 * parsed documents "dbdoc"/"ixdoc" are given (borrowed) for VERIFY_SAME and
 * VERIFY_DIFFERENT only. A non-zero return stops the merge with that value.
 */
typedef int (*verify_result_fn)(void *arg, enum verify_kind kind, const struct verify_item *db,
                                const struct verify_item *ix, const json_t *dbdoc,
                                const json_t *ixdoc, struct pgs_error *err);

/*
 * Merge-join "db" and "ix", both ascending by _id in byte order (strcmp),
 * counting into "counts" (zeroed first) and calling "fn" for every _id. An
 * index copy whose version is above "snapshot_version" (when non-zero) was
 * written after the database snapshot and is VERIFY_NEWER, never drift. Ids
 * out of order are an error (the two sides must sort alike). Returns 0, or
 * -1 with "err" (an iterator's error, an unparsable document, or "fn"'s).
 */
int verify_merge(struct verify_iter *db, struct verify_iter *ix, uint64_t snapshot_version,
                 verify_result_fn fn, void *arg, struct verify_counts *counts,
                 struct pgs_error *err) PGS_MUSTCHECK;

/* ---- one schema entry against its index ---- */

struct verify_opts {
    int repair;                  /* re-index missing and different, delete extra */
    long long sample;            /* > 0: only this many random root documents */
    int max_diffs;               /* drifted documents kept in the result's "diffs" */
    int progress;                /* a log line every few seconds on stderr */
    volatile sig_atomic_t *stop; /* set by a signal: give up */
};

struct verify_result {
    char index[256];
    int sampled;      /* 1: a sample, which cannot see extra documents */
    uint64_t version; /* the WAL position read before the snapshot */
    struct verify_counts counts;
    long long repaired;         /* writes the engine applied */
    long long repair_conflicts; /* left alone: a newer copy was there (409), or the root
                                   row is gone by now (the consumers delete it) */
    long long repair_failed;    /* refused by the engine (the reason is logged) */
    double seconds;
    /* the first "max_diffs" drifted documents:
     * [{"kind": "different", "id": "...", "fields": [diff objects], "more_fields": N}] */
    json_t *diffs;
};

/*
 * Compare entry "ae" with its index and, with "repair", fix what differs.
 * "res" is filled (free it with verify_result_free) also on failure as far
 * as it got. Returns 0 when the comparison ran to the end (drift or not),
 * -1 with "err" when it could not.
 */
int verify_entry(const struct config *cfg, struct app_entry *ae, struct es_client *es,
                 const struct verify_opts *opts, struct verify_result *res,
                 struct pgs_error *err) PGS_MUSTCHECK;
void verify_result_free(struct verify_result *res);

/* 1 when "res" found any drift (missing, extra or different). */
int verify_result_drift(const struct verify_result *res);

#endif
