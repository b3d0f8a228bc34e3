/* transform.c: declarative per-source transforms (the seed's source middleware, as config):
 * drop/remove, hash (salted SHA-256), allow-list, set, rename and Title Case, by path. */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "mp/mp_reader.h"
#include "protocols/protocols.h"
#include "protocols/rewrite.h"

struct titem {
    char *event; /* only events of this name (track event / page name); NULL = any */
    char *type;  /* only this call type ("track", ...); NULL = any */
    char *salt;
    struct sb_rw_rule *rules;
    size_t n;
    int line;
};

struct sb_transform {
    struct titem *items;
    size_t n;
    bool *indep; /* [i * n + j]: items i < j touch disjoint fields, so one pass can do both */
    /* No rule can make a verified event invalid (see keeps_valid): the stage derives the new
     * event's metadata from where the rewrite put the root fields, instead of re-inspecting. */
    bool keeps_valid;
};

static int buf_write(void *data, const char *buf, size_t len)
{
    return sb_buf_append(data, buf, len) ? -1 : 0;
}

void sb_transform_free(struct sb_transform *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        struct titem *it = &t->items[i];
        for (size_t j = 0; j < it->n; j++) {
            sb_rw_segs_free(it->rules[j].segs, it->rules[j].n);
            free((void *)it->rules[j].value);
        }
        free(it->rules);
        free(it->event);
        free(it->type);
        free(it->salt);
    }
    free(t->items);
    free(t->indep);
    free(t);
}

size_t sb_transform_items(const struct sb_transform *t)
{
    return t->n;
}

static int add_rule(struct titem *it, enum sb_rw_op op, const char *path, char *err, size_t errlen)
{
    struct sb_rw_rule *r;
    void *nr = realloc(it->rules, (it->n + 1) * sizeof *it->rules);
    int rc;

    if (!nr)
        return -ENOMEM;
    it->rules = nr;
    r = &it->rules[it->n];
    *r = (struct sb_rw_rule){.op = op};
    if ((rc = sb_rw_path_parse(path, &r->segs, &r->n))) {
        if (rc == -EINVAL)
            snprintf(err, errlen, "line %d: empty path", it->line);
        return rc;
    }
    it->n++;
    return 0;
}

/* A set value: JSON if it parses (numbers, true, "quoted", {...}), else the text as a string. */
static int pack_value(const char *text, uint8_t **out, size_t *out_len)
{
    struct sb_buf b = SB_BUF_INIT;
    msgpack_packer pk;
    struct sb_json_error je;

    msgpack_packer_init(&pk, &b, buf_write);
    if (sb_json_to_msgpack(text, strlen(text), &pk, &je)) {
        b.len = 0;
        if (msgpack_pack_str(&pk, strlen(text)) || msgpack_pack_str_body(&pk, text, strlen(text))) {
            sb_buf_free(&b);
            return -ENOMEM;
        }
    }
    if (!b.data && sb_buf_reserve(&b, 1))
        return -ENOMEM;
    *out = b.data;
    *out_len = b.len;
    return 0;
}

