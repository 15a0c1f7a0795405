/*
 * outbox_ddl.c - creating and removing the trigger outbox's objects (see
 * outbox_ddl.h): the table the producer drains, the trigger function that
 * fills it with the link columns of each change, and the triggers that call
 * it. Every step goes through the bootstrap plan, so what the role may not
 * do ends up in the DBA's script.
 */
#include "outbox_ddl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

void outbox_ddl_add_name(struct strbuf *sb, const char *slot)
{
    sb_add(sb, OUTBOX_SCHEMA ".");
    sb_ident(sb, slot);
}

/* "<slot>_t", cut so that it fits in 63 bytes */
static void truncate_trigger_name(const struct app_entry *ae, char *out, size_t len)
{
    int n = (int)strlen(ae->outbox);
    snprintf(out, len, "%.*s_t", n > 61 ? 61 : n, ae->outbox);
}

/* jsonb_build_object('col', <text of REC.col as its output function writes it>, ...) */
static void add_link_object(struct strbuf *sb, const struct schema_table_ref *t, const char *rec)
{
    sb_add(sb, "jsonb_build_object(");
    for (int c = 0; c < t->nlink; c++) {
        if (c)
            sb_add(sb, ", ");
        sb_literal(sb, t->link_cols[c]);
        /* format('%s') calls the type's output function, as pgoutput does (bool: t/f) */
        sb_printf(sb, ", CASE WHEN %s.", rec);
        sb_ident(sb, t->link_cols[c]);
        sb_printf(sb, " IS NULL THEN NULL ELSE format('%%s', %s.", rec);
        sb_ident(sb, t->link_cols[c]);
        sb_add(sb, ") END");
    }
    sb_add(sb, ")");
}

/* The body of the trigger function (its prosrc: compared to decide whether to replace it). */
static void build_function_body(const struct app_entry *ae, struct strbuf *sb)
{
    struct strbuf box;
    int first = 1;

    sb_init(&box);
    outbox_ddl_add_name(&box, ae->outbox);
    sb_add(sb, "\nDECLARE o jsonb; n jsonb;\nBEGIN\n"
               "    IF TG_LEVEL = 'STATEMENT' THEN\n");
    sb_printf(sb, "        INSERT INTO %s (s, t, op) VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, 'T');\n",
              box.buf);
    for (int i = 0; i < ae->ntables; i++) {
        const struct schema_table_ref *t = &ae->tables[i];
        if (bootstrap_table_is_view(ae, i))
            continue;
        sb_add(sb, first ? "    ELSIF " : "    ELSIF ");
        first = 0;
        sb_add(sb, "TG_TABLE_SCHEMA = ");
        sb_literal(sb, t->schema);
        sb_add(sb, " AND TG_TABLE_NAME = ");
        sb_literal(sb, t->table);
        sb_add(sb, " THEN\n        IF TG_OP <> 'INSERT' THEN o := ");
        add_link_object(sb, t, "OLD");
        sb_add(sb, "; END IF;\n        IF TG_OP <> 'DELETE' THEN n := ");
        add_link_object(sb, t, "NEW");
        sb_add(sb, "; END IF;\n");
    }
    sb_add(sb, "    END IF;\n    IF TG_LEVEL = 'ROW' THEN\n");
    sb_printf(sb,
              "        INSERT INTO %s (s, t, op, old, new)\n"
              "        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, left(TG_OP, 1), o, n);\n"
              "    END IF;\n",
              box.buf);
    /* a wake-up for the producer; the same payload is sent once per transaction */
    sb_add(sb, "    PERFORM pg_notify(");
    sb_literal(sb, ae->outbox);
    sb_add(sb, ", '');\n    RETURN NULL;\nEND\n");
    sb_free(&box);
}

/*
 * The schema and the outbox table. "*created": this run created (or left
 * to the DBA) the table; "*deferred": the DBA creates it.
 */
static int setup_table(struct bootstrap_plan *p, const char *name, int *created, int *deferred,
                       struct pgs_error *err)
{
    const char *params[1] = {OUTBOX_SCHEMA};
    struct strbuf sql;
    char *v;

