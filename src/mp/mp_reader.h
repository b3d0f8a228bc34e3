/* mp_reader.h: a zero-copy, bounds-checked msgpack cursor for bytes from outside (never trusted).
 */
#ifndef SEGBUS_MP_MP_READER_H
#define SEGBUS_MP_MP_READER_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What an item is. Integers follow msgpack-c: any integer >= 0 (whatever its encoding) is
 * SB_MP_UINT, any negative one SB_MP_INT, so that equal numbers compare equal. */
enum sb_mp_type {
    SB_MP_NIL,
    SB_MP_BOOL,
    SB_MP_UINT,    /* v.u */
    SB_MP_INT,     /* v.i, always < 0 */
    SB_MP_FLOAT32, /* v.f (widened) */
    SB_MP_FLOAT64, /* v.f */
    SB_MP_STR,     /* v.str: pointer into the input and length; not checked for UTF-8 */
    SB_MP_BIN,     /* v.str */
    SB_MP_ARRAY,   /* v.count elements follow */
    SB_MP_MAP,     /* v.count key/value pairs follow */
    SB_MP_EXT,     /* v.ext */
};

/* One item: a scalar's value, a str/bin/ext's payload, or a container's count. Pointers point
 * into the reader's input and live as long as it does. */
struct sb_mp_item {
    enum sb_mp_type type;
    union {
        bool b;
        uint64_t u;
        int64_t i;
        double f;
        struct {
            const uint8_t *ptr;
            uint32_t len;
        } str;
        uint32_t count;
        struct {
            const uint8_t *ptr;
            uint32_t len;
            int8_t type;
        } ext;
    } v;
};

/* A cursor over data[0..len). Copyable by value (a copy is a bookmark). */
struct sb_mp_reader {
    const uint8_t *start;
    const uint8_t *p;
    const uint8_t *end;
};

static inline void sb_mp_reader_init(struct sb_mp_reader *r, const void *data, size_t len)
{
    r->start = (const uint8_t *)data;
    r->p = r->start;
    r->end = r->start + len;
}
/* Bytes consumed so far / left. */
static inline size_t sb_mp_reader_offset(const struct sb_mp_reader *r)
{
    return (size_t)(r->p - r->start);
}
static inline size_t sb_mp_reader_left(const struct sb_mp_reader *r)
{
    return (size_t)(r->end - r->p);
}

/* Read the next item's header. Scalars, str, bin and ext are consumed whole; for an array or
 * a map only the header is consumed and the cursor is on the first element (or key). A
 * container whose count could not fit in the bytes left is refused up front, so loops over
 * v.count are bounded by the input size. 0, or -EINVAL on truncation, the never-used byte 0xc1
 * or an empty input; the cursor does not move on error.
 * The one-byte forms (fixint, fixstr, fixmap, fixarray, nil, bool), which make up most of an
 * event, are decoded inline here: every reader of msgpack in segbus runs through this. */
size_t sb_mp__decode(const struct sb_mp_reader *r, struct sb_mp_item *it); /* the rest */

static inline size_t sb_mp__decode_inline(const struct sb_mp_reader *r, struct sb_mp_item *it)
{
    const uint8_t *p = r->p;
    size_t left = (size_t)(r->end - p);
    uint8_t b;

    if (__builtin_expect(left == 0, 0))
        return 0;
    b = p[0];
    if (b <= 0x7f) {
        it->type = SB_MP_UINT;
        it->v.u = b;
        return 1;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        size_t n = b & 0x1fu;
        if (n > left - 1)
            return 0;
        it->type = SB_MP_STR;
        it->v.str.ptr = p + 1;
        it->v.str.len = (uint32_t)n;
        return 1 + n;
    }
    if (b <= 0x9f) { /* 0x80..0x9f: fixmap, fixarray; every element takes at least a byte */
        uint32_t count = b & 0x0fu;
        bool map = b <= 0x8f;
        if ((map ? 2u * count : count) > left - 1)
            return 0;
        it->type = map ? SB_MP_MAP : SB_MP_ARRAY;
        it->v.count = count;
        return 1;
    }
    if (b >= 0xe0) {
        it->type = SB_MP_INT;
        it->v.i = (int8_t)b;
        return 1;
    }
    return sb_mp__decode(r, it);
}

static inline int sb_mp_next(struct sb_mp_reader *r, struct sb_mp_item *it)
{
    size_t n = sb_mp__decode_inline(r, it);
    if (__builtin_expect(n == 0, 0))
        return -EINVAL;
    r->p += n;
    return 0;
}
/* sb_mp_next as a function (the full decoder), for callers that want no inlining. */
int sb_mp_next_any(struct sb_mp_reader *r, struct sb_mp_item *it);
/* Like sb_mp_next without moving the cursor. */
static inline int sb_mp_peek(const struct sb_mp_reader *r, struct sb_mp_item *it)
{
    return sb_mp__decode_inline(r, it) ? 0 : -EINVAL;
}
/* Skip one whole value (nested containers included), iteratively: no recursion, no depth
 * limit, time linear in the bytes. 0 or -EINVAL (the cursor does not move on error).
 * Scalars of one-byte-decided size (most values of an event) are skipped inline. */
int sb_mp__skip(struct sb_mp_reader *r); /* the general case */

static inline int sb_mp_skip(struct sb_mp_reader *r)
{
    if (__builtin_expect(r->p < r->end, 1)) {
        uint8_t b = *r->p;
        size_t n = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            n = 1;
        else if (b >= 0xa0 && b <= 0xbf)
            n = 1 + (size_t)(b & 0x1f);
        else if (b == 0xcb)
            n = 9;
        if (n && n <= (size_t)(r->end - r->p)) {
            r->p += n;
            return 0;
        }
    }
    return sb_mp__skip(r);
}
/* With the cursor on the first key of a map of `pairs` pairs (just after sb_mp_next returned
 * the map), look for the str key key[0..klen). Found: returns 1 with the cursor on its value.
 * Not found: returns 0 with the cursor after the map. -EINVAL on malformed input. Keys that are
 * not strings are skipped. The first matching key wins. */
int sb_mp_map_find(struct sb_mp_reader *r, uint32_t pairs, const char *key, size_t klen);
/* Convenience: the value of `key` in the map at the start of data[0..len): on 1, *value is a
 * reader over exactly that value's bytes. 0 if the key is absent or the first value is not a
 * map, -EINVAL if malformed. */
int sb_mp_lookup(const void *data, size_t len, const char *key, struct sb_mp_reader *value);
/* sb_mp_skip that also refuses a value nested more than max_depth containers deep (a container
 * value counts itself; max_depth at most 1024). One pass: for a checked walk that also reads
 * the top level (verify), instead of sb_mp_check followed by sb_mp_skip. 0 or -EINVAL (the
 * cursor does not move on error). */
int sb_mp_skip_bounded(struct sb_mp_reader *r, unsigned max_depth);
/* Check that data[0..len) is exactly one well-formed msgpack value (no trailing bytes) nested
 * at most max_depth containers deep. 0 or -EINVAL. */
int sb_mp_check(const void *data, size_t len, unsigned max_depth);
/* Typed reads that consume one item of the expected type; -EINVAL if malformed, -EPROTO (cursor
 * unmoved) if the item is of another type. sb_mp_read_int accepts UINT up to INT64_MAX and INT. */
int sb_mp_read_str(struct sb_mp_reader *r, const char **s, size_t *len);
int sb_mp_read_int(struct sb_mp_reader *r, int64_t *v);

#ifdef __cplusplus
}
#endif
#endif