static int item_key(struct titem *it, const char *key, const char *value, char *err, size_t errlen)
{
    const char *dot = strchr(key, '.');
    size_t klen = dot ? (size_t)(dot - key) : strlen(key);
    int rc;

#define IS(k) (klen == strlen(k) && !strncmp(key, k, klen))
    if (IS("event") && !dot)
        return (it->event = strdup(value)) ? 0 : -ENOMEM;
    if (IS("type") && !dot) {
        static const char *const types[] = {"track",  "identify", "page",
                                            "screen", "group",    "alias"};
        for (size_t i = 0; i < 6; i++)
            if (!strcmp(value, types[i]))
                return (it->type = strdup(value)) ? 0 : -ENOMEM;
        snprintf(err, errlen, "line %d: type: '%s' is not a Segment call type", it->line, value);
        return -EINVAL;
    }
    if (IS("salt") && !dot)
        return (it->salt = strdup(value)) ? 0 : -ENOMEM;
    if ((IS("drop") || IS("remove")) && dot)
        return add_rule(it, SB_RW_DROP, value, err, errlen);
    if (IS("hash") && dot)
        return add_rule(it, SB_RW_HASH, value, err, errlen);
    if (IS("allow") && dot)
        return add_rule(it, SB_RW_KEEP, value, err, errlen);
    if (IS("set") && dot) {
        if ((rc = add_rule(it, SB_RW_SET, dot + 1, err, errlen)))
            return rc;
        return pack_value(value, (uint8_t **)&it->rules[it->n - 1].value,
                          &it->rules[it->n - 1].value_len);
    }
    if (IS("rename") && !dot) {
        if ((rc = add_rule(it, SB_RW_SET, "event", err, errlen)))
            return rc;
        struct sb_rw_rule *r = &it->rules[it->n - 1];
        struct sb_buf b = SB_BUF_INIT;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, buf_write);
        if (msgpack_pack_str(&pk, strlen(value)) ||
            msgpack_pack_str_body(&pk, value, strlen(value)))
            return -ENOMEM;
        r->value = b.data;
        r->value_len = b.len;
        return 0;
    }
    if (IS("normalize") && !dot) {
        if (strcmp(value, "title_case")) {
            snprintf(err, errlen, "line %d: normalize: '%s' (only title_case is known)", it->line,
                     value);
            return -EINVAL;
        }
        return add_rule(it, SB_RW_TITLE, "event", err, errlen);
    }
#undef IS
    snprintf(err, errlen,
             "line %d: transforms: unknown key '%s' (known: event, type, salt, drop, remove, hash, "
             "allow, set, rename, normalize)",
             it->line, key);
    return -EINVAL;
}

/* The fields a rule writes: its path, or for KEEP the parent whose other fields it removes. */
static size_t touched_len(const struct sb_rw_rule *r)
{
    return r->op == SB_RW_KEEP ? r->n - 1 : r->n;
}

static bool overlaps(const struct sb_rw_rule *a, const struct sb_rw_rule *b)
{
    size_t n = touched_len(a) < touched_len(b) ? touched_len(a) : touched_len(b);
    for (size_t k = 0; k < n; k++)
        if (a->segs[k].len != b->segs[k].len || memcmp(a->segs[k].s, b->segs[k].s, a->segs[k].len))
            return false;
    return true; /* one is a prefix of the other (or a KEEP's parent is the root) */
}

static bool writes_top(const struct titem *it, const char *name)
{
    for (size_t k = 0; k < it->n; k++)
        if (touched_len(&it->rules[k]) == 0 ||
            (it->rules[k].segs[0].len == strlen(name) &&
             !memcmp(it->rules[k].segs[0].s, name, strlen(name))))
            return true;
    return false;
}

/* Items a (earlier) and b can run in one pass with the result of running them in order:
 * no field written by both (or one inside the other), and a does not write what b's filter
 * reads. */
static bool independent(const struct titem *a, const struct titem *b)
{
    for (size_t x = 0; x < a->n; x++)
        for (size_t y = 0; y < b->n; y++)
            if (overlaps(&a->rules[x], &b->rules[y]))
                return false;
    if (b->type && writes_top(a, "type"))
        return false;
    if (b->event && (writes_top(a, "event") || writes_top(a, "name")))
        return false;
    return true;
}

/* Can this rule turn an event that passed sb_event_inspect into one that does not? Only by
 * writing a root field inspect checks (identity, type, messageId, the object fields), by
 * allow-listing the root, or by nesting too deep; fields below the root cannot change what
 * inspect sees (a path into a scalar leads nowhere, maps stay maps). Conservative. */
