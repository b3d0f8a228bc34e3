/* sb_mp.h: msgpack helpers shared by the Python and Ruby converters: a packer over a reusable
 * growable buffer, container headers whose count is fixed up after values were dropped, and the
 * field path of the value being converted (for the "dropped" warnings). */
#ifndef SEGBUS_BINDINGS_SB_MP_H
#define SEGBUS_BINDINGS_SB_MP_H

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

/* The converters' writer: msgpack-c's wire format written inline into a msgpack_sbuffer (its
 * data/size/alloc, so msgpack-c's sbuffer functions still apply). msgpack-c's packer calls
 * msgpack_sbuffer_write through a pointer for every header and body, which profiling showed as
 * a sixth of a Python track() call; these emit the same bytes (the tests compare them with the
 * msgpack packages' packers and decode them with msgpack-c). Each returns 0 or -1 (no memory). */
static inline int sb_w_reserve(msgpack_sbuffer *b, size_t n)
{
    if (b->alloc - b->size >= n)
        return 0;
    size_t cap = b->alloc ? b->alloc * 2 : 1024;
    while (cap - b->size < n)
        cap *= 2;
    char *p = (char *)realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->alloc = cap;
    return 0;
}

static inline unsigned char *sb_w_at(msgpack_sbuffer *b)
{
    return (unsigned char *)b->data + b->size;
}

static inline void sb_w_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static inline int sb_w_byte(msgpack_sbuffer *b, unsigned char c)
{
    if (sb_w_reserve(b, 1))
        return -1;
    b->data[b->size++] = (char)c;
    return 0;
}

static inline int sb_w_nil(msgpack_sbuffer *b)
{
    return sb_w_byte(b, 0xc0);
}

static inline int sb_w_bool(msgpack_sbuffer *b, int v)
{
    return sb_w_byte(b, v ? 0xc3 : 0xc2);
}

/* Integers in msgpack-c's smallest form (non-negative ones as unsigned, as it does). */
static inline int sb_w_uint(msgpack_sbuffer *b, uint64_t v)
{
    if (sb_w_reserve(b, 9))
        return -1;
    unsigned char *p = sb_w_at(b);
    size_t n;
    if (v < 128) {
        p[0] = (unsigned char)v;
        n = 1;
    } else if (v < 256) {
        p[0] = 0xcc;
        p[1] = (unsigned char)v;
        n = 2;
    } else if (v < 65536) {
        p[0] = 0xcd;
        sb_w_be(p + 1, v, 2);
        n = 3;
    } else if (v <= 0xffffffffu) {
        p[0] = 0xce;
        sb_w_be(p + 1, v, 4);
        n = 5;
    } else {
        p[0] = 0xcf;
        sb_w_be(p + 1, v, 8);
        n = 9;
    }
    b->size += n;
    return 0;
}

static inline int sb_w_int(msgpack_sbuffer *b, int64_t v)
{
    if (v >= 0)
        return sb_w_uint(b, (uint64_t)v);
    if (sb_w_reserve(b, 9))
        return -1;
    unsigned char *p = sb_w_at(b);
    size_t n;
    if (v >= -32) {
        p[0] = (unsigned char)(int8_t)v;
        n = 1;
    } else if (v >= INT8_MIN) {
        p[0] = 0xd0;
        p[1] = (unsigned char)(int8_t)v;
        n = 2;
    } else if (v >= INT16_MIN) {
        p[0] = 0xd1;
        sb_w_be(p + 1, (uint64_t)v, 2);
        n = 3;
    } else if (v >= INT32_MIN) {
        p[0] = 0xd2;
        sb_w_be(p + 1, (uint64_t)v, 4);
        n = 5;
    } else {
        p[0] = 0xd3;
        sb_w_be(p + 1, (uint64_t)v, 8);
        n = 9;
    }
    b->size += n;
    return 0;
}

static inline int sb_w_double(msgpack_sbuffer *b, double d)
{
    if (sb_w_reserve(b, 9))
        return -1;
    unsigned char *p = sb_w_at(b);
    uint64_t bits;
    memcpy(&bits, &d, 8);
    p[0] = 0xcb;
    sb_w_be(p + 1, bits, 8);
    b->size += 9;
    return 0;
}

static inline int sb_w_str(msgpack_sbuffer *b, const char *s, size_t n)
{
    if (n > UINT32_MAX || sb_w_reserve(b, n + 5))
        return -1;
    unsigned char *p = sb_w_at(b);
    size_t h;
    if (n < 32) {
        p[0] = (unsigned char)(0xa0 | n);
        h = 1;
    } else if (n < 256) {
        p[0] = 0xd9;
        p[1] = (unsigned char)n;
        h = 2;
    } else if (n < 65536) {
        p[0] = 0xda;
        sb_w_be(p + 1, n, 2);
        h = 3;
    } else {
        p[0] = 0xdb;
        sb_w_be(p + 1, n, 4);
        h = 5;
    }
    memcpy(p + h, s, n);
    b->size += h + n;
    return 0;
}

static inline void sb_mp_put_header(unsigned char *p, uint32_t n, int is_map);
static inline size_t sb_mp_header_size(uint32_t n);

/* A map (is_map) or array header for n entries. */
static inline int sb_w_container(msgpack_sbuffer *b, uint32_t n, int is_map)
{
    if (sb_w_reserve(b, 5))
        return -1;
    sb_mp_put_header(sb_w_at(b), n, is_map);
    b->size += sb_mp_header_size(n);
    return 0;
}

/* Deepest nesting a converter follows; deeper values are dropped (or refused in strict mode).
 * It also stops reference cycles (a list containing itself) without a visited set. */
#define SB_MP_MAX_DEPTH 32

/* Size of the msgpack header of a map (is_map) or array holding n entries. */
static inline size_t sb_mp_header_size(uint32_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

static inline void sb_mp_put_header(unsigned char *p, uint32_t n, int is_map)
{
    if (n < 16) {
        p[0] = (unsigned char)((is_map ? 0x80 : 0x90) | n);
    } else if (n < 65536) {
        p[0] = is_map ? 0xde : 0xdc;
        p[1] = (unsigned char)(n >> 8);
        p[2] = (unsigned char)n;
    } else {
        p[0] = is_map ? 0xdf : 0xdd;
        p[1] = (unsigned char)(n >> 24);
        p[2] = (unsigned char)(n >> 16);
        p[3] = (unsigned char)(n >> 8);
        p[4] = (unsigned char)n;
    }
}

/* The container whose header starts at buf->data[off] was declared with `declared` entries but
 * only `actual` were packed (the others were dropped): rewrite the header in its smallest form,
 * moving what follows when the header shrinks, so the bytes are what msgpack-c would have made. */
static inline void sb_mp_fix_header(msgpack_sbuffer *buf, size_t off, uint32_t declared,
                                    uint32_t actual, int is_map)
{
    if (declared == actual)
        return;
    size_t old_size = sb_mp_header_size(declared), new_size = sb_mp_header_size(actual);
    unsigned char *p = (unsigned char *)buf->data + off;
    if (new_size != old_size) { /* actual < declared, so the header only ever shrinks */
        memmove(p + new_size, p + old_size, buf->size - off - old_size);
        buf->size -= old_size - new_size;
    }
    sb_mp_put_header(p, actual, is_map);
}

#endif
