/* map.c: segbus_map_t, the builder of properties/traits/context/integrations written straight as
 * msgpack (no JSON round trip), with a sticky first error that names the path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/buf.h"
#include "event/event.h"
#include "event/mpw.h"
#include "json/json.h"

/* Containers a builder may open below its root map: the root is level 2 of an event. */
#define SB_MAP_DEPTH (SB_PAYLOAD_MAX_DEPTH - 1)

struct sb_level {
    size_t hdr_off; /* offset of the 1-byte header reserved for this container */
    uint32_t count; /* entries (maps) or elements (arrays) so far */
    int is_map;
    size_t key_off; /* the key bytes naming this container in its parent map (for paths) */
    size_t key_len;
    uint32_t index; /* its index when the parent is an array */
};

struct segbus_map {
    struct sb_buf buf; /* root entries, no root header */
    uint32_t root_count;
    int depth; /* open nested containers */
    int err;
    struct sb_level lv[SB_MAP_DEPTH];
    char detail[320];
};

SEGBUS_API segbus_map_t *segbus_map_new(void)
{
    segbus_map_t *m = calloc(1, sizeof *m);
    return m;
}

SEGBUS_API void segbus_map_free(segbus_map_t *m)
{
    if (!m)
        return;
    sb_buf_free(&m->buf);
    free(m);
}

SEGBUS_API void segbus_map_reset(segbus_map_t *m)
{
    if (!m)
        return;
    m->buf.len = 0;
    m->root_count = 0;
    m->depth = 0;
    m->err = 0;
    m->detail[0] = 0;
}

/* The path of the value being added: "a.b[2].key". */
static void map_path(const segbus_map_t *m, const char *key, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < m->depth && o < cap; i++) {
        const struct sb_level *l = &m->lv[i];
        int parent_is_map = i == 0 ? 1 : m->lv[i - 1].is_map;
        int n;
        if (parent_is_map)
            n = snprintf(out + o, cap - o, "%s%.*s", o ? "." : "", (int)l->key_len,
                         (const char *)m->buf.data + l->key_off);
        else
            n = snprintf(out + o, cap - o, "[%u]", l->index);
        if (n < 0)
            return;
        o += (size_t)n;
    }
    if (o >= cap)
        return;
    int in_map = m->depth == 0 || m->lv[m->depth - 1].is_map;
    if (in_map && key)
        snprintf(out + o, cap - o, "%s%s", o ? "." : "", key);
    else if (!in_map)
        snprintf(out + o, cap - o, "[%u]", m->lv[m->depth - 1].count);
}

__attribute__((format(printf, 4, 5))) static int map_fail(segbus_map_t *m, const char *key, int err,
                                                          const char *fmt, ...)
{
    char path[160];
    char what[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    map_path(m, key, path, sizeof path);
    if (path[0])
        snprintf(m->detail, sizeof m->detail, "%s: %s", path, what);
    else
        snprintf(m->detail, sizeof m->detail, "%s", what);
    m->err = err;
    return err;
}

/* Length of a NUL-terminated key, and whether it is all ASCII, in one pass (keys are short). */
static inline size_t key_scan(const char *k, unsigned *high)
{
    const unsigned char *p = (const unsigned char *)k;
    unsigned h = 0;
    size_t n = 0;
    while (p[n]) {
        h |= p[n];
        n++;
    }
    *high = h & 0x80;
    return n;
}

/* Valid UTF-8, with an inline ASCII fast path for the usual short strings. */
static inline int utf8_ok(const char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            return sb_utf8_valid(s, n, bad);
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] & 0x80)
            return sb_utf8_valid(s, n, bad);
    return 1;
}

static int map_key_slow(segbus_map_t *m, const char *key, size_t klen, unsigned high,
                        size_t value_max)
{
    if (m->err)
        return m->err;
    int in_map = m->depth == 0 || m->lv[m->depth - 1].is_map;
    if (in_map && !key)
        return map_fail(m, NULL, -EINVAL, "a map entry needs a key");
    if (!in_map && key)
        return map_fail(m, NULL, -EINVAL, "an array element takes no key (got \"%.40s\")", key);
    size_t bad;
    if (key && high && !sb_utf8_valid(key, klen, &bad))
        return map_fail(m, NULL, -SEGBUS_EUTF8, "key: invalid UTF-8 at byte %zu", bad);
    if (m->buf.len + klen + value_max > SEGBUS_MAX_EVENT_BYTES)
        return map_fail(m, key, -EMSGSIZE, "over the 32 KB event limit");
    if (sb_buf_reserve(&m->buf, klen + value_max + MPW_SLACK) < 0)
        return map_fail(m, key, -ENOMEM, "out of memory");
    if (key) {
        uint8_t *p = m->buf.data + m->buf.len;
        size_t h = mpw_str_hdr_to(p, klen);
        mpw_copy(p + h, key, klen);
        m->buf.len += h + klen;
    }
    return 0;
}

