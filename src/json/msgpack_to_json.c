/* msgpack_to_json.c: writes one msgpack value as JSON text (RFC 8259), reading with mp_reader. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "json/json_internal.h"
#include "mp/mp_reader.h"

static const char hexd[] = "0123456789abcdef";

/* Append a few bytes; inline because the writer appends punctuation one byte at a time and a
 * call per byte showed in the drain's profile. */
static inline int put_raw(struct sb_buf *out, const char *s, size_t n)
{
    if (out->cap - out->len < n && sb_buf_reserve(out, n) < 0)
        return -ENOMEM;
    memcpy(out->data + out->len, s, n);
    out->len += n;
    return 0;
}

/* Eight bytes (of a word) that need no escaping: ASCII, not a control character, '"' or '\\'. */
static inline bool plain_word(uint64_t v)
{
    uint64_t ctl, quo, bsl;
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    ctl = v - ones * 0x20;            /* high bit set where a byte < 0x20 (or borrowed) */
    quo = (v ^ (ones * '"')) - ones;  /* high bit set where a byte == '"' */
    bsl = (v ^ (ones * '\\')) - ones; /* high bit set where a byte == '\\' */
    return ((v | ctl | quo | bsl) & highs) == 0;
}

static inline bool plain8(const uint8_t *s)
{
    uint64_t v;
    memcpy(&v, s, 8);
    return plain_word(v);
}

/* Length of the maximal subpart of an ill-formed sequence at p (p[0..n) is not valid UTF-8
 * there): the lead byte and the continuation bytes that could still have been valid. */
static size_t bad_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xbf;
    size_t want;
    if (c >= 0xc2 && c <= 0xdf)
        want = 2;
    else if (c >= 0xe0 && c <= 0xef)
        want = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        want = 4;
    else
        return 1;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n < 2 || p[1] < lo || p[1] > hi)
        return 1;
    size_t j = 2;
    while (j < want && j < n && (p[j] & 0xc0) == 0x80)
        j++;
    return j;
}

/* Append s[0..n) as a JSON string: quotes, escapes, invalid UTF-8 -> U+FFFD (one per maximal
 * invalid subpart, as Unicode recommends, so output never depends on what follows). */
static int put_string(struct sb_buf *out, const uint8_t *s, size_t n)
{
    /* Worst case 6 bytes per input byte (\u00XX) plus quotes: reserve once. */
    if (n > (SIZE_MAX - 2) / 6 ||
        (out->cap - out->len < 6 * n + 2 && sb_buf_reserve(out, 6 * n + 2) < 0))
        return -ENOMEM;
    uint8_t *o = out->data + out->len;
    *o++ = '"';
    size_t i = 0;
    while (i + 8 <= n && plain8(s + i)) {
        memcpy(o, s + i, 8);
        o += 8;
        i += 8;
    }
    if (i < n && n - i < 8) {
        /* A short string or tail: checked as one word padded with 'a' (never read past n). */
        uint64_t v = 0x6161616161616161ull;
        memcpy(&v, s + i, n - i);
        if (plain_word(v)) {
            memcpy(o, s + i, n - i);
            o += n - i;
            i = n;
        }
    }
    while (i < n) {
        uint8_t c = s[i];
        if (i + 8 <= n && plain8(s + i)) {
            memcpy(o, s + i, 8);
            o += 8;
            i += 8;
            continue;
        }
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = sb_utf8_seq(s + i, n - i);
            if (k) {
                memcpy(o, s + i, k);
                o += k;
                i += k;
                continue;
            }
            size_t j = bad_len(s + i, n - i);
            *o++ = 0xef;
            *o++ = 0xbf;
            *o++ = 0xbd;
            i += j;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hexd[c >> 4];
            *o++ = hexd[c & 15];
        }
        i++;
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
    return 0;
}

static int put_base64(struct sb_buf *out, const uint8_t *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (sb_buf_reserve(out, (n + 2) / 3 * 4 + 2) < 0)
        return -ENOMEM;
    uint8_t *o = out->data + out->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = (uint8_t)tab[(v >> 6) & 63];
        *o++ = (uint8_t)tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = (uint8_t)tab[(v >> 6) & 63];
        *o++ = '=';
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
    return 0;
}

