/* mpw.h: the hand-written msgpack writer of the event hot path (same bytes as msgpack-c's packer:
 * smallest integer form, float64 for doubles, smallest str/map/array headers). */
#ifndef SEGBUS_EVENT_MPW_H
#define SEGBUS_EVENT_MPW_H

#include <stdint.h>
#include <string.h>

/* A write position in a buffer the caller sized beforehand: every variable-length piece is
 * checked against end by the caller (mpw_room), fixed headers (at most 9 bytes) are covered by
 * MPW_SLACK bytes of headroom past the logical limit, so the writers themselves never branch on
 * space. */
#define MPW_SLACK 64

struct mpw {
    uint8_t *p;
    uint8_t *end; /* logical end: writing past it is an overflow the caller reports */
};

static inline int mpw_room(const struct mpw *w, size_t n)
{
    return w->p <= w->end && (size_t)(w->end - w->p) >= n;
}

static inline void mpw_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void mpw_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void mpw_be64(uint8_t *p, uint64_t v)
{
    mpw_be32(p, (uint32_t)(v >> 32));
    mpw_be32(p + 4, (uint32_t)v);
}

/* Header of a str of n bytes; returns the header length (1, 2, 3 or 5). */
static inline size_t mpw_str_hdr_to(uint8_t *p, size_t n)
{
    if (n < 32) {
        p[0] = (uint8_t)(0xa0 | n);
        return 1;
    }
    if (n < 256) {
        p[0] = 0xd9;
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n < 65536) {
        p[0] = 0xda;
        mpw_be16(p + 1, (uint16_t)n);
        return 3;
    }
    p[0] = 0xdb;
    mpw_be32(p + 1, (uint32_t)n);
    return 5;
}

static inline void mpw_str_hdr(struct mpw *w, size_t n)
{
    w->p += mpw_str_hdr_to(w->p, n);
}

/* Copy n bytes, inline for the short keys and values that dominate events (a libc call per
 * 6-byte key costs more than the copy): two overlapping fixed-size moves cover 4..16 bytes. */
static inline void mpw_copy(uint8_t *d, const void *src, size_t n)
{
    const uint8_t *s = (const uint8_t *)src;
    if (n <= 16) {
        if (n >= 8) {
            uint64_t a, b;
            memcpy(&a, s, 8);
            memcpy(&b, s + n - 8, 8);
            memcpy(d, &a, 8);
            memcpy(d + n - 8, &b, 8);
        } else if (n >= 4) {
            uint32_t a, b;
            memcpy(&a, s, 4);
            memcpy(&b, s + n - 4, 4);
            memcpy(d, &a, 4);
            memcpy(d + n - 4, &b, 4);
        } else {
            for (size_t i = 0; i < n; i++)
                d[i] = s[i];
        }
        return;
    }
    memcpy(d, s, n);
}

/* A whole str; the caller checked mpw_room(w, n) (the header is in the slack). */
static inline void mpw_str(struct mpw *w, const char *s, size_t n)
{
    mpw_str_hdr(w, n);
    mpw_copy(w->p, s, n);
    w->p += n;
}

static inline size_t mpw_cont_hdr_to(uint8_t *p, uint32_t n, int is_map)
{
    if (n < 16) {
        p[0] = (uint8_t)((is_map ? 0x80 : 0x90) | n);
        return 1;
    }
    if (n < 65536) {
        p[0] = is_map ? 0xde : 0xdc;
        mpw_be16(p + 1, (uint16_t)n);
        return 3;
    }
    p[0] = is_map ? 0xdf : 0xdd;
    mpw_be32(p + 1, n);
    return 5;
}

static inline void mpw_map_hdr(struct mpw *w, uint32_t n)
{
    w->p += mpw_cont_hdr_to(w->p, n, 1);
}
static inline void mpw_array_hdr(struct mpw *w, uint32_t n)
{
    w->p += mpw_cont_hdr_to(w->p, n, 0);
}

static inline size_t mpw_uint_to(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v < 256) {
        p[0] = 0xcc;
        p[1] = (uint8_t)v;
        return 2;
    }
    if (v < 65536) {
        p[0] = 0xcd;
        mpw_be16(p + 1, (uint16_t)v);
        return 3;
    }
    if (v <= 0xffffffffu) {
        p[0] = 0xce;
        mpw_be32(p + 1, (uint32_t)v);
        return 5;
    }
    p[0] = 0xcf;
    mpw_be64(p + 1, v);
    return 9;
}

static inline size_t mpw_int_to(uint8_t *p, int64_t v)
{
    if (v >= 0)
        return mpw_uint_to(p, (uint64_t)v);
    if (v >= -32) {
        p[0] = (uint8_t)(int8_t)v;
        return 1;
    }
    if (v >= -128) {
        p[0] = 0xd0;
        p[1] = (uint8_t)(int8_t)v;
        return 2;
    }
    if (v >= -32768) {
        p[0] = 0xd1;
        mpw_be16(p + 1, (uint16_t)(int16_t)v);
        return 3;
    }
    if (v >= INT32_MIN) {
        p[0] = 0xd2;
        mpw_be32(p + 1, (uint32_t)(int32_t)v);
        return 5;
    }
    p[0] = 0xd3;
    mpw_be64(p + 1, (uint64_t)v);
    return 9;
}

static inline size_t mpw_double_to(uint8_t *p, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    p[0] = 0xcb;
    mpw_be64(p + 1, bits);
    return 9;
}

/* A literal key: a NUL-terminated constant, so its length folds at compile time. */
#define MPW_KEY(w, lit) mpw_str((w), (lit), sizeof(lit) - 1)

#endif
