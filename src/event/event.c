/* event.c: one Segment event, validated and encoded as a msgpack map with Segment's JSON field
 * names into the calling thread's scratch buffer (so nothing half-written ever reaches a ring). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/buf.h"
#include "event/event.h"
#include "event/mpw.h"
#include "json/json.h"

/* Which optional fields each type takes, beyond the common ones. */
enum {
    F_EVENT = 1 << 0,
    F_NAME = 1 << 1,
    F_CATEGORY = 1 << 2,
    F_GROUP = 1 << 3,
    F_PREVIOUS = 1 << 4,
    F_PROPS = 1 << 5,
    F_TRAITS = 1 << 6,
};

static const struct {
    const char *name;
    size_t len;
    unsigned allowed;
} sb_types[] = {
    [SEGBUS_TRACK] = {"track", 5, F_EVENT | F_PROPS},
    [SEGBUS_IDENTIFY] = {"identify", 8, F_TRAITS},
    [SEGBUS_PAGE] = {"page", 4, F_NAME | F_CATEGORY | F_PROPS},
    [SEGBUS_SCREEN] = {"screen", 6, F_NAME | F_CATEGORY | F_PROPS},
    [SEGBUS_GROUP] = {"group", 5, F_GROUP | F_TRAITS},
    [SEGBUS_ALIAS] = {"alias", 5, F_PREVIOUS},
};

SEGBUS_API const char *segbus_type_name(enum segbus_type type)
{
    if (type < SEGBUS_TRACK || type > SEGBUS_ALIAS)
        return NULL;
    return sb_types[type].name;
}

/* ---- context pieces ---- */

static void write_library(struct mpw *w)
{
    MPW_KEY(w, "library");
    mpw_map_hdr(w, 2);
    MPW_KEY(w, "name");
    MPW_KEY(w, "segbus");
    MPW_KEY(w, "version");
    MPW_KEY(w, SEGBUS_VERSION_STRING);
}

static int key_is_library(const uint8_t *k, const uint8_t *end)
{
    return end - k == 8 && memcmp(k, "\xa7library", 8) == 0;
}

/* Parse a map header at p: entry count and the first entry, or NULL if p is not a map. */
static const uint8_t *map_open(const uint8_t *p, const uint8_t *end, uint32_t *count)
{
    if (p >= end)
        return NULL;
    if ((*p & 0xf0) == 0x80) {
        *count = *p & 0x0f;
        return p + 1;
    }
    if (*p == 0xde && end - p >= 3) {
        *count = (uint32_t)p[1] << 8 | p[2];
        return p + 3;
    }
    if (*p == 0xdf && end - p >= 5) {
        *count = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        return p + 5;
    }
    return NULL;
}

int sb_event_cfg_context(struct sb_event_cfg *cfg, const uint8_t *ctx, size_t len,
                         uint8_t **storage)
{
    uint32_t n = 0;
    const uint8_t *e = NULL, *end = ctx ? ctx + len : NULL;
    if (ctx) {
        e = map_open(ctx, end, &n);
        if (!e)
            return -EINVAL;
    }
    /* Entries without library, then "context" + the full map. */
    uint8_t *s = malloc(2 * len + 128 + 2 * MPW_SLACK);
    if (!s)
        return -ENOMEM;
    uint8_t *o = s;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k = e, *v = sb_event_skip(e, end);
        const uint8_t *next = v ? sb_event_skip(v, end) : NULL;
        if (!next) {
            free(s);
            return -EINVAL;
        }
        if (!key_is_library(k, v)) {
            memcpy(o, k, (size_t)(next - k));
            o += next - k;
            kept++;
        }
        e = next;
    }
    size_t entries_len = (size_t)(o - s);
    struct mpw w = {o, o + len + 128};
    MPW_KEY(&w, "context");
    mpw_map_hdr(&w, kept + 1);
    write_library(&w);
    memcpy(w.p, s, entries_len);
    w.p += entries_len;
    cfg->ctx_entries = kept ? s : NULL;
    cfg->ctx_entries_len = entries_len;
    cfg->ctx_count = kept;
    cfg->ctx_full = o;
    cfg->ctx_full_len = (size_t)(w.p - o);
    *storage = s;
    return 0;
}

static struct sb_event_cfg sb_nocfg;
static pthread_once_t sb_nocfg_once = PTHREAD_ONCE_INIT;
static uint8_t *sb_nocfg_storage;

static void nocfg_init(void)
{
    if (sb_event_cfg_context(&sb_nocfg, NULL, 0, &sb_nocfg_storage) < 0)
        sb_nocfg.ctx_full = NULL;
}