    *created = *deferred = 0;
    if ((v = bootstrap_query_value(p->conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1,
                                   params, err)) == NULL)
        return -1;
    if (!*v) {
        if (bootstrap_plan_step(p, "CREATE SCHEMA IF NOT EXISTS " OUTBOX_SCHEMA, 1,
                                "schema created", err) < 0) {
            free(v);
            return -1;
        }
        *created = 1;
    }
    free(v);
    params[0] = name;
    if ((v = bootstrap_query_value(p->conn, "SELECT to_regclass($1) IS NOT NULL", 1, params,
                                   err)) == NULL)
        return -1;
    int missing = strcmp(v, "t") != 0;
    free(v);
    if (!missing && !*created)
        return 0;
    /*
     * id: the drain order; xid: the writer, for the consumers' visibility
     * check; the version is assigned when the producer drains (outbox.c).
     */
    sb_init(&sql);
    sb_printf(&sql,
              "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, "
              "xid xid8 NOT NULL DEFAULT pg_current_xact_id(), s text NOT NULL, "
              "t text NOT NULL, op text NOT NULL, old jsonb, new jsonb, "
              "at timestamptz NOT NULL DEFAULT clock_timestamp())",
              name);
    int before = p->ndba;
    int rv = bootstrap_plan_step(p, sql.buf, 1, "outbox created", err);
    sb_free(&sql);
    if (rv < 0)
        return -1;
    *created = 1;
    *deferred = p->ndba > before;
    return 0;
}

/* The trigger function, replaced when the schema's tables or columns changed. */
static int setup_function(struct bootstrap_plan *p, const char *name, struct pgs_error *err)
{
    struct strbuf sql, body;
    const char *params[1];
    int rv = 0;

    sb_init(&sql);
    sb_init(&body);
    build_function_body(p->ae, &body);
    sb_printf(&sql, "%s()", name);
    params[0] = sql.buf;
    char *v = bootstrap_query_value(
        p->conn, "SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure($1)", 1, params, err);
    if (v == NULL) {
        rv = -1;
    } else if (strcmp(v, body.buf) != 0) {
        /*
         * The body holds table and column names as literals: a dollar-quote
         * tag that one of them contains would end the quoting early. Pick
         * one the body does not hold.
         */
        char tag[32] = "$pgsync$";
        for (int i = 1; strstr(body.buf, tag) != NULL; i++)
            snprintf(tag, sizeof(tag), "$pgsync_%d$", i);
        sb_reset(&sql);
        sb_printf(&sql,
                  "CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql "
                  "SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %s%s%s",
                  name, tag, body.buf, tag);
        rv = bootstrap_plan_step(p, sql.buf, 1, "trigger function created", err);
    }
    free(v);
    /* a SECURITY DEFINER function is nobody else's to call (its triggers need no grant) */
    if (rv == 0) {
        sb_reset(&sql);
        sb_printf(&sql, "%s()", name);
        params[0] = sql.buf;
        v = bootstrap_query_value(
            p->conn,
            "SELECT 1 FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) "
            "a WHERE p.oid = to_regprocedure($1) AND a.grantee = 0 AND "
            "a.privilege_type = 'EXECUTE'",
            1, params, err);
        /* (a function the DBA has yet to create is revoked in the same script) */
        int public_exec = v == NULL ? -1 : *v != '\0' || p->defer_rest;
        free(v);
        if (public_exec < 0) {
            rv = -1;
        } else if (public_exec) {
            sb_reset(&sql);
            sb_printf(&sql, "REVOKE EXECUTE ON FUNCTION %s() FROM PUBLIC", name);
            rv = bootstrap_plan_step(p, sql.buf, 1, "EXECUTE revoked from PUBLIC", err);
        }
    }
    sb_free(&sql);
    sb_free(&body);
    return rv;
}

/* Trigger "tg" on table "tn" (a row or a TRUNCATE trigger), unless it exists. */
static int setup_trigger(struct bootstrap_plan *p, const char *name, const char *tn,
                         const char *tg, int truncate, struct pgs_error *err)
{
    const char *params[2] = {tn, tg};
    struct strbuf sql;
    char *v = bootstrap_query_value(
        p->conn, "SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2", 2,
        params, err);
    if (v == NULL)
        return -1;
    int exists = *v != '\0';
    free(v);
    if (exists)
        return 0;
    sb_init(&sql);
    sb_add(&sql, "CREATE TRIGGER ");
    sb_ident(&sql, tg);
    sb_printf(&sql,
              truncate ? " AFTER TRUNCATE ON %s FOR EACH STATEMENT"
                       : " AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW",
              tn);
    sb_printf(&sql, " EXECUTE FUNCTION %s()", name);
    int rv = bootstrap_plan_step(p, sql.buf, 1, "trigger created", err);
    sb_free(&sql);
    return rv;
}

/* A row trigger and a TRUNCATE trigger per table (views change through their base tables). */
static int setup_triggers(struct bootstrap_plan *p, const char *name, struct pgs_error *err)
{
    const struct app_entry *ae = p->ae;
    char trunc_name[64];

    truncate_trigger_name(ae, trunc_name, sizeof(trunc_name));
    for (int i = 0; i < ae->ntables; i++) {
        if (bootstrap_table_is_view(ae, i))
            continue;
        struct strbuf tn;
        sb_init(&tn);
        bootstrap_add_table_name(&tn, &ae->tables[i]);
        int rv = setup_trigger(p, name, tn.buf, ae->outbox, 0, err);
        if (rv == 0)
            rv = setup_trigger(p, name, tn.buf, trunc_name, 1, err);
        sb_free(&tn);
        if (rv < 0)
            return -1;
    }
    return 0;
}

