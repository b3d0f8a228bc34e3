/* warehouse_model.c: one Segment event (msgpack) -> rows of Segment's warehouse schema: table
 * names, snake_case flattened columns, typed values, the collision rules and coercion. */
#include "outputs/warehouse_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "common/buf.h"
#include "mp/mp_reader.h"

/* ---- arena: bump allocation for one event's strings, reset per event ---- */

struct sb_wh_chunk {
    struct sb_wh_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

static void *arena_alloc(struct sb_wh_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct sb_wh_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        struct sb_wh_chunk *nc = malloc(sizeof(*nc) + cap);
        if (!nc)
            return NULL;
        nc->next = c;
        nc->used = 0;
        nc->cap = cap;
        a->head = c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

/* Keep one chunk (the newest, usually the biggest) so steady state allocates nothing. */
static void arena_reset(struct sb_wh_arena *a)
{
    struct sb_wh_chunk *c = a->head;
    if (!c)
        return;
    struct sb_wh_chunk *rest = c->next;
    while (rest) {
        struct sb_wh_chunk *n = rest->next;
        free(rest);
        rest = n;
    }
    c->next = NULL;
    c->used = 0;
}

static void arena_free(struct sb_wh_arena *a)
{
    arena_reset(a);
    free(a->head);
    a->head = NULL;
}

/* ---- string map ---- */

struct sb_wh_map_slot {
    char *key;
    size_t len;
    uint64_t hash;
    void *value;
};

static size_t map_find(const struct sb_wh_map *map, const char *key, size_t len, uint64_t h)
{
    size_t mask = map->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct sb_wh_map_slot *s = &map->slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return i;
    }
}

void *sb_wh_map_get(const struct sb_wh_map *map, const char *key, size_t len)
{
    if (!map->cap)
        return NULL;
    size_t i = map_find(map, key, len, XXH3_64bits(key, len));
    return map->slots[i].key ? map->slots[i].value : NULL;
}

int sb_wh_map_put(struct sb_wh_map *map, const char *key, size_t len, void *value)
{
    if ((map->count + 1) * 2 > map->cap) {
        size_t ncap = map->cap ? map->cap * 2 : 16;
        struct sb_wh_map_slot *ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        struct sb_wh_map old = *map;
        map->slots = ns;
        map->cap = ncap;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slots[i].key)
                map->slots[map_find(map, old.slots[i].key, old.slots[i].len, old.slots[i].hash)] =
                    old.slots[i];
        free(old.slots);
    }
    uint64_t h = XXH3_64bits(key, len);
    size_t i = map_find(map, key, len, h);
    struct sb_wh_map_slot *s = &map->slots[i];
    if (!s->key) {
        s->key = malloc(len + 1);
        if (!s->key)
            return -ENOMEM;
        memcpy(s->key, key, len);
        s->key[len] = 0;
        s->len = len;
        s->hash = h;
        map->count++;
    }
    s->value = value;
    return 0;
}

void sb_wh_map_each(const struct sb_wh_map *map, void (*fn)(void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < map->cap; i++)
        if (map->slots[i].key)
            fn(map->slots[i].value, arg);
}

void sb_wh_map_clear(struct sb_wh_map *map, void (*fn)(void *value))
{
    for (size_t i = 0; i < map->cap; i++) {
        if (map->slots[i].key) {
            if (fn)
                fn(map->slots[i].value);
            free(map->slots[i].key);
        }
    }
    free(map->slots);
    map->slots = NULL;
    map->cap = map->count = 0;
}

/* ---- names ---- */

static inline bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}
static inline bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}
static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Writes at most 2*len bytes (one separator per input byte at worst); callers size out so. */
static size_t snake_into(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (is_upper(c)) {
            /* A word starts at an upper-case letter after a lower-case letter or digit, or at
             * the last capital of an acronym followed by lower case: HTTPServer -> http_server. */
            bool boundary = i > 0 && (is_lower(s[i - 1]) || is_digit(s[i - 1]) ||
                                      (is_upper(s[i - 1]) && i + 1 < len && is_lower(s[i + 1])));
            if (boundary && o > 0 && out[o - 1] != '_')
                out[o++] = '_';
            out[o++] = (char)(c - 'A' + 'a');
        } else if (is_lower(c) || is_digit(c)) {
            out[o++] = c;
        } else if (o > 0 && out[o - 1] != '_') {
            out[o++] = '_'; /* anything else separates words; runs collapse */
        }
    }
    while (o > 0 && out[o - 1] == '_')
        o--;
    return o;
}

size_t sb_wh_snake(const char *s, size_t len, char *out)
{
    /* The public form bounds the output: names longer than an identifier are cut by
     * sb_wh_ident anyway, so only the first SB_WH_NAME_MAX*... bytes matter for the result,
     * except for the hash, which sb_wh_ident computes on what it is given. */
    char tmp[2 * 256];
    size_t n = snake_into(s, len < 256 ? len : 256, tmp);
    if (n > SB_WH_NAME_MAX)
        n = SB_WH_NAME_MAX;
    memcpy(out, tmp, n);
    out[n] = 0;
    return n;
}

/* PostgreSQL refuses these as user column names (system columns). */
static const char *const pg_system_columns[] = {"oid",  "tableoid", "xmin", "xmax",
                                                "cmin", "cmax",     "ctid", NULL};

size_t sb_wh_ident(const char *snake, size_t len, char *out)
{
    if (len == 0) {
        return (size_t)snprintf(out, SB_WH_NAME_MAX + 1, "_%08x", 0u);
    }
    bool prefix = is_digit(snake[0]);
    /* system column names are 3 to 8 bytes: most names never reach the comparisons */
    for (const char *const *p = pg_system_columns; *p && !prefix && len >= 3 && len <= 8; p++)
        prefix = strlen(*p) == len && memcmp(*p, snake, len) == 0;
    size_t o = 0;
    if (prefix)
        out[o++] = '_';
    if (o + len <= SB_WH_NAME_MAX) {
        memcpy(out + o, snake, len);
        o += len;
    } else {
        /* Too long: keep a readable head and make distinct long names stay distinct. */
        uint32_t h = (uint32_t)XXH3_64bits(snake, len);
        size_t keep = SB_WH_NAME_MAX - 9 - o;
        memcpy(out + o, snake, keep);
        o += keep;
        o += (size_t)snprintf(out + o, 10, "_%08x", h);
    }
    out[o] = 0;
    return o;
}

static const char *const standard_tables[] = {
    "tracks", "identifies", "users", "pages", "screens", "groups", "aliases", "accounts", NULL};

