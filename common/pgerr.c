/*
 * pgerr.c - a failed statement's kind by SQLSTATE (pgerr.h). The classes are
 * PostgreSQL's (Appendix A, "PostgreSQL Error Codes").
 */
#include "pgerr.h"

#include <string.h>

/* the classes whose errors belong to one row's values */
static const char *const row_classes[] = {"22", "23", "P0", "38", "39", "2F", NULL};

enum pgs_errkind pgerr_kind(const char *sqlstate, int connection_ok)
{
    if (!connection_ok || sqlstate == NULL || strlen(sqlstate) != 5)
        return PGS_ERR_TRANSIENT;
    for (int i = 0; row_classes[i]; i++)
        if (!strncmp(sqlstate, row_classes[i], 2))
            return PGS_ERR_DOCUMENT;
    /*
     * Everything else waits for a retry: the connection (08), operator
     * intervention such as statement_timeout or pg_cancel_backend (57),
     * deadlocks and serialization (40), resources (53), lock_not_available
     * (55P03), a read-only standby (25006), a missing table, column or
     * privilege (42: a DBA's fix, after which the same rows index fine), and
     * internal errors. None of them is a document's fault.
     */
    return PGS_ERR_TRANSIENT;
}

const char *pgerr_class_name(const char *sqlstate)
{
    static const struct {
        const char *prefix, *name;
    } names[] = {
        {"57014", "query canceled (statement_timeout or a cancel)"},
        {"55P03", "lock not available (lock_timeout)"},
        {"40P01", "deadlock detected"},
        {"40001", "serialization failure"},
        {"53300", "too many connections"},
        {"53200", "out of memory"},
        {"53100", "disk full"},
        {"25006", "read-only transaction (a standby?)"},
        {"42501", "insufficient privilege"},
        {"42P01", "undefined table"},
        {"42703", "undefined column"},
        {"08", "connection exception"},
        {"22", "data exception"},
        {"23", "integrity constraint violation"},
        {"40", "transaction rollback"},
        {"42", "syntax error or access rule violation"},
        {"53", "insufficient resources"},
        {"57", "operator intervention"},
        {"P0", "raised by a PL/pgSQL function"},
    };
    if (sqlstate == NULL)
        return "no SQLSTATE";
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strncmp(sqlstate, names[i].prefix, strlen(names[i].prefix)))
            return names[i].name;
    return "error";
}
