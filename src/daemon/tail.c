/* tail.c: the recent-events ring and the GET /tail long-poll behind `segbus tail` (see tail.h). */
#include "daemon/tail.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "json/json.h"
#include "pipeline/batch.h"
#include "protocols/protocols.h"

#define TAIL_ACTIVE_NS (15ull * 1000000000ull) /* keep recording this long after a request */
#define TAIL_MAX_WAIT_MS 30000
#define TAIL_MAX_PENDING 16 /* waiting requests; more are answered at once */
#define TAIL_DEFAULT_LIMIT 500
#define TAIL_MAX_LIMIT 5000

struct entry {
    uint64_t seq;
    int64_t time_ms;
    char *json; /* the message as JSON text ("null" if it was not msgpack); owns the strings */
    size_t json_len;
    char *event, *user;         /* copies for filters, may be NULL */
    const char *type;           /* static call name, or NULL when the event did not verify */
    const char *stage, *reason; /* dropped: which stage and why (static strings) */
    char *violations;           /* JSON array of the plan's violations, or NULL */
    uint64_t *k; /* per output: the event's 1-based index among those it was handed; 0 filtered */
    bool passed;
};

struct query {
    uint64_t after;
    bool have_after, settled;
    unsigned limit, last;
    uint64_t deadline_ns;
    char type[32], event[256], user[256];
    bool have_type, have_event, have_user;
};

struct pending {
    struct sb_http_exchange *ex;
    struct query q;
};

struct sb_tail_impl {
    struct sb_output_runner *const *outs;
    size_t n_outs;
    struct sb_pipeline *pipeline;
    struct entry *ring;            /* SB_TAIL_MAX_EVENTS, allocated on first use */
    uint64_t next_seq, oldest_seq; /* entries [oldest_seq, next_seq) are held */
    size_t bytes;
    /* Snapshots taken by sb_tail_begin. */
    uint64_t *added_before;
    uint64_t *drops_before; /* every stage's dropped[] counters, concatenated */
    size_t n_drops;
    uint64_t *violated_before; /* per stage: plan stages' count of events with violations */
    struct pending pend[TAIL_MAX_PENDING];
    size_t n_pend;
};

int sb_tail_new(struct sb_tail **out, struct sb_output_runner *const *outs, size_t n_outs,
                struct sb_pipeline *pipeline)
{
    struct sb_tail *t = calloc(1, sizeof *t);
    struct sb_tail_impl *im = calloc(1, sizeof *im);
    struct sb_stage *const *st;
    size_t ns = sb_pipeline_stages(pipeline, &st);

    if (!t || !im)
        goto fail;
    t->impl = im;
    im->outs = outs;
    im->n_outs = n_outs;
    im->pipeline = pipeline;
    im->next_seq = im->oldest_seq = 1;
    for (size_t i = 0; i < ns; i++)
        im->n_drops += st[i]->n_reasons + 2;
    im->added_before = calloc(n_outs + 1, sizeof *im->added_before);
    im->drops_before = calloc(im->n_drops + 1, sizeof *im->drops_before);
    im->violated_before = calloc(ns + 1, sizeof *im->violated_before);
    if (!im->added_before || !im->drops_before || !im->violated_before)
        goto fail;
    *out = t;
    return 0;
fail:
    if (im) {
        free(im->added_before);
        free(im->drops_before);
        free(im->violated_before);
    }
    free(im);
    free(t);
    return -ENOMEM;
}

static struct entry *at(struct sb_tail_impl *im, uint64_t seq)
{
    return &im->ring[seq % SB_TAIL_MAX_EVENTS];
}

static void drop_oldest(struct sb_tail_impl *im)
{
    struct entry *e = at(im, im->oldest_seq);
    im->bytes -= e->json_len;
    free(e->json);
    free(e->k);
    free(e->violations);
    free(e->event);
    free(e->user);
    memset(e, 0, sizeof *e);
    im->oldest_seq++;
}

void sb_tail_free(struct sb_tail *t)
{
    if (!t)
        return;
    struct sb_tail_impl *im = t->impl;
    for (size_t i = 0; i < im->n_pend; i++)
        sb_http_respond(im->pend[i].ex, 503, NULL, 0, "segbusd is stopping\n", 20);
    if (im->ring)
        while (im->oldest_seq < im->next_seq)
            drop_oldest(im);
    free(im->ring);
    free(im->added_before);
    free(im->drops_before);
    free(im->violated_before);
    free(im);
    free(t);
}

static bool is_plan(const struct sb_stage *s)
{
    return !strcmp(s->name, "plan");
}