static bool rule_keeps_valid(const struct sb_rw_rule *r)
{
    static const char *const checked[] = {"type",       "userId", "anonymousId", "messageId",
                                          "event",      "name",   "groupId",     "previousId",
                                          "properties", "traits", "context",     "integrations",
                                          "timestamp"};
    /* hashing keeps a string a string (and null null); these must be strings when present */
    static const char *const hashable[] = {"userId",  "anonymousId", "event",    "name",
                                           "groupId", "previousId",  "timestamp"};
    const struct sb_rw_seg *g = &r->segs[0];

    if (r->op == SB_RW_SET && sb_mp_check(r->value, r->value_len, 48) != 0)
        return false; /* the value alone may nest past the pipeline's depth limit */
    if (r->n > 8)
        return false;
    if (r->op == SB_RW_KEEP)
        return r->n >= 2;
    if (r->n >= 2)
        return true;
    if (r->op == SB_RW_TITLE)
        return true; /* a string stays a string of the same length */
    if (r->op == SB_RW_HASH)
        for (size_t i = 0; i < sizeof hashable / sizeof *hashable; i++)
            if (g->len == strlen(hashable[i]) && !memcmp(g->s, hashable[i], g->len))
                return true;
    for (size_t i = 0; i < sizeof checked / sizeof *checked; i++)
        if (g->len == strlen(checked[i]) && !memcmp(g->s, checked[i], g->len))
            return false;
    return true;
}

