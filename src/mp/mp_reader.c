/* mp_reader.c: the msgpack cursor; every read checks the bytes left before touching them. */
#include "mp/mp_reader.h"

#include <errno.h>
#include <string.h>

static inline uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) << 32 | ld32(p + 4);
}

static inline void set_int(struct sb_mp_item *it, int64_t v)
{
    /* msgpack-c reports non-negative signed encodings as positive integers; so do we. */
    if (v >= 0) {
        it->type = SB_MP_UINT;
        it->v.u = (uint64_t)v;
    } else {
        it->type = SB_MP_INT;
        it->v.i = v;
    }
}

/* Decode the item at r->p into it and return its total size (header plus payload, or header
 * only for containers), or 0 if malformed/truncated. */
static size_t decode(const struct sb_mp_reader *r, struct sb_mp_item *it)
{
    const uint8_t *p = r->p;
    size_t left = (size_t)(r->end - p);
    if (left == 0)
        return 0;
    uint8_t b = p[0];
    size_t hdr = 1;     /* header bytes */
    uint64_t body = 0;  /* payload bytes for str/bin/ext */
    uint32_t count = 0; /* for containers */
    bool container = false;

#define NEED(n)                                                                                    \
    do {                                                                                           \
        if (left < (size_t)(n))                                                                    \
            return 0;                                                                              \
    } while (0)

    if (b <= 0x7f) {
        it->type = SB_MP_UINT;
        it->v.u = b;
        return 1;
    }
    if (b >= 0xe0) {
        it->type = SB_MP_INT;
        it->v.i = (int8_t)b;
        return 1;
    }
    if (b >= 0x80 && b <= 0x8f) {
        it->type = SB_MP_MAP;
        count = b & 0x0f;
        container = true;
    } else if (b >= 0x90 && b <= 0x9f) {
        it->type = SB_MP_ARRAY;
        count = b & 0x0f;
        container = true;
    } else if (b >= 0xa0 && b <= 0xbf) {
        it->type = SB_MP_STR;
        body = b & 0x1f;
    } else {
        switch (b) {
        case 0xc0:
            it->type = SB_MP_NIL;
            return 1;
        case 0xc2:
        case 0xc3:
            it->type = SB_MP_BOOL;
            it->v.b = b == 0xc3;
            return 1;
        case 0xc4:
        case 0xc5:
        case 0xc6:
        case 0xd9:
        case 0xda:
        case 0xdb: {
            unsigned w = (b == 0xc4 || b == 0xd9) ? 1 : (b == 0xc5 || b == 0xda) ? 2 : 4;
            NEED(1 + w);
            body = w == 1 ? p[1] : w == 2 ? ld16(p + 1) : ld32(p + 1);
            hdr = 1 + w;
            it->type = b <= 0xc6 ? SB_MP_BIN : SB_MP_STR;
            break;
        }
        case 0xc7:
        case 0xc8:
        case 0xc9: {
            unsigned w = b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4;
            NEED(2 + w);
            body = w == 1 ? p[1] : w == 2 ? ld16(p + 1) : ld32(p + 1);
            it->type = SB_MP_EXT;
            it->v.ext.type = (int8_t)p[1 + w];
            hdr = 2 + w;
            break;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            NEED(2);
            body = 1u << (b - 0xd4);
            it->type = SB_MP_EXT;
            it->v.ext.type = (int8_t)p[1];
            hdr = 2;
            break;
        case 0xca: {
            NEED(5);
            uint32_t bits = ld32(p + 1);
            float f;
            memcpy(&f, &bits, 4);
            it->type = SB_MP_FLOAT32;
            it->v.f = f;
            return 5;
        }
        case 0xcb: {
            NEED(9);
            uint64_t bits = ld64(p + 1);
            double d;
            memcpy(&d, &bits, 8);
            it->type = SB_MP_FLOAT64;
            it->v.f = d;
            return 9;
        }
        case 0xcc:
            NEED(2);
            it->type = SB_MP_UINT;
            it->v.u = p[1];
            return 2;
        case 0xcd:
            NEED(3);
            it->type = SB_MP_UINT;
            it->v.u = ld16(p + 1);
            return 3;
        case 0xce:
            NEED(5);
            it->type = SB_MP_UINT;
            it->v.u = ld32(p + 1);
            return 5;
        case 0xcf:
            NEED(9);
            it->type = SB_MP_UINT;
            it->v.u = ld64(p + 1);
            return 9;
        case 0xd0:
            NEED(2);
            set_int(it, (int8_t)p[1]);
            return 2;
        case 0xd1:
            NEED(3);
            set_int(it, (int16_t)ld16(p + 1));
            return 3;
        case 0xd2:
            NEED(5);
            set_int(it, (int32_t)ld32(p + 1));
            return 5;
        case 0xd3:
            NEED(9);
            set_int(it, (int64_t)ld64(p + 1));
            return 9;
        case 0xdc:
        case 0xde:
            NEED(3);
            count = ld16(p + 1);
            hdr = 3;
            it->type = b == 0xdc ? SB_MP_ARRAY : SB_MP_MAP;
            container = true;
            break;
        case 0xdd:
        case 0xdf:
            NEED(5);
            count = ld32(p + 1);
            hdr = 5;
            it->type = b == 0xdd ? SB_MP_ARRAY : SB_MP_MAP;
            container = true;
            break;
        default: /* 0xc1: never used */
            return 0;
        }
    }
#undef NEED
    if (container) {
        /* Every element takes at least one byte: a count the rest cannot hold is a lie. */
        uint64_t min = it->type == SB_MP_MAP ? 2ull * count : count;
        if (min > left - hdr)
            return 0;
        it->v.count = count;
        return hdr;
    }
    if (body > left - hdr)
        return 0;
    if (it->type == SB_MP_EXT) {
        it->v.ext.ptr = p + hdr;
        it->v.ext.len = (uint32_t)body;
    } else {
        it->v.str.ptr = p + hdr;
        it->v.str.len = (uint32_t)body;
    }
    return hdr + (size_t)body;
}

int sb_mp_peek(const struct sb_mp_reader *r, struct sb_mp_item *it)
{
    return decode(r, it) ? 0 : -EINVAL;
}

int sb_mp_next_any(struct sb_mp_reader *r, struct sb_mp_item *it)
{
    size_t n = decode(r, it);
    if (!n)
        return -EINVAL;
    r->p += n;
    return 0;
}

int sb_mp_skip(struct sb_mp_reader *r)
{
    struct sb_mp_reader c = *r;
    /* Values still to skip. Bounded by the bytes left (decode refuses bigger counts), so it
     * cannot overflow. */
    uint64_t pending = 1;
    while (pending) {
        struct sb_mp_item it;
        size_t n = decode(&c, &it);
        if (!n)
            return -EINVAL;
        c.p += n;
        pending--;
        if (it.type == SB_MP_ARRAY)
            pending += it.v.count;
        else if (it.type == SB_MP_MAP)
            pending += 2ull * it.v.count;
        if (pending > (uint64_t)(c.end - c.p))
            return -EINVAL;
    }
    *r = c;
    return 0;
}

int sb_mp_map_find(struct sb_mp_reader *r, uint32_t pairs, const char *key, size_t klen)
{
    struct sb_mp_reader c = *r;
    for (uint32_t i = 0; i < pairs; i++) {
        struct sb_mp_item k;
        if (sb_mp_peek(&c, &k) < 0)
            return -EINVAL;
        if (sb_mp_skip(&c) < 0) /* the key, whatever it is */
            return -EINVAL;
        if (k.type == SB_MP_STR && k.v.str.len == klen && memcmp(k.v.str.ptr, key, klen) == 0) {
            *r = c;
            return 1;
        }
        if (sb_mp_skip(&c) < 0) /* its value */
            return -EINVAL;
    }
    *r = c;
    return 0;
}

int sb_mp_lookup(const void *data, size_t len, const char *key, struct sb_mp_reader *value)
{
    struct sb_mp_reader r;
    struct sb_mp_item it;
    sb_mp_reader_init(&r, data, len);
    if (sb_mp_next(&r, &it) < 0)
        return -EINVAL;
    if (it.type != SB_MP_MAP)
        return 0;
    int rc = sb_mp_map_find(&r, it.v.count, key, strlen(key));
    if (rc != 1)
        return rc;
    struct sb_mp_reader v = r;
    if (sb_mp_skip(&v) < 0)
        return -EINVAL;
    sb_mp_reader_init(value, r.p, (size_t)(v.p - r.p));
    return 1;
}

int sb_mp_skip_bounded(struct sb_mp_reader *r, unsigned max_depth)
{
    struct sb_mp_reader c = *r;
    /* Elements left per open container; depth is bounded by max_depth (<= 1024 here). */
    uint64_t left[1025];
    unsigned depth = 0;
    if (max_depth > 1024)
        max_depth = 1024;
    left[0] = 1;
    for (;;) {
        while (depth > 0 && left[depth] == 0)
            depth--;
        if (left[depth] == 0)
            break;
        struct sb_mp_item it;
        size_t n;
        left[depth]--;
        /* Fast paths for what events are mostly made of (short strings, small integers); the
         * rest goes through decode. */
        if (c.p < c.end) {
            uint8_t b = *c.p;
            if ((b & 0xe0) == 0xa0) {
                if ((size_t)(b & 0x1f) >= (size_t)(c.end - c.p))
                    return -EINVAL;
                c.p += 1 + (b & 0x1f);
                continue;
            }
            if (b <= 0x7f) {
                c.p++;
                continue;
            }
        }
        n = decode(&c, &it);
        if (!n)
            return -EINVAL;
        c.p += n;
        if (it.type == SB_MP_ARRAY || it.type == SB_MP_MAP) {
            if (depth >= max_depth)
                return -EINVAL;
            left[++depth] = it.type == SB_MP_MAP ? 2ull * it.v.count : it.v.count;
        }
    }
    *r = c;
    return 0;
}

int sb_mp_check(const void *data, size_t len, unsigned max_depth)
{
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, data, len);
    if (sb_mp_skip_bounded(&r, max_depth) < 0)
        return -EINVAL;
    return r.p == r.end ? 0 : -EINVAL;
}

int sb_mp_read_str(struct sb_mp_reader *r, const char **s, size_t *len)
{
    struct sb_mp_item it;
    if (sb_mp_peek(r, &it) < 0)
        return -EINVAL;
    if (it.type != SB_MP_STR)
        return -EPROTO;
    *s = (const char *)it.v.str.ptr;
    *len = it.v.str.len;
    return sb_mp_next(r, &it);
}

int sb_mp_read_int(struct sb_mp_reader *r, int64_t *v)
{
    struct sb_mp_item it;
    if (sb_mp_peek(r, &it) < 0)
        return -EINVAL;
    if (it.type == SB_MP_INT)
        *v = it.v.i;
    else if (it.type == SB_MP_UINT && it.v.u <= (uint64_t)INT64_MAX)
        *v = (int64_t)it.v.u;
    else
        return -EPROTO;
    return sb_mp_next(r, &it);
}
