/* cover_table.c: fuzz target: arbitrary bytes as the cover table of a spool record (what a
 * restarted segbusd loads from the newest record, src/spool/replay.c), then the table in use:
 * rings announced, records checked, batches snapped and the table written and read back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_replay *rp = NULL, *again = NULL;
    struct sb_buf snap = SB_BUF_INIT, table = SB_BUF_INIT;
    unsigned nouts;

    if (size < 1)
        return 0;
    nouts = 1 + data[0] % 4; /* the daemon's outputs, fewer or more than the table's */
    if (sb_replay_new(&rp, nouts))
        return 0;
    if (sb_replay_load(rp, data + 1, size - 1) == 0 && size >= 17) {
        /* The first id in the input as a ring being read again, from position 0. */
        sb_replay_ring(rp, 0, data + 1, 0);
        for (uint64_t pos = 0; pos < 64; pos += 8) {
            sb_replay_begin(rp, 0, pos);
            for (unsigned o = 0; o < nouts; o++)
                (void)sb_replay_covered(rp, o);
            sb_buf_clear(&snap);
            if (sb_replay_snap(rp, (unsigned)(pos / 8) % nouts, pos & 8, &snap) == 0)
                sb_replay_appended(rp, (unsigned)(pos / 8) % nouts, snap.data, snap.len);
            sb_replay_end(rp);
        }
        sb_replay_released(rp, 0, 16);
        /* What it writes, it reads back. */
        if (sb_replay_encode(rp, 0, snap.data, snap.len, &table) == 0 &&
            sb_replay_new(&again, nouts) == 0 && sb_replay_load(again, table.data, table.len) != 0)
            abort();
    }
    sb_replay_free(again);
    sb_replay_free(rp);
    sb_buf_free(&snap);
    sb_buf_free(&table);
    return 0;
}
