/*
 * bootstrap.c - creating and removing the database objects of an entry
 * (publication, replica identities and slot; the outbox, its trigger
 * function and triggers come from producer/outbox_ddl.c), and the list of
 * steps left to a DBA when the role may not take them (bootstrap_plan.h).
 * See bootstrap.h for the contract.
 */
#include "bootstrap.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsn.h"
#include "outbox_ddl.h"
#include "bootstrap_plan.h"
#include "log.h"
#include "strbuf.h"

#define SQLSTATE_INSUFFICIENT_PRIVILEGE "42501"

static int exec_ok(PGconn *conn, const char *sql, const char *what, struct pgs_error *err)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "%s failed", what);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

char *bootstrap_query_value(PGconn *conn, const char *sql, int nparams,
                            const char *const *params, struct pgs_error *err)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    char *v = NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "catalog query failed");
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
    } else if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        v = xstrdup(PQgetvalue(res, 0, 0));
    } else {
        v = xstrdup("");
    }
    PQclear(res);
    return v;
}

void bootstrap_plan_defer(struct bootstrap_plan *p, const char *sql)
{
    sb_printf(&p->dba, "%s;\n", sql);
    p->ndba++;
}

int bootstrap_plan_step(struct bootstrap_plan *p, const char *sql, int dep, const char *done_msg,
                        struct pgs_error *err)
{
    if (dep && p->defer_rest) {
        bootstrap_plan_defer(p, sql);
        return 0;
    }
    PGresult *res = PQexec(p->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(res);
        if (done_msg)
            pgs_log(LOG_INFO, done_msg, "database=%s sql=\"%s\"", p->ae->e->database, sql);
        return 0;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && !strcmp(state, SQLSTATE_INSUFFICIENT_PRIVILEGE)) {
        PQclear(res);
        bootstrap_plan_defer(p, sql);
        p->defer_rest = 1;
        return 0;
    }
    pgs_error_set(err, PGS_ERR_FATAL, "database \"%s\": %.200s", p->ae->e->database, sql);
    pgs_error_detail(err, "%s", PQerrorMessage(p->conn));
    PQclear(res);
    return -1;
}

/*
 * A name for a comment line of the DBA's script: a newline in it would end
 * the comment, and what follows would run when the script is pasted into
 * psql (a backslash command, say). Control characters become '?'.
 */
static const char *comment_safe(const char *s, char *out, size_t len)
{
    size_t j = 0;
    for (; s[j] && j + 1 < len; j++)
        out[j] = (unsigned char)s[j] < 0x20 || s[j] == 0x7f ? '?' : s[j];
    out[j] = '\0';
    return out;
}

/* Print the DBA's script (stderr, as app_load prints schema problems) and fail. */
static int plan_finish(struct bootstrap_plan *p, const char *what, const char *again,
                       struct pgs_error *err)
{
    char db[256], role[256];
    if (p->ndba == 0)
        return 0;
    comment_safe(p->ae->e->database, db, sizeof(db));
    comment_safe(p->role, role, sizeof(role));
    fprintf(stderr,
            "-- pgsync-bootstrap: database \"%s\", role \"%s\": %d step%s of %s need%s a "
            "superuser or the tables' owner.\n"
            "-- Run this as such (psql -d \"%s\"), then run %s again.\n%s%s\n",
            db, role, p->ndba, p->ndba == 1 ? "" : "s", what, p->ndba == 1 ? "s" : "", db, again,
            p->dba.buf,
            p->restart ? "-- then restart PostgreSQL (ALTER SYSTEM above)\n" : "");
    pgs_error_set(err, PGS_ERR_FATAL,
                  "database \"%s\": %d step%s need%s a superuser or the tables' owner",
                  p->ae->e->database, p->ndba, p->ndba == 1 ? "" : "s", p->ndba == 1 ? "s" : "");
    pgs_error_detail(err, "the SQL to run is printed above; then run %s again", again);
    return -1;
}

