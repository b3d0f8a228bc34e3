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
 * only for containers), or 0 if malformed/truncated. The header inlines the one-byte forms and
 * calls this for the rest (it handles every form, so it is also the reference). */
size_t sb_mp__decode(const struct sb_mp_reader *r, struct sb_mp_item *it)
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

/* Total size of every item whose size its first byte decides (fixints, fixstr, nil, bool,
 * floats, sized ints, fixext), 0 for the rest. Skipping and checking need sizes, not values: this
 * table makes them one load per scalar instead of a decode. */
static const uint8_t fixed_size[256] = {
    [0x00 ... 0x7f] = 1, [0xc0] = 1,          [0xc2] = 1, [0xc3] = 1, [0xca] = 5, [0xcb] = 9,
    [0xcc] = 2,          [0xcd] = 3,          [0xce] = 5, [0xcf] = 9, [0xd0] = 2, [0xd1] = 3,
    [0xd2] = 5,          [0xd3] = 9,          [0xd4] = 3, [0xd5] = 4, [0xd6] = 6, [0xd7] = 10,
    [0xd8] = 18,         [0xe0 ... 0xff] = 1,
#define FIXSTR(n) [0xa0 + (n)] = 1 + (n)
    FIXSTR(0),           FIXSTR(1),           FIXSTR(2),  FIXSTR(3),  FIXSTR(4),  FIXSTR(5),
    FIXSTR(6),           FIXSTR(7),           FIXSTR(8),  FIXSTR(9),  FIXSTR(10), FIXSTR(11),
    FIXSTR(12),          FIXSTR(13),          FIXSTR(14), FIXSTR(15), FIXSTR(16), FIXSTR(17),
    FIXSTR(18),          FIXSTR(19),          FIXSTR(20), FIXSTR(21), FIXSTR(22), FIXSTR(23),
    FIXSTR(24),          FIXSTR(25),          FIXSTR(26), FIXSTR(27), FIXSTR(28), FIXSTR(29),
    FIXSTR(30),          FIXSTR(31),
#undef FIXSTR
};

/* The span of the item at p (header + payload; header only for a container) and the values a
 * container opens (*opens, 0 for scalars). 0 if truncated or 0xc1. */
static inline size_t span(const uint8_t *p, size_t left, uint64_t *opens)
{
    uint8_t b = p[0];
    size_t n = fixed_size[b], body, hdr;

    *opens = 0;
    if (n)
        return n <= left ? n : 0;
    if (b >= 0x80 && b <= 0x9f) {
        *opens = b <= 0x8f ? 2u * (b & 0x0fu) : (b & 0x0fu);
        return 1;
    }
    switch (b) {
    case 0xc4:
    case 0xd9:
        hdr = 2;
        if (left < 2)
            return 0;
        body = p[1];
        break;
    case 0xc5:
    case 0xda:
        hdr = 3;
        if (left < 3)
            return 0;
        body = ld16(p + 1);
        break;
    case 0xc6:
    case 0xdb:
        hdr = 5;
        if (left < 5)
            return 0;
        body = ld32(p + 1);
        break;
    case 0xc7:
        hdr = 3;
        if (left < 3)
            return 0;
        body = p[1];
        break;
    case 0xc8:
        hdr = 4;
        if (left < 4)
            return 0;
        body = ld16(p + 1);
        break;
    case 0xc9:
        hdr = 6;
        if (left < 6)
            return 0;
        body = ld32(p + 1);
        break;
    case 0xdc:
    case 0xde:
        if (left < 3)
            return 0;
        *opens = (b == 0xde ? 2u : 1u) * (uint64_t)ld16(p + 1);
        return 3;
    case 0xdd:
    case 0xdf:
        if (left < 5)
            return 0;
        *opens = (b == 0xdf ? 2u : 1u) * (uint64_t)ld32(p + 1);
        return 5;
    default: /* 0xc1 */
        return 0;
    }
    return body <= left - hdr ? hdr + body : 0;
}

int sb_mp__skip(struct sb_mp_reader *r)
{
    const uint8_t *p = r->p, *end = r->end;
    /* Values still to skip. Bounded by the bytes left (checked after each item: every value
     * takes at least a byte), so it cannot overflow. */
    uint64_t pending = 1;
    while (pending) {
        uint64_t opens;
        size_t n;
        if (p == end || !(n = span(p, (size_t)(end - p), &opens)))
            return -EINVAL;
        p += n;
        pending += opens - 1;
        if (pending > (uint64_t)(end - p))
            return -EINVAL;
    }
    r->p = p;
    return 0;
}

int sb_mp_map_find(struct sb_mp_reader *r, uint32_t pairs, const char *key, size_t klen)
{
    struct sb_mp_reader c = *r;
    for (uint32_t i = 0; i < pairs; i++) {
        struct sb_mp_item k;
        if (sb_mp_peek(&c, &k) < 0)
            return -EINVAL;
        if (k.type == SB_MP_STR) {
            c.p = k.v.str.ptr + k.v.str.len; /* the key: peek checked its bounds */
        } else if (sb_mp_skip(&c) < 0) {     /* a key of another type, whatever it is */
            return -EINVAL;
        }
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
    const uint8_t *p = r->p, *end = r->end;
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
        uint64_t opens;
        size_t n;
        if (p == end || !(n = span(p, (size_t)(end - p), &opens)))
            return -EINVAL;
        left[depth]--;
        if (p[0] >= 0x80 && (p[0] <= 0x9f || (p[0] >= 0xdc && p[0] <= 0xdf))) {
            p += n;
            /* a count the rest cannot hold is a lie (every element takes at least a byte) */
            if (depth >= max_depth || opens > (uint64_t)(end - p))
                return -EINVAL;
            left[++depth] = opens;
        } else {
            p += n;
        }
    }
    r->p = p;
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

int sb_mp_next_any(struct sb_mp_reader *r, struct sb_mp_item *it)
{
    size_t n = sb_mp__decode(r, it);
    if (!n)
        return -EINVAL;
    r->p += n;
    return 0;
}

int sb_mp_read_str(struct sb_mp_reader *r, const char **s, size_t *len)
{
    struct sb_mp_reader c = *r;
    struct sb_mp_item it;
    if (sb_mp_next(&c, &it) < 0)
        return -EINVAL;
    if (it.type != SB_MP_STR)
        return -EPROTO;
    *s = (const char *)it.v.str.ptr;
    *len = it.v.str.len;
    *r = c;
    return 0;
}

int sb_mp_read_int(struct sb_mp_reader *r, int64_t *v)
{
    struct sb_mp_reader c = *r;
    struct sb_mp_item it;
    if (sb_mp_next(&c, &it) < 0)
        return -EINVAL;
    if (it.type == SB_MP_INT)
        *v = it.v.i;
    else if (it.type == SB_MP_UINT && it.v.u <= (uint64_t)INT64_MAX)
        *v = (int64_t)it.v.u;
    else
        return -EPROTO;
    *r = c;
    return 0;
}