int sb_transform_new(const struct sb_kv_list *kv, struct sb_transform **out, char *err,
                     size_t errlen)
{
    struct sb_transform *t = calloc(1, sizeof *t);
    int rc = 0;

    *out = NULL;
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < kv->n && !rc; i++) {
        char *end;
        unsigned long idx = strtoul(kv->items[i].path, &end, 10);
        if (end == kv->items[i].path || *end != '.' || idx > 1024) {
            snprintf(err, errlen, "line %d: transforms must be a list of maps (got '%s')",
                     kv->items[i].line, kv->items[i].path);
            rc = -EINVAL;
            break;
        }
        if (idx >= t->n) {
            void *ni = realloc(t->items, (idx + 1) * sizeof *t->items);
            if (!ni) {
                rc = -ENOMEM;
                break;
            }
            t->items = ni;
            memset(t->items + t->n, 0, (idx + 1 - t->n) * sizeof *t->items);
            t->n = idx + 1;
        }
        if (!t->items[idx].line)
            t->items[idx].line = kv->items[i].line;
        rc = item_key(&t->items[idx], end + 1, kv->items[i].value, err, errlen);
    }
    for (size_t i = 0; i < t->n && !rc; i++) {
        struct titem *it = &t->items[i];
        for (size_t j = 0; j < it->n; j++) {
            if (it->rules[j].op == SB_RW_HASH && !it->salt) {
                snprintf(err, errlen, "line %d: hash needs a salt in the same item", it->line);
                rc = -EINVAL;
                break;
            }
            it->rules[j].salt = (const uint8_t *)it->salt;
            it->rules[j].salt_len = it->salt ? strlen(it->salt) : 0;
        }
        if (it->n > 128) {
            snprintf(err, errlen, "line %d: more than 128 paths in one item", it->line);
            rc = -EINVAL;
        }
    }
    if (!rc && t->n && !(t->indep = calloc(t->n * t->n, sizeof *t->indep)))
        rc = -ENOMEM;
    for (size_t i = 0; i < t->n && !rc; i++)
        for (size_t j = i + 1; j < t->n; j++)
            t->indep[i * t->n + j] = independent(&t->items[i], &t->items[j]);
    t->keeps_valid = true;
    for (size_t i = 0; i < t->n && !rc; i++)
        for (size_t j = 0; j < t->items[i].n; j++)
            t->keeps_valid &= rule_keeps_valid(&t->items[i].rules[j]);
    if (rc) {
        sb_transform_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static bool str_is(const uint8_t *ev, size_t len, const char *key, const char *want)
{
    struct sb_mp_reader v;
    const char *s;
    size_t sl;

    if (sb_mp_lookup(ev, len, key, &v) != 1 || sb_mp_read_str(&v, &s, &sl))
        return false;
    return sl == strlen(want) && !memcmp(s, want, sl);
}

/* meta: the event's metadata while its bytes are the stage's input (NULL after a pass changed
 * them): the call type and name without a lookup. */
static bool item_matches(const struct titem *it, const uint8_t *ev, size_t len,
                         const struct sb_event_meta *meta)
{
    if (meta) {
        if (it->type && strcmp(sb_call_name(meta->call), it->type))
            return false;
        if (it->event)
            return meta->event
                       ? meta->event_len == strlen(it->event) &&
                             !memcmp(meta->event, it->event, meta->event_len)
                       : str_is(ev, len, "event", it->event) || str_is(ev, len, "name", it->event);
        return true;
    }
    if (it->type && !str_is(ev, len, "type", it->type))
        return false;
    if (it->event && !str_is(ev, len, "event", it->event) && !str_is(ev, len, "name", it->event))
        return false;
    return true;
}

static int apply_pass(const struct sb_rw_rule *rules, size_t n, const uint8_t *ev, size_t len,
                      struct sb_buf *out, struct sb_buf *tmp, bool *changed, struct sb_rw_top *top)
{
    const uint8_t *cur = *changed ? out->data : ev;
    size_t cur_len = *changed ? out->len : len;
    int rc;

    if (!n)
        return 0;
    sb_buf_clear(tmp);
    /* an unchanged result is a copy of cur: top's offsets hold for out all the same */
    if ((rc = sb_rw_apply_top(cur, cur_len, rules, n, tmp, top)) == 1) {
        struct sb_buf sw = *out;
        *out = *tmp;
        *tmp = sw;
        *changed = true;
    }
    return rc < 0 ? rc : 0;
}

/* Items run in order; consecutive independent ones share one pass over the event (the
 * cursor's decoding is most of the cost). tmpb and out trade buffers, both stay allocated. */
static int sb_transform_apply_buf(const struct sb_transform *t, const uint8_t *ev, size_t len,
                                  struct sb_buf *out, struct sb_buf *tmpb,
                                  const struct sb_event_meta *meta, struct sb_rw_top *top)
{
    struct sb_rw_rule batch[128];
    size_t nb = 0, first = 0;
    bool changed = false;
    int rc = 0;

    for (size_t i = 0; i < t->n && !rc; i++) {
        const struct titem *it = &t->items[i];
        bool join = nb + it->n <= 128;
        if (!it->n)
            continue;
        for (size_t b = first; b < i && join; b++)
            join = t->indep[b * t->n + i];
        if (!join) {
            rc = apply_pass(batch, nb, ev, len, out, tmpb, &changed, top);
            nb = 0;
            first = i;
        }
        if (rc || !item_matches(it, changed ? out->data : ev, changed ? out->len : len,
                                changed ? NULL : meta))
            continue;
        memcpy(batch + nb, it->rules, it->n * sizeof *batch);
        nb += it->n;
    }
    if (!rc)
        rc = apply_pass(batch, nb, ev, len, out, tmpb, &changed, top);
    return rc < 0 ? rc : changed;
}

int sb_transform_apply(const struct sb_transform *t, const uint8_t *ev, size_t len,
                       struct sb_buf *out)
{
    struct sb_buf tmp = SB_BUF_INIT;
    int rc = sb_transform_apply_buf(t, ev, len, out, &tmp, NULL, NULL);
    sb_buf_free(&tmp);
    return rc;
}

/* ---- the stage ---- */
struct tstage {
    struct sb_transform *t;
    int source;
    struct sb_buf tmp; /* kept across events: no allocation per event once warm */
};

static const char *const transform_reasons[] = {"malformed", NULL};

enum { TOP_TYPE, TOP_MESSAGE_ID, TOP_EVENT, TOP_NAME, TOP_USER_ID, TOP_INTEGRATIONS, TOP_N };
static const char *const top_keys[TOP_N] = {"type", "messageId", "event",
                                            "name", "userId",    "integrations"};

/* A str value at off in b: its payload, or NULL (absent, or not a non-empty string). */
static const uint8_t *top_str(const struct sb_buf *b, const struct sb_rw_top *top, int k,
                              uint32_t *len)
{
    struct sb_mp_reader r;
    const char *s;
    size_t n;
    if (top->off[k] == SIZE_MAX)
        return NULL;
    sb_mp_reader_init(&r, b->data + top->off[k], top->len[k]);
    if (sb_mp_read_str(&r, &s, &n) || !n)
        return NULL;
    *len = (uint32_t)n;
    return (const uint8_t *)s;
}

/* The metadata of the rewritten event b, as sb_event_inspect would derive it, from where the
 * rewrite put the root fields. The call type is the input's (no rule of a keeps_valid
 * transform writes "type"). false if something is not as expected: then inspect decides. */
static bool meta_from_top(struct sb_event_meta *m, const struct sb_buf *b,
                          const struct sb_rw_top *top)
{
    if (b->len > SB_SEGMENT_MAX_EVENT_BYTES)
        return false;
    if (!(m->message_id = top_str(b, top, TOP_MESSAGE_ID, &m->message_id_len)))
        return false;
    m->event = NULL;
    m->event_len = 0;
    if (m->call == SB_CALL_TRACK) {
        if (!(m->event = top_str(b, top, TOP_EVENT, &m->event_len)))
            return false;
    } else if (m->call == SB_CALL_PAGE || m->call == SB_CALL_SCREEN) {
        if (!(m->event = top_str(b, top, TOP_NAME, &m->event_len)))
            m->event_len = 0;
    }
    if (!(m->user_id = top_str(b, top, TOP_USER_ID, &m->user_id_len)))
        m->user_id_len = 0;
    m->integrations = NULL;
    m->integrations_len = 0;
    if (top->off[TOP_INTEGRATIONS] != SIZE_MAX && top->len[TOP_INTEGRATIONS]) {
        uint8_t h = b->data[top->off[TOP_INTEGRATIONS]];
        if ((h >= 0x80 && h <= 0x8f) || h == 0xde || h == 0xdf) { /* a map; null otherwise */
            m->integrations = b->data + top->off[TOP_INTEGRATIONS];
            m->integrations_len = (uint32_t)top->len[TOP_INTEGRATIONS];
        }
    }
    return true;
}

static int transform_process(struct sb_stage *st, struct sb_stage_event *ev)
{
    struct tstage *ts = st->state;
    size_t off[TOP_N], len[TOP_N];
    struct sb_rw_top top = {top_keys, TOP_N, off, len};
    int rc;

    if (ev->meta->source != ts->source)
        return SB_STAGE_PASS;
    sb_buf_clear(ev->scratch);
    rc = sb_transform_apply_buf(ts->t, ev->data, ev->len, ev->scratch, &ts->tmp, ev->meta,
                                ts->t->keeps_valid ? &top : NULL);
    if (rc == 1 && ts->t->keeps_valid) {
        /* the new event and its inspection from the same pass; meta is only written on
         * success, so a fallback to the pipeline's inspection sees nothing half-done */
        struct sb_event_meta m = *ev->meta;
        if (meta_from_top(&m, ev->scratch, &top)) {
            *ev->meta = m;
            ev->inspected = true;
        }
    }
    if (rc == -EINVAL || rc == -E2BIG) {
        /* never pass an event we could not clean: it may carry the PII we were told to strip */
        ev->reason = 0;
        return SB_STAGE_DROP;
    }
    if (rc < 0)
        return rc;
    return rc ? SB_STAGE_REPLACE : SB_STAGE_PASS;
}

static void transform_destroy(struct sb_stage *st)
{
    struct tstage *ts = st->state;
    sb_transform_free(ts->t);
    sb_buf_free(&ts->tmp);
    free(ts);
    free(st);
}

struct sb_stage *sb_transform_stage_new(struct sb_transform *t, int source)
{
    struct sb_stage *st = calloc(1, sizeof *st);
    struct tstage *ts = calloc(1, sizeof *ts);

    if (!st || !ts) {
        free(st);
        free(ts);
        sb_transform_free(t);
        return NULL;
    }
    *ts = (struct tstage){.t = t, .source = source};
    *st = (struct sb_stage){.name = "transform",
                            .reasons = transform_reasons,
                            .process = transform_process,
                            .destroy = transform_destroy,
                            .state = ts};
    return st;
}
