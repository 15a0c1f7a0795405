/* bootstrap.c - creating and removing the publication, replica identities and the slot. */
#include "bootstrap.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strbuf.h"

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

static char *query_value(PGconn *conn, const char *sql, int nparams, const char *const *params,
                         struct pgs_error *err)
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

static int check_server(PGconn *conn, const char *database, struct pgs_error *err)
{
    char *wal = query_value(conn, "SHOW wal_level", 0, NULL, err);
    if (wal == NULL)
        return -1;
    if (strcmp(wal, "logical") != 0) {
        pgs_error_set(err, PGS_ERR_FATAL,
                      "database \"%s\": wal_level is \"%s\", logical replication needs "
                      "\"logical\"",
                      database, wal);
        pgs_error_detail(err, "run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL "
                              "(or use --mode notify)");
        free(wal);
        return -1;
    }
    free(wal);
    char *slots = query_value(conn, "SHOW max_replication_slots", 0, NULL, err);
    if (slots == NULL)
        return -1;
    if (atoi(slots) < 1) {
        pgs_error_set(err, PGS_ERR_FATAL, "max_replication_slots is %s: at least 1 is needed",
                      slots);
        pgs_error_detail(err, "run ALTER SYSTEM SET max_replication_slots = 10; then restart");
        free(slots);
        return -1;
    }
    free(slots);
    char *rep = query_value(conn,
                            "SELECT rolreplication OR rolsuper FROM pg_roles "
                            "WHERE rolname = current_user",
                            0, NULL, err);
    if (rep == NULL)
        return -1;
    if (strcmp(rep, "t") != 0) {
        pgs_error_set(err, PGS_ERR_FATAL,
                      "role \"%s\" may not use replication", PQuser(conn));
        pgs_error_detail(err, "run ALTER ROLE \"%s\" REPLICATION;", PQuser(conn));
        free(rep);
        return -1;
    }
    free(rep);
    return 0;
}

static int table_is_view(const struct app_entry *ae, int i)
{
    const struct catalog_table *t =
        catalog_find_table(&ae->cat, ae->tables[i].schema, ae->tables[i].table);
    return t && (t->relkind == 'v' || t->relkind == 'm');
}

static int setup_publication(PGconn *conn, struct app_entry *ae, struct pgs_error *err)
{
    struct strbuf sql, tables;
    const char *params[1] = {ae->publication};
    char *exists;
    int rv = 0;

    sb_init(&tables);
    for (int i = 0, n = 0; i < ae->ntables; i++) {
        if (table_is_view(ae, i))
            continue; /* views change through their base tables */
        if (n++ > 0)
            sb_add(&tables, ", ");
        sb_ident(&tables, ae->tables[i].schema);
        sb_addc(&tables, '.');
        sb_ident(&tables, ae->tables[i].table);
    }
    exists = query_value(conn, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, params, err);
    if (exists == NULL) {
        sb_free(&tables);
        return -1;
    }
    sb_init(&sql);
    if (*exists) {
        /* keep it to exactly our tables: a schema change may add or drop some */
        sb_add(&sql, "ALTER PUBLICATION ");
        sb_ident(&sql, ae->publication);
        sb_printf(&sql, " SET TABLE %s", tables.buf);
    } else {
        sb_add(&sql, "CREATE PUBLICATION ");
        sb_ident(&sql, ae->publication);
        sb_printf(&sql, " FOR TABLE %s", tables.buf);
    }
    if (exec_ok(conn, sql.buf, "creating the publication", err) < 0) {
        snprintf(err->msg, sizeof(err->msg),
                 "cannot create publication \"%s\": ask a table owner to run: %s", ae->publication,
                 sql.buf);
        rv = -1;
    } else if (!*exists) {
        pgs_log(LOG_INFO, "publication created", "publication=%s tables=%d", ae->publication,
                ae->ntables);
    }
    free(exists);
    sb_free(&sql);
    sb_free(&tables);
    return rv;
}

/*
 * A change to a child row must name the parent it belonged to: with the
 * default replica identity, DELETE and UPDATE send only the primary key.
 */
