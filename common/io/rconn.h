/*
 * rconn.h - one blocking connection to one Redis node, plain TCP or TLS
 * (OpenSSL), with replies parsed by hiredis's redisReader. Debian 12's
 * hiredis (0.14.1) has no TLS: we keep it for parsing replies and
 * formatting commands, and own the socket and the TLS session here.
 *
 * Errors travel with the connection, as in hiredis: once a read or a write
 * fails or times out the connection is broken for good (rconn_broken,
 * rconn_errstr) and the caller closes it and connects again.
 *
 * SIGPIPE: never raised by rconn. Plain writes use send(MSG_NOSIGNAL), and
 * TLS goes through a BIO of ours over the same fd that writes the same way,
 * so a peer that closed gives EPIPE, not a signal; callers need not ignore
 * SIGPIPE for rconn's sake.
 */
#ifndef PGS_RCONN_H
#define PGS_RCONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "error.h"

/*
 * The TLS settings (REDIS_TLS_* and rediss:// in REDIS_URL). All NULL/0:
 * plain TCP. Careful: "verify" is 0 in a zeroed struct, so a caller that
 * enables TLS must set it (1 unless REDIS_TLS_VERIFY=none).
 */
struct rconn_tls {
    int enabled;
    const char *ca_file;     /* PEM bundle of trusted CAs; NULL: the system's default store */
    const char *cert_file;   /* client certificate (PEM), for servers that ask for one */
    const char *key_file;    /* its key (PEM); NULL: in "cert_file" too */
    const char *server_name; /* SNI and the name checked in the certificate; NULL: the host */
    int verify;              /* 1 (default): check the chain and the name; 0: neither */
};

struct rconn;

/*
 * Connected (and TLS-handshaken) to "host":"port" within "timeout_ms", or
 * NULL with "err": PGS_ERR_TRANSIENT for network failures, PGS_ERR_FATAL
 * for a setting to fix (an unreadable CA/cert/key file, a certificate that
 * fails verification, a server that does not speak TLS or wants a client
 * certificate). Later reads and writes wait at most "timeout_ms" too.
 */
struct rconn *rconn_open(const char *host, int port, const struct rconn_tls *tls, int timeout_ms,
                         struct pgs_error *err);
void rconn_close(struct rconn *c); /* NULL is fine */
/* Each later read or write waits at most "timeout_ms" for the socket (<= 0: forever). */
void rconn_set_timeout(struct rconn *c, int timeout_ms);

/*
 * Queue an already formatted RESP command (copied; out of memory aborts, as
 * xmalloc does); -1 only when the connection is broken. rconn_append_argv
 * formats one ("lens" NULL: strlen of each); -1 also when out of memory.
 */
int rconn_append(struct rconn *c, const char *buf, size_t len);
int rconn_append_argv(struct rconn *c, int argc, const char **argv, const size_t *lens);

/*
 * Flush what is queued, then read one reply: a new redisReply (error replies
 * included; freeReplyObject it), or NULL when the connection failed or
 * timed out: it is then broken for good.
 */
redisReply *rconn_read(struct rconn *c);

int rconn_broken(const struct rconn *c);
/* Why it broke, for people (names host:port and what to do); "" while it is fine. */
const char *rconn_errstr(const struct rconn *c);
/* Break it on purpose: callers use this on READONLY, LOADING and the like. Keeps a first reason. */
void rconn_mark_broken(struct rconn *c, const char *why);
const char *rconn_host(const struct rconn *c);
int rconn_port(const struct rconn *c);

#endif
