/* hub.c: the hub's HTTP input: Segment Tracking API routes, write keys, batch envelopes (JSON and
 * msgpack), per-event enrichment, and answers held back until the events are durable. */
#include "hub/hub.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include "common/buf.h"
#include "common/log.h"
#include "event/event.h"
#include "json/json.h"
#include "mp/mp_reader.h"
#include "pipeline/verify.h"

/* ---- small helpers ------------------------------------------------------------------------ */

static int buf_write(void *data, const char *buf, size_t len)
{
    return sb_buf_append(data, buf, len);
}

static void json_str(struct sb_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    sb_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_buf_append(b, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sb_buf_append(b, e, 6);
        } else {
            sb_buf_append(b, &s[i], 1);
        }
    }
    sb_buf_append(b, "\"", 1);
}

static void fail_json(struct sb_buf *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_json(struct sb_buf *resp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sb_buf_clear(resp);
    sb_buf_append_str(resp, "{\"success\":false,\"error\":");
    json_str(resp, msg, strlen(msg));
    sb_buf_append_str(resp, "}");
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, size_t n, unsigned *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (unsigned)(s[i] - '0');
    }
    return 0;
}

int sb_hub_parse_time(const char *s, size_t n, int64_t *ms)
{
    unsigned Y, M, D, h, mi, sec, frac = 0, fd = 0;
    size_t i = 19;
    int64_t off = 0;

    if (n < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
        digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60)
        return -EINVAL;
    if (s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (fd < 3) {
                frac = frac * 10 + (unsigned)(s[i] - '0');
                fd++;
            }
            i++;
        }
        if (fd == 0)
            return -EINVAL;
        while (fd < 3) {
            frac *= 10;
            fd++;
        }
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        off = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        unsigned oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off = (int64_t)(oh * 60 + om) * 60;
        if (s[i] == '-')
            off = -off;
    } else {
        return -EINVAL;
    }
    *ms = ((days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000 + frac;
    return 0;
}

static void format_ms(int64_t ms, char out[25])
{
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    sb_timestamp_format(sec, (uint32_t)(ms - sec * 1000), out);
}

/* ---- routes ------------------------------------------------------------------------------- */

enum route_kind { R_NONE, R_SINGLE, R_BATCH };

static enum route_kind route_of(const char *path, const char **type)
{
    static const struct {
        const char *long_name, *short_name, *type;
    } singles[] = {{"track", "t", "track"}, {"identify", "i", "identify"},
                   {"page", "p", "page"},   {"screen", "s", "screen"},
                   {"group", "g", "group"}, {"alias", "a", "alias"}};
    const char *p;

    *type = NULL;
    if (strncmp(path, "/v1/", 4) != 0)
        return R_NONE;
    p = path + 4;
    if (!strcmp(p, "batch") || !strcmp(p, "b") || !strcmp(p, "import") || !strcmp(p, "import/") ||
        !strcmp(p, "batch/"))
        return R_BATCH;
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++) {
        size_t ln = strlen(singles[i].long_name);
        if (!strcmp(p, singles[i].short_name) || !strcmp(p, singles[i].long_name) ||
            (!strncmp(p, singles[i].long_name, ln) && !strcmp(p + ln, "/"))) {
            *type = singles[i].type;
            return R_SINGLE;
        }
    }
    return R_NONE;
}

/* ---- write keys --------------------------------------------------------------------------- */

/* "Basic base64(key:)" -> key; the colon and password are optional. 0 or -EINVAL. */
static int basic_key(const char *auth, char *out, size_t outlen, size_t *klen)
{
    unsigned char dec[512];
    size_t n, pad = 0;
    int m;

    if (strncasecmp(auth, "Basic ", 6) != 0)
        return -EINVAL;
    auth += 6;
    while (*auth == ' ')
        auth++;
    n = strcspn(auth, " \t\r\n");
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof dec)
        return -EINVAL;
    m = EVP_DecodeBlock(dec, (const unsigned char *)auth, (int)n);
    if (m < 0)
        return -EINVAL;
    if (auth[n - 1] == '=')
        pad++;
    if (auth[n - 2] == '=')
        pad++;
    m -= (int)pad;
    size_t k = 0;
    while (k < (size_t)m && dec[k] != ':')
        k++;
    if (k == 0 || k >= outlen) {
        OPENSSL_cleanse(dec, sizeof dec);
        return -EINVAL;
    }
    memcpy(out, dec, k);
    out[k] = 0;
    *klen = k;
    OPENSSL_cleanse(dec, sizeof dec);
    return 0;
}