/* ---- JSON text input ---- */

struct jsink {
    uint8_t *p;
    uint8_t *end;
    int overflow;
};

static int jsink_write(void *data, const char *b, size_t n)
{
    struct jsink *s = data;
    /* Past the limit keep going without writing, so a JSON error later in the text is still
     * the one reported (it is the more useful message). */
    if (s->overflow || s->p > s->end || (size_t)(s->end - s->p) < n) {
        s->overflow = 1;
        return 0;
    }
    mpw_copy(s->p, b, n); /* the packer hands over 1-9 byte headers and short strings */
    s->p += n;
    return 0;
}

/* How many '[' and '{' the text holds (an upper bound of its nesting), 8 bytes at a time:
 * x | 0x20 maps exactly '[' (0x5b) and '{' (0x7b) to 0x7b, and the zero-byte test is exact. */
static size_t count_openers(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, low7 = 0x7f7f7f7f7f7f7f7full;
    size_t count = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t v = (w | (0x20 * ones)) ^ (0x7b * ones);
        uint64_t zero = ~(((v & low7) + low7) | v | low7); /* high bit set where v's byte is 0 */
        count += (size_t)__builtin_popcountll(zero);
    }
    for (; i < n; i++)
        count += s[i] == '[' || s[i] == '{';
    return count;
}