/* Check the call's context (error state, key presence, size) and write the key. The fast path
 * (no error, key where one belongs, ASCII, room) stays inline. */
static inline int map_key(segbus_map_t *m, const char *key, size_t value_max)
{
    unsigned high = 0;
    size_t klen = key ? key_scan(key, &high) : 0;
    int in_map = m->depth == 0 || m->lv[m->depth - 1].is_map;
    if (__builtin_expect(m->err || !key != !in_map || high ||
                             m->buf.len + klen + value_max > SEGBUS_MAX_EVENT_BYTES ||
                             m->buf.cap - m->buf.len < klen + value_max + MPW_SLACK,
                         0))
        return map_key_slow(m, key, klen, high, value_max);
    if (key) {
        uint8_t *p = m->buf.data + m->buf.len;
        size_t h = mpw_str_hdr_to(p, klen);
        mpw_copy(p + h, key, klen);
        m->buf.len += h + klen;
    }
    return 0;
}

static inline void map_counted(segbus_map_t *m)
{
    if (m->depth == 0)
        m->root_count++;
    else
        m->lv[m->depth - 1].count++;
}

/* The value written at the end of the buffer (n bytes) is one more member of the open level. */
static inline void map_wrote(segbus_map_t *m, size_t n)
{
    m->buf.len += n;
    map_counted(m);
}

/* A string value after its key: header and bytes. */
static inline void map_put_str(segbus_map_t *m, const char *v, size_t len)
{
    uint8_t *p = m->buf.data + m->buf.len;
    size_t h = mpw_str_hdr_to(p, len);
    mpw_copy(p + h, v, len);
    map_wrote(m, h + len);
}

/* The scalar setters: the key written, *at is where up to value_max value bytes go. */
static inline int map_value_at(segbus_map_t *m, const char *key, size_t value_max, uint8_t **at)
{
    if (!m)
        return -EINVAL;
    int rc = map_key(m, key, value_max);
    *at = m->buf.data + m->buf.len;
    return rc;
}

SEGBUS_API int segbus_map_add_strn(segbus_map_t *m, const char *key, const char *v, size_t len)
{
    if (!m)
        return -EINVAL;
    if (!v)
        return segbus_map_add_null(m, key);
    size_t bad;
    if (!m->err && !utf8_ok(v, len, &bad))
        return map_fail(m, key, -SEGBUS_EUTF8, "invalid UTF-8 at byte %zu", bad);
    int rc = map_key(m, key, len + 5);
    if (rc)
        return rc;
    map_put_str(m, v, len);
    return 0;
}

SEGBUS_API int segbus_map_add_str(segbus_map_t *m, const char *key, const char *v)
{
    if (!v || !m)
        return segbus_map_add_strn(m, key, v, 0);
    /* One pass for length and ASCII-ness: most values are short ASCII. */
    unsigned high;
    size_t len = key_scan(v, &high);
    if (high)
        return segbus_map_add_strn(m, key, v, len);
    int rc = map_key(m, key, len + 5);
    if (rc)
        return rc;
    map_put_str(m, v, len);
    return 0;
}

/* The fixed-size numbers: the key, then the value's writer (at most 9 bytes). */
#define MAP_ADD_NUMBER(name, ctype, writer)                                                        \
    SEGBUS_API int name(segbus_map_t *m, const char *key, ctype v)                                 \
    {                                                                                              \
        uint8_t *p;                                                                                \
        int rc = map_value_at(m, key, 9, &p);                                                      \
        if (!rc)                                                                                   \
            map_wrote(m, writer(p, v));                                                            \
        return rc;                                                                                 \
    }