static int plan_init(struct bootstrap_plan *p, const struct config *cfg, const struct app_entry *ae,
                     struct pgs_error *err)
{
    memset(p, 0, sizeof(*p));
    sb_init(&p->dba);
    p->ae = ae;
    p->conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-bootstrap", err);
    if (p->conn == NULL)
        return -1;
    p->role = PQuser(p->conn);
    return 0;
}

static void plan_free(struct bootstrap_plan *p)
{
    if (p->conn)
        PQfinish(p->conn);
    sb_free(&p->dba);
}

int bootstrap_table_is_view(const struct app_entry *ae, int i)
{
    const struct catalog_table *t =
        catalog_find_table(&ae->cat, ae->tables[i].schema, ae->tables[i].table);
    return t && (t->relkind == 'v' || t->relkind == 'm');
}

void bootstrap_add_table_name(struct strbuf *sb, const struct schema_table_ref *t)
{
    sb_ident(sb, t->schema);
    sb_addc(sb, '.');
    sb_ident(sb, t->table);
}

static int setting_int(PGconn *conn, const char *sql, long *out, struct pgs_error *err)
{
    char *v = bootstrap_query_value(conn, sql, 0, NULL, err);
    if (v == NULL)
        return -1;
    *out = atol(v);
    free(v);
    return 0;
}

/* wal_level, free slots and WAL senders, REPLICATION: the script gets what is missing. */
static int check_logical_server(struct bootstrap_plan *p, int slot_exists, struct pgs_error *err)
{
    struct strbuf sql;
    long max_slots, used_slots, max_senders, used_senders;
    char *wal = bootstrap_query_value(p->conn, "SHOW wal_level", 0, NULL, err);
    if (wal == NULL)
        return -1;
    sb_init(&sql);
    if (strcmp(wal, "logical") != 0) {
        bootstrap_plan_defer(p, "ALTER SYSTEM SET wal_level = logical");
        p->restart = 1;
    }
    free(wal);
    /* our slot (if missing) and the initial load's temporary slot */
    if (setting_int(p->conn, "SHOW max_replication_slots", &max_slots, err) < 0 ||
        setting_int(p->conn, "SELECT count(*) FROM pg_replication_slots", &used_slots, err) < 0 ||
        setting_int(p->conn, "SHOW max_wal_senders", &max_senders, err) < 0 ||
        setting_int(p->conn,
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'",
                    &used_senders, err) < 0) {
        sb_free(&sql);
        return -1;
    }
    long need_slots = used_slots + (slot_exists ? 0 : 1) + 1;
    if (need_slots > max_slots) {
        sb_printf(&sql, "ALTER SYSTEM SET max_replication_slots = %ld", need_slots);
        bootstrap_plan_defer(p, sql.buf);
        p->restart = 1;
    }
    /* the producer's and the load's connections */
    long need_senders = used_senders + (slot_exists ? 1 : 2);
    if (need_senders > max_senders) {
        sb_reset(&sql);
        sb_printf(&sql, "ALTER SYSTEM SET max_wal_senders = %ld", need_senders);
        bootstrap_plan_defer(p, sql.buf);
        p->restart = 1;
    }
    sb_free(&sql);

    char *rep = bootstrap_query_value(p->conn,
                            "SELECT rolreplication OR rolsuper FROM pg_roles "
                            "WHERE rolname = current_user",
                            0, NULL, err);
    if (rep == NULL)
        return -1;
    if (strcmp(rep, "t") != 0) {
        struct strbuf q;
        sb_init(&q);
        sb_add(&q, "ALTER ROLE ");
        sb_ident(&q, p->role);
        sb_add(&q, " REPLICATION");
        bootstrap_plan_defer(p, q.buf);
        sb_free(&q);
    }
    free(rep);
    return 0;
}

