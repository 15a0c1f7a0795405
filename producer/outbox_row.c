/* outbox_row.c - one row of the trigger mode's outbox as a change record (see outbox_row.h). */
#include "outbox_row.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static json_t *object_or_null(const char *text, size_t len)
{
    if (text == NULL)
        return NULL;
    json_t *v = json_loadb(text, len, 0, NULL);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

int outbox_row_record(const struct outbox_row *row, uint64_t version, struct change *c)
{
    const char *op = row->op ? row->op : "";
    int known = strlen(op) == 1 && strchr("IUDT", op[0]) != NULL;

    memset(c, 0, sizeof(*c));
    /*
     * Only what the triggers write. Anything else (a row inserted by hand,
     * say) must not become a TRUNCATE: it goes on as an op the consumers
     * refuse, and they dead-letter it with the reason. 'L' is a load item's.
     */
    if (known)
        c->op = op[0];
    else
        c->op = strlen(op) == 1 && op[0] != 'L' ? op[0] : '?';
    c->schema = xstrdup(row->schema ? row->schema : "");
    c->table = xstrdup(row->table ? row->table : "");
    c->lsn = version;
    /* the consumers' visibility check takes the low 32 bits and the current epoch */
    c->xid = (uint32_t)strtoull(row->xid ? row->xid : "0", NULL, 10);
    c->oldv = object_or_null(row->oldv, row->old_len);
    c->newv = object_or_null(row->newv, row->new_len);
    return known ? 0 : 1;
}
