/*
 * rconn.c - one blocking connection to one Redis node over plain TCP or TLS:
 * a non-blocking socket driven by poll() with a time-out, an OpenSSL session
 * over a BIO of ours on that socket, hiredis's redisReader for the replies.
 * Error texts name the setting to change (REDIS_TLS_*, REDIS_URL): the people
 * who read them configure a managed Redis, not OpenSSL.
 */
#include "rconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "strbuf.h"

/* A queue larger than this after a flush (a big value) is freed, not kept. */
#define RCONN_KEEP_OUT (1024 * 1024)

struct rconn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    redisReader *reader;
    char *out; /* queued commands; out[out_pos..out_len) is still to send */
    size_t out_len, out_pos, out_cap;
    int timeout_ms;
    int broken;
    int replied;        /* a reply came: a reset is no hint of a TLS-only port any more */
    int has_cert;       /* REDIS_TLS_CERT was given */
    int cert_requested; /* the server asked for a client certificate */
    int ticket_seen;    /* the server sent a session ticket: it accepted our handshake */
    char errstr[512];
    char host[256];
    int port;
    char name[256]; /* the name checked in the server's certificate */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for "events" on "fd" until "deadline" (0: none): 1 ready, 0 timed out, -1 errno. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int ms = -1, n;
        if (deadline > 0) {
            long long left = deadline - now_ms();
            if (left <= 0)
                return 0;
            ms = left > INT_MAX ? INT_MAX : (int)left;
        }
        n = poll(&p, 1, ms);
        if (n < 0 && errno == EINTR)
            continue;
        /* POLLERR and POLLHUP count as ready: the next read or write says what happened */
        return n < 0 ? -1 : n > 0;
    }
}

static void set_broken(struct rconn *c, const char *fmt, ...) PGS_PRINTF(2, 3);
static void set_broken(struct rconn *c, const char *fmt, ...)
{
    va_list ap;
    if (c->broken)
        return; /* the first reason is the one that explains the rest */
    c->broken = 1;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
}

/*
 * OpenSSL's queued errors, "; "-joined into "buf" and cleared; returns 1 when
 * one of them was "lib"/"reason" (lib 0: none looked for).
 */
static int ssl_errors(char *buf, size_t len, int lib, int reason)
{
    unsigned long e;
    size_t off = 0;
    int found = 0;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        found |= lib != 0 && ERR_GET_LIB(e) == lib && ERR_GET_REASON(e) == reason;
        if (off + 3 >= len)
            continue;
        if (off > 0) {
            memcpy(buf + off, "; ", 3);
            off += 2;
        }
        ERR_error_string_n(e, buf + off, len - off);
        off += strlen(buf + off);
    }
    return found;
}

static const char *ssl_why(char *buf, size_t len)
{
    ssl_errors(buf, len, 0, 0);
    return buf;
}

/* ---- our socket BIO: send() with MSG_NOSIGNAL, so a closed peer is EPIPE, not SIGPIPE ---- */

