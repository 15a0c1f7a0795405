/*
 * lsn.h - PostgreSQL WAL positions (LSNs) as text, "X/Y" in hex: the
 * producer decodes them, the load and the migrations read them from
 * replication commands and pg_replication_slots.
 */
#ifndef PGS_LSN_H
#define PGS_LSN_H

#include <stdint.h>

#define LSN_STR_LEN 24

/* "X/Y" text of "lsn" into "buf" (at least LSN_STR_LEN bytes); returns "buf". */
const char *lsn_str(uint64_t lsn, char *buf);
/* Parse "X/Y" (one to eight hex digits each, as pg_lsn_in accepts); 0 on success. */
int lsn_parse(const char *s, uint64_t *lsn);

#endif