void sb_tail_begin(struct sb_tail *t)
{
    struct sb_tail_impl *im = t->impl;
    struct sb_stage *const *st;
    size_t ns = sb_pipeline_stages(im->pipeline, &st), j = 0;

    for (size_t i = 0; i < im->n_outs; i++)
        im->added_before[i] = sb_output_runner_added(im->outs[i]);
    for (size_t i = 0; i < ns; i++) {
        for (unsigned k = 0; k < st[i]->n_reasons + 2 && j < im->n_drops; k++)
            im->drops_before[j++] = st[i]->dropped[k];
        if (is_plan(st[i]))
            im->violated_before[i] = sb_plan_stage_violated(st[i], NULL);
    }
}

/* The violations a plan stage found in the event just run, as a JSON array (NULL: none). */
static char *find_violations(struct sb_tail_impl *im)
{
    struct sb_stage *const *st;
    size_t ns = sb_pipeline_stages(im->pipeline, &st);
    const struct sb_violations *v;
    struct sb_buf b = SB_BUF_INIT;

    for (size_t i = 0; i < ns; i++)
        if (is_plan(st[i]) && sb_plan_stage_violated(st[i], &v) != im->violated_before[i]) {
            if (sb_violations_json(v, &b) || sb_buf_append(&b, "", 1)) {
                sb_buf_free(&b);
                return NULL;
            }
            return (char *)b.data;
        }
    return NULL;
}

/* Which stage counted the drop, and why (the counter that moved since sb_tail_begin). */
static void find_drop(struct sb_tail_impl *im, struct entry *e)
{
    struct sb_stage *const *st;
    size_t ns = sb_pipeline_stages(im->pipeline, &st), j = 0;

    e->stage = "unknown";
    e->reason = "unknown";
    for (size_t i = 0; i < ns; i++)
        for (unsigned k = 0; k < st[i]->n_reasons + 2 && j < im->n_drops; k++, j++)
            if (st[i]->dropped[k] != im->drops_before[j]) {
                e->stage = st[i]->name;
                e->reason = k < st[i]->n_reasons    ? st[i]->reasons[k]
                            : k == st[i]->n_reasons ? "internal"
                                                    : "replaced_invalid";
                return;
            }
}