static int bio_write(BIO *b, const char *buf, int len)
{
    struct rconn *c = BIO_get_data(b);
    ssize_t n;
    BIO_clear_retry_flags(b);
    do
        n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct rconn *c = BIO_get_data(b);
    ssize_t n;
    BIO_clear_retry_flags(b);
    do
        n = recv(c->fd, buf, (size_t)len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* OpenSSL flushes after each flight; we buffer nothing. Nothing else applies. */
    return cmd == BIO_CTRL_FLUSH;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/*
 * The methods, made once per process and never freed: every new BIO type
 * takes one of OpenSSL's few type indexes (OpenSSL 3.0 does not even stop
 * at the last), so a method per connection would run out on reconnects.
 */
static BIO_METHOD *bio_methods;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_methods_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rconn socket");
    if (m == NULL || BIO_meth_set_write(m, bio_write) != 1 ||
        BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
        BIO_meth_set_create(m, bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_methods = m;
}

/* ---- TLS settings and handshake ---- */

/* Called (client side) only when the server asks for a certificate. */
static int cert_requested_cb(SSL *ssl, void *arg)
{
    struct rconn *c = SSL_get_app_data(ssl);
    (void)arg;
    c->cert_requested = 1;
    return 1; /* go on, with our certificate or with none */
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct rconn *c = SSL_get_app_data(ssl);
    (void)sess;
    c->ticket_seen = 1;
    return 0; /* not kept: the session stays OpenSSL's to free */
}

/* 0 when "path" (the setting "setting", "what") can be opened, else -1 with "err". */
static int file_readable(const char *path, const char *setting, const char *what,
                         struct pgs_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        pgs_error_set(err, PGS_ERR_FATAL,
                      "cannot read %s=%s (%s): %s: fix the path or its permissions", setting, path,
                      what, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* c->ctx for "tls": checked before any network, so a wrong file is reported as such. */
static int tls_context(struct rconn *c, const struct rconn_tls *tls, struct pgs_error *err)
{
    char why[512];

    ERR_clear_error();
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot set up TLS for Redis at %s:%d", c->host, c->port);
        pgs_error_detail(err, "%s", ssl_why(why, sizeof(why)));
        return -1;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    /* SSL_write may send part of a buffer, and be called again with the rest from elsewhere */
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /*
     * Read what the socket holds in one call, not a record's header and then
     * its body: half the system calls per reply. Safe with our loop, which
     * asks SSL_read first and polls only on SSL_ERROR_WANT_READ.
     */
    SSL_CTX_set_read_ahead(c->ctx, 1);
    if (tls->verify) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        if (tls->ca_file != NULL && *tls->ca_file) {
            if (file_readable(tls->ca_file, "REDIS_TLS_CA_CERT", "the trusted CAs", err) < 0)
                return -1;
            if (SSL_CTX_load_verify_locations(c->ctx, tls->ca_file, NULL) != 1) {
                pgs_error_set(err, PGS_ERR_FATAL,
                              "REDIS_TLS_CA_CERT=%s holds no usable PEM certificate: set it to "
                              "the CA bundle (PEM) that signed the Redis server's certificate",
                              tls->ca_file);
                pgs_error_detail(err, "%s", ssl_why(why, sizeof(why)));
                return -1;
            }
        } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
            pgs_error_set(err, PGS_ERR_FATAL,
                          "cannot load the system's trusted CAs: set REDIS_TLS_CA_CERT");
            pgs_error_detail(err, "%s", ssl_why(why, sizeof(why)));
            return -1;
        }
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    }

    if (tls->cert_file != NULL && *tls->cert_file) {
        const char *key = tls->key_file && *tls->key_file ? tls->key_file : tls->cert_file;
        if (file_readable(tls->cert_file, "REDIS_TLS_CERT", "the client certificate", err) < 0)
            return -1;
        if (SSL_CTX_use_certificate_chain_file(c->ctx, tls->cert_file) != 1) {
            pgs_error_set(err, PGS_ERR_FATAL,
                          "REDIS_TLS_CERT=%s holds no usable PEM certificate: set it to the "
                          "client certificate (PEM)",
                          tls->cert_file);
            pgs_error_detail(err, "%s", ssl_why(why, sizeof(why)));
            return -1;
        }
        if (file_readable(key, "REDIS_TLS_KEY", "the client certificate's key", err) < 0)
            return -1;
        /* loading a key checks it against the certificate already loaded */
        if (SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(c->ctx) != 1) {
            if (ssl_errors(why, sizeof(why), ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH))
                pgs_error_set(err, PGS_ERR_FATAL,
                              "REDIS_TLS_KEY=%s is not the key of the certificate in "
                              "REDIS_TLS_CERT=%s: set them to a matching pair",
                              key, tls->cert_file);
            else
                pgs_error_set(err, PGS_ERR_FATAL,
                              "REDIS_TLS_KEY=%s holds no usable PEM private key (an encrypted "
                              "key is not supported): set it to the client certificate's key",
                              key);
            pgs_error_detail(err, "%s", why);
            return -1;
        }
        c->has_cert = 1;
    } else if (tls->key_file != NULL && *tls->key_file) {
        pgs_error_set(err, PGS_ERR_FATAL,
                      "REDIS_TLS_KEY is set without REDIS_TLS_CERT: set both, or neither");
        return -1;
    }
    /*
     * Note a server's request for a client certificate, and its session
     * tickets (sent once it has accepted our handshake), for tls_cert_verdict.
     */
    SSL_CTX_set_cert_cb(c->ctx, cert_requested_cb, NULL);
    SSL_CTX_set_session_cache_mode(c->ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ctx, new_session_cb);

    pthread_once(&bio_once, bio_methods_make);
    if (bio_methods == NULL) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot set up TLS for Redis at %s:%d: out of memory",
                      c->host, c->port);
        return -1;
    }
    return 0;
}

static int is_ip_literal(const char *s)
{
    unsigned char a[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* The DNS and IP names in "cert" ("DNS:a, IP:b"), to show which names would match. */
static void cert_names(X509 *cert, char *buf, size_t len)
{
    GENERAL_NAMES *names = cert ? X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL) : NULL;
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && off < len; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        char ip[INET6_ADDRSTRLEN] = "";
        const char *sep = off > 0 ? ", " : "";
        int n = 0;
        if (gn->type == GEN_DNS) {
            n = snprintf(buf + off, len - off, "%sDNS:%.*s", sep,
                         ASN1_STRING_length(gn->d.dNSName),
                         (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
        } else if (gn->type == GEN_IPADD) {
            int alen = ASN1_STRING_length(gn->d.iPAddress);
            if (alen == 4 || alen == 16)
                inet_ntop(alen == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gn->d.iPAddress),
                          ip, sizeof(ip));
            n = snprintf(buf + off, len - off, "%sIP:%s", sep, ip);
        }
        if (n > 0)
            off += (size_t)n;
    }
    GENERAL_NAMES_free(names);
    if (buf[0] == '\0')
        snprintf(buf, len, "no DNS or IP names");
}

/* The server's certificate: the handshake keeps the chain even when verifying it failed. */
static X509 *peer_cert(const SSL *ssl)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    return chain != NULL && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;
}

/* "err" for a server certificate that failed verification with "vr". */
static void verify_failed(struct rconn *c, long vr, const char *ca_file, struct pgs_error *err)
{
    const char *why = X509_verify_cert_error_string(vr);
    X509 *cert = peer_cert(c->ssl);
    char buf[256] = "";

    switch (vr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        if (cert != NULL) {
            BIO *m = BIO_new(BIO_s_mem());
            int n = 0;
            if (m != NULL && ASN1_TIME_print(m, X509_get0_notAfter(cert)) == 1)
                n = BIO_read(m, buf, sizeof(buf) - 1);
            buf[n > 0 ? n : 0] = '\0';
            BIO_free(m);
        }
        pgs_error_set(err, PGS_ERR_FATAL,
                      "the certificate of the Redis server at %s:%d has expired (valid until %s): "
                      "the server must be given a new one",
                      c->host, c->port, buf[0] ? buf : "?");
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        pgs_error_set(err, PGS_ERR_FATAL,
                      "the certificate of the Redis server at %s:%d is not valid yet: check the "
                      "clocks of both hosts",
                      c->host, c->port);
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        cert_names(cert, buf, sizeof(buf));
        pgs_error_set(err, PGS_ERR_FATAL,
                      "the certificate of the Redis server at %s:%d does not match the name "
                      "\"%s\" we checked (it holds %s): set REDIS_TLS_SERVER_NAME to a name it "
                      "holds, or connect by that name",
                      c->host, c->port, c->name, buf);
        break;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        pgs_error_set(err, PGS_ERR_FATAL,
                      "the certificate of the Redis server at %s:%d is signed by a CA we do not "
                      "trust (%s): set REDIS_TLS_CA_CERT to the CA bundle (PEM) that signed it "
                      "(now trusted: %s)",
                      c->host, c->port, why, ca_file ? ca_file : "the system's default store");
        break;
    default:
        pgs_error_set(err, PGS_ERR_FATAL,
                      "the certificate of the Redis server at %s:%d failed verification (%s): "
                      "fix the certificate, or set REDIS_TLS_VERIFY=none (not in production)",
                      c->host, c->port, why);
        break;
    }
    pgs_error_detail(err, "%s", why);
}

/*
 * A TLS failure ("sslerr" from SSL_get_error, OpenSSL's error queue) as a
 * message that says what to change; "during" names the phase ("handshake").
 * Returns the kind: FATAL for a setting to fix, TRANSIENT for the network.
 */
static enum pgs_errkind tls_failure(struct rconn *c, int sslerr, int sys_errno, const char *during,
                                    char *msg, size_t len, char *detail, size_t dlen)
{
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;

    ssl_errors(detail, dlen, 0, 0);
    switch (reason) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_HTTP_REQUEST:
        snprintf(msg, len,
                 "the server at %s:%d does not speak TLS: use redis:// in REDIS_URL or check the "
                 "port",
                 c->host, c->port);
        return PGS_ERR_FATAL;
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        if (!c->has_cert &&
            (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED || c->cert_requested)) {
            snprintf(msg, len,
                     "the Redis server at %s:%d requires a client certificate and none was "
                     "given: set REDIS_TLS_CERT and REDIS_TLS_KEY",
                     c->host, c->port);
            return PGS_ERR_FATAL;
        }
        break;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
        if (c->has_cert) {
            snprintf(msg, len,
                     "the Redis server at %s:%d refused our client certificate: set "
                     "REDIS_TLS_CERT and REDIS_TLS_KEY to one signed by a CA it trusts",
                     c->host, c->port);
            return PGS_ERR_FATAL;
        }
        break;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        sslerr = SSL_ERROR_ZERO_RETURN;
        break;
    default:
        break;
    }
    if (sslerr == SSL_ERROR_ZERO_RETURN || (sslerr == SSL_ERROR_SYSCALL && sys_errno == 0))
        snprintf(msg, len, "connection closed by the server at %s:%d during the TLS %s", c->host,
                 c->port, during);
    else if (sslerr == SSL_ERROR_SYSCALL)
        snprintf(msg, len, "connection to the server at %s:%d lost during the TLS %s: %s",
                 c->host, c->port, during, strerror(sys_errno));
    else
        snprintf(msg, len, "TLS %s with the server at %s:%d failed: %s", during, c->host, c->port,
                 detail[0] ? detail : "no reason given");
    return PGS_ERR_TRANSIENT;
}