/* The source of a write key, comparing 128-bit hashes in constant time against every key (no
 * early exit: the time does not say which key, or how much of one, matched). -1 unknown;
 * *expired set when the key matched but has expired (its expiry in *exp). */
static int find_source(const struct sb_config *cfg, const char *key, size_t klen, int64_t now_ms,
                       bool *expired, int64_t *exp)
{
    XXH128_hash_t want = XXH3_128bits(key, klen);
    int found = -1;

    *expired = false;
    for (size_t s = 0; s < cfg->n_sources; s++)
        for (size_t k = 0; k < cfg->sources[s].n_write_keys; k++) {
            const struct sb_write_key *wk = &cfg->sources[s].write_keys[k];
            XXH128_hash_t h = XXH3_128bits(wk->key, strlen(wk->key));
            int eq = CRYPTO_memcmp(&h, &want, sizeof h) == 0;
            if (eq && found < 0) {
                if (wk->expires && now_ms / 1000 >= wk->expires) {
                    *expired = true;
                    *exp = wk->expires;
                } else {
                    found = (int)s;
                    *expired = false;
                }
            }
        }
    return found;
}

/* ---- one request -------------------------------------------------------------------------- */

struct envelope {
    struct sb_mp_reader batch; /* the array (batch) or the single event map */
    bool has_batch;
    const uint8_t *context, *integrations; /* batch-level maps (msgpack), or NULL */
    size_t context_len, integrations_len;
    const char *sent_at, *write_key;
    size_t sent_at_len, write_key_len;
    const uint8_t *end; /* just past the top map */
};

static bool key_is(const struct sb_mp_item *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == SB_MP_STR && k->v.str.len == n && !memcmp(k->v.str.ptr, s, n);
}

/* The value at r (consumed) as a byte range. */
static int value_range(struct sb_mp_reader *r, const uint8_t **p, size_t *n)
{
    const uint8_t *start = r->p;
    if (sb_mp_skip(r))
        return -EINVAL;
    *p = start;
    *n = (size_t)(r->p - start);
    return 0;
}

/* Collect the envelope's fields from the top map (of `pairs` pairs) at r. */
static int read_envelope(struct sb_mp_reader r, uint32_t pairs, struct envelope *env)
{
    struct sb_mp_item k, v;

    memset(env, 0, sizeof *env);
    for (uint32_t i = 0; i < pairs; i++) {
        if (sb_mp_next(&r, &k))
            return -EINVAL;
        struct sb_mp_reader at = r;
        if (sb_mp_peek(&r, &v))
            return -EINVAL;
        if (key_is(&k, "batch") && v.type == SB_MP_ARRAY) {
            env->batch = at;
            env->has_batch = true;
        } else if (key_is(&k, "context") && v.type == SB_MP_MAP) {
            if (value_range(&r, &env->context, &env->context_len))
                return -EINVAL;
            continue;
        } else if (key_is(&k, "integrations") && v.type == SB_MP_MAP) {
            if (value_range(&r, &env->integrations, &env->integrations_len))
                return -EINVAL;
            continue;
        } else if (key_is(&k, "sentAt") && v.type == SB_MP_STR) {
            env->sent_at = (const char *)v.v.str.ptr;
            env->sent_at_len = v.v.str.len;
        } else if (key_is(&k, "writeKey") && v.type == SB_MP_STR) {
            env->write_key = (const char *)v.v.str.ptr;
            env->write_key_len = v.v.str.len;
        }
        if (sb_mp_skip(&r))
            return -EINVAL;
    }
    env->end = r.p;
    return 0;
}

/* Pack a map that is `base` (an event's map, may be NULL) plus the entries of `extra` (the
 * batch's) whose keys base lacks: the event's own values win. */
