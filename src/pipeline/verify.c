/* verify.c: the verify stage: decode an event's msgpack (with the bounds-checked cursor of
 * src/mp) and check it is a Segment event that Segment would accept, filling its metadata. */
#include "pipeline/verify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "config/config.h"
#include "mp/mp_reader.h"

const char *const sb_verify_reasons[] = {
    "malformed", "not_a_map",   "too_large",      "no_type",    "bad_type",      "no_identity",
    "no_event",  "no_group_id", "no_previous_id", "no_user_id", "no_message_id", "bad_message_id",
    "bad_field", NULL};

static const char *const call_names[SB_CALL_COUNT] = {"identify", "track", "page",
                                                      "screen",   "group", "alias"};

const char *sb_call_name(enum sb_call call)
{
    return (unsigned)call < SB_CALL_COUNT ? call_names[call] : "unknown";
}

/* The top-level keys verify looks at. */
enum key {
    K_TYPE,
    K_USER_ID,
    K_ANONYMOUS_ID,
    K_MESSAGE_ID,
    K_EVENT,
    K_NAME,
    K_GROUP_ID,
    K_PREVIOUS_ID,
    K_PROPERTIES,
    K_TRAITS,
    K_CONTEXT,
    K_INTEGRATIONS,
    K_TIMESTAMP,
    K_WRITE_KEY,
    K_COUNT
};

/* Which known key this is: dispatch on the length first, then fixed-size compares (which the
 * compiler inlines); a linear scan with memcmp showed as 17% of the drain's CPU. */
static int key_index(const uint8_t *s, uint32_t len)
{
    switch (len) {
    case 4:
        return !memcmp(s, "type", 4) ? K_TYPE : !memcmp(s, "name", 4) ? K_NAME : -1;
    case 5:
        return !memcmp(s, "event", 5) ? K_EVENT : -1;
    case 6:
        return !memcmp(s, "userId", 6) ? K_USER_ID : !memcmp(s, "traits", 6) ? K_TRAITS : -1;
    case 7:
        return !memcmp(s, "groupId", 7) ? K_GROUP_ID : !memcmp(s, "context", 7) ? K_CONTEXT : -1;
    case 8:
        return !memcmp(s, "writeKey", 8) ? K_WRITE_KEY : -1;
    case 9:
        return !memcmp(s, "messageId", 9)   ? K_MESSAGE_ID
               : !memcmp(s, "timestamp", 9) ? K_TIMESTAMP
                                            : -1;
    case 10:
        return !memcmp(s, "previousId", 10)   ? K_PREVIOUS_ID
               : !memcmp(s, "properties", 10) ? K_PROPERTIES
                                              : -1;
    case 11:
        return !memcmp(s, "anonymousId", 11) ? K_ANONYMOUS_ID : -1;
    case 12:
        return !memcmp(s, "integrations", 12) ? K_INTEGRATIONS : -1;
    default:
        return -1;
    }
}

#define BAD(r) (-1 - (int)(r))