/*
 * TLS 1.3 ends the client's handshake before the server has looked at our
 * certificate (or its absence): a server that refuses it says so in an alert
 * right after. When it asked for one, wait briefly for its verdict, so that
 * rconn_open rather than the first command reports it. A server that
 * accepts sends session tickets (Redis does by default), or nothing.
 */
static int tls_cert_verdict(struct rconn *c, struct pgs_error *err)
{
    int wait = c->timeout_ms > 0 && c->timeout_ms < 1000 ? c->timeout_ms : 1000;
    long long deadline = now_ms() + wait;
    char b, msg[512], detail[512];

    for (;;) {
        int rc, e, saved;
        ERR_clear_error();
        rc = SSL_peek(c->ssl, &b, 1);
        if (rc > 0)
            return 0;
        saved = errno;
        e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (c->ticket_seen || wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                          deadline) <= 0)
                return 0; /* accepted without one, or no word: the first read will tell */
            continue;
        }
        pgs_error_set(err, tls_failure(c, e, saved, "handshake", msg, sizeof(msg), detail,
                                       sizeof(detail)),
                      "%s", msg);
        pgs_error_detail(err, "%s", detail);
        return -1;
    }
}

static int tls_handshake(struct rconn *c, const struct rconn_tls *tls, long long deadline,
                         struct pgs_error *err)
{
    const char *name = tls->server_name && *tls->server_name ? tls->server_name : c->host;
    int ip = is_ip_literal(name);
    char msg[512], detail[512];
    BIO *bio;