static int pack_merged(msgpack_packer *pk, struct sb_buf *out, const uint8_t *base, size_t blen,
                       const uint8_t *extra, size_t elen)
{
    struct sb_mp_reader rb, re;
    struct sb_mp_item bi, ei, k;
    uint32_t add = 0;

    bi.v.count = 0;
    if (base) {
        sb_mp_reader_init(&rb, base, blen);
        if (sb_mp_next(&rb, &bi))
            return -EINVAL;
    }
    sb_mp_reader_init(&re, extra, elen);
    if (sb_mp_next(&re, &ei))
        return -EINVAL;
    /* Count the batch keys the event lacks. */
    struct sb_mp_reader e = re;
    for (uint32_t i = 0; i < ei.v.count; i++) {
        if (sb_mp_next(&e, &k) || sb_mp_skip(&e))
            return -EINVAL;
        struct sb_mp_reader probe = rb;
        int f = base && k.type == SB_MP_STR
                    ? sb_mp_map_find(&probe, bi.v.count, (const char *)k.v.str.ptr, k.v.str.len)
                    : 0;
        if (f < 0)
            return -EINVAL;
        if (!f)
            add++;
    }
    msgpack_pack_map(pk, bi.v.count + add);
    if (base)
        sb_buf_append(out, rb.p, blen - (size_t)(rb.p - base));
    e = re;
    for (uint32_t i = 0; i < ei.v.count; i++) {
        const uint8_t *kp = e.p;
        if (sb_mp_next(&e, &k))
            return -EINVAL;
        struct sb_mp_reader probe = rb;
        int f = base && k.type == SB_MP_STR
                    ? sb_mp_map_find(&probe, bi.v.count, (const char *)k.v.str.ptr, k.v.str.len)
                    : 0;
        if (sb_mp_skip(&e))
            return -EINVAL;
        if (!f)
            sb_buf_append(out, kp, (size_t)(e.p - kp));
    }
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Rebuild one event: the route's type, merged context/integrations, corrected timestamp,
 * originalTimestamp, sentAt, receivedAt, messageId when missing; writeKey removed. */
enum ekey {
    EK_OTHER,
    EK_CONTEXT,
    EK_INTEGRATIONS,
    EK_TIMESTAMP,
    EK_ORIG_TS,
    EK_SENT_AT,
    EK_MESSAGE_ID,
    EK_TYPE,
    EK_WRITE_KEY,
    EK_RECEIVED_AT
};

/* Which of the fields the hub rewrites a key is (dispatch on length: this runs per key). */
static enum ekey ekey_of(const struct sb_mp_item *k)
{
    const char *s = (const char *)k->v.str.ptr;

    if (k->type != SB_MP_STR)
        return EK_OTHER;
    switch (k->v.str.len) {
    case 4:
        return !memcmp(s, "type", 4) ? EK_TYPE : EK_OTHER;
    case 6:
        return !memcmp(s, "sentAt", 6) ? EK_SENT_AT : EK_OTHER;
    case 7:
        return !memcmp(s, "context", 7) ? EK_CONTEXT : EK_OTHER;
    case 8:
        return !memcmp(s, "writeKey", 8) ? EK_WRITE_KEY : EK_OTHER;
    case 9:
        return !memcmp(s, "timestamp", 9)   ? EK_TIMESTAMP
               : !memcmp(s, "messageId", 9) ? EK_MESSAGE_ID
                                            : EK_OTHER;
    case 10:
        return !memcmp(s, "receivedAt", 10) ? EK_RECEIVED_AT : EK_OTHER;
    case 12:
        return !memcmp(s, "integrations", 12) ? EK_INTEGRATIONS : EK_OTHER;
    case 17:
        return !memcmp(s, "originalTimestamp", 17) ? EK_ORIG_TS : EK_OTHER;
    default:
        return EK_OTHER;
    }
}

/* Rebuild one event: the route's type, merged context/integrations, corrected timestamp,
 * originalTimestamp, sentAt, receivedAt, messageId when missing; writeKey removed. One pass over
 * the event: the pairs kept as they are are remembered as byte ranges (adjacent ones joined). */
static int build_event(struct sb_mp_reader *r, const struct envelope *env, const char *type,
                       int64_t now_ms, struct sb_buf *out)
{
    struct sb_mp_item top, k, v;
    msgpack_packer pk;
    const uint8_t *ctx = NULL, *integ = NULL, *mid = NULL;
    size_t ctx_len = 0, integ_len = 0;
    const char *ts = NULL, *ots = NULL, *sent = env->sent_at;
    size_t ts_len = 0, ots_len = 0, sent_len = env->sent_at_len;
    uint32_t keep = 0, n;
    struct range {
        const uint8_t *p;
        size_t n;
    } ranges[32];
    size_t nranges = 0;
    bool overflow = false;
    struct sb_mp_reader start;

    if (sb_mp_peek(r, &top))
        return -EINVAL;
    if (top.type != SB_MP_MAP)
        return sb_mp_skip(r) ? -EINVAL : -EPROTO;
    if (sb_mp_next(r, &top))
        return -EINVAL;
    start = *r;
    for (uint32_t i = 0; i < top.v.count; i++) {
        const uint8_t *kp = r->p;
        bool copy = false;
        if (sb_mp_next(r, &k) || sb_mp_peek(r, &v))
            return -EINVAL;
        bool str = v.type == SB_MP_STR;
        switch (ekey_of(&k)) {
        case EK_CONTEXT:
            if (v.type == SB_MP_MAP) {
                if (value_range(r, &ctx, &ctx_len))
                    return -EINVAL;
                continue;
            }
            copy = true;
            break;
        case EK_INTEGRATIONS:
            if (v.type == SB_MP_MAP) {
                if (value_range(r, &integ, &integ_len))
                    return -EINVAL;
                continue;
            }
            copy = true;
            break;
        case EK_TIMESTAMP:
            if (str) {
                ts = (const char *)v.v.str.ptr;
                ts_len = v.v.str.len;
            }
            break;
        case EK_ORIG_TS:
            if (str) {
                ots = (const char *)v.v.str.ptr;
                ots_len = v.v.str.len;
            }
            break;
        case EK_SENT_AT:
            if (str) {
                sent = (const char *)v.v.str.ptr;
                sent_len = v.v.str.len;
            }
            break;
        case EK_MESSAGE_ID:
            mid = r->p;
            copy = true;
            break;
        case EK_TYPE:
            copy = !type;
            break;
        case EK_WRITE_KEY:   /* a secret */
        case EK_RECEIVED_AT: /* server-set */
            break;
        case EK_OTHER:
            copy = true;
            break;
        }
        if (sb_mp_skip(r))
            return -EINVAL;
        if (!copy)
            continue;
        keep++;
        if (nranges && ranges[nranges - 1].p + ranges[nranges - 1].n == kp)
            ranges[nranges - 1].n += (size_t)(r->p - kp);
        else if (nranges < sizeof ranges / sizeof ranges[0])
            ranges[nranges++] = (struct range){kp, (size_t)(r->p - kp)};
        else
            overflow = true;
    }

    sb_buf_clear(out);
    msgpack_packer_init(&pk, out, buf_write);
    n = keep + (type ? 1 : 0) + 2 /* timestamp, receivedAt */ + (!mid ? 1 : 0) +
        ((ts || ots) ? 1 : 0) + (sent ? 1 : 0) + ((ctx || env->context) ? 1 : 0) +
        ((integ || env->integrations) ? 1 : 0);
    msgpack_pack_map(&pk, n);
    if (type) {
        pack_str(&pk, "type", 4);
        pack_str(&pk, type, strlen(type));
    }
    if (!overflow) {
        for (size_t i = 0; i < nranges; i++)
            sb_buf_append(out, ranges[i].p, ranges[i].n);
    } else {
        /* More than 32 separate runs of kept pairs: walk the event again. */
        struct sb_mp_reader c = start;
        for (uint32_t i = 0; i < top.v.count; i++) {
            const uint8_t *kp = c.p;
            if (sb_mp_next(&c, &k) || sb_mp_peek(&c, &v))
                return -EINVAL;
            enum ekey e = ekey_of(&k);
            bool copy = e == EK_OTHER || e == EK_MESSAGE_ID || (e == EK_TYPE && !type) ||
                        ((e == EK_CONTEXT || e == EK_INTEGRATIONS) && v.type != SB_MP_MAP);
            if (sb_mp_skip(&c))
                return -EINVAL;
            if (copy)
                sb_buf_append(out, kp, (size_t)(c.p - kp));
        }
    }
    if (ctx || env->context) {
        pack_str(&pk, "context", 7);
        if (!env->context)
            sb_buf_append(out, ctx, ctx_len);
        else if (pack_merged(&pk, out, ctx, ctx_len, env->context, env->context_len))
            return -EINVAL;
    }
    if (integ || env->integrations) {
        pack_str(&pk, "integrations", 12);
        if (!env->integrations)
            sb_buf_append(out, integ, integ_len);
        else if (pack_merged(&pk, out, integ, integ_len, env->integrations, env->integrations_len))
            return -EINVAL;
    }
    /* Segment's clock-skew correction: the client's clock may be off, but the delay between its
     * timestamp and its sentAt is measured on that same clock, so timestamp = receivedAt -
     * (sentAt - timestamp). The client's own value is kept as originalTimestamp. */
    char buf[25];
    int64_t ts_ms, sent_ms;
    bool have_ts = ts && sb_hub_parse_time(ts, ts_len, &ts_ms) == 0;
    bool have_sent = sent && sb_hub_parse_time(sent, sent_len, &sent_ms) == 0;
    pack_str(&pk, "timestamp", 9);
    if (have_ts && have_sent) {
        format_ms(now_ms - (sent_ms - ts_ms), buf);
        pack_str(&pk, buf, 24);
    } else if (ts) {
        pack_str(&pk, ts, ts_len); /* no sentAt (or an unreadable time): as the client said */
    } else {
        format_ms(now_ms, buf);
        pack_str(&pk, buf, 24);
    }
    if (ts || ots) {
        pack_str(&pk, "originalTimestamp", 17);
        if (ots)
            pack_str(&pk, ots, ots_len);
        else
            pack_str(&pk, ts, ts_len);
    }
    if (sent) {
        pack_str(&pk, "sentAt", 6);
        pack_str(&pk, sent, sent_len);
    }
    pack_str(&pk, "receivedAt", 10);
    format_ms(now_ms, buf);
    pack_str(&pk, buf, 24);
    if (!mid) {
        char id[37];
        sb_uuid7(now_ms / 1000, (uint32_t)(now_ms % 1000) * 1000000u, id, NULL);
        pack_str(&pk, "messageId", 9);
        pack_str(&pk, id, 36);
    }
    return out->data || out->len == 0 ? 0 : -ENOMEM;
}

static const char *reason_text(int reason)
{
    switch (reason) {
    case SB_VERIFY_TOO_LARGE:
        return "event is larger than 32 KB (32768 bytes)";
    case SB_VERIFY_NO_TYPE:
        return "missing type";
    case SB_VERIFY_BAD_TYPE:
        return "type is not one of identify, track, page, screen, group, alias";
    case SB_VERIFY_NO_IDENTITY:
        return "missing userId or anonymousId";
    case SB_VERIFY_NO_EVENT:
        return "track without event";
    case SB_VERIFY_NO_GROUP_ID:
        return "group without groupId";
    case SB_VERIFY_NO_PREVIOUS_ID:
        return "alias without previousId";
    case SB_VERIFY_NO_USER_ID:
        return "alias without userId";
    case SB_VERIFY_NO_MESSAGE_ID:
        return "missing messageId";
    case SB_VERIFY_BAD_MESSAGE_ID:
        return "messageId is not a string of 1 to 100 bytes";
    case SB_VERIFY_BAD_FIELD:
        return "a field has the wrong kind (properties/traits/context/integrations must be "
               "objects, ids and timestamp strings) or appears twice";
    case SB_VERIFY_NOT_A_MAP:
        return "event is not an object";
    default:
        return "malformed event";
    }
}

int sb_hub_process(const struct sb_config *cfg, const char *route, const char *ctype,
                   const char *auth, const uint8_t *body, size_t len, int64_t now_ms,
                   sb_hub_emit_fn emit, void *arg, int *status, struct sb_buf *resp)
{
    struct sb_buf mp = SB_BUF_INIT, ev = SB_BUF_INIT, rej = SB_BUF_INIT;
    const uint8_t *data;
    size_t dlen;
    const char *type;
    enum route_kind rk = route_of(route, &type);
    bool msgpack_in = ctype && (!strncasecmp(ctype, "application/msgpack", 19) ||
                                !strncasecmp(ctype, "application/x-msgpack", 21));
    struct envelope env;
    struct sb_mp_reader r;
    struct sb_mp_item top;
    char keybuf[256];
    size_t klen = 0;
    uint32_t count;
    unsigned accepted = 0, rejected = 0;
    int rc = 0;

    sb_buf_clear(resp);
    *status = 400;
    if (rk == R_NONE) {
        *status = 404;
        fail_json(resp,
                  "unknown route %.200s: use /v1/{track,identify,page,screen,group,alias,"
                  "batch,import} or /v1/{t,i,p,s,g,a,b}",
                  route);
        return 0;
    }
    if (rk == R_SINGLE && len > SB_SEGMENT_MAX_EVENT_BYTES) {
        fail_json(resp, "event is %zu bytes; the limit is 32 KB (%u bytes)", len,
                  SB_SEGMENT_MAX_EVENT_BYTES);
        return 0;
    }
    if (rk == R_BATCH && !msgpack_in && len > SB_SEGMENT_MAX_BATCH_BYTES) {
        fail_json(resp, "batch is %zu bytes; the limit is 500 KB (%u bytes)", len,
                  SB_SEGMENT_MAX_BATCH_BYTES);
        return 0;
    }
    if (msgpack_in) {
        /* Checked while walking: read_envelope skips the whole value (bounds-checked, no
         * recursion) and must end exactly at the end; each event's depth is checked by
         * sb_event_inspect before it goes anywhere. */
        data = body;
        dlen = len;
    } else {
        struct sb_json_error je = {0, NULL};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &mp, buf_write);
        rc = sb_json_to_msgpack((const char *)body, len, &pk, &je);
        if (rc == -ENOMEM)
            goto out;
        if (rc) {
            fail_json(resp, "invalid JSON at byte %zu: %s", je.offset,
                      je.reason ? je.reason : "parse error");
            rc = 0;
            goto out;
        }
        data = mp.data;
        dlen = mp.len;
    }
    sb_mp_reader_init(&r, data, dlen);
    if (sb_mp_next(&r, &top) || top.type != SB_MP_MAP) {
        fail_json(resp, "the body must be an object");
        goto out;
    }
    if (read_envelope(r, top.v.count, &env) || env.end != data + dlen) {
        if (msgpack_in)
            fail_json(resp, "invalid msgpack body (%zu bytes): not exactly one well-formed value",
                      len);
        else
            fail_json(resp, "malformed body");
        goto out;
    }

    /* The write key: Basic auth first (every SDK but Python sends it), else the body's. */
    if (auth && *auth) {
        if (basic_key(auth, keybuf, sizeof keybuf, &klen)) {
            *status = 401;
            fail_json(resp, "Authorization must be Basic base64(writeKey:)");
            goto out;
        }
    } else if (env.write_key && env.write_key_len > 0 && env.write_key_len < sizeof keybuf) {
        memcpy(keybuf, env.write_key, env.write_key_len);
        klen = env.write_key_len;
        keybuf[klen] = 0;
    } else {
        *status = 401;
        fail_json(resp, "no write key: send it as Basic auth (username writeKey, empty password) "
                        "or as writeKey in the body");
        goto out;
    }
    bool expired;
    int64_t exp = 0;
    int source = find_source(cfg, keybuf, klen, now_ms, &expired, &exp);
    OPENSSL_cleanse(keybuf, sizeof keybuf);
    if (source < 0) {
        char when[25];
        *status = 401;
        if (expired) {
            format_ms(exp * 1000, when);
            fail_json(resp, "write key expired at %s", when);
        } else {
            fail_json(resp, "unknown write key");
        }
        goto out;
    }

    if (rk == R_BATCH) {
        struct sb_mp_item arr;
        if (!env.has_batch) {
            fail_json(resp, "the body has no \"batch\" array");
            goto out;
        }
        r = env.batch;
        if (sb_mp_next(&r, &arr)) {
            fail_json(resp, "malformed batch");
            goto out;
        }
        count = arr.v.count;
        if (!msgpack_in && count > SB_SEGMENT_MAX_BATCH_EVENTS) {
            fail_json(resp, "batch has %u events; the limit is %u", count,
                      SB_SEGMENT_MAX_BATCH_EVENTS);
            goto out;
        }
        type = NULL;
    } else {
        sb_mp_reader_init(&r, data, dlen); /* the body is the event (and its envelope) */
        count = 1;
    }

    for (uint32_t i = 0; i < count; i++) {
        struct sb_event_meta meta = {0};
        int b = build_event(&r, &env, type, now_ms, &ev);
        int why;
        if (b == -EINVAL) {
            fail_json(resp, "malformed batch at event %u", i);
            *status = 400;
            accepted = 0;
            goto out; /* cannot find the next event: nothing of this request is taken */
        }
        if (b == -ENOMEM) {
            rc = -ENOMEM;
            goto out;
        }
        why = b == -EPROTO ? SB_VERIFY_NOT_A_MAP : -1 - sb_event_inspect(ev.data, ev.len, &meta);
        if (why >= 0) {
            char line[400];
            int m = snprintf(line, sizeof line,
                             "%s{\"index\":%u,\"reason\":\"%s\",\"error\":", rejected ? "," : "", i,
                             sb_verify_reasons[why]);
            sb_buf_append(&rej, line, (size_t)m);
            m = snprintf(line, sizeof line, "event %u: %s", i, reason_text(why));
            json_str(&rej, line, (size_t)m);
            sb_buf_append(&rej, "}", 1);
            rejected++;
            continue;
        }
        meta.source = source;
        meta.received_at_ms = now_ms;
        meta.verified = true; /* sb_event_inspect just passed these bytes */
        if ((rc = emit(arg, ev.data, ev.len, &meta)) != 0)
            goto out;
        accepted++;
    }
    if (!rejected) {
        *status = 200;
        sb_buf_append_str(resp, "{\"success\":true}");
    } else {
        char head[160];
        /* Segment takes the good events of a batch; so do we, but the bad ones are named. */
        *status = accepted ? 200 : 400;
        snprintf(
            head, sizeof head,
            "{\"success\":%s,\"accepted\":%u,\"error\":\"%u event(s) rejected\",\"rejected\":[",
            accepted ? "true" : "false", accepted, rejected);
        sb_buf_append_str(resp, head);
        sb_buf_append(resp, rej.data, rej.len);
        sb_buf_append_str(resp, "]}");
    }
out:
    sb_buf_free(&mp);
    sb_buf_free(&ev);
    sb_buf_free(&rej);
    return rc;
}