/* The role reads every table: the load, the consumers and the trigger mode need it. */
static int check_select(struct bootstrap_plan *p, struct pgs_error *err)
{
    struct strbuf missing;
    int n = 0, rv = 0;

    sb_init(&missing);
    for (int i = 0; i < p->ae->ntables; i++) {
        struct strbuf name;
        sb_init(&name);
        bootstrap_add_table_name(&name, &p->ae->tables[i]);
        const char *params[1] = {name.buf};
        char *v = bootstrap_query_value(p->conn, "SELECT has_table_privilege($1::regclass, 'SELECT')", 1,
                              params, err);
        if (v == NULL) {
            sb_free(&name);
            rv = -1;
            break;
        }
        if (strcmp(v, "t") != 0) {
            sb_printf(&missing, "%s%s", n++ ? ", " : "", name.buf);
        }
        free(v);
        sb_free(&name);
    }
    if (rv == 0 && n > 0) {
        struct strbuf q;
        sb_init(&q);
        sb_printf(&q, "GRANT SELECT ON %s TO ", missing.buf);
        sb_ident(&q, p->role);
        bootstrap_plan_defer(p, q.buf);
        sb_free(&q);
    }
    sb_free(&missing);
    return rv;
}

/*
 * The database's publication holds the union of its entries' tables: create
 * it with the entry's, or add those it lacks. Nothing is removed here: other
 * entries may need the rest (bootstrap_teardown removes what none uses).
 */
static int setup_publication(struct bootstrap_plan *p, struct pgs_error *err)
{
    const struct app_entry *ae = p->ae;
    const char *params[1] = {ae->publication};
    PGresult *res = PQexecParams(p->conn,
                                 "SELECT p.oid IS NOT NULL, t.schemaname, t.tablename "
                                 "FROM (SELECT $1::name AS n) x "
                                 "LEFT JOIN pg_publication p ON p.pubname = x.n "
                                 "LEFT JOIN pg_publication_tables t ON t.pubname = x.n",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "catalog query failed");
        pgs_error_detail(err, "%s", PQerrorMessage(p->conn));
        PQclear(res);
        return -1;
    }
    int exists = !strcmp(PQgetvalue(res, 0, 0), "t"), missing = 0, rv = 0;
    struct strbuf tables;
    sb_init(&tables);
    for (int i = 0; i < ae->ntables; i++) {
        const struct schema_table_ref *t = &ae->tables[i];
        int listed = 0;
        if (bootstrap_table_is_view(ae, i))
            continue; /* views change through their base tables */
        for (int r = 0; r < PQntuples(res) && !listed; r++)
            listed = !PQgetisnull(res, r, 1) && !strcmp(PQgetvalue(res, r, 1), t->schema) &&
                     !strcmp(PQgetvalue(res, r, 2), t->table);
        if (listed)
            continue;
        if (missing++ > 0)
            sb_add(&tables, ", ");
        bootstrap_add_table_name(&tables, t);
    }
    PQclear(res);
    if (missing > 0) {
        struct strbuf sql;
        sb_init(&sql);
        sb_add(&sql, exists ? "ALTER PUBLICATION " : "CREATE PUBLICATION ");
        sb_ident(&sql, ae->publication);
        sb_printf(&sql, exists ? " ADD TABLE %s" : " FOR TABLE %s", tables.buf);
        rv = bootstrap_plan_step(p, sql.buf, 0,
                                 exists ? "tables added to the publication" : "publication created",
                                 err);
        sb_free(&sql);
    } else if (!exists) {
        /* an entry of views only: a publication of no table still names the slot's source */
        struct strbuf sql;
        sb_init(&sql);
        sb_add(&sql, "CREATE PUBLICATION ");
        sb_ident(&sql, ae->publication);
        rv = bootstrap_plan_step(p, sql.buf, 0, "publication created", err);
        sb_free(&sql);
    }
    sb_free(&tables);
    return rv;
}

