/*
 * es_nodes.h - the search engine's nodes as the client sees them: the list
 * from ELASTICSEARCH_URL (comma-separated), or the addresses sniffed from
 * GET /_nodes/http, and which of them are set aside.
 *
 * Requests go round-robin over the live nodes. A node that refuses a
 * connection, times out or answers 502/503/504 without an engine error is
 * set aside for 1 s, doubling up to 30 s while it keeps failing, and is
 * tried again (by a real request) once that time is up. When every node is
 * set aside, the one due first is tried anyway: the callers' own backoff
 * paces the retries, and the list never refuses to give a node.
 *
 * One list is shared by a client and its es_client_dup() copies (the load's
 * threads), so it is locked; no I/O happens here.
 */
#ifndef PGS_ES_NODES_H
#define PGS_ES_NODES_H

#include <stddef.h>

#include <jansson.h>

#include "error.h"

#define ES_NODE_URL_MAX 512

struct es_nodes;

/*
 * Parse "list": one or more http:// or https:// URLs separated by commas
 * (spaces around them are fine; trailing slashes are dropped; repeats are
 * kept once). Returns NULL with PGS_ERR_USAGE naming "setting" and the bad
 * URL (redacted) when one is malformed.
 */
struct es_nodes *es_nodes_new(const char *list, const char *setting, struct pgs_error *err);
/* One more owner; es_nodes_unref frees the list with its last owner. */
struct es_nodes *es_nodes_ref(struct es_nodes *n);
void es_nodes_unref(struct es_nodes *n);

int es_nodes_count(struct es_nodes *n);
/* The URL of node "i" (credentials included: for requests, never for messages). */
void es_nodes_url(struct es_nodes *n, int i, char *url, size_t len);

/*
 * The node to send the next request to, at monotonic time "now": its URL
 * (no trailing slash) into "url" and the index to report back with. Skips
 * the ones set aside; all set aside: the one due first.
 */
int es_nodes_pick(struct es_nodes *n, double now, char *url, size_t len);
/* 1 when node "i" is set aside and its retry is due at "now". */
int es_nodes_due(struct es_nodes *n, int i, double now);
/* 1 when a node other than "i" is live at "now": worth trying at once. */
int es_nodes_other_live(struct es_nodes *n, int i, double now);
/* Node "i" failed ("why", for the status): set it aside with backoff. */
void es_nodes_failed(struct es_nodes *n, int i, double now, const char *why);
/* Node "i" answered: live again, backoff reset. */
void es_nodes_ok(struct es_nodes *n, int i);

/*
 * Replace the list with the seeds given at es_nodes_new() plus "urls"
 * (sniffed), keeping what is known of the nodes already listed.
 */
void es_nodes_set_sniffed(struct es_nodes *n, char **urls, int count);

/*
 * The nodes set aside at "now" into "buf" ("" when none): "2 of 3 up; set
 * aside: http://h:9202 (Connection refused, retry in 4 s)". Returns how many
 * are set aside. URLs come redacted.
 */
int es_nodes_status(struct es_nodes *n, double now, char *buf, size_t len);
/* [{"url":..., "up":bool, "failures":N, "error":..., "retry_in_s":S}, ...]: new reference. */
json_t *es_nodes_json(struct es_nodes *n, double now);

/*
 * The HTTP addresses in a GET /_nodes/http answer, as "scheme://host:port"
 * into a new array *urls (caller frees each and the array). publish_address
 * may read "host/ip:port" (the ip is used) or "[v6]:port". Returns the
 * count, or -1 when "resp" is not such an answer.
 */
int es_nodes_parse_sniff(const char *resp, const char *scheme, char ***urls);

#endif
