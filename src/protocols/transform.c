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
    char *event;  /* only events of this name (track event / page name); NULL = any */
    char *type;   /* only this call type ("track", ...); NULL = any */
    char *salt;
    struct sb_rw_rule *rules;
    size_t n;
    int line;
};

struct sb_transform {
    struct titem *items;
    size_t n;
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
        static const char *const types[] = {"track", "identify", "page", "screen", "group", "alias"};
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
        if (msgpack_pack_str(&pk, strlen(value)) || msgpack_pack_str_body(&pk, value, strlen(value)))
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

static bool item_matches(const struct titem *it, const uint8_t *ev, size_t len)
{
    if (it->type && !str_is(ev, len, "type", it->type))
        return false;
    if (it->event && !str_is(ev, len, "event", it->event) && !str_is(ev, len, "name", it->event))
        return false;
    return true;
}

int sb_transform_apply(const struct sb_transform *t, const uint8_t *ev, size_t len,
                       struct sb_buf *out)
{
    struct sb_buf tmp = SB_BUF_INIT;
    bool changed = false;
    int rc = 0;

    for (size_t i = 0; i < t->n; i++) {
        const struct titem *it = &t->items[i];
        const uint8_t *cur = changed ? out->data : ev;
        size_t cur_len = changed ? out->len : len;
        if (!it->n || !item_matches(it, cur, cur_len))
            continue;
        sb_buf_clear(&tmp);
        rc = sb_rw_apply(cur, cur_len, it->rules, it->n, &tmp);
        if (rc < 0)
            break;
        if (rc == 1) {
            struct sb_buf sw = *out;
            *out = tmp;
            tmp = sw;
            changed = true;
        }
        rc = 0;
    }
    sb_buf_free(&tmp);
    return rc < 0 ? rc : changed;
}

/* ---- the stage ---- */
struct tstage {
    struct sb_transform *t;
    int source;
};

static const char *const transform_reasons[] = {"malformed", NULL};

static int transform_process(struct sb_stage *st, struct sb_stage_event *ev)
{
    struct tstage *ts = st->state;
    int rc;

    if (ev->meta->source != ts->source)
        return SB_STAGE_PASS;
    sb_buf_clear(ev->scratch);
    rc = sb_transform_apply(ts->t, ev->data, ev->len, ev->scratch);
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
    *ts = (struct tstage){t, source};
    *st = (struct sb_stage){.name = "transform",
                            .reasons = transform_reasons,
                            .process = transform_process,
                            .destroy = transform_destroy,
                            .state = ts};
    return st;
}