/*
 * A change to a child row must name the parent it belonged to: with the
 * default replica identity, DELETE and UPDATE send only the primary key.
 */
static int setup_replica_identity(struct bootstrap_plan *p, struct pgs_error *err)
{
    const struct app_entry *ae = p->ae;
    for (int i = 0; i < ae->ntables; i++) {
        const struct schema_table_ref *t = &ae->tables[i];
        const struct catalog_table *ct = catalog_find_table(&ae->cat, t->schema, t->table);
        int needs_full = 0;

        if (ct == NULL || bootstrap_table_is_view(ae, i))
            continue;
        for (int c = 0; c < t->nlink && !needs_full; c++) {
            int in_pk = 0;
            for (int k = 0; k < ct->npk; k++)
                if (!strcmp(ct->pk[k], t->link_cols[c]))
                    in_pk = 1;
            if (!in_pk)
                needs_full = 1;
        }
        if (ct->npk == 0)
            needs_full = 1;
        if (!needs_full)
            continue;

        const char *params[2] = {t->schema, t->table};
        char *ident = bootstrap_query_value(p->conn,
                                  "SELECT c.relreplident FROM pg_class c JOIN pg_namespace n "
                                  "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND "
                                  "c.relname = $2",
                                  2, params, err);
        if (ident == NULL)
            return -1;
        if (strcmp(ident, "f") != 0) {
            struct strbuf sql;
            sb_init(&sql);
            sb_add(&sql, "ALTER TABLE ");
            bootstrap_add_table_name(&sql, t);
            sb_add(&sql, " REPLICA IDENTITY FULL");
            int rv = bootstrap_plan_step(p, sql.buf, 0, "replica identity set to full", err);
            sb_free(&sql);
            if (rv < 0) {
                free(ident);
                return -1;
            }
        }
        free(ident);
    }
    return 0;
}

int bootstrap_slot_exists(PGconn *conn, const char *slot, int *exists, struct pgs_error *err)
{
    const char *params[1] = {slot};
    char *v = bootstrap_query_value(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", 1,
                          params, err);
    if (v == NULL)
        return -1;
    *exists = *v != '\0';
    free(v);
    return 0;
}

/* ---- trigger mode ---- */

/* Drop slot "slot" when it exists; only the REPLICATION right is needed. */
static int drop_slot(PGconn *conn, const char *slot, struct pgs_error *err)
{
    int exists = 0;
    if (bootstrap_slot_exists(conn, slot, &exists, err) < 0)
        return -1;
    if (!exists)
        return 0;
    const char *params[1] = {slot};
    char *v = bootstrap_query_value(conn, "SELECT pg_drop_replication_slot($1)", 1, params, err);
    if (v == NULL) {
        snprintf(err->msg, sizeof(err->msg),
                 "cannot drop replication slot \"%s\" (is a producer still running?)", slot);
        return -1;
    }
    free(v);
    pgs_log(LOG_INFO, "replication slot dropped", "slot=%s", slot);
    return 0;
}

static int drop_publication(struct bootstrap_plan *p, const char *pub, struct pgs_error *err)
{
    const char *params[1] = {pub};
    char *v = bootstrap_query_value(p->conn, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1,
                                    params, err);
    if (v == NULL)
        return -1;
    int rv = 0;
    if (*v) {
        struct strbuf sql;
        sb_init(&sql);
        sb_add(&sql, "DROP PUBLICATION IF EXISTS ");
        sb_ident(&sql, pub);
        rv = bootstrap_plan_step(p, sql.buf, 0, "publication dropped", err);
        sb_free(&sql);
    }
    free(v);
    return rv;
}

/*
 * A publication of the entry's own whose slot is gone (drained by the
 * producer, or never made): nothing reads it any more.
 */