/*
 * Drop the triggers that call our function: all of them ("all"), or only
 * those on tables the schema no longer has.
 */
static int drop_triggers(struct bootstrap_plan *p, const char *name, int all,
                         struct pgs_error *err)
{
    struct strbuf fn;
    int rv = 0;

    sb_init(&fn);
    sb_printf(&fn, "%s()", name);
    const char *params[1] = {fn.buf};
    PGresult *res = PQexecParams(p->conn,
                                 "SELECT n.nspname, c.relname, t.tgname FROM pg_trigger t "
                                 "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n "
                                 "ON n.oid = c.relnamespace WHERE t.tgfoid = "
                                 "to_regprocedure($1) ORDER BY 1, 2, 3",
                                 1, NULL, params, NULL, NULL, 0);
    sb_free(&fn);
    int nrows = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    for (int r = 0; r < nrows && rv == 0; r++) {
        if (!all && app_table_index(p->ae, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1)) >= 0)
            continue;
        struct schema_table_ref t = {.schema = PQgetvalue(res, r, 0),
                                     .table = PQgetvalue(res, r, 1)};
        struct strbuf d;
        sb_init(&d);
        sb_add(&d, "DROP TRIGGER IF EXISTS ");
        sb_ident(&d, PQgetvalue(res, r, 2));
        sb_add(&d, " ON ");
        bootstrap_add_table_name(&d, &t);
        rv = bootstrap_plan_step(p, d.buf, 0, "trigger dropped", err);
        sb_free(&d);
    }
    PQclear(res);
    return rv;
}

static void defer_drain_grants(struct bootstrap_plan *p, const char *name)
{
    struct strbuf sql;
    sb_init(&sql);
    sb_add(&sql, "GRANT USAGE ON SCHEMA " OUTBOX_SCHEMA " TO ");
    sb_ident(&sql, p->role);
    bootstrap_plan_defer(p, sql.buf);
    sb_reset(&sql);
    sb_printf(&sql, "GRANT SELECT, DELETE ON %s TO ", name);
    sb_ident(&sql, p->role);
    bootstrap_plan_defer(p, sql.buf);
    sb_free(&sql);
}

/*
 * The role drains the outbox: when a DBA creates it, or an existing one
 * lacks the rights, the script grants them.
 */
static int check_drain_rights(struct bootstrap_plan *p, const char *name, int created,
                              int deferred, struct pgs_error *err)
{
    if (deferred) {
        defer_drain_grants(p, name);
        return 0;
    }
    if (created)
        return 0;
    const char *params[1] = {name};
    char *v = bootstrap_query_value(p->conn,
                                    "SELECT has_schema_privilege('" OUTBOX_SCHEMA "', 'USAGE') "
                                    "AND has_table_privilege($1::regclass, 'SELECT, DELETE')",
                                    1, params, err);
    if (v == NULL)
        return -1;
    if (strcmp(v, "t") != 0)
        defer_drain_grants(p, name);
    free(v);
    return 0;
}

/*
 * The schema pgsync, the outbox and its function are adopted when they
 * exist. Their owner can change what the triggers run and what the
 * producer reads, so one that is neither this role, a superuser nor the
 * owner of one of the entry's tables is refused: someone else may have made
 * them first. (Not role membership: a superuser belongs to every role.)
 */
