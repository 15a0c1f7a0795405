/*
 * fuzz_outbox_row.c - libFuzzer target for the trigger mode's outbox reader
 * (outbox_row_record): the producer turns each outbox row into a change
 * record, and anyone who may insert into the outbox can write any text in
 * its columns. The input's first byte says which of old/new are SQL NULL
 * (bits 0 and 1); the rest is split at '\n' into id, xid, s, t, op, old,
 * new (missing ones are "", as libpq gives). Each string gets an allocation
 * of exactly its length plus the NUL, so ASan sees any read past it.
 * Checked: only I, U, D and T are taken as such (anything else never turns
 * into one, a TRUNCATE least of all); old/new are objects or absent; and a
 * record the stream decoder accepts decodes to what was encoded.
 *   scripts/fuzz.sh 60 fuzz_outbox_row
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "fuzz_check.h"
#include "outbox_row.h"

#define NCOLS 7

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *col[NCOLS];
    size_t len[NCOLS];
    int n = 0;
    struct change c;

    if (size == 0)
        return 0;
    uint8_t nulls = data[0];
    size_t start = 1;
    for (size_t i = 1; i <= size && n < NCOLS; i++) {
        if (i == size || data[i] == '\n') {
            len[n] = i - start;
            col[n] = malloc(len[n] + 1);
            memcpy(col[n], data + start, len[n]);
            col[n][len[n]] = '\0';
            n++;
            start = i + 1;
        }
    }
    for (; n < NCOLS; n++) {
        col[n] = calloc(1, 1);
        len[n] = 0;
    }
    struct outbox_row row = {.id = col[0], .xid = col[1], .schema = col[2], .table = col[3],
                             .op = col[4]};
    if (!(nulls & 1)) {
        row.oldv = col[5];
        row.old_len = len[5];
    }
    if (!(nulls & 2)) {
        row.newv = col[6];
        row.new_len = len[6];
    }
    int unknown = outbox_row_record(&row, 0x1234, &c);
    int taken = strchr("IUDT", c.op) != NULL && c.op != '\0';
    /* libpq's text holds no NUL: the columns end at the first one */
    if (unknown != !(strlen(col[4]) == 1 && strchr("IUDT", col[4][0]) != NULL))
        abort();
    if (unknown && taken)
        abort(); /* an op the triggers never write became one they do */
    if ((c.oldv && !json_is_object(c.oldv)) || (c.newv && !json_is_object(c.newv)))
        abort();
    if (c.lsn != 0x1234)
        abort();

    check_change_roundtrip(&c, 0); /* what the decoder accepts decodes to what was encoded */
    change_free(&c);
    for (int i = 0; i < NCOLS; i++)
        free(col[i]);
    return 0;
}