    snprintf(c->name, sizeof(c->name), "%s", name);
    c->ssl = SSL_new(c->ctx);
    bio = c->ssl ? BIO_new(bio_methods) : NULL;
    if (bio == NULL) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot set up TLS for Redis at %s:%d: out of memory",
                      c->host, c->port);
        return -1;
    }
    BIO_set_data(bio, c);
    SSL_set_bio(c->ssl, bio, bio); /* the SSL owns the BIO now */
    SSL_set_app_data(c->ssl, c);
    /* SNI carries host names only (RFC 6066): an IP literal is not sent */
    if (!ip && SSL_set_tlsext_host_name(c->ssl, name) != 1)
        ERR_clear_error();
    if (tls->verify) {
        int ok;
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name);
        } else {
            SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(c->ssl, name);
        }
        if (ok != 1) {
            pgs_error_set(err, PGS_ERR_FATAL,
                          "cannot check the Redis server's certificate against the name \"%s\": "
                          "set REDIS_TLS_SERVER_NAME to a valid host name",
                          name);
            return -1;
        }
    }

    for (;;) {
        int rc, e, saved;
        ERR_clear_error();
        rc = SSL_connect(c->ssl);
        if (rc == 1)
            break;
        saved = errno;
        e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int w = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (w > 0)
                continue;
            if (w == 0)
                /* a plaintext Redis waits for a line end that a ClientHello never has */
                pgs_error_set(err, PGS_ERR_TRANSIENT,
                              "no answer to the TLS handshake from the server at %s:%d within "
                              "%d ms (does it speak TLS? if not, use redis:// in REDIS_URL or "
                              "check the port)",
                              c->host, c->port, c->timeout_ms);
            else
                pgs_error_set(err, PGS_ERR_TRANSIENT,
                              "TLS handshake with the server at %s:%d failed: %s", c->host,
                              c->port, strerror(errno));
            return -1;
        }
        if (tls->verify && SSL_get_verify_result(c->ssl) != X509_V_OK) {
            verify_failed(c, SSL_get_verify_result(c->ssl), tls->ca_file, err);
            ERR_clear_error();
            return -1;
        }
        pgs_error_set(err, tls_failure(c, e, saved, "handshake", msg, sizeof(msg), detail,
                                       sizeof(detail)),
                      "%s", msg);
        pgs_error_detail(err, "%s", detail);
        return -1;
    }
    if (c->cert_requested && SSL_version(c->ssl) == TLS1_3_VERSION)
        return tls_cert_verdict(c, err);
    return 0;
}