size_t sb_wh_event_table(const char *event, size_t len, char *out)
{
    char stack[512];
    char *tmp = len <= sizeof(stack) / 2 ? stack : malloc(2 * len + 1);
    if (!tmp) { /* out of memory: fall back to the first bytes, still a valid name */
        tmp = stack;
        len = sizeof(stack) / 2;
    }
    size_t n = snake_into(event, len, tmp + 1);
    size_t r;
    bool reserved = n >= 7 && memcmp(tmp + 1, "sqlite_", 7) == 0;
    for (const char *const *p = standard_tables; *p && !reserved; p++)
        reserved = strlen(*p) == n && memcmp(*p, tmp + 1, n) == 0;
    if (n == 0) {
        /* Nothing ASCII in the name: a hash keeps different names in different tables. */
        r = (size_t)snprintf(out, SB_WH_NAME_MAX + 1, "_%08x", (uint32_t)XXH3_64bits(event, len));
    } else if (reserved) {
        tmp[0] = '_';
        r = sb_wh_ident(tmp, n + 1, out);
    } else {
        r = sb_wh_ident(tmp + 1, n, out);
    }
    if (tmp != stack)
        free(tmp);
    return r;
}

/* ---- timestamps ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, size_t n, unsigned *v)
{
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        x = x * 10 + (unsigned)(s[i] - '0');
    }
    *v = x;
    return true;
}

static void format_ms(int64_t ms, char out[32])
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - days * 86400000;
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    /* By hand: snprintf costs more than the rest of an event's timestamps together. */
    unsigned hms = (unsigned)(rem / 1000), msec = (unsigned)(rem % 1000);
    unsigned uy = (unsigned)y;
    char *o = out;
    *o++ = (char)('0' + uy / 1000 % 10);
    *o++ = (char)('0' + uy / 100 % 10);
    *o++ = (char)('0' + uy / 10 % 10);
    *o++ = (char)('0' + uy % 10);
    *o++ = '-';
    *o++ = (char)('0' + mo / 10);
    *o++ = (char)('0' + mo % 10);
    *o++ = '-';
    *o++ = (char)('0' + d / 10);
    *o++ = (char)('0' + d % 10);
    *o++ = 'T';
    *o++ = (char)('0' + hms / 36000);
    *o++ = (char)('0' + hms / 3600 % 10);
    *o++ = ':';
    *o++ = (char)('0' + hms / 60 % 60 / 10);
    *o++ = (char)('0' + hms / 60 % 10);
    *o++ = ':';
    *o++ = (char)('0' + hms % 60 / 10);
    *o++ = (char)('0' + hms % 10);
    *o++ = '.';
    *o++ = (char)('0' + msec / 100);
    *o++ = (char)('0' + msec / 10 % 10);
    *o++ = (char)('0' + msec % 10);
    *o++ = 'Z';
    *o = 0;
}

bool sb_wh_timestamp(const char *s, size_t len, char out[32])
{
    unsigned y, mo, d, h, mi, sec, ms = 0;
    /* YYYY-MM-DDTHH:MM:SS */
    if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        size_t nd = i - start;
        if (nd == 0 || nd > 9)
            return false;
        unsigned frac = 0;
        digits(s + start, nd < 3 ? nd : 3, &frac);
        for (size_t k = nd; k < 3; k++)
            frac *= 10;
        ms = frac; /* truncated to milliseconds, as the canonical form keeps */
    }
    int offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        unsigned oh, om;
        if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        offset_min = (int)(oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return false;
    }
    if (i != len)
        return false;
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return false;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return false;
    if (sec == 60)
        sec = 59; /* a leap second is kept in its minute */
    int64_t t = days_from_civil(y, mo, d) * 86400000 + ((int64_t)h * 3600 + mi * 60 + sec) * 1000 +
                ms - (int64_t)offset_min * 60000;
    /* years 0001..9999 after the offset, the range every database takes */
    if (t < days_from_civil(1, 1, 1) * 86400000 || t >= days_from_civil(10000, 1, 1) * 86400000)
        return false;
    format_ms(t, out);
    return true;
}

int64_t sb_wh_canon_ms(const char *c)
{
#define D2(p) ((unsigned)(c[p] - '0') * 10 + (unsigned)(c[p + 1] - '0'))
    int64_t y = D2(0) * 100 + D2(2);
    int64_t days = days_from_civil(y, D2(5), D2(8));
    int64_t ms = (int64_t)D2(11) * 3600000 + (int64_t)D2(14) * 60000 + (int64_t)D2(17) * 1000 +
                 (c[20] - '0') * 100 + (c[21] - '0') * 10 + (c[22] - '0');
#undef D2
    return days * 86400000 + ms;
}