static int drop_orphan_publication(struct bootstrap_plan *p, struct pgs_error *err)
{
    const struct app_entry *ae = p->ae;
    int exists = 1;
    if (!strcmp(ae->legacy_publication, ae->publication))
        return 0;
    if (bootstrap_slot_exists(p->conn, ae->legacy_slot, &exists, err) < 0)
        return -1;
    return exists ? 0 : drop_publication(p, ae->legacy_publication, err);
}

/* pgsync."<slot>": the outbox table and, in the function namespace, its trigger function */
int bootstrap_setup(const struct config *cfg, struct app_entry *ae, int *created_slot,
                    struct pgs_error *err)
{
    struct bootstrap_plan p;
    int exists = 0;

    if (created_slot)
        *created_slot = 0;
    if (plan_init(&p, cfg, ae, err) < 0)
        return -1;
    if (check_select(&p, err) < 0)
        goto fail;
    if (cfg->mode == CAPTURE_NOTIFY) {
        if (outbox_ddl_setup(&p, err) < 0 ||
            plan_finish(&p, "the trigger mode", "pgsync-bootstrap --mode notify", err) < 0)
            goto fail;
        pgs_log(LOG_INFO, "trigger mode ready",
                "database=%s outbox=" OUTBOX_SCHEMA ".%s channel=%s", ae->e->database, ae->outbox,
                ae->outbox);
        plan_free(&p);
        return 0;
    }
    if (bootstrap_slot_exists(p.conn, ae->slot, &exists, err) < 0 ||
        check_logical_server(&p, exists, err) < 0 || setup_publication(&p, err) < 0 ||
        drop_orphan_publication(&p, err) < 0 ||
        setup_replica_identity(&p, err) < 0 ||
        plan_finish(&p, "logical replication", "pgsync-bootstrap", err) < 0)
        goto fail;
    /* last: pgoutput looks the publication up as of each change, so it must exist first */
    if (!exists) {
        const char *params[1] = {ae->slot};
        char *lsn = bootstrap_query_value(p.conn,
                                "SELECT lsn FROM pg_create_logical_replication_slot($1, "
                                "'pgoutput')",
                                1, params, err);
        if (lsn == NULL) {
            snprintf(err->msg, sizeof(err->msg), "cannot create replication slot \"%s\"",
                     ae->slot);
            goto fail;
        }
        pgs_log(LOG_INFO, "replication slot created", "slot=%s lsn=%s", ae->slot, lsn);
        free(lsn);
        if (created_slot)
            *created_slot = 1;
    }
    plan_free(&p);
    return 0;
fail:
    plan_free(&p);
    return -1;
}

int bootstrap_outbox_bounds(PGconn *conn, const struct app_entry *ae, long long *min,
                            long long *max, struct pgs_error *err)
{
    struct strbuf sql;
    sb_init(&sql);
    sb_add(&sql, "SELECT coalesce(min(id), -1), coalesce(max(id), 0) FROM ");
    outbox_ddl_add_name(&sql, ae->outbox);
    PGresult *res = PQexec(conn, sql.buf);
    sb_free(&sql);
    int rv = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        *min = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        if (max)
            *max = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        rv = 0;
    } else {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot read the outbox of \"%s\"", ae->outbox);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
    }
    PQclear(res);
    return rv;
}

#define RECOVER_SLOT                                                                             \
    "recover with pgsync-bootstrap --config FILE --recreate-slot, then pgsync --config FILE "      \
    "--resync (the changes since its last position are in no stream)"