int sb_event_inspect(const uint8_t *data, size_t len, struct sb_event_meta *meta)
{
    struct sb_mp_reader r;
    struct sb_mp_item top, key, val;
    struct {
        const uint8_t *ptr; /* str payload, or the value's first byte for containers */
        uint32_t len;
        enum sb_mp_type type;
    } found[K_COUNT];
    uint32_t seen = 0;
    int dup = 0;

    meta->message_id = meta->event = meta->user_id = meta->integrations = NULL;
    meta->message_id_len = meta->event_len = meta->user_id_len = meta->integrations_len = 0;
    meta->write_key_at = meta->write_key_end = 0;
    if (len > SB_SEGMENT_MAX_EVENT_BYTES)
        return BAD(SB_VERIFY_TOO_LARGE);
    /* One pass: the top map's entries are read and every value is skipped with a well-formedness
     * and depth check (64 containers in all, so that later stages and the JSON writer can
     * recurse safely); a separate sb_mp_check before it made the drain decode every byte twice.
     * Malformed bytes anywhere win over any other reason, as with the check first. */
    sb_mp_reader_init(&r, data, len);
    if (sb_mp_next(&r, &top) != 0)
        return BAD(SB_VERIFY_MALFORMED);
    if (top.type != SB_MP_MAP)
        return sb_mp_check(data, len, 64) != 0 ? BAD(SB_VERIFY_MALFORMED)
                                               : BAD(SB_VERIFY_NOT_A_MAP);
    for (uint32_t i = 0; i < top.v.count; i++) {
        /* where the key, then the value, starts (a pointer, not a copy of the reader: copying
         * the struct right after sb_mp_next stored into it stalled on store forwarding) */
        const uint8_t *at = r.p, *entry = r.p;
        int k;

        if (sb_mp_next(&r, &key) != 0)
            return BAD(SB_VERIFY_MALFORMED);
        if (key.type == SB_MP_ARRAY || key.type == SB_MP_MAP) {
            /* not a field Segment knows (the JSON writer stringifies it): checked whole */
            r.p = at;
            if (sb_mp_skip_bounded(&r, 63) != 0)
                return BAD(SB_VERIFY_MALFORMED);
        }
        at = r.p;
        if (sb_mp_next(&r, &val) != 0)
            return BAD(SB_VERIFY_MALFORMED);
        if (val.type == SB_MP_ARRAY || val.type == SB_MP_MAP) {
            r.p = at;
            if (sb_mp_skip_bounded(&r, 63) != 0)
                return BAD(SB_VERIFY_MALFORMED);
        }
        if (key.type != SB_MP_STR)
            continue;
        k = key_index(key.v.str.ptr, key.v.str.len);
        if (k < 0)
            continue;
        if (k == K_WRITE_KEY) {
            meta->write_key_at = (uint32_t)(entry - data);
            meta->write_key_end = (uint32_t)(r.p - data);
        }
        if (seen & (1u << k)) {
            dup = 1; /* which of two userIds would a destination see? (after the walk) */
            continue;
        }
        seen |= 1u << k;
        found[k].type = val.type;
        if (val.type == SB_MP_STR) {
            found[k].ptr = val.v.str.ptr;
            found[k].len = val.v.str.len;
        } else {
            found[k].ptr = at;
            found[k].len = (uint32_t)(r.p - at);
        }
    }
    if (r.p != r.end)
        return BAD(SB_VERIFY_MALFORMED);
    if (dup)
        return BAD(SB_VERIFY_BAD_FIELD);

#define HAS(k) ((seen & (1u << (k))) != 0)
#define HAS_STR(k) (HAS(k) && found[k].type == SB_MP_STR && found[k].len > 0)
#define NIL(k) (HAS(k) && found[k].type == SB_MP_NIL)
    if (!HAS(K_TYPE))
        return BAD(SB_VERIFY_NO_TYPE);
    if (found[K_TYPE].type != SB_MP_STR)
        return BAD(SB_VERIFY_BAD_TYPE);
    meta->call = SB_CALL_COUNT;
    for (int c = 0; c < SB_CALL_COUNT; c++)
        if (strlen(call_names[c]) == found[K_TYPE].len &&
            memcmp(call_names[c], found[K_TYPE].ptr, found[K_TYPE].len) == 0)
            meta->call = (enum sb_call)c;
    if (meta->call == SB_CALL_COUNT)
        return BAD(SB_VERIFY_BAD_TYPE);
    /* Identity fields: a string, or null (as some SDKs send for the absent one). */
    for (int k = K_USER_ID; k <= K_ANONYMOUS_ID; k++)
        if (HAS(k) && found[k].type != SB_MP_STR && !NIL(k))
            return BAD(SB_VERIFY_BAD_FIELD);
    if (meta->call == SB_CALL_ALIAS) {
        if (!HAS_STR(K_PREVIOUS_ID))
            return BAD(SB_VERIFY_NO_PREVIOUS_ID);
        if (!HAS_STR(K_USER_ID))
            return BAD(SB_VERIFY_NO_USER_ID);
    } else if (!HAS_STR(K_USER_ID) && !HAS_STR(K_ANONYMOUS_ID)) {
        return BAD(SB_VERIFY_NO_IDENTITY);
    }
    if (meta->call == SB_CALL_TRACK && !HAS_STR(K_EVENT))
        return BAD(SB_VERIFY_NO_EVENT);
    if (meta->call == SB_CALL_GROUP && !HAS_STR(K_GROUP_ID))
        return BAD(SB_VERIFY_NO_GROUP_ID);
    if (!HAS(K_MESSAGE_ID))
        return BAD(SB_VERIFY_NO_MESSAGE_ID);
    if (found[K_MESSAGE_ID].type != SB_MP_STR || found[K_MESSAGE_ID].len == 0 ||
        found[K_MESSAGE_ID].len > SB_SEGMENT_MAX_MESSAGEID)
        return BAD(SB_VERIFY_BAD_MESSAGE_ID);
    for (int k = K_PROPERTIES; k <= K_INTEGRATIONS; k++)
        if (HAS(k) && found[k].type != SB_MP_MAP && !NIL(k))
            return BAD(SB_VERIFY_BAD_FIELD);
    if (HAS(K_TIMESTAMP) && found[K_TIMESTAMP].type != SB_MP_STR && !NIL(K_TIMESTAMP))
        return BAD(SB_VERIFY_BAD_FIELD);
    if ((HAS(K_EVENT) && found[K_EVENT].type != SB_MP_STR && !NIL(K_EVENT)) ||
        (HAS(K_NAME) && found[K_NAME].type != SB_MP_STR && !NIL(K_NAME)) ||
        (HAS(K_GROUP_ID) && found[K_GROUP_ID].type != SB_MP_STR && !NIL(K_GROUP_ID)) ||
        (HAS(K_PREVIOUS_ID) && found[K_PREVIOUS_ID].type != SB_MP_STR && !NIL(K_PREVIOUS_ID)))
        return BAD(SB_VERIFY_BAD_FIELD);

    meta->message_id = found[K_MESSAGE_ID].ptr;
    meta->message_id_len = found[K_MESSAGE_ID].len;
    if (meta->call == SB_CALL_TRACK) {
        meta->event = found[K_EVENT].ptr;
        meta->event_len = found[K_EVENT].len;
    } else if ((meta->call == SB_CALL_PAGE || meta->call == SB_CALL_SCREEN) && HAS_STR(K_NAME)) {
        meta->event = found[K_NAME].ptr;
        meta->event_len = found[K_NAME].len;
    }
    if (HAS_STR(K_USER_ID)) {
        meta->user_id = found[K_USER_ID].ptr;
        meta->user_id_len = found[K_USER_ID].len;
    }
    if (HAS(K_INTEGRATIONS) && found[K_INTEGRATIONS].type == SB_MP_MAP) {
        meta->integrations = found[K_INTEGRATIONS].ptr;
        meta->integrations_len = found[K_INTEGRATIONS].len;
    }
    return 0;
#undef HAS
#undef HAS_STR
#undef NIL
}