MAP_ADD_NUMBER(segbus_map_add_int, int64_t, mpw_int_to)
MAP_ADD_NUMBER(segbus_map_add_uint, uint64_t, mpw_uint_to)
MAP_ADD_NUMBER(segbus_map_add_double, double, mpw_double_to)

static int map_byte(segbus_map_t *m, const char *key, uint8_t b)
{
    uint8_t *p;
    int rc = map_value_at(m, key, 1, &p);
    if (!rc) {
        *p = b;
        map_wrote(m, 1);
    }
    return rc;
}

SEGBUS_API int segbus_map_add_bool(segbus_map_t *m, const char *key, int v)
{
    return map_byte(m, key, v ? 0xc3 : 0xc2);
}

SEGBUS_API int segbus_map_add_null(segbus_map_t *m, const char *key)
{
    return map_byte(m, key, 0xc0);
}

static int buf_write(void *data, const char *b, size_t len)
{
    return sb_buf_append(data, b, len);
}

SEGBUS_API int segbus_map_add_json(segbus_map_t *m, const char *key, const char *json, size_t len)
{
    if (!m)
        return -EINVAL;
    if (!json)
        return map_fail(m, key, -EINVAL, "JSON text is NULL");
    if (len == SIZE_MAX)
        len = strlen(json);
    size_t before = m->buf.len;
    int rc = map_key(m, key, 0);
    if (rc)
        return rc;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &m->buf, buf_write);
    struct sb_json_error je = {0, NULL};
    rc = sb_json_to_msgpack(json, len, &pk, &je);
    if (rc == 0 && m->buf.len > SEGBUS_MAX_EVENT_BYTES)
        rc = -EMSGSIZE;
    if (rc == 0) {
        /* The value starts after the key written by map_key. */
        const uint8_t *v = m->buf.data + before;
        if (key)
            v = sb_event_skip(v, m->buf.data + m->buf.len);
        int d = v ? sb_event_depth(v, m->buf.data + m->buf.len) : -1;
        if (d < 0 || m->depth + d > SB_MAP_DEPTH) {
            m->buf.len = before;
            return map_fail(m, key, -SEGBUS_EJSON,
                            "JSON nested too deep (an event is at most %d levels deep)",
                            SB_EVENT_MAX_DEPTH);
        }
    }
    if (rc) {
        m->buf.len = before; /* the key and any partial value go */
        if (rc == -SEGBUS_EJSON)
            return map_fail(m, key, rc, "invalid JSON at byte %zu: %s", je.offset,
                            je.reason ? je.reason : "syntax error");
        if (rc == -SEGBUS_EUTF8)
            return map_fail(m, key, rc, "invalid UTF-8 at byte %zu", je.offset);
        if (rc == -EMSGSIZE)
            return map_fail(m, key, rc, "over the 32 KB event limit");
        return map_fail(m, key, rc, "%s", segbus_strerror(rc));
    }
    map_counted(m);
    return 0;
}

static int map_begin(segbus_map_t *m, const char *key, int is_map)
{
    if (!m)
        return -EINVAL;
    if (!m->err && m->depth >= SB_MAP_DEPTH)
        return map_fail(m, key, -EINVAL, "nesting deeper than %d", SB_MAP_DEPTH);
    size_t key_start = m->buf.len;
    int rc = map_key(m, key, 1);
    if (rc)
        return rc;
    struct sb_level *l = &m->lv[m->depth];
    if (key) {
        size_t klen = strlen(key);
        l->key_off = m->buf.len - klen;
        l->key_len = klen;
    } else {
        l->key_off = key_start;
        l->key_len = 0;
        l->index = m->lv[m->depth - 1].count;
    }
    l->hdr_off = m->buf.len;
    l->count = 0;
    l->is_map = is_map;
    m->buf.data[m->buf.len++] = is_map ? 0x80 : 0x90; /* fixed up at end */
    m->depth++;
    return 0;
}

SEGBUS_API int segbus_map_begin_map(segbus_map_t *m, const char *key)
{
    return map_begin(m, key, 1);
}

SEGBUS_API int segbus_map_begin_array(segbus_map_t *m, const char *key)
{
    return map_begin(m, key, 0);
}

