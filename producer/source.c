/* source.c - calling a change source through its operations. */
#include "source.h"

#include <stddef.h>


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