static int put_value(struct sb_mp_reader *r, struct sb_buf *out, int depth, bool in_key);

/* A map key that is not a string: its JSON text, as a string. Inside such a key, keys that are
 * not strings are written as bare JSON text: quoting them too would escape the escapes once per
 * level and grow the output exponentially with the nesting. */
static int put_key(struct sb_mp_reader *r, struct sb_buf *out, int depth, bool in_key)
{
    struct sb_mp_item it;
    const uint8_t *at = r->p;
    if (sb_mp_next(r, &it) < 0)
        return -EINVAL;
    if (it.type == SB_MP_STR)
        return put_string(out, it.v.str.ptr, it.v.str.len);
    r->p = at; /* written whole as JSON text below */
    if (in_key)
        return put_value(r, out, depth, true);
    struct sb_buf tmp = SB_BUF_INIT;
    int rc = put_value(r, &tmp, depth, true);
    if (rc == 0)
        rc = put_string(out, tmp.data, tmp.len);
    sb_buf_free(&tmp);
    return rc;
}

static int put_number_text(struct sb_buf *out, const char *s, size_t n)
{
    return put_raw(out, s, n);
}

/* Decimal text of v (with a '-' first when neg), without snprintf's format parsing. */
static int put_integer(struct sb_buf *out, bool neg, uint64_t v)
{
    char num[24], *e = num + sizeof num, *p = e;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        *--p = '-';
    return put_number_text(out, p, (size_t)(e - p));
}

static int put_value(struct sb_mp_reader *r, struct sb_buf *out, int depth, bool in_key)
{
    struct sb_mp_item it;
    char num[32];
    int rc;
    if (sb_mp_next(r, &it) < 0)
        return -EINVAL;
    switch (it.type) {
    case SB_MP_NIL:
    case SB_MP_EXT:
        return put_raw(out, "null", 4);
    case SB_MP_BOOL:
        return it.v.b ? put_raw(out, "true", 4) : put_raw(out, "false", 5);
    case SB_MP_UINT:
        return put_integer(out, false, it.v.u);
    case SB_MP_INT: /* the magnitude in unsigned arithmetic: INT64_MIN has no positive */
        return put_integer(out, it.v.i < 0, it.v.i < 0 ? 0 - (uint64_t)it.v.i : (uint64_t)it.v.i);
    case SB_MP_FLOAT32:
    case SB_MP_FLOAT64:
        if (!isfinite(it.v.f))
            return put_raw(out, "null", 4);
        if (it.type == SB_MP_FLOAT32)
            return put_number_text(out, num, sb_json_format_float((float)it.v.f, num));
        return put_number_text(out, num, sb_json_format_double(it.v.f, num));
    case SB_MP_STR:
        return put_string(out, it.v.str.ptr, it.v.str.len);
    case SB_MP_BIN:
        return put_base64(out, it.v.str.ptr, it.v.str.len);
    case SB_MP_ARRAY:
    case SB_MP_MAP: {
        bool map = it.type == SB_MP_MAP;
        if (depth >= SB_JSON_MAX_DEPTH)
            return -EINVAL;
        if (put_raw(out, map ? "{" : "[", 1) < 0)
            return -ENOMEM;
        for (uint32_t k = 0; k < it.v.count; k++) {
            if (k && put_raw(out, ",", 1) < 0)
                return -ENOMEM;
            if (map) {
                if ((rc = put_key(r, out, depth + 1, in_key)) < 0)
                    return rc;
                if (put_raw(out, ":", 1) < 0)
                    return -ENOMEM;
            }
            if ((rc = put_value(r, out, depth + 1, in_key)) < 0)
                return rc;
        }
        return put_raw(out, map ? "}" : "]", 1);
    }
    }
    return -EINVAL;
}

int sb_msgpack_to_json(const uint8_t *data, size_t len, size_t *consumed, struct sb_buf *out)
{
    struct sb_mp_reader r;
    size_t mark = out->len;
    sb_mp_reader_init(&r, data, len);
    int rc = put_value(&r, out, 0, false);
    if (rc < 0) {
        out->len = mark; /* leave nothing half-written */
        return rc;
    }
    if (consumed)
        *consumed = sb_mp_reader_offset(&r);
    return 0;
}
