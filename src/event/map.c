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
#include "mp/mp_reader.h"

#define SB_MAP_DEPTH 32

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

/* Check the call's context (error state, key presence, size) and write the key. */
static int map_key(segbus_map_t *m, const char *key, size_t value_max)
{
    if (m->err)
        return m->err;
    int in_map = m->depth == 0 || m->lv[m->depth - 1].is_map;
    if (in_map && !key)
        return map_fail(m, NULL, -EINVAL, "a map entry needs a key");
    if (!in_map && key)
        return map_fail(m, NULL, -EINVAL, "an array element takes no key (got \"%.40s\")", key);
    size_t klen = key ? strlen(key) : 0;
    if (key) {
        size_t bad;
        if (!sb_utf8_valid(key, klen, &bad))
            return map_fail(m, NULL, -SEGBUS_EUTF8, "key: invalid UTF-8 at byte %zu", bad);
    }
    if (m->buf.len + klen + value_max > SEGBUS_MAX_EVENT_BYTES)
        return map_fail(m, key, -EMSGSIZE, "over the 32 KB event limit");
    if (m->buf.cap - m->buf.len < klen + value_max + MPW_SLACK &&
        sb_buf_reserve(&m->buf, klen + value_max + MPW_SLACK) < 0)
        return map_fail(m, key, -ENOMEM, "out of memory");
    if (key) {
        uint8_t *p = m->buf.data + m->buf.len;
        size_t h = mpw_str_hdr_to(p, klen);
        memcpy(p + h, key, klen);
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

SEGBUS_API int segbus_map_add_strn(segbus_map_t *m, const char *key, const char *v, size_t len)
{
    if (!m)
        return -EINVAL;
    if (!v)
        return segbus_map_add_null(m, key);
    size_t bad;
    if (!m->err && !sb_utf8_valid(v, len, &bad))
        return map_fail(m, key, -SEGBUS_EUTF8, "invalid UTF-8 at byte %zu", bad);
    int rc = map_key(m, key, len + 5);
    if (rc)
        return rc;
    uint8_t *p = m->buf.data + m->buf.len;
    size_t h = mpw_str_hdr_to(p, len);
    memcpy(p + h, v, len);
    m->buf.len += h + len;
    map_counted(m);
    return 0;
}

SEGBUS_API int segbus_map_add_str(segbus_map_t *m, const char *key, const char *v)
{
    return segbus_map_add_strn(m, key, v, v ? strlen(v) : 0);
}

SEGBUS_API int segbus_map_add_int(segbus_map_t *m, const char *key, int64_t v)
{
    if (!m)
        return -EINVAL;
    int rc = map_key(m, key, 9);
    if (rc)
        return rc;
    m->buf.len += mpw_int_to(m->buf.data + m->buf.len, v);
    map_counted(m);
    return 0;
}

SEGBUS_API int segbus_map_add_uint(segbus_map_t *m, const char *key, uint64_t v)
{
    if (!m)
        return -EINVAL;
    int rc = map_key(m, key, 9);
    if (rc)
        return rc;
    m->buf.len += mpw_uint_to(m->buf.data + m->buf.len, v);
    map_counted(m);
    return 0;
}

SEGBUS_API int segbus_map_add_double(segbus_map_t *m, const char *key, double v)
{
    if (!m)
        return -EINVAL;
    int rc = map_key(m, key, 9);
    if (rc)
        return rc;
    m->buf.len += mpw_double_to(m->buf.data + m->buf.len, v);
    map_counted(m);
    return 0;
}

static int map_byte(segbus_map_t *m, const char *key, uint8_t b)
{
    if (!m)
        return -EINVAL;
    int rc = map_key(m, key, 1);
    if (rc)
        return rc;
    m->buf.data[m->buf.len++] = b;
    map_counted(m);
    return 0;
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
 * The bytes come from outside libsegbus, so every rule the add_* calls enforce is checked here. */
SEGBUS_API int segbus_map_set_msgpack(segbus_map_t *m, const void *data, size_t len)
{
    if (!m)
        return -EINVAL;
    segbus_map_reset(m);
    if (!data && len)
        return map_fail(m, NULL, -EINVAL, "msgpack: NULL data");
    if (len > SEGBUS_MAX_EVENT_BYTES)
        return map_fail(m, NULL, -EMSGSIZE, "over the 32 KB event limit");
    struct sb_mp_reader r;
    struct sb_mp_item it;
    sb_mp_reader_init(&r, data, len);
    if (sb_mp_next(&r, &it) < 0 || it.type != SB_MP_MAP)
        return map_fail(m, NULL, -SEGBUS_ENOTOBJECT, "msgpack: not a map");
    uint32_t root_count = it.v.count;
    size_t body = sb_mp_reader_offset(&r);
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
        size_t at = sb_mp_reader_offset(&r);
        if (sb_mp_next(&r, &it) < 0)
            return map_fail(m, NULL, -EINVAL, "msgpack: malformed or truncated at byte %zu", at);
        int is_key = is_map[depth] && left[depth] % 2 == 0;
        left[depth]--;
        if (is_key && it.type != SB_MP_STR)
            return map_fail(m, NULL, -EINVAL, "msgpack: map key at byte %zu is not a string", at);
        size_t bad;
        switch (it.type) {
        case SB_MP_STR:
            if (!sb_utf8_valid((const char *)it.v.str.ptr, it.v.str.len, &bad))
                return map_fail(m, NULL, -SEGBUS_EUTF8, "msgpack: invalid UTF-8 at byte %zu",
                                (size_t)(it.v.str.ptr - (const uint8_t *)data) + bad);
            break;
        case SB_MP_BIN:
        case SB_MP_EXT:
            return map_fail(m, NULL, -EINVAL, "msgpack: bin/ext at byte %zu has no JSON form", at);
        case SB_MP_ARRAY:
        case SB_MP_MAP:
            if (depth > SB_MAP_DEPTH)
                return map_fail(m, NULL, -EINVAL, "msgpack: nesting deeper than %d at byte %zu",
                                SB_MAP_DEPTH, at);
            depth++;
            is_map[depth] = it.type == SB_MP_MAP;
            left[depth] = is_map[depth] ? 2ull * it.v.count : it.v.count;
            break;
        default:
            break;
        }
    }
    if (sb_mp_reader_left(&r))
        return map_fail(m, NULL, -EINVAL, "msgpack: %zu bytes after the map",
                        sb_mp_reader_left(&r));
    if (sb_buf_reserve(&m->buf, len - body + MPW_SLACK) < 0)
        return map_fail(m, NULL, -ENOMEM, "out of memory");
    memcpy(m->buf.data, (const uint8_t *)data + body, len - body);
    m->buf.len = len - body;
    m->root_count = root_count;
    return 0;
}
