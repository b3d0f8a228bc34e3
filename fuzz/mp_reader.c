/* fuzz/mp_reader.c: msgpack from outside through the cursor; skip, next-walk, check and lookup
 * must agree with each other and never read out of bounds. */
#include <errno.h>
#include <stdlib.h>

#include "mp/mp_reader.h"

/* Walk one value item by item with an explicit stack; returns bytes consumed or -1. */
static long walk(const uint8_t *data, size_t size)
{
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, data, size);
    uint64_t left[65];
    int depth = 0;
    left[0] = 1;
    for (;;) {
        while (depth > 0 && left[depth] == 0)
            depth--;
        if (left[depth] == 0)
            return (long)sb_mp_reader_offset(&r);
        struct sb_mp_item it, peek;
        if (sb_mp_peek(&r, &peek) != 0) {
            if (sb_mp_next(&r, &it) != -EINVAL)
                abort();
            return -1;
        }
        /* the header's inline fast path and the full decoder must agree on every form */
        struct sb_mp_item ref;
        const uint8_t *before = r.p;
        size_t n = sb_mp__decode(&r, &ref);
        if (sb_mp_next(&r, &it) != 0 || it.type != peek.type || it.type != ref.type ||
            n != (size_t)(r.p - before))
            abort();
        if (it.type == SB_MP_STR &&
            (it.v.str.ptr != ref.v.str.ptr || it.v.str.len != ref.v.str.len))
            abort();
        if ((it.type == SB_MP_ARRAY || it.type == SB_MP_MAP) && it.v.count != ref.v.count)
            abort();
        if ((it.type == SB_MP_UINT && it.v.u != ref.v.u) ||
            (it.type == SB_MP_INT && it.v.i != ref.v.i))
            abort();
        if ((it.type == SB_MP_STR || it.type == SB_MP_BIN) &&
            (it.v.str.ptr < data || it.v.str.ptr + it.v.str.len > data + size))
            abort();
        left[depth]--;
        if (it.type == SB_MP_ARRAY || it.type == SB_MP_MAP) {
            if (depth == 64)
                return -2; /* too deep for this walk */
            left[++depth] = it.type == SB_MP_MAP ? 2ull * it.v.count : it.v.count;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_mp_reader r, v;
    sb_mp_reader_init(&r, data, size);
    int rc = sb_mp_skip(&r);
    long w = walk(data, size);
    if (w != -2) {
        if ((rc == 0) != (w >= 0))
            abort();
        if (rc == 0 && (size_t)w != sb_mp_reader_offset(&r))
            abort();
        if (rc == 0 && sb_mp_check(data, (size_t)w, 64) != 0)
            abort();
    }
    int f = sb_mp_lookup(data, size, "event", &v);
    if (f == 1 && (v.start < data || v.end > data + size || sb_mp_skip(&v) != 0 || v.p != v.end))
        abort();
    return 0;
}