static char *dup_n(const uint8_t *p, uint32_t n)
{
    char *s;
    if (!p)
        return NULL;
    s = malloc((size_t)n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

void sb_tail_end(struct sb_tail *t, const uint8_t *data, size_t len,
                 const struct sb_event_meta *meta, bool passed)
{
    struct sb_tail_impl *im = t->impl;
    struct sb_buf js = SB_BUF_INIT;
    size_t used = 0;
    struct entry *e;

    if (!im->ring && !(im->ring = calloc(SB_TAIL_MAX_EVENTS, sizeof *im->ring)))
        return; /* out of memory: the tail is best effort, the pipeline is not */
    if (sb_msgpack_to_json(data, len, &used, &js) != 0 || used != len) {
        sb_buf_clear(&js);
        sb_buf_append_str(&js, "null");
    }
    if (sb_buf_append(&js, "", 1) != 0) {
        sb_buf_free(&js);
        return;
    }
    while (im->oldest_seq < im->next_seq && (im->next_seq - im->oldest_seq >= SB_TAIL_MAX_EVENTS ||
                                             im->bytes + js.len > SB_TAIL_MAX_BYTES))
        drop_oldest(im);
    e = at(im, im->next_seq);
    memset(e, 0, sizeof *e);
    e->seq = im->next_seq++;
    e->time_ms = sb_wall_ms();
    e->json = (char *)js.data;
    e->json_len = js.len;
    im->bytes += js.len;
    e->passed = passed;
    /* meta is only filled by verify: an event it refused has no trustworthy fields. */
    if (meta->message_id) {
        e->type = sb_call_name(meta->call);
        if (meta->call == SB_CALL_TRACK)
            e->event = dup_n(meta->event, meta->event_len);
        e->user = dup_n(meta->user_id, meta->user_id_len);
    }
    e->violations = find_violations(im);
    if (passed) {
        e->k = calloc(im->n_outs + 1, sizeof *e->k);
        for (size_t i = 0; e->k && i < im->n_outs; i++) {
            uint64_t now = sb_output_runner_added(im->outs[i]);
            e->k[i] = now > im->added_before[i] ? now : 0;
        }
    } else {
        find_drop(im, e);
    }
}

/* ---- the endpoint ------------------------------------------------------------------------- */

static const char *out_status(struct sb_tail_impl *im, const struct entry *e, size_t i)
{
    struct sb_output_status st;
    uint64_t k = e->k ? e->k[i] : 0;

    if (!k)
        return "filtered";
    sb_output_runner_status(im->outs[i], &st);
    if (st.done >= k)
        return sb_output_runner_dead_lettered(im->outs[i], k) ? "dead_lettered" : "delivered";
    if (st.retrying && k <= st.done + st.retrying)
        return "retrying"; /* in the batch being delivered, which has failed at least once */
    if (sb_output_runner_durable_events(im->outs[i]) >= k)
        return "spooled";
    return "batched";
}

static bool settled(struct sb_tail_impl *im, const struct entry *e)
{
    if (!e->passed)
        return true;
    for (size_t i = 0; i < im->n_outs; i++) {
        const char *s = out_status(im, e, i);
        if (strcmp(s, "delivered") && strcmp(s, "filtered") && strcmp(s, "dead_lettered"))
            return false;
    }
    return true;
}

static bool matches(const struct query *q, const struct entry *e)
{
    if (q->have_type && (!e->type || strcmp(q->type, e->type)))
        return false;
    if (q->have_event && (!e->event || strcmp(q->event, e->event)))
        return false;
    if (q->have_user && (!e->user || strcmp(q->user, e->user)))
        return false;
    return true;
}

static void json_str(struct sb_buf *b, const char *s)
{
    sb_buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_buf_append(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_buf_append(b, esc, 6);
        } else {
            sb_buf_append(b, s, 1);
        }
    }
    sb_buf_append(b, "\"", 1);
}

static void json_field(struct sb_buf *b, const char *key, const char *v)
{
    sb_buf_append_str(b, ",\"");
    sb_buf_append_str(b, key);
    sb_buf_append_str(b, "\":");
    if (v)
        json_str(b, v);
    else
        sb_buf_append_str(b, "null");
}

/* Collect the matching events after q->after into b; the count, and *next. */
static size_t collect(struct sb_tail_impl *im, struct query *q, struct sb_buf *b, uint64_t *next,
                      uint64_t *missed)
{
    uint64_t seq = q->after;
    size_t n = 0;
    char num[64];

    *missed = 0;
    if (seq < im->oldest_seq) {
        *missed = im->oldest_seq - seq;
        seq = im->oldest_seq;
    }
    for (; seq < im->next_seq && n < q->limit; seq++) {
        const struct entry *e = at(im, seq);
        if (!matches(q, e))
            continue;
        if (q->settled && !settled(im, e))
            break; /* keep order: later events wait for this one */
        if (b) {
            snprintf(num, sizeof num, "%s{\"seq\":%llu,\"time_ms\":%lld", n ? "," : "",
                     (unsigned long long)e->seq, (long long)e->time_ms);
            sb_buf_append_str(b, num);
            json_field(b, "type", e->type);
            json_field(b, "event", e->event);
            json_field(b, "userId", e->user);
            /* "violation": passed with plan violations (allowed or omitted); "blocked": the
             * plan stopped it */
            json_field(b, "status",
                       e->passed ? (e->violations ? "violation" : "passed")
                       : e->violations && !strcmp(e->stage, "plan") ? "blocked"
                                                                    : "dropped");
            if (!e->passed) {
                json_field(b, "stage", e->stage);
                json_field(b, "reason", e->reason);
            }
            if (e->violations) {
                sb_buf_append_str(b, ",\"violations\":");
                sb_buf_append_str(b, e->violations);
            }
            sb_buf_append_str(b, ",\"outputs\":{");
            for (size_t i = 0; e->passed && i < im->n_outs; i++) {
                if (i)
                    sb_buf_append(b, ",", 1);
                json_str(b, sb_output_runner_name(im->outs[i]));
                sb_buf_append(b, ":", 1);
                json_str(b, out_status(im, e, i));
            }
            sb_buf_append_str(b, "},\"message\":");
            sb_buf_append(b, e->json, e->json_len - 1);
            sb_buf_append(b, "}", 1);
        }
        n++;
    }
    *next = seq;
    return n;
}

static void answer(struct sb_tail_impl *im, struct sb_http_exchange *ex, struct query *q)
{
    struct sb_buf b = SB_BUF_INIT;
    struct sb_http_header js = {"Content-Type", "application/json"};
    uint64_t next, missed;
    char head[96];

    sb_buf_append_str(&b, "{\"events\":[");
    collect(im, q, &b, &next, &missed);
    snprintf(head, sizeof head, "],\"next\":%llu,\"missed\":%llu}\n", (unsigned long long)next,
             (unsigned long long)missed);
    if (sb_buf_append_str(&b, head) == 0)
        sb_http_respond(ex, 200, &js, 1, b.data, b.len);
    else
        sb_http_respond(ex, 500, NULL, 0, "out of memory\n", 14);
    sb_buf_free(&b);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode [s, s+n) into out (NUL-terminated); -1 if bad or too long. */
static int url_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int h, l;
            if (i + 2 >= n || (h = hexval(s[i + 1])) < 0 || (l = hexval(s[i + 2])) < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= outlen || c == 0)
            return -1;
        out[o++] = c;
    }
    out[o] = 0;
    return 0;
}