int bootstrap_slot_broken(const struct config *cfg, const struct app_entry *ae, char *why,
                          size_t why_len, struct pgs_error *err)
{
    const char *params[2] = {ae->slot, ae->publication};
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-check", err);
    if (conn == NULL)
        return -1;
    char *v = bootstrap_query_value(
        conn,
        "SELECT coalesce((SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1), "
        "'missing') || ' ' || EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2)::text",
        2, params, err);
    PQfinish(conn);
    if (v == NULL)
        return -1;
    int broken = 1;
    if (strncmp(v, "lost ", 5) == 0)
        snprintf(why, why_len,
                 "replication slot \"%s\" was invalidated by PostgreSQL (wal_status lost: it fell "
                 "further behind than max_slot_wal_keep_size allows); " RECOVER_SLOT,
                 ae->slot);
    else if (strncmp(v, "missing ", 8) != 0 && strstr(v, " false") != NULL)
        snprintf(why, why_len,
                 "publication \"%s\" of replication slot \"%s\" does not exist (dropped?): the "
                 "slot cannot decode past its drop; " RECOVER_SLOT,
                 ae->publication, ae->slot);
    else
        broken = 0;
    free(v);
    return broken;
}

int bootstrap_recreate_slot(const struct config *cfg, struct app_entry *ae, struct pgs_error *err)
{
    char why[600];
    int broken = bootstrap_slot_broken(cfg, ae, why, sizeof(why), err);
    if (broken < 0)
        return -1;
    if (!broken) {
        pgs_error_set(err, PGS_ERR_USAGE,
                      "replication slot \"%s\" is usable (or missing): --recreate-slot would "
                      "lose the changes it holds; nothing done (plain pgsync-bootstrap creates a "
                      "missing one)",
                      ae->slot);
        return -1;
    }
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-bootstrap", err);
    if (conn == NULL)
        return -1;
    const char *params[1] = {ae->slot};
    char *v = bootstrap_query_value(conn,
                                    "SELECT count(pg_drop_replication_slot(slot_name)) FROM "
                                    "pg_replication_slots WHERE slot_name = $1",
                                    1, params, err);
    PQfinish(conn);
    if (v == NULL) {
        snprintf(err->msg, sizeof(err->msg),
                 "cannot drop replication slot \"%s\" (is a producer reading it?)", ae->slot);
        return -1;
    }
    free(v);
    pgs_log(LOG_WARN, "broken replication slot dropped", "slot=%s", ae->slot);
    return bootstrap_setup(cfg, ae, NULL, err);
}

/* Is table i of "ae" one of another staying entry's on the same publication? */
static int table_kept(const struct app_entry *ae, int i, const struct app *stay)
{
    for (int k = 0; stay && k < stay->nentries; k++) {
        const struct app_entry *o = &stay->entries[k];
        if (o != ae && !strcmp(o->publication, ae->publication) &&
            app_table_index(o, ae->tables[i].schema, ae->tables[i].table) >= 0)
            return 1;
    }
    return 0;
}

/* The entry's tables that no staying entry uses leave the database's publication. */
static int publication_drop_tables(struct bootstrap_plan *p, const struct app *stay,
                                   struct pgs_error *err)
{
    const struct app_entry *ae = p->ae;
    const char *params[1] = {ae->publication};
    PGresult *res = PQexecParams(p->conn,
                                 "SELECT schemaname, tablename FROM pg_publication_tables "
                                 "WHERE pubname = $1",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "catalog query failed");
        pgs_error_detail(err, "%s", PQerrorMessage(p->conn));
        PQclear(res);
        return -1;
    }
    struct strbuf tables;
    int n = 0, rv = 0;
    sb_init(&tables);
    for (int r = 0; r < PQntuples(res); r++) {
        int i = app_table_index(ae, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
        if (i < 0 || table_kept(ae, i, stay))
            continue;
        if (n++ > 0)
            sb_add(&tables, ", ");
        bootstrap_add_table_name(&tables, &ae->tables[i]);
    }
    PQclear(res);
    if (n > 0) {
        struct strbuf sql;
        sb_init(&sql);
        sb_add(&sql, "ALTER PUBLICATION ");
        sb_ident(&sql, ae->publication);
        sb_printf(&sql, " DROP TABLE %s", tables.buf);
        rv = bootstrap_plan_step(p, sql.buf, 0, "tables removed from the publication", err);
        sb_free(&sql);
    }
    sb_free(&tables);
    return rv;
}