static int setup_replica_identity(PGconn *conn, struct app_entry *ae, struct pgs_error *err)
{
    for (int i = 0; i < ae->ntables; i++) {
        const struct schema_table_ref *t = &ae->tables[i];
        const struct catalog_table *ct = catalog_find_table(&ae->cat, t->schema, t->table);
        int needs_full = 0;

        if (ct == NULL || table_is_view(ae, i))
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

        struct strbuf q;
        sb_init(&q);
        sb_add(&q, "SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = "
                   "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2");
        const char *params[2] = {t->schema, t->table};
        char *ident = query_value(conn, q.buf, 2, params, err);
        sb_free(&q);
        if (ident == NULL)
            return -1;
        if (strcmp(ident, "f") != 0) {
            struct strbuf sql;
            sb_init(&sql);
            sb_add(&sql, "ALTER TABLE ");
            sb_ident(&sql, t->schema);
            sb_addc(&sql, '.');
            sb_ident(&sql, t->table);
            sb_add(&sql, " REPLICA IDENTITY FULL");
            if (exec_ok(conn, sql.buf, "setting the replica identity", err) < 0) {
                snprintf(err->msg, sizeof(err->msg),
                         "table \"%s.%s\" needs REPLICA IDENTITY FULL so that deletes and updates "
                         "carry its join columns; ask its owner to run: %s",
                         t->schema, t->table, sql.buf);
                free(ident);
                sb_free(&sql);
                return -1;
            }
            pgs_log(LOG_INFO, "replica identity set to full", "table=%s.%s", t->schema, t->table);
            sb_free(&sql);
        }
        free(ident);
    }
    return 0;
}

int bootstrap_slot_exists(PGconn *conn, const char *slot, int *exists, struct pgs_error *err)
{
    const char *params[1] = {slot};
    char *v = query_value(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", 1,
                          params, err);
    if (v == NULL)
        return -1;
    *exists = *v != '\0';
    free(v);
    return 0;
}

int bootstrap_setup(const struct config *cfg, struct app_entry *ae, int *created_slot,
                    struct pgs_error *err)
{
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-bootstrap", err);
    int exists = 0;

    if (created_slot)
        *created_slot = 0;
    if (conn == NULL)
        return -1;
    if (check_server(conn, ae->e->database, err) < 0 || setup_publication(conn, ae, err) < 0 ||
        setup_replica_identity(conn, ae, err) < 0 ||
        bootstrap_slot_exists(conn, ae->slot, &exists, err) < 0)
        goto fail;
    if (!exists) {
        const char *params[1] = {ae->slot};
        char *lsn = query_value(conn,
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
    PQfinish(conn);
    return 0;
fail:
    PQfinish(conn);
    return -1;
}

int bootstrap_teardown(const struct config *cfg, struct app_entry *ae, struct pgs_error *err)
{
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-bootstrap", err);
    int exists = 0;
    struct strbuf sql;

    if (conn == NULL)
        return -1;
    if (bootstrap_slot_exists(conn, ae->slot, &exists, err) < 0)
        goto fail;
    if (exists) {
        const char *params[1] = {ae->slot};
        char *v = query_value(conn, "SELECT pg_drop_replication_slot($1)", 1, params, err);
        if (v == NULL) {
            snprintf(err->msg, sizeof(err->msg),
                     "cannot drop replication slot \"%s\" (is a producer still running?)",
                     ae->slot);
            goto fail;
        }
        free(v);
        pgs_log(LOG_INFO, "replication slot dropped", "slot=%s", ae->slot);
    }
    sb_init(&sql);
    sb_add(&sql, "DROP PUBLICATION IF EXISTS ");
    sb_ident(&sql, ae->publication);
    if (exec_ok(conn, sql.buf, "dropping the publication", err) < 0) {
        sb_free(&sql);
        goto fail;
    }
    sb_free(&sql);
    pgs_log(LOG_INFO, "publication dropped", "publication=%s", ae->publication);
    PQfinish(conn);
    return 0;
fail:
    PQfinish(conn);
    return -1;
}