static int num_param(const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long x;
    if (!*v || *v < '0' || *v > '9')
        return -1;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno || *end || x > max)
        return -1;
    *out = x;
    return 0;
}

/* Parse the query; 0, or -1 with msg naming the bad parameter. */
static int parse_query(const char *target, struct query *q, uint64_t now_ns, char *msg,
                       size_t msglen)
{
    const char *p = strchr(target, '?');
    uint64_t wait_ms = 0, v;

    memset(q, 0, sizeof *q);
    q->limit = TAIL_DEFAULT_LIMIT;
    while (p && *p) {
        const char *key = p + 1, *amp = strchr(key, '&'), *eq;
        size_t klen, vlen;
        char val[256];
        if (!amp)
            amp = key + strlen(key);
        eq = memchr(key, '=', (size_t)(amp - key));
        p = *amp ? amp : NULL;
        if (amp == key)
            continue;
        klen = (size_t)((eq ? eq : amp) - key);
        vlen = eq ? (size_t)(amp - eq - 1) : 0;
        if (url_decode(eq ? eq + 1 : key, vlen, val, sizeof val)) {
            snprintf(msg, msglen, "bad value for %.*s (bad %%-escape or longer than 255)",
                     (int)(klen > 32 ? 32 : klen), key);
            return -1;
        }
#define KEY(s) (klen == sizeof s - 1 && !memcmp(key, s, klen))
        if (KEY("after")) {
            if (num_param(val, UINT64_MAX, &q->after))
                goto bad;
            q->have_after = true;
        } else if (KEY("wait_ms")) {
            if (num_param(val, TAIL_MAX_WAIT_MS, &wait_ms))
                goto bad;
        } else if (KEY("limit")) {
            if (num_param(val, TAIL_MAX_LIMIT, &v) || v == 0)
                goto bad;
            q->limit = (unsigned)v;
        } else if (KEY("last")) {
            if (num_param(val, SB_TAIL_MAX_EVENTS, &v))
                goto bad;
            q->last = (unsigned)v;
        } else if (KEY("settled")) {
            q->settled = !strcmp(val, "1") || !strcmp(val, "true");
        } else if (KEY("type")) {
            if (strlen(val) >= sizeof q->type)
                goto bad;
            memcpy(q->type, val, strlen(val) + 1);
            q->have_type = true;
        } else if (KEY("event")) {
            snprintf(q->event, sizeof q->event, "%s", val);
            q->have_event = true;
        } else if (KEY("userId")) {
            snprintf(q->user, sizeof q->user, "%s", val);
            q->have_user = true;
        } else {
            snprintf(msg, msglen,
                     "unknown parameter %.*s (after, wait_ms, limit, last, settled, type, "
                     "event, userId)",
                     (int)(klen > 32 ? 32 : klen), key);
            return -1;
        }
#undef KEY
        continue;
    bad:
        snprintf(msg, msglen, "bad value for %.*s: \"%.64s\"", (int)(klen > 32 ? 32 : klen), key,
                 val);
        return -1;
    }
    q->deadline_ns = now_ns + wait_ms * 1000000ull;
    return 0;
}

void sb_tail_http(struct sb_tail *t, struct sb_http_exchange *ex, const struct sb_http_message *req,
                  uint64_t now_ns)
{
    struct sb_tail_impl *im = t->impl;
    struct query q;
    char msg[200];
    uint64_t next, missed;

    if (parse_query(req->target, &q, now_ns, msg, sizeof msg)) {
        size_t n = strlen(msg);
        msg[n] = '\n';
        sb_http_respond(ex, 400, NULL, 0, msg, n + 1);
        return;
    }
    if (!q.have_after)
        q.after = im->next_seq > q.last ? im->next_seq - q.last : 0;
    if (q.after < 1)
        q.after = 1;
    /* Start (or keep) recording: until a while after this request or its wait. */
    if (t->active_until_ns < q.deadline_ns + TAIL_ACTIVE_NS)
        t->active_until_ns = q.deadline_ns + TAIL_ACTIVE_NS;
    if (q.deadline_ns > now_ns && im->n_pend < TAIL_MAX_PENDING &&
        collect(im, &q, NULL, &next, &missed) == 0) {
        im->pend[im->n_pend].ex = ex;
        im->pend[im->n_pend].q = q;
        im->n_pend++;
        return;
    }
    answer(im, ex, &q);
}

void sb_tail_tick(struct sb_tail *t, uint64_t now_ns)
{
    struct sb_tail_impl *im = t->impl;
    uint64_t next, missed;

    for (size_t i = 0; i < im->n_pend;) {
        struct pending *p = &im->pend[i];
        if (now_ns >= p->q.deadline_ns || collect(im, &p->q, NULL, &next, &missed) > 0) {
            answer(im, p->ex, &p->q);
            *p = im->pend[--im->n_pend];
        } else {
            i++;
        }
    }
}