/* ---- the server side ---------------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct pending {
    struct pending *next;
    struct sb_http_exchange *ex;
    int status;
    bool failed; /* the sink refused an event: answer 503 once the rest is durable */
    char origin[256];
    size_t body_len;
    char *body;
    uint64_t need[]; /* per output: added count when the request was taken */
};

struct sb_hub {
    struct sb_loop *loop;
    const struct sb_config *cfg;
    struct sb_hub_sink sink;
    struct sb_http_server *srv;
    struct pending *head, *tail;
    size_t n_pending;
    struct sb_buf resp;
    bool cur_failed;
    struct sb_hub_stats st;
};

static void add_cors(struct sb_http_header *h, size_t *n, const char *origin)
{
    h[(*n)++] =
        (struct sb_http_header){"Access-Control-Allow-Origin", origin && *origin ? origin : "*"};
    h[(*n)++] = (struct sb_http_header){"Vary", "Origin"};
}

static void respond(struct sb_http_exchange *ex, int status, const char *origin, const char *body,
                    size_t len, bool retry)
{
    struct sb_http_header h[6];
    size_t n = 0;

    h[n++] = (struct sb_http_header){"Content-Type", "application/json"};
    add_cors(h, &n, origin);
    if (retry)
        h[n++] = (struct sb_http_header){"Retry-After", "1"};
    (void)sb_http_respond(ex, status, h, n, body, len);
}

