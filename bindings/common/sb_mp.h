/* sb_mp.h: msgpack helpers shared by the Python and Ruby converters: a packer over a reusable
 * growable buffer, container headers whose count is fixed up after values were dropped, and the
 * field path of the value being converted (for the "dropped" warnings). */
#ifndef SEGBUS_BINDINGS_SB_MP_H
#define SEGBUS_BINDINGS_SB_MP_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

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