int sb_event_guess_message_id(const uint8_t *data, size_t len, const uint8_t **id, size_t *id_len)
{
    static const uint8_t key[10] = {0xa9, 'm', 'e', 's', 's', 'a', 'g', 'e', 'I', 'd'};
    const uint8_t *p = data, *end = data + len;
    size_t n;

    /* memchr for the fixstr header, then the name: glibc's memmem cost twice as much here */
    for (;; p++) {
        if (!(p = memchr(p, key[0], (size_t)(end - p))) || end - p < (ptrdiff_t)sizeof key)
            return 0;
        if (!memcmp(p + 1, key + 1, sizeof key - 1))
            break;
    }
    if (end - (p += sizeof key) < 2)
        return 0;
    if ((*p & 0xe0) == 0xa0) { /* fixstr */
        n = *p & 0x1fu;
        p += 1;
    } else if (*p == 0xd9) { /* str8: a UUID's 36 characters */
        n = p[1];
        p += 2;
    } else {
        return 0;
    }
    if (n > (size_t)(end - p))
        return 0;
    *id = p;
    *id_len = n;
    return 1;
}

/* The event without its writeKey entry, into ev->scratch: the top map's header keeps its form
 * (fixmap, map16, map32) with one entry less. */
static int drop_write_key(struct sb_stage_event *ev)
{
    const uint8_t *d = ev->data;
    const struct sb_event_meta *m = ev->meta;
    uint8_t head[5];
    size_t hl;

    if (d[0] >= 0x81 && d[0] <= 0x8f) {
        head[0] = d[0] - 1;
        hl = 1;
    } else if (d[0] == 0xde) {
        uint32_t n = ((uint32_t)d[1] << 8 | d[2]) - 1;
        head[0] = 0xde;
        head[1] = (uint8_t)(n >> 8);
        head[2] = (uint8_t)n;
        hl = 3;
    } else if (d[0] == 0xdf) {
        uint32_t n = ((uint32_t)d[1] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 | d[4]) - 1;
        head[0] = 0xdf;
        for (int i = 0; i < 4; i++)
            head[1 + i] = (uint8_t)(n >> (24 - 8 * i));
        hl = 5;
    } else {
        return -EPROTO; /* inspect accepted a map: cannot happen */
    }
    sb_buf_clear(ev->scratch);
    if (sb_buf_append(ev->scratch, head, hl) ||
        sb_buf_append(ev->scratch, d + hl, m->write_key_at - hl) ||
        sb_buf_append(ev->scratch, d + m->write_key_end, ev->len - m->write_key_end))
        return -ENOMEM;
    return SB_STAGE_REPLACE; /* re-inspected by the pipeline: rare, only clients that set a key */
}

static int verify_process(struct sb_stage *stage, struct sb_stage_event *ev)
{
    if (ev->meta->verified)
        return SB_STAGE_PASS; /* inspected by the input already: same bytes, same verdict */
    int rc = sb_event_inspect(ev->data, ev->len, ev->meta);

    if (rc == 0)
        return ev->meta->write_key_end ? drop_write_key(ev) : SB_STAGE_PASS;
    ev->reason = (unsigned)(-1 - rc);
    return SB_STAGE_DROP;
}

static void verify_destroy(struct sb_stage *stage)
{
    free(stage);
}

struct sb_stage *sb_verify_stage_new(void)
{
    struct sb_stage *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->name = "verify";
    s->reasons = sb_verify_reasons;
    s->process = verify_process;
    s->destroy = verify_destroy;
    return s;
}