SEGBUS_API int segbus_map_end(segbus_map_t *m)
{
    if (!m)
        return -EINVAL;
    if (m->err)
        return m->err;
    if (m->depth == 0)
        return map_fail(m, NULL, -EINVAL, "segbus_map_end with no open map or array");
    struct sb_level *l = &m->lv[m->depth - 1];
    uint8_t hdr[5];
    size_t h = mpw_cont_hdr_to(hdr, l->count, l->is_map);
    if (h > 1) {
        /* More than 15 entries: the reserved 1-byte header grows; shift the contents. */
        if (sb_buf_reserve(&m->buf, h - 1 + MPW_SLACK) < 0)
            return map_fail(m, NULL, -ENOMEM, "out of memory");
        uint8_t *p = m->buf.data + l->hdr_off;
        memmove(p + h, p + 1, m->buf.len - l->hdr_off - 1);
        m->buf.len += h - 1;
    }
    memcpy(m->buf.data + l->hdr_off, hdr, h);
    m->depth--;
    map_counted(m);
    return 0;
}

SEGBUS_API int segbus_map_error(const segbus_map_t *m, const char **detail)
{
    if (!m)
        return -EINVAL;
    if (detail)
        *detail = m->detail;
    return m->err;
}

void sb_map_get_view(const segbus_map_t *m, struct sb_map_view *v)
{
    v->entries = m->buf.data;
    v->len = m->buf.len;
    v->count = m->root_count;
    v->err = m->err;
    v->detail = m->detail;
    if (!m->err && m->depth) {
        v->err = -EINVAL;
        v->detail = "the builder still has open maps or arrays (segbus_map_end missing)";
    }
}

/* segbus_map_set_msgpack: for bindings that convert their language's values straight to msgpack.
 * The bytes come from outside libsegbus, so every rule the add_* calls enforce is checked here,
 * in one pass with the common items decoded inline: this check is on every Python and Ruby
 * event call (profiled: through the generic cursor it was a fifth of a Python track()). */

/* UTF-8 check with an ASCII fast path (keys and most values are ASCII). */
static inline int mp_utf8_ok(const uint8_t *s, size_t n, size_t *bad)
{
    return utf8_ok((const char *)s, n, bad);
}