static int is_map_byte(uint8_t b)
{
    return (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf;
}

/* Convert a JSON object text at *p (bounded by end); advances *p. */
static int json_object_at(const char *field, const char *json, size_t len, uint8_t **p,
                          uint8_t *end)
{
    struct jsink s = {*p, end, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, jsink_write);
    struct sb_json_error je = {0, NULL};
    int rc = sb_json_to_msgpack(json, len, &pk, &je);
    if (rc == -SEGBUS_EJSON)
        return sb_err(rc, "%s: invalid JSON at byte %zu: %s", field, je.offset,
                      je.reason ? je.reason : "syntax error");
    if (rc == -SEGBUS_EUTF8)
        return sb_err(rc, "%s: invalid UTF-8 at byte %zu", field, je.offset);
    if (rc < 0)
        return sb_err(rc, "%s: %s", field, segbus_strerror(rc));
    if (s.overflow)
        return sb_err(-EMSGSIZE, "%s: the event is over the 32 KB limit", field);
    if (s.p == *p || !is_map_byte(**p))
        return sb_err(-SEGBUS_ENOTOBJECT, "%s: must be a JSON object", field);
    /* The converter allows 64 levels; an event allows 32 in all (see SB_EVENT_MAX_DEPTH). A text
     * with at most that many brackets cannot be deeper, which spares the walk for most events. */
    if (count_openers(json, len) > SB_PAYLOAD_MAX_DEPTH) {
        int d = sb_event_depth(*p, s.p);
        if (d < 0 || d > SB_PAYLOAD_MAX_DEPTH)
            return sb_err(-SEGBUS_EJSON,
                          "%s: JSON nested more than %d levels deep (an event is at most %d)",
                          field, SB_PAYLOAD_MAX_DEPTH, SB_EVENT_MAX_DEPTH);
    }
    *p = s.p;
    return 0;
}

int sb_event_json_object(const char *field, const char *json, size_t len, struct sb_buf *buf)
{
    if (len == SIZE_MAX)
        len = strlen(json);
    uint8_t *tmp = sb_scratch_temp();
    if (!tmp)
        return sb_err(-ENOMEM, "%s: out of memory", field);
    uint8_t *p = tmp;
    int rc = json_object_at(field, json, len, &p, tmp + SB_SCRATCH_BYTES);
    if (rc)
        return rc;
    return sb_buf_append(buf, tmp, (size_t)(p - tmp));
}

/* ---- one event ---- */

struct payload {
    const char *field;
    const char *json;
    const segbus_map_t *map;
    struct sb_map_view view;
};

static int payload_check(struct payload *pl)
{
    if (pl->json && pl->map)
        return sb_err(-EINVAL, "%s: give either %s_json or the builder, not both", pl->field,
                      pl->field);
    if (pl->map) {
        sb_map_get_view(pl->map, &pl->view);
        if (pl->view.err)
            return sb_err(pl->view.err, "%s%s%s", pl->field, pl->view.detail[0] == '[' ? "" : ".",
                          pl->view.detail);
    }
    return 0;
}

static int payload_present(const struct payload *pl)
{
    return pl->json || pl->map;
}

/* Write key + value of a payload at w. */
static int payload_write(struct payload *pl, struct mpw *w, size_t key_len)
{
    mpw_str(w, pl->field, key_len);
    if (pl->map) {
        if (!mpw_room(w, pl->view.len))
            return sb_err(-EMSGSIZE, "%s: the event is over the 32 KB limit", pl->field);
        mpw_map_hdr(w, pl->view.count);
        memcpy(w->p, pl->view.entries, pl->view.len);
        w->p += pl->view.len;
        return 0;
    }
    return json_object_at(pl->field, pl->json, strlen(pl->json), &w->p, w->end);
}

/* The call's context merged over the defaults, with segbus's library. */
static int context_write(const struct sb_event_cfg *cfg, struct payload *pl, struct mpw *w)
{
    const uint8_t *ce, *cend; /* caller's entries */
    uint32_t cn;
    if (pl->map) {
        ce = pl->view.entries;
        cend = ce + pl->view.len;
        cn = pl->view.count;
    } else {
        uint8_t *tmp = sb_scratch_temp();
        if (!tmp)
            return sb_err(-ENOMEM, "context: out of memory");
        uint8_t *p = tmp;
        int rc = json_object_at("context", pl->json, strlen(pl->json), &p, tmp + SB_SCRATCH_BYTES);
        if (rc)
            return rc;
        ce = map_open(tmp, p, &cn);
        cend = p;
        if (!ce)
            return sb_err(-SEGBUS_ENOTOBJECT, "context: must be a JSON object");
    }
    /* Pass 1: count what is kept; pass 2 writes. Keys compare as their msgpack bytes (both
     * sides are written in the smallest form, so equal strings are equal bytes). */
    uint32_t total = 1;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            MPW_KEY(w, "context");
            mpw_map_hdr(w, total);
            write_library(w);
        }
        const uint8_t *e = cfg->ctx_entries, *eend = e ? e + cfg->ctx_entries_len : NULL;
        for (uint32_t i = 0; i < cfg->ctx_count; i++) {
            const uint8_t *k = e, *v = sb_event_skip(e, eend), *next = sb_event_skip(v, eend);
            int overridden = 0;
            const uint8_t *c = ce;
            for (uint32_t j = 0; j < cn && c; j++) {
                const uint8_t *cv = sb_event_skip(c, cend);
                if (!cv)
                    break;
                if (cv - c == v - k && memcmp(c, k, (size_t)(v - k)) == 0) {
                    overridden = 1;
                    break;
                }
                c = sb_event_skip(cv, cend);
            }
            if (!overridden) {
                if (pass == 0) {
                    total++;
                } else {
                    if (!mpw_room(w, (size_t)(next - k)))
                        return sb_err(-EMSGSIZE, "context: the event is over the 32 KB limit");
                    memcpy(w->p, k, (size_t)(next - k));
                    w->p += next - k;
                }
            }
            e = next;
        }
        const uint8_t *c = ce;
        for (uint32_t j = 0; j < cn; j++) {
            const uint8_t *cv = sb_event_skip(c, cend);
            const uint8_t *next = cv ? sb_event_skip(cv, cend) : NULL;
            if (!next)
                return sb_err(-EINVAL, "context: malformed");
            if (!key_is_library(c, cv)) {
                if (pass == 0) {
                    total++;
                } else {
                    if (!mpw_room(w, (size_t)(next - c)))
                        return sb_err(-EMSGSIZE, "context: the event is over the 32 KB limit");
                    memcpy(w->p, c, (size_t)(next - c));
                    w->p += next - c;
                }
            }
            c = next;
        }
    }
    return 0;
}

static int check_str(const char *field, const char *s, size_t *len)
{
    size_t n = strlen(s), bad;
    *len = n;
    if (!sb_utf8_valid(s, n, &bad))
        return sb_err(-SEGBUS_EUTF8, "%s: invalid UTF-8 at byte %zu", field, bad);
    return 0;
}

static int nonempty(const char *s)
{
    return s && s[0];
}