static int hub_emit(void *arg, const uint8_t *event, size_t len, struct sb_event_meta *meta)
{
    struct sb_hub *h = arg;
    int rc = h->sink.submit(h->sink.arg, event, len, meta);

    if (rc) {
        h->cur_failed = true;
        return 0; /* keep going: the answer is 503 and the client resends (deduplicated) */
    }
    h->st.accepted_events++;
    return 0;
}

static bool durable(const struct sb_hub *h, const struct pending *p)
{
    for (size_t o = 0; o < h->sink.n_outputs; o++)
        if (h->sink.durable(h->sink.arg, o) < p->need[o])
            return false;
    return true;
}

void sb_hub_poll(struct sb_hub *h)
{
    while (h->head && durable(h, h->head)) {
        struct pending *p = h->head;
        h->head = p->next;
        if (!h->head)
            h->tail = NULL;
        h->n_pending--;
        if (p->failed) {
            static const char busy[] =
                "{\"success\":false,\"error\":\"the hub could not take every event; retry\"}";
            respond(p->ex, 503, p->origin, busy, sizeof busy - 1, true);
        } else {
            respond(p->ex, p->status, p->origin, p->body, p->body_len, false);
        }
        free(p->body);
        free(p);
    }
    h->st.pending = h->n_pending;
}