static inline uint32_t mp_be(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

SEGBUS_API int segbus_map_set_msgpack(segbus_map_t *m, const void *data, size_t len)
{
    if (!m)
        return -EINVAL;
    segbus_map_reset(m);
    if (!data && len)
        return map_fail(m, NULL, -EINVAL, "msgpack: NULL data");
    if (len > SEGBUS_MAX_EVENT_BYTES)
        return map_fail(m, NULL, -EMSGSIZE, "%zu bytes: over the 32 KB event limit", len);
    const uint8_t *base = data, *p = base, *end = base + len;
    uint32_t root_count;
    if (len >= 1 && (*p & 0xf0) == 0x80) {
        root_count = *p & 0x0f;
        p += 1;
    } else if (len >= 3 && *p == 0xde) {
        root_count = mp_be(p + 1, 2);
        p += 3;
    } else if (len >= 5 && *p == 0xdf) {
        root_count = mp_be(p + 1, 4);
        p += 5;
    } else {
        return map_fail(m, NULL, -SEGBUS_ENOTOBJECT, "msgpack: not a map");
    }
    size_t body = (size_t)(p - base);
    /* Items left per open container (maps count keys and values) and whether it is a map. */
    uint64_t left[SB_MAP_DEPTH + 2];
    uint8_t is_map[SB_MAP_DEPTH + 2];
    unsigned depth = 1;
    left[1] = 2ull * root_count;
    is_map[1] = 1;
    while (depth > 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        size_t at = (size_t)(p - base);
        if (p >= end)
            return map_fail(m, NULL, -EINVAL, "msgpack: truncated at byte %zu", at);
        int is_key = is_map[depth] && left[depth] % 2 == 0;
        left[depth]--;
        uint8_t c = *p++;
        size_t skip = 0, str = SIZE_MAX;
        uint32_t count = 0;
        int container = 0; /* 1 map, 2 array */
        if (c <= 0x7f || c >= 0xe0) {
            skip = 0; /* fixint */
        } else if ((c & 0xe0) == 0xa0) {
            str = c & 0x1f;
        } else if ((c & 0xf0) == 0x80) {
            container = 1;
            count = c & 0x0f;
        } else if ((c & 0xf0) == 0x90) {
            container = 2;
            count = c & 0x0f;
        } else {
            switch (c) {
            case 0xc0: /* nil, false, true */
            case 0xc2:
            case 0xc3:
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xca:
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcb:
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd9:
            case 0xda:
            case 0xdb: {
                int w = c == 0xd9 ? 1 : c == 0xda ? 2 : 4;
                if ((size_t)(end - p) < (size_t)w)
                    return map_fail(m, NULL, -EINVAL, "msgpack: truncated at byte %zu", at);
                str = mp_be(p, w);
                p += w;
                break;
            }
            case 0xdc:
            case 0xdd:
            case 0xde:
            case 0xdf: {
                int w = (c == 0xdc || c == 0xde) ? 2 : 4;
                if ((size_t)(end - p) < (size_t)w)
                    return map_fail(m, NULL, -EINVAL, "msgpack: truncated at byte %zu", at);
                count = mp_be(p, w);
                p += w;
                container = c >= 0xde ? 1 : 2;
                break;
            }
            case 0xc1:
                return map_fail(m, NULL, -EINVAL, "msgpack: malformed (0xc1) at byte %zu", at);
            default: /* 0xc4-0xc9, 0xd4-0xd8: bin and ext */
                return map_fail(m, NULL, -EINVAL, "msgpack: bin/ext at byte %zu has no JSON form",
                                at);
            }
        }
        if (is_key && str == SIZE_MAX)
            return map_fail(m, NULL, -EINVAL, "msgpack: map key at byte %zu is not a string", at);
        if (str != SIZE_MAX) {
            if ((size_t)(end - p) < str)
                return map_fail(m, NULL, -EINVAL, "msgpack: truncated at byte %zu", at);
            size_t bad;
            if (!mp_utf8_ok(p, str, &bad))
                return map_fail(m, NULL, -SEGBUS_EUTF8, "msgpack: invalid UTF-8 at byte %zu",
                                (size_t)(p - base) + bad);
            p += str;
        } else if (container) {
            if (depth > SB_MAP_DEPTH)
                return map_fail(m, NULL, -EINVAL, "msgpack: nesting deeper than %d at byte %zu",
                                SB_MAP_DEPTH, at);
            if (count > (size_t)(end - p)) /* every item takes at least a byte */
                return map_fail(m, NULL, -EINVAL, "msgpack: truncated at byte %zu", at);
            depth++;
            is_map[depth] = container == 1;
            left[depth] = container == 1 ? 2ull * count : count;
        } else {
            if ((size_t)(end - p) < skip)
                return map_fail(m, NULL, -EINVAL, "msgpack: truncated at byte %zu", at);
            p += skip;
        }
    }
    if (p != end)
        return map_fail(m, NULL, -EINVAL, "msgpack: %zu bytes after the map", (size_t)(end - p));
    if (sb_buf_reserve(&m->buf, len - body + MPW_SLACK) < 0)
        return map_fail(m, NULL, -ENOMEM, "out of memory");
    memcpy(m->buf.data, base + body, len - body);
    m->buf.len = len - body;
    m->root_count = root_count;
    return 0;
}

int sb_map_set_msgpack_trusted(segbus_map_t *m, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t hdr;
    uint32_t count;
    if (!m || len < 1)
        return -EINVAL;
    segbus_map_reset(m);
    if ((p[0] & 0xf0) == 0x80) {
        count = p[0] & 0x0f;
        hdr = 1;
    } else if (p[0] == 0xde && len >= 3) {
        count = (uint32_t)p[1] << 8 | p[2];
        hdr = 3;
    } else if (p[0] == 0xdf && len >= 5) {
        count = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        hdr = 5;
    } else {
        return map_fail(m, NULL, -SEGBUS_ENOTOBJECT, "msgpack: not a map");
    }
    if (len > SEGBUS_MAX_EVENT_BYTES)
        return map_fail(m, NULL, -EMSGSIZE, "%zu bytes: over the 32 KB event limit", len);
    if (sb_buf_reserve(&m->buf, len - hdr + MPW_SLACK) < 0)
        return map_fail(m, NULL, -ENOMEM, "out of memory");
    memcpy(m->buf.data, p + hdr, len - hdr);
    m->buf.len = len - hdr;
    m->root_count = count;
    return 0;
}