int sb_event_encode(const struct sb_event_cfg *cfg, enum segbus_type type,
                    const segbus_message_t *m, const uint8_t **out, size_t *out_len,
                    segbus_sent_t *sent)
{
    sb_err_clear();
    if (!m)
        return sb_err(-EINVAL, "message is NULL");
    if (type < SEGBUS_TRACK || type > SEGBUS_ALIAS)
        return sb_err(-EINVAL, "unknown event type %d", (int)type);
    if (!cfg) {
        pthread_once(&sb_nocfg_once, nocfg_init);
        if (!sb_nocfg.ctx_full)
            return sb_err(-ENOMEM, "out of memory");
        cfg = &sb_nocfg;
    }
    const char *tname = sb_types[type].name;
    unsigned allowed = sb_types[type].allowed;
    struct payload props = {"properties", m->properties_json, m->properties, {0}};
    struct payload traits = {"traits", m->traits_json, m->traits, {0}};
    struct payload ctx = {"context", m->context_json, m->context, {0}};
    struct payload integ = {"integrations", m->integrations_json, m->integrations, {0}};

    /* Fields this type does not take: refused, so they are never silently lost. */
    static const struct {
        unsigned flag;
        size_t off1, off2;
        const char *name;
    } extra[] = {
        {F_EVENT, offsetof(segbus_message_t, event), offsetof(segbus_message_t, event), "event"},
        {F_NAME, offsetof(segbus_message_t, name), offsetof(segbus_message_t, name), "name"},
        {F_CATEGORY, offsetof(segbus_message_t, category), offsetof(segbus_message_t, category),
         "category"},
        {F_GROUP, offsetof(segbus_message_t, group_id), offsetof(segbus_message_t, group_id),
         "groupId"},
        {F_PREVIOUS, offsetof(segbus_message_t, previous_id),
         offsetof(segbus_message_t, previous_id), "previousId"},
        {F_PROPS, offsetof(segbus_message_t, properties_json),
         offsetof(segbus_message_t, properties), "properties"},
        {F_TRAITS, offsetof(segbus_message_t, traits_json), offsetof(segbus_message_t, traits),
         "traits"},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        if (allowed & extra[i].flag)
            continue;
        const void *a, *b;
        memcpy(&a, (const char *)m + extra[i].off1, sizeof a);
        memcpy(&b, (const char *)m + extra[i].off2, sizeof b);
        if (a || b)
            return sb_err(-EINVAL, "%s does not take %s", tname, extra[i].name);
    }

    /* Required fields, as Segment's. */
    if (type == SEGBUS_ALIAS) {
        if (!nonempty(m->previous_id))
            return sb_err(-SEGBUS_ENOPREVIOUS, "alias needs previousId");
        if (!nonempty(m->user_id))
            return sb_err(-SEGBUS_ENOUSERID, "alias needs userId");
    } else if (!nonempty(m->user_id) && !nonempty(m->anonymous_id)) {
        return sb_err(-SEGBUS_ENOIDENTITY, "%s needs userId or anonymousId", tname);
    }
    if (type == SEGBUS_TRACK && !nonempty(m->event))
        return sb_err(-SEGBUS_ENOEVENT, "track needs a non-empty event");
    if (type == SEGBUS_GROUP && !nonempty(m->group_id))
        return sb_err(-SEGBUS_ENOGROUPID, "group needs groupId");

    /* Every caller string: valid UTF-8. */
    struct {
        const char *name;
        const char *s;
        size_t len;
    } strs[] = {
        {"userId", m->user_id, 0},
        {"anonymousId", m->anonymous_id, 0},
        {"event", m->event, 0},
        {"name", m->name, 0},
        {"category", m->category, 0},
        {"groupId", m->group_id, 0},
        {"previousId", m->previous_id, 0},
        {"messageId", m->message_id, 0},
        {"timestamp", m->timestamp, 0},
    };
    enum { S_USER, S_ANON, S_EVENT, S_NAME, S_CAT, S_GROUP, S_PREV, S_MSGID, S_TS, S_N };
    size_t var_bytes = 64; /* a generated messageId and timestamp */
    for (int i = 0; i < S_N; i++) {
        if (!strs[i].s)
            continue;
        int rc = check_str(strs[i].name, strs[i].s, &strs[i].len);
        if (rc)
            return rc;
        var_bytes += strs[i].len;
    }
    if (m->message_id) {
        size_t n = sb_utf8_count(m->message_id, strs[S_MSGID].len);
        if (n == 0 || n > SEGBUS_MAX_MESSAGE_ID)
            return sb_err(-SEGBUS_EMESSAGEID, "messageId: %zu characters (1 to %d allowed)", n,
                          SEGBUS_MAX_MESSAGE_ID);
    }
    if (m->timestamp && !sb_rfc3339_valid(m->timestamp, strs[S_TS].len))
        return sb_err(-SEGBUS_ETIMESTAMP,
                      "timestamp: \"%.60s\" is not RFC 3339 (e.g. 2026-11-28T14:13:30.123Z)",
                      m->timestamp);
    if (var_bytes > SEGBUS_MAX_EVENT_BYTES)
        return sb_err(-EMSGSIZE, "the event is over the 32 KB limit");
    struct payload *pls[4] = {&props, &traits, &ctx, &integ};
    for (int i = 0; i < 4; i++) {
        int rc = payload_check(pls[i]);
        if (rc)
            return rc;
    }

    uint8_t *buf = sb_scratch_event();
    if (!buf)
        return sb_err(-ENOMEM, "out of memory");
    /* The header fields below are written unchecked: var_bytes <= 32 KB was checked above and
     * their keys and headers (< 256 bytes) fit in the allocation's slack. Later pieces are
     * checked against w.end, itself inside the slack; the final size check is exact. */
    struct mpw w = {buf, buf + SB_SCRATCH_BYTES + 256};

    int64_t sec = 0;
    uint32_t nsec = 0;
    if (!m->message_id || (!m->timestamp && !m->timestamp_ms))
        sb_clock_now(&sec, &nsec);
    char idbuf[37];
    const char *msgid = m->message_id;
    size_t msgid_len = strs[S_MSGID].len;
    if (!msgid) {
        sb_uuid7(sec, nsec, idbuf, NULL);
        msgid = idbuf;
        msgid_len = 36;
    }
    char tsbuf[25];
    const char *ts = m->timestamp;
    size_t ts_len = strs[S_TS].len;
    if (!ts) {
        if (m->timestamp_ms) {
            int64_t s = m->timestamp_ms / 1000, ms = m->timestamp_ms % 1000;
            if (ms < 0) {
                s--;
                ms += 1000;
            }
            sb_timestamp_format(s, (uint32_t)ms, tsbuf);
        } else {
            sb_timestamp_format(sec, nsec / 1000000u, tsbuf);
        }
        ts = tsbuf;
        ts_len = 24;
    }

    uint32_t count = 4; /* type, messageId, timestamp, context */
    for (int i = 0; i < S_N; i++)
        count += strs[i].s != NULL && i != S_MSGID && i != S_TS;
    count += payload_present(&props) + payload_present(&traits) + payload_present(&integ);
    count += cfg->write_key != NULL;

    mpw_map_hdr(&w, count);
    MPW_KEY(&w, "type");
    mpw_str(&w, tname, sb_types[type].len);
    MPW_KEY(&w, "messageId");
    mpw_str(&w, msgid, msgid_len);
    MPW_KEY(&w, "timestamp");
    mpw_str(&w, ts, ts_len);
    /* Field order: ids, then the call's own, then the payloads. */
    static const struct {
        const char *key;
        size_t len;
    } keys[] = {{"userId", 6},   {"anonymousId", 11}, {"event", 5},      {"name", 4},
                {"category", 8}, {"groupId", 7},      {"previousId", 10}};
    for (int i = 0; i < S_MSGID; i++) {
        if (!strs[i].s)
            continue;
        mpw_str(&w, keys[i].key, keys[i].len);
        mpw_str(&w, strs[i].s, strs[i].len);
    }
    int rc;
    if (payload_present(&props) && (rc = payload_write(&props, &w, 10)))
        return rc;
    if (payload_present(&traits) && (rc = payload_write(&traits, &w, 6)))
        return rc;
    if (payload_present(&ctx)) {
        if ((rc = context_write(cfg, &ctx, &w)))
            return rc;
    } else {
        if (!mpw_room(&w, cfg->ctx_full_len))
            return sb_err(-EMSGSIZE, "context: the event is over the 32 KB limit");
        memcpy(w.p, cfg->ctx_full, cfg->ctx_full_len);
        w.p += cfg->ctx_full_len;
    }
    if (payload_present(&integ) && (rc = payload_write(&integ, &w, 12)))
        return rc;
    if (cfg->write_key) {
        if (!mpw_room(&w, cfg->write_key_len + 16))
            return sb_err(-EMSGSIZE, "the event is over the 32 KB limit");
        MPW_KEY(&w, "writeKey");
        mpw_str(&w, cfg->write_key, cfg->write_key_len);
    }
    size_t len = (size_t)(w.p - buf);
    if (len > SEGBUS_MAX_EVENT_BYTES)
        return sb_err(-EMSGSIZE, "the event is %zu bytes, over the 32 KB limit", len);
    if (sent) {
        sent->message_id = m->message_id ? m->message_id : sent->generated_id;
        if (m->message_id)
            sent->generated_id[0] = 0;
        else
            memcpy(sent->generated_id, idbuf, 37);
        size_t tl = ts_len < sizeof sent->timestamp ? ts_len : sizeof sent->timestamp - 1;
        memcpy(sent->timestamp, ts, tl);
        sent->timestamp[tl] = 0;
        sent->bytes = len;
    }
    *out = buf;
    *out_len = len;
    return 0;
}