/* ---- TCP ---- */

static int tcp_connect(struct rconn *c, long long deadline, struct pgs_error *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int rc, last_errno = 0, timed_out = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", c->port);
    rc = getaddrinfo(c->host, port, &hints, &res);
    if (rc != 0) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "cannot resolve the Redis host \"%s\": %s (check REDIS_URL)", c->host,
                      gai_strerror(rc));
        return -1;
    }
    /* each address in turn, as getaddrinfo ordered them (IPv6 and IPv4 alike) */
    for (ai = res; ai != NULL && !timed_out; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        int soerr = 0, one = 1, w;
        socklen_t sl = sizeof(soerr);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (errno != EINPROGRESS) {
                last_errno = errno;
                close(fd);
                continue;
            }
            w = wait_fd(fd, POLLOUT, deadline);
            if (w <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
                timed_out = w == 0;
                last_errno = w < 0 ? errno : soerr;
                close(fd);
                continue;
            }
        }
        /* commands are small and pipelined by us: no Nagle; keepalive finds dead peers */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        c->fd = fd;
        freeaddrinfo(res);
        return 0;
    }
    freeaddrinfo(res);
    if (timed_out)
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "cannot connect to Redis at %s:%d: timed out after %d ms (is it reachable? "
                      "check REDIS_URL)",
                      c->host, c->port, c->timeout_ms);
    else
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "cannot connect to Redis at %s:%d: %s (is it running? check REDIS_URL)",
                      c->host, c->port, strerror(last_errno));
    return -1;
}

