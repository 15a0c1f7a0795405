/* lsn.c - WAL positions as text (lsn.h). */
#include "lsn.h"

#include <inttypes.h>
#include <stdio.h>

#include "strbuf.h"

const char *lsn_str(uint64_t lsn, char *buf)
{
    snprintf(buf, LSN_STR_LEN, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
    return buf;
}

/* One to eight hex digits up to "stop"; "*s" is left on "stop". */
static int lsn_half(const char **s, char stop, uint32_t *v)
{
    int n = 0;

    *v = 0;
    for (; **s != stop; (*s)++, n++) {
        int d = str_hexval(**s);
        if (d < 0 || n == 8)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return n == 0 ? -1 : 0;
}

int lsn_parse(const char *s, uint64_t *lsn)
{
    uint32_t hi, lo;

    if (s == NULL || lsn_half(&s, '/', &hi) < 0)
        return -1;
    s++; /* the '/' */
    if (lsn_half(&s, '\0', &lo) < 0)
        return -1;
    *lsn = (uint64_t)hi << 32 | lo;
    return 0;
}