int bootstrap_teardown(const struct config *cfg, struct app_entry *ae, const struct app *stay,
                       struct pgs_error *err)
{
    struct bootstrap_plan p;
    int rv = -1, shared = 0;

    if (plan_init(&p, cfg, ae, err) < 0)
        return -1;
    for (int k = 0; stay && k < stay->nentries; k++)
        if (&stay->entries[k] != ae && !strcmp(stay->entries[k].slot, ae->slot))
            shared = 1;

    /* 1. the database's slot and publication, unless another entry stays on them */
    if (shared) {
        if (publication_drop_tables(&p, stay, err) < 0)
            goto out;
    } else if (drop_slot(p.conn, ae->slot, err) < 0 || drop_publication(&p, ae->publication, err) < 0)
        goto out;
    /* 2. a slot of the entry's own, from before one per database */
    if (strcmp(ae->legacy_slot, ae->slot) != 0 && drop_slot(p.conn, ae->legacy_slot, err) < 0)
        goto out;
    if (strcmp(ae->legacy_publication, ae->publication) != 0 &&
        drop_publication(&p, ae->legacy_publication, err) < 0)
        goto out;

    /* 3. trigger mode: every trigger calling our function, the function, the outbox */
    if (outbox_ddl_teardown(&p, err) < 0)
        goto out;
    if (plan_finish(&p, "the teardown", "pgsync-bootstrap --teardown", err) < 0)
        goto out;
    rv = 0;
out:
    plan_free(&p);
    return rv;
}

int bootstrap_slot_position(const struct config *cfg, const struct app_entry *ae,
                            uint64_t *confirmed, struct pgs_error *err)
{
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-producer", err);
    if (conn == NULL)
        return -1;
    const char *params[1] = {ae->slot};
    char *v = bootstrap_query_value(conn,
                                    "SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                    "WHERE slot_name = $1",
                                    1, params, err);
    PQfinish(conn);
    if (v == NULL)
        return -1;
    *confirmed = 0;
    if (*v && lsn_parse(v, confirmed) < 0)
        *confirmed = 0;
    free(v);
    return 0;
}

int bootstrap_drop_legacy(const struct config *cfg, const struct app_entry *ae,
                          struct pgs_error *err)
{
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-producer", err);
    if (conn == NULL)
        return -1;
    int rv = 0;
    if (strcmp(ae->legacy_slot, ae->slot) != 0 && drop_slot(conn, ae->legacy_slot, err) < 0)
        rv = -1;
    if (rv == 0 && strcmp(ae->legacy_publication, ae->publication) != 0) {
        struct strbuf sql;
        sb_init(&sql);
        sb_add(&sql, "DROP PUBLICATION IF EXISTS ");
        sb_ident(&sql, ae->legacy_publication);
        rv = exec_ok(conn, sql.buf, "dropping a publication of one index's own", err);
        sb_free(&sql);
    }
    PQfinish(conn);
    return rv;
}

int bootstrap_export_snapshot(PGconn *conn, char *snap, size_t snap_len, uint64_t *version,
                              struct pgs_error *err)
{
    uint64_t wal;
    char *v;

    /* the sample first: a change missing from the snapshot is drained after it */
    v = bootstrap_query_value(conn, "SELECT pg_current_wal_insert_lsn()", 0, NULL, err);
    if (v == NULL)
        return -1;
    if (lsn_parse(v, &wal) < 0 || wal == 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "bad WAL position \"%s\"", v);
        free(v);
        return -1;
    }
    free(v);
    *version = wal - 1;
    if (exec_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting the load's "
                "snapshot", err) < 0)
        return -1;
    v = bootstrap_query_value(conn, "SELECT pg_export_snapshot()", 0, NULL, err);
    if (v == NULL)
        return -1;
    snprintf(snap, snap_len, "%s", v);
    free(v);
    return 0;
}
