/*
 * fuzz_schema.c - libFuzzer target for the schema.json parser: any bytes
 * must give 0 or -1 with problems, never a crash, a leak or UB. What parses
 * is also resolved against a small fixed catalog (the book example's).
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon tests/fuzz/fuzz_schema.c \
 *     common/schema.c common/catalog.c common/error.c common/log.c \
 *     $(pkg-config --cflags --libs jansson libpq) -o /tmp/fuzz_schema
 *   /tmp/fuzz_schema -max_total_time=60 tests/fixtures/schema
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    static struct catalog cat;
    char *text = malloc(size + 1);
    struct schema s;
    struct schema_problems p = {0};

    if (!init) {
        pgs_log_init("fuzz", LOG_ERROR, 0); /* warnings would flood the output */
        catalog_add_table(&cat, "public", "book", 'r',
                          "isbn text; title text; publisher_id integer; data jsonb", "isbn");
        catalog_add_table(&cat, "public", "author", 'r', "id integer; name text", "id");
        catalog_add_table(&cat, "public", "book_author", 'r',
                          "id integer; book_isbn text; author_id integer", "id");
        catalog_add_table(&cat, "public", "publisher", 'r', "id integer; name text", "id");
        catalog_add_table(&cat, "public", "category", 'r', "id integer; parent_id integer", "id");
        catalog_add_table(&cat, "public", "v", 'v', "id integer; name text", "");
        catalog_add_fk(&cat, "f1", "book_author", "book_isbn", "book", "isbn", 1);
        catalog_add_fk(&cat, "f2", "book_author", "author_id", "author", "id", 1);
        catalog_add_fk(&cat, "f3", "book", "publisher_id", "publisher", "id", 0);
        catalog_add_fk(&cat, "f4", "category", "parent_id", "category", "id", 0);
        init = 1;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    if (schema_parse_string(text, "fuzz.json", &s, &p) == 0) {
        if (schema_resolve(&s, &cat, &p) == 0) {
            for (int i = 0; i < s.nentries; i++) {
                struct schema_table_ref *t;
                int n;
                if (schema_entry_tables(&s.entries[i], &t, &n) == 0)
                    schema_tables_free(t, n);
            }
        }
        schema_free(&s);
    }
    schema_problems_free(&p);
    free(text);
    return 0;
}
