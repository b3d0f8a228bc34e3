/* ring_reader.c: libFuzzer target: arbitrary bytes as ring contents and control words (tail,
 * head, release mark) handed to a reader adopting the ring; it must never crash, hang or read
 * out of bounds, and may only hand out records that lie inside the data area.
 * Input: u64 flags, u64 tail, u64 head, u64 release_to, then the data area's first bytes.
 * flags bit 0: give every plausible header the right check word (reaches deeper paths). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring.h"

#define CAP (64u * 1024u)

static int dead(void *ctx, uint32_t producer, uint64_t pos)
{
    (void)producer;
    (void)pos;
    return *(const int *)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *mem;
    uint64_t flags = 0, ctl[3] = {0, 0, 0};
    struct sb_ring r;
    struct sb_ring_reader rd;
    struct sb_ring_reader_opts o;
    int alive_answer;

    if (!mem && !(mem = aligned_alloc(4096, sb_ring_map_size(CAP))))
        return 0;
    memset(mem, 0, sb_ring_map_size(CAP));
    if (sb_ring_format(mem, CAP, (const uint8_t *)"fuzz-ring-id-000", 1, 0) != 0 ||
        sb_ring_attach(&r, mem, sb_ring_map_size(CAP)) != 0)
        abort();
    if (size >= 8)
        memcpy(&flags, data, 8);
    for (int i = 0; i < 3; i++)
        if (size >= 16 + 8 * (size_t)i)
            memcpy(&ctl[i], data + 8 + 8 * i, 8);
    if (size > 32)
        memcpy(mem, data + 32, size - 32 < CAP ? size - 32 : CAP);
    if (flags & 1)
        for (uint64_t p = 0; p + 16 <= CAP; p += 8) {
            uint64_t *h = (uint64_t *)(void *)(mem + p);
            int32_t len = (int32_t)(uint32_t)h[0];
            if (len >= 16 && len <= 4096) {
                uint64_t pos = (ctl[1] & ~(uint64_t)(CAP - 1)) + p;
                h[1] = (h[1] & 0xffffffffu) |
                       ((uint64_t)sb_ring_check(r.salt, pos, (uint32_t)h[1], len) << 32);
            }
        }
    r.ctrl->tail = ctl[0];
    r.ctrl->rd.head = ctl[1];
    r.ctrl->head_cache = ctl[1];
    r.ctrl->rd.release_to = ctl[2];
    alive_answer = (flags >> 1) & 1;
    sb_ring_reader_opts_init(&o);
    o.alive = dead;
    o.alive_ctx = &alive_answer;
    o.batch_records = 64;
    o.track_durable = (flags >> 2) & 1;
    if (sb_ring_reader_init(&rd, &r, &o, 1, 0) != 0)
        return 0;
    /* Time runs past every grace so that every repair path can run. */
    for (int64_t t = 0, step = 0; step < 12; step++, t += 300ll * 1000 * 1000) {
        int n = sb_ring_read(&rd, t);
        for (int i = 0; i < n; i++) {
            const struct sb_ring_rec *rec = &rd.recs[i];
            volatile uint8_t sink = 0;
            if (rec->len > r.max_payload || rec->type < 1)
                abort();
            for (uint32_t j = 0; j < rec->len; j++) /* ASan checks the copy's bounds */
                sink ^= rec->data[j];
            (void)sink;
        }
        sb_ring_reader_release(&rd);
        sb_ring_reader_prepare_wait(&rd);
        sb_ring_reader_finish_wait(&rd);
        /* a producer racing in with a write must not crash either */
        if (step == 6)
            sb_ring_write(&r, 3, 1, "late", 4);
    }
    sb_ring_reader_free(&rd);
    return 0;
}
