/*
 * fuzz_pgoutput.c - libFuzzer target for the replication frame parser and the
 * pgoutput decoder. One decoder persists across inputs, seeded with the
 * genuine Relation messages of tests/fixtures/pgoutput (author, book, review),
 * so mutated Insert/Update/Delete/Truncate seeds reach the tuple code instead
 * of stopping at "unknown relation". Run with a scratch corpus first (libFuzzer
 * writes new inputs into it) and the fixtures as seeds:
 *   fuzz_pgoutput -max_total_time=60 /tmp/corpus tests/fixtures/pgoutput
 */
#include <stdlib.h>

#include "pgoutput.h"

/* one Relation message per entry, column by column */
/* clang-format off */
#define S(lit) {lit, sizeof(lit) - 1}
#define COL(flags, name, type, typmod) flags name "\0" type typmod
#define INT4 "\0\0\0\x17"
#define TEXT "\0\0\0\x19"
#define NOMOD "\xff\xff\xff\xff"

static const struct {
    const char *data;
    size_t len;
} seed_relations[] = {
    S("R\0\0\x40\x05" "public\0author\0d\0\x03" COL("\x01", "id", INT4, NOMOD)
      COL("\0", "name", TEXT, NOMOD) COL("\0", "mood", "\0\0\x40\x01", NOMOD)),
    S("R\0\0\x40\x0c" "public\0book\0d\0\x05" COL("\x01", "id", INT4, NOMOD)
      COL("\0", "title", TEXT, NOMOD) COL("\0", "body", TEXT, NOMOD)
      COL("\0", "price", "\0\0\x06\xa4", "\0\x08\0\x06") COL("\0", "author_id", INT4, NOMOD)),
    S("R\0\0\x40\x14" "public\0review\0f\0\x02" COL("\x01", "id", INT4, NOMOD)
      COL("\x01", "note", TEXT, NOMOD)),
};
/* clang-format on */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pgo_decoder *d;
    static unsigned runs;
    struct pgo_frame f;
    struct pgo_msg msg;
    struct pgs_error err;

    /* a fresh cache now and then, so hostile oids cannot grow it without end */
    if (d == NULL || ++runs % 4096 == 0) {
        pgo_decoder_free(d);
        d = pgo_decoder_new();
        for (size_t i = 0; i < sizeof(seed_relations) / sizeof(seed_relations[0]); i++)
            if (pgo_decode(d, seed_relations[i].data, seed_relations[i].len, &msg, &err) != 0)
                abort(); /* the seeds are genuine messages: the decoder broke */
    }
    if (pgo_parse_frame((const char *)data, size, &f, &err) == 0 && f.kind == 'w')
        (void)!pgo_decode(d, f.data, f.len, &msg, &err);
    (void)!pgo_decode(d, (const char *)data, size, &msg, &err);
    return 0;
}
