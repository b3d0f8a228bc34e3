/* warehouse_event.c: fuzz target: arbitrary bytes as a batch of warehouse events (the whole
 * input as one event, then each msgpack value in it as an event) loaded twice into an
 * in-memory SQLite warehouse. The loader must never crash, leak or fail the batch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outputs/warehouse.h"
#include "mp/mp_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_warehouse *w = NULL;
    struct sb_warehouse_options opt = {0};
    opt.max_columns = 64; /* keeps every input cheap; the cap's own path gets fuzzed too */
    opt.max_text_bytes = (size & 1) ? 16 : 0;
    if (sb_warehouse_sqlite_open(&w, ":memory:", &opt, NULL, 0))
        abort();
    struct sb_warehouse_msg msgs[65];
    size_t n = 0;
    msgs[n++] = (struct sb_warehouse_msg){data, size};
    /* split into consecutive msgpack values with the shared cursor, which trusts no count */
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, data, size);
    while (n < 65 && sb_mp_reader_left(&r) > 0) {
        size_t at = sb_mp_reader_offset(&r);
        if (sb_mp_skip(&r))
            break;
        msgs[n++] = (struct sb_warehouse_msg){data + at, sb_mp_reader_offset(&r) - at};
    }
    for (int round = 0; round < 2; round++) {
        struct sb_warehouse_stats st;
        int rc = sb_warehouse_load(w, msgs, n, &st);
        if (rc) {
            fprintf(stderr, "load failed: %d %s\n", rc, sb_warehouse_errmsg(w));
            abort(); /* bad events are rejected one by one, never the batch */
        }
        if (st.events + st.rejected != n)
            abort();
        if (round == 1 && st.rows_inserted > st.events) /* only users upserts may re-apply */
            abort();
    }
    sb_warehouse_close(w);
    return 0;
}
