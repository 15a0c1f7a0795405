/*
 * rcluster.h - the pure part of talking to a Redis Cluster: which of the
 * 16384 slots a key hashes to (CRC16 of its {hash tag}), which argument of a
 * command is its key, and what a MOVED or ASK redirection says. No I/O, like
 * hiredis's read.c: redis.c does the routing with these.
 */
#ifndef PGS_RCLUSTER_H
#define PGS_RCLUSTER_H

#include <stddef.h>

#define RCLUSTER_SLOTS 16384

/* The slot of "key": only the part inside the first non-empty {...} counts. */
int rcluster_slot(const char *key, size_t len);

/*
 * The arguments of one RESP-formatted command ("*N\r\n$len\r\narg\r\n..."),
 * pointing into "buf": their number (at most "max" kept), or -1 when "buf"
 * is no such command.
 */
int rcluster_resp_args(const char *buf, size_t len, const char **argv, size_t *lens, int max);

/*
 * The index in argv of the key that routes the command (argv[1] for most,
 * the first stream after STREAMS for XREAD/XREADGROUP, argv[2] for XINFO
 * and XGROUP, the first key of EVAL), or -1 for a command without one
 * (PING, TIME, WAIT, INFO, MULTI, EXEC, EVAL with no keys).
 */
int rcluster_key_index(int argc, const char **argv, const size_t *lens);

/*
 * A redirection error "MOVED 3999 127.0.0.1:6381" or "ASK ...": 1 for
 * MOVED, 2 for ASK, 0 for any other text; fills the slot, host and port.
 */
int rcluster_redirect(const char *msg, int *slot, char *host, size_t hlen, int *port);

#endif
