/*
 * test_rconn.c - rconn against real servers that this test starts itself:
 * private redis-server processes (Debian's, TLS-capable) on free loopback
 * ports in a mkdtemp folder, with certificates made there by openssl: a CA,
 * a server certificate for 127.0.0.1 and localhost, an expired one, a second
 * CA, a client certificate. The servers die with the test, even on a crash
 * (PR_SET_PDEATHSIG); the folder is removed unless PGS_KEEP=1.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rconn.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define OPEN_MS 3000

struct server {
    pid_t pid;
    int port;     /* plaintext, 0: none */
    int tls_port; /* 0: none */
};

static char dir[] = "/tmp/pgs-rconn-XXXXXX";
static char path_buf[8][300];
static struct server main_srv;    /* --port and --tls-port, no client certificates */
static struct server expired_srv; /* TLS with an expired certificate */
static struct server mtls_srv;    /* TLS that requires a client certificate */

/* "dir/name" (a few kept at once, round robin). */
static const char *in_dir(const char *name)
{
    static int next;
    char *p = path_buf[next++ % 8];
    snprintf(p, sizeof(path_buf[0]), "%s/%s", dir, name);
    return p;
}

/* Run "script" with /bin/sh in the test folder, output to "log"; its exit status. */
static int run_sh(const char *script, const char *log)
{
    int status = -1;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(in_dir(log), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0 || chdir(dir) < 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A loopback port nobody listens on now. */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int port_open(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/*
 * Start redis-server as "name" with TLS certificate "cert" (NULL: plain
 * only), on fresh ports ("plain": a plaintext port too), requiring client
 * certificates when "auth". 0 once it accepts connections.
 */
static int server_start(struct server *s, const char *name, int plain, const char *cert,
                        int auth)
{
    char port[16], tls_port[16], certf[64], keyf[64], logf[64];
    const char *argv[40];
    int n = 0;

    memset(s, 0, sizeof(*s));
    s->port = plain ? free_port() : 0;
    s->tls_port = cert ? free_port() : 0;
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(tls_port, sizeof(tls_port), "%d", s->tls_port);
    argv[n++] = REDIS_SERVER;
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";
    argv[n++] = dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--enable-debug-command";
    argv[n++] = "yes";
    if (cert != NULL) {
        snprintf(certf, sizeof(certf), "%s.pem", cert);
        snprintf(keyf, sizeof(keyf), "%s.key", cert);
        argv[n++] = "--tls-port";
        argv[n++] = tls_port;
        argv[n++] = "--tls-cert-file";
        argv[n++] = certf;
        argv[n++] = "--tls-key-file";
        argv[n++] = keyf;
        argv[n++] = "--tls-ca-cert-file";
        argv[n++] = "ca.pem";
        argv[n++] = "--tls-auth-clients";
        argv[n++] = auth ? "yes" : "no";
    }
    argv[n] = NULL;
    snprintf(logf, sizeof(logf), "%s.log", name);

    s->pid = fork();
    if (s->pid == 0) {
        int fd = open(in_dir(logf), O_WRONLY | O_CREAT | O_APPEND, 0600);
        /* never outlive the test, whatever happens to it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd < 0 || chdir(dir) < 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(REDIS_SERVER, (char *const *)argv);
        _exit(127);
    }
    if (s->pid < 0)
        return -1;
    for (int i = 0; i < 100; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            fprintf(stderr, "test_rconn: redis-server %s exited: see %s\n", name, in_dir(logf));
            return -1;
        }
        if ((!s->port || port_open(s->port)) && (!s->tls_port || port_open(s->tls_port)))
            return 0;
        usleep(50 * 1000);
    }
    fprintf(stderr, "test_rconn: redis-server %s did not start: see %s\n", name, in_dir(logf));
    return -1;
}

static void server_stop(struct server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

static const char certs_script[] =
    "set -e\n"
    "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
    "openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj /CN=pgsync-test-ca\n"
    "openssl req -x509 $ec -keyout other-ca.key -out other-ca.pem -days 30 "
    "-subj /CN=other-test-ca\n"
    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext\n"
    "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
    "sign() { # NAME CN DAYS EXTFILE\n"
    "  openssl req $ec -keyout $1.key -out $1.csr -subj /CN=$2\n"
    "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $3 "
    "-extfile $4 -out $1.pem\n"
    "}\n"
    "sign server localhost 30 san.ext\n"
    /* -days -1: valid until a day before it was made, so expired from the start */
    "sign expired localhost -1 san.ext\n"
    "sign client pgsync-test-client 30 client.ext\n";

static int group_setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "test_rconn: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    if (run_sh(certs_script, "openssl.log") != 0) {
        fprintf(stderr, "test_rconn: making certificates failed: see %s\n",
                in_dir("openssl.log"));
        return -1;
    }
    if (server_start(&main_srv, "main", 1, "server", 0) < 0 ||
        server_start(&expired_srv, "expired", 0, "expired", 0) < 0 ||
        server_start(&mtls_srv, "mtls", 0, "server", 1) < 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_stop(&main_srv);
    server_stop(&expired_srv);
    server_stop(&mtls_srv);
    if (getenv("PGS_KEEP") == NULL || strcmp(getenv("PGS_KEEP"), "1") != 0) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_rconn: could not remove %s\n", dir);
    } else {
        fprintf(stderr, "test_rconn: kept %s\n", dir);
    }
    return 0;
}

/* ---- helpers ---- */

static void assert_has(const char *text, const char *want)
{
    if (strstr(text, want) == NULL)
        fail_msg("expected \"%s\" in: %s", want, text);
}

static struct rconn_tls tls_with_ca(const char *ca)
{
    struct rconn_tls t = {.enabled = 1, .verify = 1, .ca_file = ca ? in_dir(ca) : NULL};
    return t;
}

/* rconn_open that must fail: returns the message ("msg: detail") and checks the kind. */
static const char *open_fails(const char *host, int port, const struct rconn_tls *tls, int ms,
                              enum pgs_errkind kind)
{
    static char text[1400];
    struct pgs_error err;
    struct rconn *c;

    pgs_error_clear(&err);
    c = rconn_open(host, port, tls, ms, &err);
    if (c != NULL) {
        rconn_close(c);
        fail_msg("rconn_open to %s:%d succeeded", host, port);
    }
    pgs_error_str(&err, text, sizeof(text));
    printf("    (%s)\n", text);
    assert_int_equal(err.kind, kind);
    return text;
}

static struct rconn *open_ok(const char *host, int port, const struct rconn_tls *tls)
{
    struct pgs_error err;
    char text[1400];
    struct rconn *c;

    pgs_error_clear(&err);
    c = rconn_open(host, port, tls, OPEN_MS, &err);
    if (c == NULL)
        fail_msg("rconn_open to %s:%d: %s", host, port, pgs_error_str(&err, text, sizeof(text)));
    assert_string_equal(rconn_errstr(c), "");
    assert_false(rconn_broken(c));
    return c;
}

/* Send one command (words split at spaces) and return its reply, which must come. */
static redisReply *command(struct rconn *c, const char *words)
{
    char buf[256], *argv[16], *save = NULL;
    int argc = 0;
    redisReply *r;

    snprintf(buf, sizeof(buf), "%s", words);
    for (char *w = strtok_r(buf, " ", &save); w && argc < 16; w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    assert_int_equal(rconn_append_argv(c, argc, (const char **)argv, NULL), 0);
    r = rconn_read(c);
    if (r == NULL)
        fail_msg("%s: no reply: %s", words, rconn_errstr(c));
    return r;
}

static void expect_str(struct rconn *c, const char *words, int type, const char *want)
{
    redisReply *r = command(c, words);
    assert_int_equal(r->type, type);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

static void ping_set_get(struct rconn *c, const char *key)
{
    char cmd[128];
    expect_str(c, "PING", REDIS_REPLY_STATUS, "PONG");
    snprintf(cmd, sizeof(cmd), "SET %s value-of-%s", key, key);
    expect_str(c, cmd, REDIS_REPLY_STATUS, "OK");
    snprintf(cmd, sizeof(cmd), "GET %s", key);
    redisReply *r = command(c, cmd);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_true(strncmp(r->str, "value-of-", 9) == 0 && strcmp(r->str + 9, key) == 0);
    freeReplyObject(r);
}

/* ---- working connections ---- */

static void test_plain_ping_set_get(void **state)
{
    (void)state;
    struct rconn *c = open_ok("127.0.0.1", main_srv.port, NULL);
    assert_string_equal(rconn_host(c), "127.0.0.1");
    assert_int_equal(rconn_port(c), main_srv.port);
    ping_set_get(c, "plain");
    /* an error reply is a reply: the connection stays usable */
    redisReply *r = command(c, "NOSUCHCOMMAND");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    assert_false(rconn_broken(c));
    /* callers break a connection on purpose (READONLY): it stays broken, with their reason */
    rconn_mark_broken(c, "READONLY You can't write against a read only replica.");
    assert_true(rconn_broken(c));
    assert_null(rconn_read(c));
    assert_int_equal(rconn_append(c, "*1\r\n$4\r\nPING\r\n", 14), -1);
    assert_has(rconn_errstr(c), "READONLY");
    rconn_close(c);
    rconn_close(NULL);
}

static void test_tls_ping_set_get(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("ca.pem");
    /* by IP: the address is checked against the certificate's IP names, no SNI */
    struct rconn *c = open_ok("127.0.0.1", main_srv.tls_port, &t);
    ping_set_get(c, "tls-ip");
    rconn_close(c);
    /* by name: SNI and the DNS names */
    c = open_ok("localhost", main_srv.tls_port, &t);
    ping_set_get(c, "tls-name");
    rconn_close(c);
    /* an explicit REDIS_TLS_SERVER_NAME that the certificate holds */
    t.server_name = "localhost";
    c = open_ok("127.0.0.1", main_srv.tls_port, &t);
    ping_set_get(c, "tls-server-name");
    rconn_close(c);
}

static void test_connection_refused(void **state)
{
    (void)state;
    int port = free_port();
    char want[64];
    const char *text = open_fails("127.0.0.1", port, NULL, OPEN_MS, PGS_ERR_TRANSIENT);
    snprintf(want, sizeof(want), "cannot connect to Redis at 127.0.0.1:%d", port);
    assert_has(text, want);
    assert_has(text, "Connection refused");
}

/* 1000 commands queued, then 1000 replies read, in order. */
static void pipeline(struct rconn *c)
{
    char arg[32];
    for (int i = 0; i < 1000; i++) {
        const char *argv[] = {"ECHO", arg};
        snprintf(arg, sizeof(arg), "echo-%d", i);
        assert_int_equal(rconn_append_argv(c, 2, argv, NULL), 0);
    }
    for (int i = 0; i < 1000; i++) {
        redisReply *r = rconn_read(c);
        if (r == NULL)
            fail_msg("reply %d: %s", i, rconn_errstr(c));
        snprintf(arg, sizeof(arg), "echo-%d", i);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_string_equal(r->str, arg);
        freeReplyObject(r);
    }
}

static void test_pipeline_plain_and_tls(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("ca.pem");
    struct rconn *c = open_ok("127.0.0.1", main_srv.port, NULL);
    pipeline(c);
    rconn_close(c);
    c = open_ok("127.0.0.1", main_srv.tls_port, &t);
    pipeline(c);
    rconn_close(c);
}

/* A 5 MB value there and back: many partial writes and reads, in TLS records too. */
static void big_value(struct rconn *c)
{
    size_t len = 5 * 1024 * 1024;
    char *v = malloc(len);
    const char *argv[] = {"SET", "big", v};
    size_t lens[] = {3, 3, len};
    redisReply *r;

    assert_non_null(v);
    for (size_t i = 0; i < len; i++)
        v[i] = (char)('a' + (i * 7 + i / 4099) % 26);
    assert_int_equal(rconn_append_argv(c, 3, argv, lens), 0);
    r = rconn_read(c);
    if (r == NULL)
        fail_msg("SET big: %s", rconn_errstr(c));
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = command(c, "GET big");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, len);
    assert_memory_equal(r->str, v, len);
    freeReplyObject(r);
    free(v);
}

static void test_large_value_plain_and_tls(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("ca.pem");
    struct rconn *c = open_ok("127.0.0.1", main_srv.port, NULL);
    big_value(c);
    rconn_close(c);
    c = open_ok("127.0.0.1", main_srv.tls_port, &t);
    big_value(c);
    rconn_close(c);
}

/* ---- settings to fix ---- */

static void test_ca_file_unreadable(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("no-such-ca.pem");
    const char *text = open_fails("127.0.0.1", main_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "cannot read REDIS_TLS_CA_CERT=");
    assert_has(text, "no-such-ca.pem");
    assert_has(text, "No such file or directory");
    /* a file that is there but holds no certificate */
    t = tls_with_ca("san.ext");
    text = open_fails("127.0.0.1", main_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "REDIS_TLS_CA_CERT=");
    assert_has(text, "holds no usable PEM certificate");
}

static void test_unknown_ca(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("other-ca.pem");
    const char *text = open_fails("127.0.0.1", main_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "is signed by a CA we do not trust");
    /* OpenSSL's verify text: Redis sends its CA along with its certificate */
    assert_has(text, "self-signed certificate in certificate chain");
    assert_has(text, "set REDIS_TLS_CA_CERT");
    /* REDIS_TLS_VERIFY=none: neither chain nor name is checked */
    t.verify = 0;
    t.server_name = "not-this-one.example";
    struct rconn *c = open_ok("127.0.0.1", main_srv.tls_port, &t);
    expect_str(c, "PING", REDIS_REPLY_STATUS, "PONG");
    rconn_close(c);
}

static void test_expired_certificate(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("ca.pem");
    const char *text = open_fails("127.0.0.1", expired_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "has expired");
    assert_has(text, "certificate has expired");
}

static void test_name_mismatch(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("ca.pem");
    t.server_name = "redis.example.com";
    const char *text = open_fails("127.0.0.1", main_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "does not match the name \"redis.example.com\"");
    assert_has(text, "DNS:localhost");
    assert_has(text, "IP:127.0.0.1");
    assert_has(text, "set REDIS_TLS_SERVER_NAME");
    /* an IP address it does not hold */
    t.server_name = "127.0.0.2";
    text = open_fails("127.0.0.1", main_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "does not match the name \"127.0.0.2\"");
}

/* A plaintext server that answers anything with an error line, as many services do. */
static void *plaintext_server(void *arg)
{
    int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
    char buf[4096];
    if (fd >= 0) {
        if (recv(fd, buf, sizeof(buf), 0) > 0 &&
            send(fd, "-ERR unknown command\r\n", 22, MSG_NOSIGNAL) < 0)
            perror("plaintext_server: send");
        usleep(200 * 1000);
        close(fd);
    }
    return NULL;
}

static void test_server_without_tls(void **state)
{
    (void)state;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    struct rconn_tls t = tls_with_ca("ca.pem");
    char want[80];
    const char *text;
    pthread_t th;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);

    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(pthread_create(&th, NULL, plaintext_server, &lfd), 0);
    text = open_fails("127.0.0.1", ntohs(a.sin_port), &t, OPEN_MS, PGS_ERR_FATAL);
    pthread_join(th, NULL);
    close(lfd);
    snprintf(want, sizeof(want), "the server at 127.0.0.1:%d does not speak TLS: use redis://",
             ntohs(a.sin_port));
    assert_has(text, want);
    assert_has(text, "or check the port");

    /* Redis's plaintext port waits for a line end that a ClientHello lacks: a time-out */
    text = open_fails("127.0.0.1", main_srv.port, &t, 300, PGS_ERR_TRANSIENT);
    assert_has(text, "no answer to the TLS handshake");
    assert_has(text, "does it speak TLS? if not, use redis://");
}

static void test_client_certificate(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("ca.pem");
    const char *text = open_fails("127.0.0.1", mtls_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "requires a client certificate and none was given");
    assert_has(text, "set REDIS_TLS_CERT and REDIS_TLS_KEY");

    t.cert_file = in_dir("client.pem");
    t.key_file = in_dir("client.key");
    struct rconn *c = open_ok("127.0.0.1", mtls_srv.tls_port, &t);
    ping_set_get(c, "mtls");
    rconn_close(c);

    /* a certificate from a CA the server does not trust */
    t.cert_file = in_dir("other-ca.pem");
    t.key_file = in_dir("other-ca.key");
    text = open_fails("127.0.0.1", mtls_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "refused our client certificate");
}

static void test_key_mismatch(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("ca.pem");
    t.cert_file = in_dir("client.pem");
    t.key_file = in_dir("server.key");
    const char *text = open_fails("127.0.0.1", mtls_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "is not the key of the certificate in REDIS_TLS_CERT=");
    assert_has(text, "set them to a matching pair");

    t.key_file = in_dir("no-such.key");
    text = open_fails("127.0.0.1", mtls_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "cannot read REDIS_TLS_KEY=");
    t.cert_file = in_dir("no-such.pem");
    text = open_fails("127.0.0.1", mtls_srv.tls_port, &t, OPEN_MS, PGS_ERR_FATAL);
    assert_has(text, "cannot read REDIS_TLS_CERT=");
}

/* A plaintext client on a TLS-only port: the server drops it at its first command. */
static void test_plaintext_client_on_tls_port(void **state)
{
    (void)state;
    struct rconn *c = open_ok("127.0.0.1", main_srv.tls_port, NULL);
    const char *argv[] = {"PING"};
    char want[120];
    assert_int_equal(rconn_append_argv(c, 1, argv, NULL), 0);
    assert_null(rconn_read(c));
    assert_true(rconn_broken(c));
    snprintf(want, sizeof(want),
             "connection reset by the server at 127.0.0.1:%d (does it expect TLS? use rediss://",
             main_srv.tls_port);
    assert_has(rconn_errstr(c), want);
    printf("    (%s)\n", rconn_errstr(c));
    rconn_close(c);
}

/* ---- failures on a working connection ---- */

static void test_server_killed(void **state)
{
    (void)state;
    struct server s;
    struct rconn_tls t = tls_with_ca("ca.pem");
    struct rconn *plain, *tls;
    const char *argv[] = {"PING"};

    assert_int_equal(server_start(&s, "killed", 1, "server", 0), 0);
    plain = open_ok("127.0.0.1", s.port, NULL);
    tls = open_ok("127.0.0.1", s.tls_port, &t);
    expect_str(plain, "PING", REDIS_REPLY_STATUS, "PONG");
    expect_str(tls, "PING", REDIS_REPLY_STATUS, "PONG");
    server_stop(&s);

    assert_int_equal(rconn_append_argv(plain, 1, argv, NULL), 0);
    assert_int_equal(rconn_append_argv(tls, 1, argv, NULL), 0);
    assert_null(rconn_read(plain));
    assert_null(rconn_read(tls));
    assert_true(rconn_broken(plain));
    assert_true(rconn_broken(tls));
    printf("    (%s)\n    (%s)\n", rconn_errstr(plain), rconn_errstr(tls));
    assert_true(strstr(rconn_errstr(plain), "closed by the server") ||
                strstr(rconn_errstr(plain), "lost"));
    assert_true(strstr(rconn_errstr(tls), "closed by the server") ||
                strstr(rconn_errstr(tls), "lost"));
    /* broken for good */
    assert_int_equal(rconn_append_argv(plain, 1, argv, NULL), -1);
    assert_null(rconn_read(tls));
    rconn_close(plain);
    rconn_close(tls);
}

/* Last: DEBUG SLEEP stops the main server for 2 s. */
static void test_read_timeout(void **state)
{
    (void)state;
    struct rconn_tls t = tls_with_ca("ca.pem");
    struct rconn *plain = open_ok("127.0.0.1", main_srv.port, NULL);
    struct rconn *tls = open_ok("127.0.0.1", main_srv.tls_port, &t);
    const char *sleep_argv[] = {"DEBUG", "SLEEP", "2"}, *ping[] = {"PING"};
    struct timespec t0, t1;

    rconn_set_timeout(plain, 300);
    rconn_set_timeout(tls, 300);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(rconn_append_argv(plain, 3, sleep_argv, NULL), 0);
    assert_null(rconn_read(plain));
    /* the server still sleeps: the TLS connection's PING waits as long, no longer */
    assert_int_equal(rconn_append_argv(tls, 1, ping, NULL), 0);
    assert_null(rconn_read(tls));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(rconn_broken(plain) && rconn_broken(tls));
    assert_has(rconn_errstr(plain), "timed out after 300 ms");
    assert_has(rconn_errstr(tls), "timed out after 300 ms");
    printf("    (%s)\n", rconn_errstr(tls));
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s > 0.55 && s < 1.5);
    rconn_close(plain);
    rconn_close(tls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_ping_set_get),
        cmocka_unit_test(test_tls_ping_set_get),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_pipeline_plain_and_tls),
        cmocka_unit_test(test_large_value_plain_and_tls),
        cmocka_unit_test(test_ca_file_unreadable),
        cmocka_unit_test(test_unknown_ca),
        cmocka_unit_test(test_expired_certificate),
        cmocka_unit_test(test_name_mismatch),
        cmocka_unit_test(test_server_without_tls),
        cmocka_unit_test(test_client_certificate),
        cmocka_unit_test(test_key_mismatch),
        cmocka_unit_test(test_plaintext_client_on_tls_port),
        cmocka_unit_test(test_server_killed),
        cmocka_unit_test(test_read_timeout),
    };
    /* our writes never raise SIGPIPE (rconn.h): keep the default action to prove it */
    signal(SIGPIPE, SIG_DFL);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