void sb_wh_now(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    format_ms((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, out);
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid there. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && s[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && s[1] >= 0xa0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* Text as the databases take it: valid UTF-8 (bad bytes become U+FFFD), no NUL bytes
 * (PostgreSQL refuses them), at most max bytes (cut at a character boundary; 0 = no limit).
 * Returns data itself when nothing needs changing. NULL on out of memory. */
static const char *clean_text(struct sb_wh_model *m, const char *data, uint32_t n, uint32_t *out_n)
{
    const uint8_t *s = (const uint8_t *)data;
    uint32_t max = m->opt.max_text_bytes;
    size_t i = 0;
    while (i < n) {
        if (s[i] >= 0x01 && s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = s[i] ? utf8_seq(s + i, n - i) : 0;
        if (!k)
            break;
        i += k;
    }
    if (i == n && (!max || n <= max)) {
        *out_n = n;
        return data;
    }
    char *out = arena_alloc(&m->arena, (size_t)n * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (i = 0; i < n;) {
        size_t k = s[i] ? utf8_seq(s + i, n - i) : 0;
        const char *piece = data + i;
        size_t plen = k;
        if (!k) {
            piece = s[i] ? "\xef\xbf\xbd" : "";
            plen = s[i] ? 3 : 0;
            k = 1;
        }
        if (max && o + plen > max)
            break;
        memcpy(out + o, piece, plen);
        o += plen;
        i += k;
    }
    *out_n = (uint32_t)o;
    return out;
}

/* ---- JSON text of a msgpack value (arrays are stored as JSON) ---- */

static int json_string(struct sb_buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (sb_buf_reserve(b, n * 6 + 2))
        return -ENOMEM;
    uint8_t *o = b->data + b->len;
    *o++ = '"';
    const uint8_t *s = (const uint8_t *)p;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = c;
            i++;
        } else if (c < 0x20) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = (uint8_t)hex[c >> 4];
            *o++ = (uint8_t)hex[c & 15];
            i++;
        } else if (c < 0x80) {
            *o++ = c;
            i++;
        } else {
            size_t k = utf8_seq(s + i, n - i);
            if (k) {
                memcpy(o, s + i, k);
                o += k;
                i += k;
            } else {
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                i++;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

/* Shortest "%.*g" that reads back as the same double. */
static int format_double(double v, char *buf, size_t cap)
{
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(buf, cap, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            return n;
    }
    return 0;
}

/* Append the JSON text of the value at r, consuming it. The event passed sb_mp_check, so
 * nesting is bounded and every count is real. */
static int json_value(struct sb_buf *b, struct sb_mp_reader *r)
{
    char num[40];
    struct sb_mp_item it;
    if (sb_mp_next(r, &it))
        return -EINVAL;
    switch (it.type) {
    case SB_MP_NIL:
        return sb_buf_append_str(b, "null");
    case SB_MP_BOOL:
        return sb_buf_append_str(b, it.v.b ? "true" : "false");
    case SB_MP_UINT:
        snprintf(num, sizeof(num), "%llu", (unsigned long long)it.v.u);
        return sb_buf_append_str(b, num);
    case SB_MP_INT:
        snprintf(num, sizeof(num), "%lld", (long long)it.v.i);
        return sb_buf_append_str(b, num);
    case SB_MP_FLOAT32:
    case SB_MP_FLOAT64:
        if (!isfinite(it.v.f))
            return sb_buf_append_str(b, "null");
        format_double(it.v.f, num, sizeof(num));
        return sb_buf_append_str(b, num);
    case SB_MP_STR:
        return json_string(b, (const char *)it.v.str.ptr, it.v.str.len);
    case SB_MP_ARRAY: {
        if (sb_buf_append(b, "[", 1))
            return -ENOMEM;
        for (uint32_t i = 0; i < it.v.count; i++) {
            int rc = i ? sb_buf_append(b, ",", 1) : 0;
            if (rc || (rc = json_value(b, r)))
                return rc;
        }
        return sb_buf_append(b, "]", 1);
    }
    case SB_MP_MAP: {
        if (sb_buf_append(b, "{", 1))
            return -ENOMEM;
        for (uint32_t i = 0; i < it.v.count; i++) {
            struct sb_mp_item k;
            if (i && sb_buf_append(b, ",", 1))
                return -ENOMEM;
            if (sb_mp_peek(r, &k))
                return -EINVAL;
            int rc;
            if (k.type == SB_MP_STR) {
                sb_mp_next(r, &k);
                rc = json_string(b, (const char *)k.v.str.ptr, k.v.str.len);
            } else {
                /* A non-string key is written as its JSON text, in a string. */
                struct sb_buf kb = SB_BUF_INIT;
                rc = json_value(&kb, r);
                if (!rc)
                    rc = json_string(b, (const char *)kb.data, kb.len);
                sb_buf_free(&kb);
            }
            if (rc || (rc = sb_buf_append(b, ":", 1)) || (rc = json_value(b, r)))
                return rc;
        }
        return sb_buf_append(b, "}", 1);
    }
    default: /* binary and ext have no JSON form */
        return sb_buf_append_str(b, "null");
    }
}

/* ---- rows ---- */

int sb_wh_model_init(struct sb_wh_model *m, const struct sb_warehouse_options *opt)
{
    memset(m, 0, sizeof(*m));
    if (opt)
        m->opt = *opt;
    if (!m->opt.max_columns)
        m->opt.max_columns = 1000;
    return 0;
}

void sb_wh_model_free(struct sb_wh_model *m)
{
    arena_free(&m->arena);
    for (int k = 0; k < 2; k++) {
        free(m->rows[k].fields);
        free(m->index[k]);
    }
    memset(m, 0, sizeof(*m));
}

#define COMMON_COLS                                                                                \
    {"id", SB_WH_TEXT}, {"received_at", SB_WH_TS}, {"sent_at", SB_WH_TS}, {"timestamp", SB_WH_TS}, \
        {"original_timestamp", SB_WH_TS}, {"user_id", SB_WH_TEXT},                                 \
    {                                                                                              \
        "anonymous_id", SB_WH_TEXT                                                                 \
    }
static const struct sb_wh_coldef cols_track[] = {
    COMMON_COLS, {"event", SB_WH_TEXT}, {"event_text", SB_WH_TEXT}};
static const struct sb_wh_coldef cols_identify[] = {COMMON_COLS};
static const struct sb_wh_coldef cols_page[] = {
    COMMON_COLS, {"name", SB_WH_TEXT}, {"category", SB_WH_TEXT}};
static const struct sb_wh_coldef cols_group[] = {COMMON_COLS, {"group_id", SB_WH_TEXT}};
static const struct sb_wh_coldef cols_alias[] = {COMMON_COLS, {"previous_id", SB_WH_TEXT}};
static const struct sb_wh_coldef cols_users[] = {{"id", SB_WH_TEXT}, {"received_at", SB_WH_TS}};
#define SETBASE(r, a) ((r)->base = (a), (r)->nbase = sizeof(a) / sizeof((a)[0]))

static void row_start(struct sb_wh_model *m, int k, const char *table, size_t len, bool upsert)
{
    struct sb_wh_row *r = &m->rows[k];
    memcpy(r->table, table, len);
    r->table[len] = 0;
    r->upsert = upsert;
    r->nfields = 0;
    if (m->index[k])
        memset(m->index[k], 0, m->index_cap[k] * sizeof(uint32_t));
}

static uint32_t name_hash(const char *s, size_t n)
{
    return (uint32_t)XXH3_64bits(s, n);
}

/* Does candidate a win the column over b? Lower rank first (base, then context, then
 * properties), then a key spelled exactly as the column, then the smaller key path. The rule
 * depends only on the two keys, never on their order in the map. */
static bool field_wins(const struct sb_wh_field *a, const struct sb_wh_field *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank;
    if (a->exact != b->exact)
        return a->exact;
    size_t n = a->path_len < b->path_len ? a->path_len : b->path_len;
    int c = memcmp(a->path, b->path, n);
    if (c)
        return c < 0;
    return a->path_len < b->path_len; /* same path (a duplicated key): the first stays */
}

static int row_grow(struct sb_wh_model *m, int k)
{
    struct sb_wh_row *r = &m->rows[k];
    size_t ncap = m->fields_cap[k] ? m->fields_cap[k] * 2 : 64;
    struct sb_wh_field *nf = realloc(r->fields, ncap * sizeof(*nf));
    if (!nf)
        return -ENOMEM;
    r->fields = nf;
    m->fields_cap[k] = ncap;
    uint32_t icap = (uint32_t)ncap * 2;
    uint32_t *ni = calloc(icap, sizeof(*ni));
    if (!ni)
        return -ENOMEM;
    free(m->index[k]);
    m->index[k] = ni;
    m->index_cap[k] = icap;
    for (size_t i = 0; i < r->nfields; i++) {
        uint32_t h = name_hash(r->fields[i].name, r->fields[i].name_len) & (icap - 1);
        while (ni[h])
            h = (h + 1) & (icap - 1);
        ni[h] = (uint32_t)i + 1;
    }
    return 0;
}

/* Add f to row k, applying the collision rule. */
static int row_add(struct sb_wh_model *m, int k, const struct sb_wh_field *f)
{
    struct sb_wh_row *r = &m->rows[k];
    if (r->nfields >= SB_WH_FIELDS_MAX) {
        m->dropped++;
        return 0;
    }
    if (r->nfields >= m->fields_cap[k]) { /* the index stays at most half full */
        int rc = row_grow(m, k);
        if (rc)
            return rc;
    }
    uint32_t mask = m->index_cap[k] - 1;
    uint32_t h = name_hash(f->name, f->name_len) & mask;
    uint32_t *idx = m->index[k];
    while (idx[h]) {
        struct sb_wh_field *e = &r->fields[idx[h] - 1];
        if (e->name_len == f->name_len && memcmp(e->name, f->name, f->name_len) == 0) {
            if (field_wins(f, e))
                *e = *f;
            m->dropped++;
            return 0;
        }
        h = (h + 1) & mask;
    }
    r->fields[r->nfields] = *f;
    idx[h] = (uint32_t)++r->nfields;
    return 0;
}

static bool is_reserved(enum sb_wh_kind kind, const char *name, size_t n)
{
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
    /* the columns every table has (and Segment's uuid, uuid_ts, loaded_at) */
    switch (name[0]) {
    case 'a':
        if (IS("anonymous_id"))
            return true;
        break;
    case 'i':
        if (IS("id"))
            return true;
        break;
    case 'l':
        if (IS("loaded_at"))
            return true;
        break;
    case 'o':
        if (IS("original_timestamp"))
            return true;
        break;
    case 'r':
        if (IS("received_at"))
            return true;
        break;
    case 's':
        if (IS("sent_at"))
            return true;
        break;
    case 't':
        if (IS("timestamp"))
            return true;
        break;
    case 'u':
        if (IS("user_id") || IS("uuid") || IS("uuid_ts"))
            return true;
        break;
    default:
        break;
    }
    switch (kind) {
    case SB_WH_TRACK:
        return IS("event") || IS("event_text");
    case SB_WH_PAGE:
    case SB_WH_SCREEN:
        return IS("name") || IS("category");
    case SB_WH_GROUP:
        return IS("group_id");
    case SB_WH_ALIAS:
        return IS("previous_id");
    default:
        return false;
    }
#undef IS
}

/* The value of a leaf item (it was just read from r; for an array r is on its first element
 * and the elements are consumed here). *store false: nothing to store (null, binary, ext,
 * NaN; all but null are counted as dropped). */
static int leaf_value(struct sb_wh_model *m, const struct sb_mp_item *it, struct sb_mp_reader *r,
                      const struct sb_mp_reader *at, struct sb_wh_value *v, bool *store)
{
    memset(v, 0, sizeof(*v));
    *store = true;
    switch (it->type) {
    case SB_MP_NIL:
        *store = false;
        return 0;
    case SB_MP_BOOL:
        v->type = SB_WH_BOOL;
        v->i = it->v.b;
        return 0;
    case SB_MP_UINT:
        if (it->v.u > INT64_MAX) {
            v->type = SB_WH_REAL;
            v->d = (double)it->v.u;
        } else {
            v->type = SB_WH_INT;
            v->i = (int64_t)it->v.u;
        }
        return 0;
    case SB_MP_INT:
        v->type = SB_WH_INT;
        v->i = it->v.i;
        return 0;
    case SB_MP_FLOAT32:
    case SB_MP_FLOAT64:
        if (!isfinite(it->v.f)) {
            *store = false;
            m->dropped++;
            return 0;
        }
        v->type = SB_WH_REAL;
        v->d = it->v.f;
        return 0;
    case SB_MP_STR:
        v->type = SB_WH_TEXT;
        v->s = clean_text(m, (const char *)it->v.str.ptr, it->v.str.len, &v->n);
        return v->s ? 0 : -ENOMEM;
    case SB_MP_ARRAY: {
        /* arrays are stored as their JSON text: written from the array's first byte */
        struct sb_buf b = SB_BUF_INIT;
        *r = *at;
        int rc = json_value(&b, r);
        if (!rc) {
            char *s = arena_alloc(&m->arena, b.len + 1);
            if (s) {
                memcpy(s, b.data, b.len);
                v->type = SB_WH_TEXT;
                v->s = s;
                v->n = (uint32_t)b.len;
                /* JSON text is already valid UTF-8 without NUL; only the length cap applies */
                if (m->opt.max_text_bytes && v->n > m->opt.max_text_bytes)
                    v->s = clean_text(m, s, v->n, &v->n);
            } else {
                rc = -ENOMEM;
            }
        }
        sb_buf_free(&b);
        return rc;
    }
    default:
        *store = false;
        m->dropped++;
        return 0;
    }
}

/* Flatten the map whose `pairs` pairs start at r into row k, consuming them: column = prefix
 * + "_" + snake(key); nested maps recurse (depth bounded by the event's sb_mp_check). */
static int flatten(struct sb_wh_model *m, int k, enum sb_wh_kind kind, struct sb_mp_reader *r,
                   uint32_t pairs, const char *prefix, size_t plen, const char *path,
                   size_t pathlen, bool exact, uint8_t rank)
{
    for (uint32_t i = 0; i < pairs; i++) {
        struct sb_mp_item key, val;
        char numkey[24];
        const char *kp = NULL;
        size_t kn = 0;
        if (sb_mp_peek(r, &key))
            return -EINVAL;
        if (key.type == SB_MP_STR) {
            sb_mp_next(r, &key);
            kp = (const char *)key.v.str.ptr;
            kn = key.v.str.len;
        } else if (key.type == SB_MP_UINT || key.type == SB_MP_INT) {
            sb_mp_next(r, &key);
            kn = key.type == SB_MP_UINT
                     ? (size_t)snprintf(numkey, sizeof(numkey), "%llu", (unsigned long long)key.v.u)
                     : (size_t)snprintf(numkey, sizeof(numkey), "%lld", (long long)key.v.i);
            kp = numkey;
        } else if (sb_mp_skip(r)) { /* other keys (maps even) are dropped with their value */
            return -EINVAL;
        }
        struct sb_mp_reader at = *r;
        if (sb_mp_next(r, &val))
            return -EINVAL;
        if (!kp) {
            m->dropped++;
            *r = at;
            if (sb_mp_skip(r))
                return -EINVAL;
            continue;
        }
        if (val.type == SB_MP_NIL || (val.type == SB_MP_MAP && val.v.count == 0))
            continue; /* null means absent, as in Segment's warehouses */
        /* full column name, uncut: prefix_snake(key) */
        char *name = arena_alloc(&m->arena, plen + 1 + 2 * kn + 12);
        /* key path: length-prefixed segments, so that distinct paths never compare equal */
        char *p = arena_alloc(&m->arena, pathlen + 4 + kn);
        if (!name || !p)
            return -ENOMEM;
        size_t n = 0;
        if (plen) {
            memcpy(name, prefix, plen);
            name[plen] = '_';
            n = plen + 1;
        }
        size_t sn = snake_into(kp, kn, name + n);
        bool seg_exact = exact && sn == kn && memcmp(name + n, kp, kn) == 0;
        if (sn == 0) /* no ASCII letter or digit: a hash keeps distinct keys apart */
            sn = (size_t)snprintf(name + n, 10, "_%08x", (uint32_t)XXH3_64bits(kp, kn));
        n += sn;
        memcpy(p, path, pathlen);
        p[pathlen] = (char)(kn >> 24);
        p[pathlen + 1] = (char)(kn >> 16);
        p[pathlen + 2] = (char)(kn >> 8);
        p[pathlen + 3] = (char)kn;
        memcpy(p + pathlen + 4, kp, kn);
        size_t pn = pathlen + 4 + kn;
        if (val.type == SB_MP_MAP) {
            int rc = flatten(m, k, kind, r, val.v.count, name, n, p, pn, seg_exact, rank);
            if (rc)
                return rc;
            continue;
        }
        struct sb_wh_field f;
        f.name_len = (uint8_t)sb_wh_ident(name, n, f.name);
        f.exact = seg_exact && f.name_len == n;
        if (rank == 2 && is_reserved(kind, f.name, f.name_len)) {
            m->dropped++; /* Segment's rule: a property named like a reserved column is dropped */
            *r = at;
            if (sb_mp_skip(r))
                return -EINVAL;
            continue;
        }
        bool store;
        int rc = leaf_value(m, &val, r, &at, &f.v, &store);
        if (rc)
            return rc;
        if (!store)
            continue;
        f.rank = rank;
        f.path = p;
        f.path_len = (uint32_t)pn;
        rc = row_add(m, k, &f);
        if (rc)
            return rc;
    }
    return 0;
}

static int add_base(struct sb_wh_model *m, int k, const char *name, const struct sb_wh_value *v)
{
    if (v->type == SB_WH_NULL)
        return 0;
    struct sb_wh_field f;
    size_t n = strlen(name);
    memcpy(f.name, name, n + 1);
    f.name_len = (uint8_t)n;
    f.rank = 0;
    f.exact = true;
    f.path = name;
    f.path_len = (uint32_t)n;
    f.v = *v;
    return row_add(m, k, &f);
}

/* Identifiers (userId etc.) as text: strings as they are, numbers written out. o NULL: absent. */
static int text_of(struct sb_wh_model *m, const struct sb_mp_item *o, struct sb_wh_value *v)
{
    memset(v, 0, sizeof(*v));
    if (!o || o->type == SB_MP_NIL)
        return 0;
    if (o->type == SB_MP_STR) {
        if (o->v.str.len == 0)
            return 0;
        v->type = SB_WH_TEXT;
        v->s = clean_text(m, (const char *)o->v.str.ptr, o->v.str.len, &v->n);
        return v->s ? 0 : -ENOMEM;
    }
    char buf[40];
    int n;
    if (o->type == SB_MP_UINT)
        n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)o->v.u);
    else if (o->type == SB_MP_INT)
        n = snprintf(buf, sizeof(buf), "%lld", (long long)o->v.i);
    else if ((o->type == SB_MP_FLOAT64 || o->type == SB_MP_FLOAT32) && isfinite(o->v.f))
        n = format_double(o->v.f, buf, sizeof(buf));
    else {
        m->dropped++;
        return 0;
    }
    char *s = arena_alloc(&m->arena, (size_t)n + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, buf, (size_t)n + 1);
    v->type = SB_WH_TEXT;
    v->s = s;
    v->n = (uint32_t)n;
    return 0;
}

static int ts_of(struct sb_wh_model *m, const struct sb_mp_item *o, struct sb_wh_value *v)
{
    memset(v, 0, sizeof(*v));
    if (!o || o->type == SB_MP_NIL)
        return 0;
    char canon[32];
    if (o->type != SB_MP_STR || !sb_wh_timestamp((const char *)o->v.str.ptr, o->v.str.len, canon)) {
        m->dropped++; /* not RFC 3339: stored as NULL rather than failing a typed column */
        return 0;
    }
    char *s = arena_alloc(&m->arena, 32);
    if (!s)
        return -ENOMEM;
    memcpy(s, canon, 25);
    v->type = SB_WH_TS;
    v->s = s;
    v->n = 24;
    return 0;
}

enum {
    F_TYPE,
    F_MESSAGE_ID,
    F_USER_ID,
    F_ANONYMOUS_ID,
    F_EVENT,
    F_NAME,
    F_CATEGORY,
    F_PROPERTIES,
    F_TRAITS,
    F_GROUP_ID,
    F_PREVIOUS_ID,
    F_CONTEXT,
    F_TIMESTAMP,
    F_SENT_AT,
    F_RECEIVED_AT,
    F_ORIGINAL_TIMESTAMP,
    F_COUNT
};
static const struct {
    const char *key;
    size_t len;
} top_fields[F_COUNT] = {
#define K(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    K("type"),      K("messageId"), K("userId"),     K("anonymousId"),
    K("event"),     K("name"),      K("category"),   K("properties"),
    K("traits"),    K("groupId"),   K("previousId"), K("context"),
    K("timestamp"), K("sentAt"),    K("receivedAt"), K("originalTimestamp"),
#undef K
};

static int reject(struct sb_wh_model *m, int err, const char *msg)
{
    snprintf(m->errmsg, sizeof(m->errmsg), "%s", msg);
    return err;
}

int sb_wh_model_event(struct sb_wh_model *m, const uint8_t *data, size_t len, const char *now_iso)
{
    m->nrows = 0;
    m->dropped = 0;
    arena_reset(&m->arena);
    if (len > SB_WH_EVENT_MAX)
        return reject(m, -EMSGSIZE, "event is larger than 1 MiB");
    /* The whole event is checked first: afterwards every count is real and nesting bounded. */
    if (sb_mp_check(data, len, 32))
        return reject(m, -EINVAL, "event is not one well-formed msgpack value");
    struct sb_mp_reader r;
    struct sb_mp_item ev;
    sb_mp_reader_init(&r, data, len);
    if (sb_mp_next(&r, &ev) || ev.type != SB_MP_MAP)
        return reject(m, -EINVAL, "event is not a msgpack map");

    /* The top-level fields: each value's item, and for maps a cursor on their first key. */
    struct sb_mp_item fv[F_COUNT];
    struct sb_mp_reader fr[F_COUNT];
    const struct sb_mp_item *f[F_COUNT] = {0};
    for (uint32_t i = 0; i < ev.v.count; i++) {
        struct sb_mp_item k;
        int j = F_COUNT;
        if (sb_mp_peek(&r, &k))
            return reject(m, -EINVAL, "event is not one well-formed msgpack value");
        if (k.type == SB_MP_STR) {
            sb_mp_next(&r, &k);
            for (j = 0; j < F_COUNT; j++)
                if (!f[j] && k.v.str.len == top_fields[j].len &&
                    memcmp(k.v.str.ptr, top_fields[j].key, top_fields[j].len) == 0)
                    break; /* a duplicated key: the first one counts */
        } else if (sb_mp_skip(&r)) {
            return reject(m, -EINVAL, "event is not one well-formed msgpack value");
        }
        struct sb_mp_reader at = r;
        if (j < F_COUNT) {
            if (sb_mp_next(&r, &fv[j]))
                return reject(m, -EINVAL, "event is not one well-formed msgpack value");
            fr[j] = r;
            f[j] = &fv[j];
            r = at;
        }
        if (sb_mp_skip(&r))
            return reject(m, -EINVAL, "event is not one well-formed msgpack value");
    }
    if (!f[F_TYPE] || f[F_TYPE]->type != SB_MP_STR)
        return reject(m, -EINVAL, "event has no \"type\" string");
    char type[16] = "";
    uint32_t tn = f[F_TYPE]->v.str.len;
    if (tn < sizeof(type)) {
        for (uint32_t i = 0; i < tn; i++) {
            char c = (char)f[F_TYPE]->v.str.ptr[i];
            type[i] = is_upper(c) ? (char)(c - 'A' + 'a') : c;
        }
        type[tn] = 0;
    }
    enum sb_wh_kind kind;
    const char *table;
    if (!strcmp(type, "track"))
        kind = SB_WH_TRACK, table = "tracks";
    else if (!strcmp(type, "identify"))
        kind = SB_WH_IDENTIFY, table = "identifies";
    else if (!strcmp(type, "page"))
        kind = SB_WH_PAGE, table = "pages";
    else if (!strcmp(type, "screen"))
        kind = SB_WH_SCREEN, table = "screens";
    else if (!strcmp(type, "group"))
        kind = SB_WH_GROUP, table = "groups";
    else if (!strcmp(type, "alias"))
        kind = SB_WH_ALIAS, table = "aliases";
    else {
        snprintf(m->errmsg, sizeof(m->errmsg),
                 "event type \"%s\" is not one of track, identify, page, screen, group, alias",
                 type[0] ? type : "?");
        return -EINVAL;
    }

    char event_table[SB_WH_NAME_MAX + 1] = "";
    struct sb_wh_value event_text = {0}, event_slug = {0};
    if (kind == SB_WH_TRACK) {
        const struct sb_mp_item *e = f[F_EVENT];
        if (!e || e->type != SB_MP_STR || e->v.str.len == 0)
            return reject(m, -EINVAL, "track event has no \"event\" name");
        size_t n = sb_wh_event_table((const char *)e->v.str.ptr, e->v.str.len, event_table);
        int rc = text_of(m, e, &event_text);
        if (rc)
            return rc;
        char *slug = arena_alloc(&m->arena, n + 1);
        if (!slug)
            return -ENOMEM;
        memcpy(slug, event_table, n + 1);
        event_slug.type = SB_WH_TEXT;
        event_slug.s = slug;
        event_slug.n = (uint32_t)n;
    }

    struct sb_wh_value id, v;
    int rc = text_of(m, f[F_MESSAGE_ID], &id);
    if (rc)
        return rc;
    if (id.type == SB_WH_NULL) {
        /* No messageId: an id from the event's bytes, so a resent copy is still one row. */
        XXH128_hash_t h = XXH3_128bits(data, len);
        snprintf(m->id_buf, sizeof(m->id_buf), "sb-%016llx%016llx", (unsigned long long)h.high64,
                 (unsigned long long)h.low64);
        id.type = SB_WH_TEXT;
        id.s = m->id_buf;
        id.n = (uint32_t)strlen(m->id_buf);
    }

    row_start(m, 0, table, strlen(table), false);
    m->nrows = 1;
    switch (kind) {
    case SB_WH_TRACK:
        SETBASE(&m->rows[0], cols_track);
        break;
    case SB_WH_IDENTIFY:
        SETBASE(&m->rows[0], cols_identify);
        break;
    case SB_WH_PAGE:
    case SB_WH_SCREEN:
        SETBASE(&m->rows[0], cols_page);
        break;
    case SB_WH_GROUP:
        SETBASE(&m->rows[0], cols_group);
        break;
    case SB_WH_ALIAS:
        SETBASE(&m->rows[0], cols_alias);
        break;
    }
#define BASE(name, expr)                                                                           \
    do {                                                                                           \
        if ((rc = (expr)) || (rc = add_base(m, 0, name, &v)))                                      \
            return rc;                                                                             \
    } while (0)
    if ((rc = add_base(m, 0, "id", &id)))
        return rc;
    BASE("received_at", ts_of(m, f[F_RECEIVED_AT], &v));
    struct sb_wh_value received = v;
    if (v.type == SB_WH_NULL) {
        received.type = SB_WH_TS;
        received.s = now_iso;
        received.n = 24;
        if ((rc = add_base(m, 0, "received_at", &received)))
            return rc;
    }
    BASE("sent_at", ts_of(m, f[F_SENT_AT], &v));
    BASE("timestamp", ts_of(m, f[F_TIMESTAMP], &v));
    BASE("original_timestamp", ts_of(m, f[F_ORIGINAL_TIMESTAMP], &v));
    BASE("user_id", text_of(m, f[F_USER_ID], &v));
    struct sb_wh_value user_id = v;
    BASE("anonymous_id", text_of(m, f[F_ANONYMOUS_ID], &v));
    switch (kind) {
    case SB_WH_TRACK:
        if ((rc = add_base(m, 0, "event", &event_slug)) ||
            (rc = add_base(m, 0, "event_text", &event_text)))
            return rc;
        break;
    case SB_WH_PAGE:
    case SB_WH_SCREEN:
        BASE("name", text_of(m, f[F_NAME], &v));
        BASE("category", text_of(m, f[F_CATEGORY], &v));
        break;
    case SB_WH_GROUP:
        BASE("group_id", text_of(m, f[F_GROUP_ID], &v));
        break;
    case SB_WH_ALIAS:
        BASE("previous_id", text_of(m, f[F_PREVIOUS_ID], &v));
        break;
    default:
        break;
    }
#undef BASE
    const struct sb_mp_item *ctx = f[F_CONTEXT];
    if (ctx && ctx->type == SB_MP_MAP) {
        struct sb_mp_reader cr = fr[F_CONTEXT];
        if ((rc = flatten(m, 0, kind, &cr, ctx->v.count, "context", 7, "context", 7, true, 1)))
            return rc;
    } else if (ctx && ctx->type != SB_MP_NIL) {
        m->dropped++;
    }

    int bag = -1;
    if (kind == SB_WH_TRACK || kind == SB_WH_PAGE || kind == SB_WH_SCREEN)
        bag = F_PROPERTIES;
    else if (kind == SB_WH_IDENTIFY || kind == SB_WH_GROUP)
        bag = F_TRAITS;
    if (bag >= 0 && (!f[bag] || f[bag]->type != SB_MP_MAP)) {
        if (f[bag] && f[bag]->type != SB_MP_NIL)
            m->dropped++;
        bag = -1;
    }
    struct sb_mp_reader br = bag >= 0 ? fr[bag] : r;
    uint32_t bag_pairs = bag >= 0 ? f[bag]->v.count : 0;

    if (kind == SB_WH_TRACK) {
        /* The per-event table: everything tracks has, plus the properties. */
        row_start(m, 1, event_table, strlen(event_table), false);
        SETBASE(&m->rows[1], cols_track);
        m->nrows = 2;
        for (size_t i = 0; i < m->rows[0].nfields; i++)
            if ((rc = row_add(m, 1, &m->rows[0].fields[i])))
                return rc;
        if (bag >= 0 && (rc = flatten(m, 1, kind, &br, bag_pairs, "", 0, "", 0, true, 2)))
            return rc;
    } else if (bag >= 0) {
        if ((rc = flatten(m, 0, kind, &br, bag_pairs, "", 0, "", 0, true, 2)))
            return rc;
    }

    if (kind == SB_WH_IDENTIFY && user_id.type != SB_WH_NULL) {
        /* users: one row per user_id, merged with the latest traits. */
        row_start(m, 1, "users", 5, true);
        SETBASE(&m->rows[1], cols_users);
        m->nrows = 2;
        if ((rc = add_base(m, 1, "id", &user_id)) ||
            (rc = add_base(m, 1, "received_at", &received)))
            return rc;
        for (size_t i = 0; i < m->rows[0].nfields; i++)
            if (m->rows[0].fields[i].rank == 2 && (rc = row_add(m, 1, &m->rows[0].fields[i])))
                return rc;
    }
    return 0;
}

/* ---- coercion ---- */

bool sb_wh_coerce(struct sb_wh_value *v, enum sb_wh_type t, char *buf)
{
    if (v->type == t || v->type == SB_WH_NULL)
        return true;
    struct sb_wh_value r = {0};
    r.type = t;
    char tmp[40];
    bool text_in = v->type == SB_WH_TEXT || v->type == SB_WH_TS;
    const char *txt = NULL;
    if (text_in && v->n < sizeof(tmp)) {
        memcpy(tmp, v->s, v->n);
        tmp[v->n] = 0;
        txt = tmp;
    }
    switch (t) {
    case SB_WH_TEXT:
        if (v->type == SB_WH_TS) {
            r.s = v->s;
            r.n = v->n;
        } else if (v->type == SB_WH_INT) {
            r.n = (uint32_t)snprintf(buf, 40, "%lld", (long long)v->i);
            r.s = buf;
        } else if (v->type == SB_WH_REAL) {
            r.n = (uint32_t)format_double(v->d, buf, 40);
            r.s = buf;
        } else { /* BOOL */
            r.s = v->i ? "true" : "false";
            r.n = v->i ? 4 : 5;
        }
        break;
    case SB_WH_INT:
        if (v->type == SB_WH_REAL && v->d == floor(v->d) && v->d >= -9.2e18 && v->d <= 9.2e18)
            r.i = (int64_t)v->d;
        else if (v->type == SB_WH_BOOL)
            r.i = v->i;
        else if (txt && *txt) {
            char *end;
            errno = 0;
            long long x = strtoll(txt, &end, 10);
            if (*end || errno)
                goto null;
            r.i = x;
        } else
            goto null;
        break;
    case SB_WH_REAL:
        if (v->type == SB_WH_INT || v->type == SB_WH_BOOL)
            r.d = (double)v->i;
        else if (txt && *txt) {
            char *end;
            double x = strtod(txt, &end);
            if (*end || !isfinite(x))
                goto null;
            r.d = x;
        } else
            goto null;
        break;
    case SB_WH_BOOL:
        if (v->type == SB_WH_INT && (v->i == 0 || v->i == 1))
            r.i = v->i;
        else if (txt && (!strcmp(txt, "true") || !strcmp(txt, "false")))
            r.i = txt[0] == 't';
        else
            goto null;
        break;
    case SB_WH_TS:
        if (v->type == SB_WH_TEXT && sb_wh_timestamp(v->s, v->n, buf)) {
            r.s = buf;
            r.n = 24;
        } else
            goto null;
        break;
    default:
        goto null;
    }
    *v = r;
    return true;
null:
    memset(v, 0, sizeof(*v));
    return false;
}

/* ---- the API shared by every loader ---- */

void *sb_wh_handle_new(size_t size, const struct sb_wh_ops *ops,
                       const struct sb_warehouse_options *opt)
{
    struct sb_warehouse *w = calloc(1, size);
    if (!w)
        return NULL;
    w->ops = ops;
    if (sb_wh_model_init(&w->model, opt)) {
        free(w);
        return NULL;
    }
    return w;
}

int sb_wh_open_args(struct sb_warehouse **out, const void *arg, const char *why, char *errmsg,
                    size_t errmsg_len)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (arg)
        return 0;
    if (errmsg && errmsg_len)
        snprintf(errmsg, errmsg_len, "%s", why);
    return -EINVAL;
}

int sb_wh_open_failed(struct sb_warehouse *w, int rc, char *errmsg, size_t errmsg_len)
{
    if (errmsg && errmsg_len)
        snprintf(errmsg, errmsg_len, "%s", w->errmsg);
    sb_warehouse_close(w);
    return rc;
}

int sb_wh_put_ident(struct sb_buf *b, const char *name)
{
    /* Names are [a-z0-9_] by construction (sb_wh_ident), but schema names come from the
     * config: doubling '"' means no name can ever end the identifier early. */
    if (sb_buf_append(b, "\"", 1))
        return -ENOMEM;
    for (const char *p = name; *p; p++)
        if (sb_buf_append(b, p, 1) || (*p == '"' && sb_buf_append(b, "\"", 1)))
            return -ENOMEM;
    return sb_buf_append(b, "\"", 1);
}

int sb_wh_put_column(struct sb_buf *b, const char *name, const char *type)
{
    int rc = sb_wh_put_ident(b, name);
    rc = rc ? rc : sb_buf_append(b, " ", 1);
    return rc ? rc : sb_buf_append_str(b, type);
}

int sb_wh_put_users_update(struct sb_buf *b, const char *target)
{
    char sql[4 * 80 + 200];
    snprintf(sql, sizeof(sql),
             " ON CONFLICT (\"id\") DO UPDATE SET \"received_at\"=CASE WHEN %s.\"received_at\" "
             "IS NULL OR excluded.\"received_at\">%s.\"received_at\" THEN excluded.\"received_at\" "
             "ELSE %s.\"received_at\" END",
             target, target, target);
    return sb_buf_append_str(b, sql);
}

int sb_wh_put_users_column(struct sb_buf *b, const char *target, const char *name)
{
    if (!strcmp(name, "id") || !strcmp(name, "received_at"))
        return 0;
    /* name is [a-z0-9_] (sb_wh_ident) and target one of the loaders' constants */
    char sql[8 * (SB_WH_NAME_MAX + 3) + 4 * 80 + 200];
    snprintf(sql, sizeof(sql),
             ",\"%s\"=CASE WHEN excluded.\"received_at\">=%s.\"received_at\" THEN "
             "coalesce(excluded.\"%s\",%s.\"%s\") ELSE coalesce(%s.\"%s\",excluded.\"%s\") END",
             name, target, name, target, name, target, name, name);
    return sb_buf_append_str(b, sql);
}

int sb_wh_put_new_table(struct sb_buf *b, const struct sb_wh_row *row, unsigned max,
                        const char *(*type_name)(enum sb_wh_type),
                        int (*add)(void *table, const char *name, enum sb_wh_type type),
                        void *table)
{
    /* id is the primary key that makes every load idempotent */
    int rc = sb_buf_append_str(b, " (\"id\" ");
    rc = rc ? rc : sb_buf_append_str(b, type_name(SB_WH_TEXT));
    rc = rc ? rc : sb_buf_append_str(b, " PRIMARY KEY");
    rc = rc ? rc : add(table, "id", SB_WH_TEXT);
    unsigned ncols = 1;
    size_t total = row->nbase + row->nfields;
    for (size_t j = 1; rc >= 0 && j < total && ncols < max; j++) {
        const struct sb_wh_field *f = j < row->nbase ? NULL : &row->fields[j - row->nbase];
        const char *name = f ? f->name : row->base[j].name;
        enum sb_wh_type ty = f ? f->v.type : row->base[j].type;
        rc = add(table, name, ty);
        if (rc)
            continue; /* 1: a name seen before */
        ncols++;
        rc = sb_buf_append(b, ", ", 2);
        rc = rc ? rc : sb_wh_put_column(b, name, type_name(ty));
    }
    return rc < 0 ? rc : sb_buf_append(b, ")", 1);
}

/* One transaction per batch: each event modelled once, its rows handed to the loader; an event
 * that cannot be modelled is counted and skipped, any other failure undoes the whole batch. */
int sb_warehouse_load(struct sb_warehouse *w, const struct sb_warehouse_msg *events, size_t n,
                      struct sb_warehouse_stats *stats)
{
    struct sb_warehouse_stats dummy;
    if (!stats)
        stats = &dummy;
    memset(stats, 0, sizeof(*stats));
    if (!w || (!events && n))
        return -EINVAL;
    w->errmsg[0] = 0;
    w->st = stats;
    int rc = w->ops->begin(w);
    if (rc)
        return rc;
    char now[32];
    sb_wh_now(now);
    for (size_t e = 0; e < n; e++) {
        rc = sb_wh_model_event(&w->model, events[e].data, events[e].len, now);
        if (rc == -ENOMEM)
            break;
        if (rc) {
            stats->rejected++;
            snprintf(w->errmsg, sizeof(w->errmsg), "event %zu rejected: %s", e, w->model.errmsg);
            rc = 0;
            continue;
        }
        stats->fields_dropped += w->model.dropped;
        for (size_t r = 0; r < w->model.nrows && !rc; r++)
            rc = w->ops->row(w, &w->model.rows[r]);
        if (rc)
            break;
        stats->events++;
    }
    if (!rc)
        rc = w->ops->commit(w);
    if (rc) {
        char keep[sizeof(w->errmsg)];
        memcpy(keep, w->errmsg, sizeof(keep));
        rc = w->ops->rollback(w, rc);
        memcpy(w->errmsg, keep, sizeof(keep));
        if (rc == -ENOMEM && !keep[0])
            snprintf(w->errmsg, sizeof(w->errmsg), "out of memory");
        memset(stats, 0, sizeof(*stats));
    }
    return rc;
}

const char *sb_warehouse_errmsg(const struct sb_warehouse *w)
{
    return w ? w->errmsg : "no warehouse handle";
}

void sb_warehouse_close(struct sb_warehouse *w)
{
    if (!w)
        return;
    w->ops->close(w);
    sb_wh_model_free(&w->model);
    free(w);
}
