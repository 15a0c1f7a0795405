/* source.c - choosing a change source by mode, and calling it. */
#include "source.h"

#include <stddef.h>

#include "outbox.h"
#include "repl.h"

struct change_source *source_new(struct ev_loop *loop, const struct config *cfg,
                                 struct app_entry *ae, struct redis_conn **rcp)
{
    switch (cfg->mode) {
    case CAPTURE_NOTIFY:
        return outbox_new(loop, cfg, ae, rcp);
    case CAPTURE_LOGICAL:
    default:
        return repl_new(loop, cfg, ae, rcp);
    }
}

void source_start(struct change_source *src)
{
    src->ops->start(src);
}

int source_stop(struct change_source *src)
{
    return src->ops->stop(src);
}

const struct source_stats *source_get_stats(const struct change_source *src)
{
    return src->ops->stats(src);
}

void source_free(struct change_source *src)
{
    if (src != NULL)
        src->ops->free(src);
}