static void on_request(void *arg, struct sb_http_exchange *ex, const struct sb_http_message *req)
{
    struct sb_hub *h = arg;
    const char *origin = sb_http_header_get(req, "Origin");
    int status = 500;
    int rc;

    h->st.requests++;
    if (!strcmp(req->method, "OPTIONS")) {
        struct sb_http_header hd[8];
        size_t n = 0;
        add_cors(hd, &n, origin);
        hd[n++] = (struct sb_http_header){"Access-Control-Allow-Methods", "POST, OPTIONS"};
        hd[n++] = (struct sb_http_header){
            "Access-Control-Allow-Headers",
            "Content-Type, Authorization, Content-Encoding, X-Retry-Count, User-Agent"};
        hd[n++] = (struct sb_http_header){"Access-Control-Max-Age", "86400"};
        (void)sb_http_respond(ex, 204, hd, n, NULL, 0);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        const char *t;
        static const char m405[] = "{\"success\":false,\"error\":\"method not allowed: use POST\"}";
        static const char m404[] = "{\"success\":false,\"error\":\"unknown route\"}";
        struct sb_http_header hd[4];
        size_t n = 0;
        bool known = route_of(req->path, &t) != R_NONE;
        hd[n++] = (struct sb_http_header){"Content-Type", "application/json"};
        hd[n++] = (struct sb_http_header){"Allow", "POST, OPTIONS"};
        h->st.bad_requests++;
        (void)sb_http_respond(ex, known ? 405 : 404, hd, n, known ? m405 : m404,
                              known ? sizeof m405 - 1 : sizeof m404 - 1);
        return;
    }
    if (h->sink.busy && h->sink.busy(h->sink.arg)) {
        static const char busy[] =
            "{\"success\":false,\"error\":\"the hub's spool is full; retry after 1 s\"}";
        h->st.busy++;
        respond(ex, 503, origin, busy, sizeof busy - 1, true);
        return;
    }
    h->cur_failed = false;
    rc = sb_hub_process(h->cfg, req->path, sb_http_header_get(req, "Content-Type"),
                        sb_http_header_get(req, "Authorization"), req->body, req->body_len,
                        wall_ms(), hub_emit, h, &status, &h->resp);
    if (rc) {
        static const char oom[] = "{\"success\":false,\"error\":\"out of memory\"}";
        respond(ex, 503, origin, oom, sizeof oom - 1, true);
        return;
    }
    if (status == 401)
        h->st.unauthorized++;
    else if (status >= 400)
        h->st.bad_requests++;
    struct pending *p = calloc(1, sizeof *p + h->sink.n_outputs * sizeof(uint64_t));
    char *body = malloc(h->resp.len ? h->resp.len : 1);
    if (!p || !body) {
        free(p);
        free(body);
        static const char oom[] = "{\"success\":false,\"error\":\"out of memory\"}";
        respond(ex, 503, origin, oom, sizeof oom - 1, true);
        return;
    }
    memcpy(body, h->resp.data, h->resp.len);
    p->ex = ex;
    p->status = status;
    p->failed = h->cur_failed;
    p->body = body;
    p->body_len = h->resp.len;
    if (origin)
        snprintf(p->origin, sizeof p->origin, "%s", origin);
    for (size_t o = 0; o < h->sink.n_outputs; o++)
        p->need[o] = h->sink.added(h->sink.arg, o);
    /* Queue even answers that need nothing durable: answers go out in arrival order. */
    if (h->tail)
        h->tail->next = p;
    else
        h->head = p;
    h->tail = p;
    h->n_pending++;
    sb_hub_poll(h);
}

