/* ops.c - helpers of the operations tools: config, slots, the WAL position. */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int ops_load(const char *prog, const char *config_path, struct config *cfg, struct app *app)
{
    struct pgs_error err;
    char buf[1600];

    pgs_error_clear(&err);
    if (config_load(cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, pgs_error_str(&err, buf, sizeof(buf)));
        return 2;
    }
    if (app_load(app, config_path, cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, pgs_error_str(&err, buf, sizeof(buf)));
        return 1;
    }
    if (app_bind_once(app, 0, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, pgs_error_str(&err, buf, sizeof(buf)));
        app_free(app);
        return 1;
    }
    return 0;
}

static void copy_value(PGresult *res, int col, char *out, size_t len)
{
    snprintf(out, len, "%s", PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col));
}

int ops_slot_query(PGconn *conn, const char *slot, struct ops_slot *out, struct pgs_error *err)
{
    /* pg_current_wal_lsn() fails on a standby, where slots cannot be read from anyway */
    static const char sql[] =
        "SELECT active, coalesce(active_pid, 0), plugin, database, restart_lsn, "
        "confirmed_flush_lsn, wal_status, "
        "CASE WHEN pg_is_in_recovery() THEN NULL "
        "ELSE pg_current_wal_lsn() - restart_lsn END "
        "FROM pg_replication_slots WHERE slot_name = $1";
    const char *params[1] = {slot};

    memset(out, 0, sizeof(*out));
    out->retained_bytes = -1;
    PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot read the state of replication slot \"%s\"", slot);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 1) {
        out->exists = 1;
        out->active = !strcmp(PQgetvalue(res, 0, 0), "t");
        out->active_pid = atoi(PQgetvalue(res, 0, 1));
        copy_value(res, 2, out->plugin, sizeof(out->plugin));
        copy_value(res, 3, out->database, sizeof(out->database));
        copy_value(res, 4, out->restart_lsn, sizeof(out->restart_lsn));
        copy_value(res, 5, out->confirmed_flush_lsn, sizeof(out->confirmed_flush_lsn));
        copy_value(res, 6, out->wal_status, sizeof(out->wal_status));
        if (!PQgetisnull(res, 0, 7))
            out->retained_bytes = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    }
    PQclear(res);
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *ops_slot_json(const char *name, const struct ops_slot *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "exists", json_boolean(s->exists));
    json_object_set_new(o, "active", json_boolean(s->active));
    json_object_set_new(o, "active_pid", s->active_pid ? json_integer(s->active_pid) : json_null());
    json_object_set_new(o, "plugin", str_or_null(s->plugin));
    json_object_set_new(o, "database", str_or_null(s->database));
    json_object_set_new(o, "restart_lsn", str_or_null(s->restart_lsn));
    json_object_set_new(o, "confirmed_flush_lsn", str_or_null(s->confirmed_flush_lsn));
    json_object_set_new(o, "retained_wal_bytes",
                        s->retained_bytes >= 0 ? json_integer(s->retained_bytes) : json_null());
    json_object_set_new(o, "wal_status", str_or_null(s->wal_status));
    return o;
}

int ops_wal_lsn(PGconn *conn, uint64_t *lsn, struct pgs_error *err)
{
    PGresult *res = PQexec(conn, "SELECT pg_current_wal_lsn() - '0/0'");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot read the current WAL position");
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    *lsn = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}