static int check_owners(struct bootstrap_plan *p, struct pgs_error *err)
{
    const struct app_entry *ae = p->ae;
    json_t *tables = json_array();
    for (int i = 0; i < ae->ntables; i++)
        json_array_append_new(tables, json_pack("[ss]", ae->tables[i].schema, ae->tables[i].table));
    char *tj = json_dumps(tables, JSON_COMPACT);
    json_decref(tables);
    const char *params[2] = {ae->outbox, tj};
    char *v = bootstrap_query_value(
        p->conn,
        "WITH trusted AS ("
        "  SELECT c.relowner AS oid FROM json_array_elements($2::json) j"
        "  JOIN pg_namespace n ON n.nspname = j->>0"
        "  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = j->>1),"
        " objs AS ("
        "  SELECT 1 AS k, 'schema " OUTBOX_SCHEMA "' AS what, n.nspowner AS owner"
        "  FROM pg_namespace n WHERE n.nspname = '" OUTBOX_SCHEMA "'"
        "  UNION ALL SELECT 2, 'table " OUTBOX_SCHEMA ".' || quote_ident(c.relname), c.relowner"
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE n.nspname = '" OUTBOX_SCHEMA "' AND c.relname = $1"
        "  UNION ALL SELECT 3, 'function " OUTBOX_SCHEMA ".' || quote_ident(f.proname) || '()',"
        "  f.proowner FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace"
        "  WHERE n.nspname = '" OUTBOX_SCHEMA "' AND f.proname = $1)"
        " SELECT coalesce((SELECT o.what || ' is owned by role ' || quote_ident(r.rolname)"
        "  FROM objs o JOIN pg_roles r ON r.oid = o.owner"
        "  WHERE NOT (r.rolsuper OR r.rolname = current_user OR r.oid IN (SELECT oid FROM trusted))"
        "  ORDER BY o.k LIMIT 1), '')",
        2, params, err);
    free(tj);
    if (v == NULL)
        return -1;
    int rv = 0;
    if (*v) {
        pgs_error_set(err, PGS_ERR_FATAL,
                      "database \"%s\": the %s, neither this role (%s), a superuser nor the "
                      "owner of one of the schema's tables: pgsync-bootstrap does not adopt it "
                      "(its owner could change what the triggers run). Drop it, or give it to a "
                      "trusted role (ALTER ... OWNER TO), then run pgsync-bootstrap again",
                      ae->e->database, v, p->role);
        rv = -1;
    }
    free(v);
    return rv;
}

int outbox_ddl_setup(struct bootstrap_plan *p, struct pgs_error *err)
{
    struct strbuf name;
    int created = 0, deferred = 0, rv;

    if (check_owners(p, err) < 0)
        return -1;
    sb_init(&name);
    outbox_ddl_add_name(&name, p->ae->outbox);
    rv = setup_table(p, name.buf, &created, &deferred, err);
    if (rv == 0)
        rv = setup_function(p, name.buf, err);
    if (rv == 0)
        rv = setup_triggers(p, name.buf, err);
    if (rv == 0)
        rv = drop_triggers(p, name.buf, 0, err); /* on tables the schema no longer has */
    if (rv == 0)
        rv = check_drain_rights(p, name.buf, created, deferred, err);
    sb_free(&name);
    return rv;
}

/* "DROP <what> IF EXISTS <obj>" when "probe" (a query on "param") says "t". */
static int drop_if(struct bootstrap_plan *p, const char *probe, const char *param,
                   const char *what, const char *obj, int dep, const char *done_msg,
                   struct pgs_error *err)
{
    const char *params[1] = {param};
    char *v = bootstrap_query_value(p->conn, probe, 1, params, err);
    int rv = 0;

    if (v == NULL)
        return -1;
    if (!strcmp(v, "t")) {
        struct strbuf sql;
        sb_init(&sql);
        sb_printf(&sql, "DROP %s IF EXISTS %s", what, obj);
        rv = bootstrap_plan_step(p, sql.buf, dep, done_msg, err);
        sb_free(&sql);
    }
    free(v);
    return rv;
}

int outbox_ddl_teardown(struct bootstrap_plan *p, struct pgs_error *err)
{
    struct strbuf name, fn;
    int rv;

    sb_init(&name);
    sb_init(&fn);
    outbox_ddl_add_name(&name, p->ae->outbox);
    sb_printf(&fn, "%s()", name.buf);
    rv = drop_triggers(p, name.buf, 1, err);
    if (rv == 0)
        rv = drop_if(p, "SELECT to_regprocedure($1) IS NOT NULL", fn.buf, "FUNCTION", fn.buf, 1,
                     "trigger function dropped", err);
    if (rv == 0)
        rv = drop_if(p, "SELECT to_regclass($1) IS NOT NULL", name.buf, "TABLE", name.buf, 0,
                     "outbox dropped", err);
    sb_free(&fn);
    sb_free(&name);
    if (rv < 0)
        return -1;
    /* the schema, once nothing of anyone is left in it */
    char *v = bootstrap_query_value(
        p->conn,
        "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = n.oid) + "
        "(SELECT count(*) FROM pg_proc WHERE pronamespace = n.oid) + "
        "(SELECT count(*) FROM pg_type WHERE typnamespace = n.oid) "
        "FROM pg_namespace n WHERE n.nspname = '" OUTBOX_SCHEMA "'",
        0, NULL, err);
    if (v == NULL)
        return -1;
    if (!strcmp(v, "0") || (*v && p->defer_rest))
        rv = bootstrap_plan_step(p, "DROP SCHEMA IF EXISTS " OUTBOX_SCHEMA, 1, "schema dropped",
                                 err);
    free(v);
    return rv;
}