int sb_hub_new(struct sb_hub **out, struct sb_loop *loop, const struct sb_http_server_options *so,
               const struct sb_config *cfg, const struct sb_hub_sink *sink, char *err,
               size_t errlen)
{
    struct sb_hub *h = calloc(1, sizeof *h);
    struct sb_http_server_options o = *so;
    int rc;

    *out = NULL;
    if (!h)
        return -ENOMEM;
    h->loop = loop;
    h->cfg = cfg;
    h->sink = *sink;
    o.route = on_request;
    o.arg = h;
    rc = sb_http_server_new(&h->srv, loop, &o, err, errlen);
    if (rc) {
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

size_t sb_hub_pending(const struct sb_hub *h)
{
    return h ? h->n_pending : 0;
}

uint16_t sb_hub_port(const struct sb_hub *h)
{
    return sb_http_server_port(h->srv);
}

void sb_hub_get_stats(const struct sb_hub *h, struct sb_hub_stats *st)
{
    *st = h->st;
    st->pending = h->n_pending;
}

void sb_hub_free(struct sb_hub *h)
{
    static const char busy[] = "{\"success\":false,\"error\":\"the hub is shutting down; retry\"}";

    if (!h)
        return;
    while (h->head) {
        struct pending *p = h->head;
        h->head = p->next;
        respond(p->ex, 503, p->origin, busy, sizeof busy - 1, true);
        free(p->body);
        free(p);
    }
    sb_http_server_free(h->srv);
    sb_buf_free(&h->resp);
    free(h);
}
