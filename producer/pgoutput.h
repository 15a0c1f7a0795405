/*
 * pgoutput.h - decoder for the logical replication stream: the CopyData
 * frames of START_REPLICATION (XLogData 'w', primary keepalive 'k') and the
 * pgoutput plugin's messages inside XLogData (protocol version 1: Begin,
 * Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate, Message).
 *
 * Bytes in, structs out: no I/O. Every read is length-checked; a short or
 * malformed message is an error naming the message and the offset, never a
 * crash. Tuple values and names in a decoded message borrow from the input
 * buffer or from the decoder and stay valid until the next pgo_decode() call.
 */
#ifndef PGS_PGOUTPUT_H
#define PGS_PGOUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* ---- replication protocol frames (CopyData payloads) ---- */

struct pgo_frame {
    char kind;            /* 'w' XLogData, 'k' keepalive */
    uint64_t wal_start;   /* 'w': start of the data in WAL */
    uint64_t wal_end;     /* 'w' and 'k': the server's current end of WAL */
    int64_t send_time;    /* microseconds since 2000-01-01 */
    int reply_requested;  /* 'k': the server wants a status update now */
    const char *data;     /* 'w': the pgoutput message (borrowed from the input) */
    size_t len;
};

int pgo_parse_frame(const char *buf, size_t len, struct pgo_frame *out,
                    struct pgs_error *err) PGS_MUSTCHECK;

/* Standby status update ('r'): writes 34 bytes into "out" and returns 34. */
size_t pgo_build_status(char *out, uint64_t written, uint64_t flushed, uint64_t applied,
                        int64_t now_us, int reply_requested);
/* Microseconds since the PostgreSQL epoch (2000-01-01 UTC), for pgo_build_status. */
int64_t pgo_now(void);

/* ---- pgoutput messages ---- */

struct pgo_relcol {
    char *name;
    uint32_t type_oid;
    int32_t typmod;
    int is_key; /* flags & 1: part of the replica identity */
};

struct pgo_relation {
    uint32_t oid;
    char *nspname;
    char *relname;
    char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
    struct pgo_relcol *cols;
    int ncols;
};

struct pgo_value {
    char kind;        /* 'n' NULL, 'u' unchanged TOAST (value not sent), 't' text, 'b' binary */
    const char *data; /* borrowed; not NUL-terminated; NULL for 'n' and 'u' */
    uint32_t len;
};

struct pgo_tuple {
    struct pgo_value *values; /* owned by the decoder, reused */
    int nvalues;
};

enum pgo_type {
    PGO_BEGIN = 'B',
    PGO_COMMIT = 'C',
    PGO_ORIGIN = 'O',
    PGO_RELATION = 'R',
    PGO_TYPE = 'Y',
    PGO_INSERT = 'I',
    PGO_UPDATE = 'U',
    PGO_DELETE = 'D',
    PGO_TRUNCATE = 'T',
    PGO_MESSAGE = 'M'
};

struct pgo_msg {
    enum pgo_type type;
    /* B */
    uint64_t final_lsn;   /* B: LSN of the commit record */
    int64_t commit_time;  /* B, C */
    uint32_t xid;         /* B */
    /* C */
    uint64_t commit_lsn;
    uint64_t end_lsn;
    /* R, I, U, D: the relation (from the decoder's cache for I/U/D) */
    const struct pgo_relation *rel;
    /* I, U: the new row; U, D: the old row or key when sent */
    struct pgo_tuple newtup;
    struct pgo_tuple oldtup;
    char old_kind;        /* U, D: 'K' key only, 'O' whole old row, 0 when absent */
    /* T */
    const struct pgo_relation **truncated; /* owned by the decoder */
    int ntruncated;
    int truncate_cascade;
    int truncate_restart_identity;
    /* O */
    const char *origin;
    /* M */
    const char *prefix;
    const char *content;
    uint32_t content_len;
};

struct pgo_decoder; /* relation cache and scratch space */

struct pgo_decoder *pgo_decoder_new(void);
void pgo_decoder_free(struct pgo_decoder *d);

/*
 * Decode one pgoutput message. Relation messages update the cache (and are
 * also returned); I/U/D/T for a relation never announced is an error.
 */
int pgo_decode(struct pgo_decoder *d, const char *buf, size_t len, struct pgo_msg *out,
               struct pgs_error *err) PGS_MUSTCHECK;

#endif