struct rconn *rconn_open(const char *host, int port, const struct rconn_tls *tls, int timeout_ms,
                         struct pgs_error *err)
{
    long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    struct rconn *c = xcalloc(1, sizeof(*c));

    c->fd = -1;
    c->port = port;
    c->timeout_ms = timeout_ms;
    snprintf(c->host, sizeof(c->host), "%s", host);
    c->reader = redisReaderCreate();
    if (c->reader == NULL) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot connect to Redis at %s:%d: out of memory",
                      host, port);
        goto fail;
    }
    if (tls != NULL && tls->enabled && tls_context(c, tls, err) < 0)
        goto fail;
    if (tcp_connect(c, deadline, err) < 0)
        goto fail;
    if (c->ctx != NULL && tls_handshake(c, tls, deadline, err) < 0)
        goto fail;
    return c;
fail:
    rconn_close(c);
    return NULL;
}

void rconn_close(struct rconn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        /* a courtesy close_notify, never waited for: the socket is non-blocking */
        if (!c->broken && SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    ERR_clear_error();
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    if (c->reader != NULL)
        redisReaderFree(c->reader);
    free(c->out);
    free(c);
}

void rconn_set_timeout(struct rconn *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

int rconn_append(struct rconn *c, const char *buf, size_t len)
{
    if (c->broken)
        return -1;
    if (len > c->out_cap - c->out_len) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
        while (cap - c->out_len < len)
            cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    return 0;
}

int rconn_append_argv(struct rconn *c, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int n, rc;

    if (c->broken)
        return -1;
    n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        return -1;
    rc = rconn_append(c, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc;
}

/* Wait for the socket on behalf of "what" (a phrase: "writing to"); -1 once broken. */
static int wait_io(struct rconn *c, short events, const char *what)
{
    int w = wait_fd(c->fd, events, c->timeout_ms > 0 ? now_ms() + c->timeout_ms : 0);
    if (w == 0)
        set_broken(c, "timed out after %d ms %s the server at %s:%d", c->timeout_ms, what,
                   c->host, c->port);
    else if (w < 0)
        set_broken(c, "poll failed %s the server at %s:%d: %s", what, c->host, c->port,
                   strerror(errno));
    return w > 0 ? 0 : -1;
}

/* A socket error (or "e" 0: the peer closed) while "what" the server. */
static void sys_failed(struct rconn *c, int e, const char *what)
{
    /*
     * A TLS-only port drops a plaintext client at its first bytes: before
     * any reply, that is the likely story, so say it.
     */
    if (c->ssl == NULL && !c->replied && (e == 0 || e == ECONNRESET || e == EPIPE))
        set_broken(c,
                   "connection reset by the server at %s:%d (does it expect TLS? use rediss:// "
                   "in REDIS_URL)",
                   c->host, c->port);
    else if (e == 0)
        set_broken(c, "connection closed by the server at %s:%d", c->host, c->port);
    else
        set_broken(c, "connection to the server at %s:%d lost %s it: %s", c->host, c->port, what,
                   strerror(e));
}

static void ssl_failed(struct rconn *c, int sslerr, int sys_errno, const char *what)
{
    char msg[512], detail[512];

    if (sslerr == SSL_ERROR_ZERO_RETURN || (sslerr == SSL_ERROR_SYSCALL && sys_errno == 0)) {
        ERR_clear_error();
        sys_failed(c, 0, what);
        return;
    }
    if (sslerr == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        sys_failed(c, sys_errno, what);
        return;
    }
    tls_failure(c, sslerr, sys_errno, "session", msg, sizeof(msg), detail, sizeof(detail));
    set_broken(c, "%s", msg);
}

/* Send everything queued: 0, or -1 once broken. */
static int flush_out(struct rconn *c)
{
    while (c->out_pos < c->out_len) {
        const char *p = c->out + c->out_pos;
        size_t left = c->out_len - c->out_pos;
        short want = POLLOUT;
        if (c->ssl != NULL) {
            int n, e, saved;
            ERR_clear_error();
            n = SSL_write(c->ssl, p, left > INT_MAX ? INT_MAX : (int)left);
            if (n > 0) {
                c->out_pos += (size_t)n;
                continue;
            }
            saved = errno;
            e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ)
                want = POLLIN; /* the session needs the peer's bytes before ours go */
            else if (e != SSL_ERROR_WANT_WRITE) {
                ssl_failed(c, e, saved, "writing to");
                return -1;
            }
        } else {
            ssize_t n = send(c->fd, p, left, MSG_NOSIGNAL);
            if (n >= 0) {
                c->out_pos += (size_t)n;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sys_failed(c, errno, "writing to");
                return -1;
            }
        }
        if (wait_io(c, want, "writing to") < 0)
            return -1;
    }
    c->out_len = c->out_pos = 0;
    if (c->out_cap > RCONN_KEEP_OUT) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return 0;
}

/* Some bytes from the server into "buf": their count, or -1 once broken. */
static ssize_t recv_some(struct rconn *c, char *buf, size_t len)
{
    for (;;) {
        short want = POLLIN;
        if (c->ssl != NULL) {
            int n, e, saved;
            ERR_clear_error();
            n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
            if (n > 0)
                return n;
            saved = errno;
            e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_WRITE)
                want = POLLOUT;
            else if (e != SSL_ERROR_WANT_READ) {
                ssl_failed(c, e, saved, "reading from");
                return -1;
            }
        } else {
            ssize_t n = recv(c->fd, buf, len, 0);
            if (n > 0)
                return n;
            if (n == 0) {
                sys_failed(c, 0, "reading from");
                return -1;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sys_failed(c, errno, "reading from");
                return -1;
            }
        }
        if (wait_io(c, want, "waiting for a reply from") < 0)
            return -1;
    }
}

redisReply *rconn_read(struct rconn *c)
{
    char buf[16384];

    if (c->broken || flush_out(c) < 0)
        return NULL;
    for (;;) {
        void *reply = NULL;
        ssize_t n;
        /* replies already received (a pipeline's) come before any new read */
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            set_broken(c, "unreadable reply from the server at %s:%d: %s", c->host, c->port,
                       c->reader->errstr);
            return NULL;
        }
        if (reply != NULL) {
            c->replied = 1;
            return reply;
        }
        n = recv_some(c, buf, sizeof(buf));
        if (n < 0)
            return NULL;
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
            set_broken(c, "unreadable reply from the server at %s:%d: %s", c->host, c->port,
                       c->reader->errstr);
            return NULL;
        }
    }
}

int rconn_broken(const struct rconn *c)
{
    return c->broken;
}

const char *rconn_errstr(const struct rconn *c)
{
    return c->errstr;
}

void rconn_mark_broken(struct rconn *c, const char *why)
{
    set_broken(c, "%s", why && *why ? why : "marked broken");
}

const char *rconn_host(const struct rconn *c)
{
    return c->host;
}

int rconn_port(const struct rconn *c)
{
    return c->port;
}
