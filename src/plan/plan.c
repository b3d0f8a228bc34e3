/* plan.c: loads Segment tracking plans (Config API, Public API, the seed's shorthand) into
 * compiled rules, and checks events against the rule their type/name/version selects. */
#include "plan/plan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>

#include "json/json.h"
#include "mp/mp_reader.h"

struct rule {
    enum sb_rule_type type;
    char *key;
    size_t klen;
    int64_t version;
    struct sb_schema *schema;
    uint32_t next; /* the next rule of the same type and key (index + 1), 0 = none */
};

/* Rules are found per event through a hash of (type, key): a plan of thousands of events costs
 * each event one probe, not a scan. Rules of one (type, key) are chained by `next`. */
struct sb_plan {
    struct rule *rules;
    size_t n, cap;
    uint32_t *slots; /* open addressing, 0 = empty, else the first rule's index + 1 */
    size_t mask;
    uint32_t *common; /* indexes of the COMMON rules */
    size_t n_common;
};

static uint64_t key_hash(enum sb_rule_type type, const char *key, size_t klen)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)type;
    for (size_t i = 0; i < klen; i++)
        h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* After loading: the (type, key) hash, the chains and the COMMON list. 0 or -ENOMEM. */
static int build_index(struct sb_plan *p)
{
    size_t cap = 16;
    while (cap < 2 * p->n)
        cap *= 2;
    if (!(p->slots = calloc(cap, sizeof *p->slots)) ||
        !(p->common = calloc(p->n ? p->n : 1, sizeof *p->common)))
        return -ENOMEM;
    p->mask = cap - 1;
    for (size_t i = p->n; i-- > 0;) { /* backwards, so that chains keep the file's order */
        struct rule *r = &p->rules[i];
        size_t at = key_hash(r->type, r->key, r->klen) & p->mask;
        for (; p->slots[at]; at = (at + 1) & p->mask) {
            struct rule *f = &p->rules[p->slots[at] - 1];
            if (f->type == r->type && f->klen == r->klen && !memcmp(f->key, r->key, r->klen))
                break;
        }
        r->next = p->slots[at];
        p->slots[at] = (uint32_t)i + 1;
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->rules[i].type == SB_RULE_COMMON)
            p->common[p->n_common++] = (uint32_t)i;
    return 0;
}

struct loader {
    struct sb_plan *plan;
    char *err;
    size_t errlen;
};

/* printf-checked: every caller passes a literal format */
__attribute__((format(printf, 2, 3))) static int lerr(struct loader *l, const char *fmt, ...)
{
    if (l->err && l->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err, l->errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* A value of a map by key: on 1, *v spans exactly that value. */
static int get(const uint8_t *map, size_t len, const char *key, struct sb_mp_reader *v)
{
    return sb_mp_lookup(map, len, key, v);
}

static bool is_type(const struct sb_mp_reader *v, enum sb_mp_type t)
{
    struct sb_mp_item it;
    return sb_mp_peek(v, &it) == 0 && it.type == t;
}

static const char *type_names[] = {"TRACK", "IDENTIFY", "GROUP", "PAGE", "SCREEN", "COMMON"};

static int add_rule(struct loader *l, enum sb_rule_type type, const char *key, size_t klen,
                    int64_t version, const uint8_t *schema, size_t slen)
{
    struct sb_plan *p = l->plan;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        struct rule *r = realloc(p->rules, cap * sizeof *r);
        if (!r)
            return -ENOMEM;
        p->rules = r;
        p->cap = cap;
    }
    struct rule *r = &p->rules[p->n];
    memset(r, 0, sizeof *r);
    r->type = type;
    r->version = version;
    r->key = strndup(key, klen);
    r->klen = r->key ? strlen(r->key) : 0;
    if (!r->key)
        return -ENOMEM;
    char why[256] = "";
    int rc = sb_schema_compile_mp(schema, slen, &r->schema, why, sizeof why);
    if (rc < 0) {
        if (rc != -ENOMEM)
            rc = lerr(l, "rule %s '%s' version %lld: %s", type_names[type], r->key,
                      (long long)version, why);
        free(r->key);
        return rc;
    }
    p->n++;
    return 0;
}

/* msgpack of {"type":"object","properties":{<name>: <value>, ...}} wrapping raw sub-values. */
struct part {
    const char *name;
    const uint8_t *p;
    size_t n;
};

static int wrap(const struct part *parts, size_t n, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t present = 0;
    for (size_t i = 0; i < n; i++)
        present += parts[i].p != NULL;
    int bad = msgpack_pack_map(&pk, 2) || msgpack_pack_str_with_body(&pk, "type", 4) ||
              msgpack_pack_str_with_body(&pk, "object", 6) ||
              msgpack_pack_str_with_body(&pk, "properties", 10) || msgpack_pack_map(&pk, present);
    for (size_t i = 0; i < n && !bad; i++)
        if (parts[i].p)
            bad = msgpack_pack_str_with_body(&pk, parts[i].name, strlen(parts[i].name)) ||
                  msgpack_sbuffer_write(sb, (const char *)parts[i].p, parts[i].n);
    return bad ? -ENOMEM : 0;
}

/* The seed writes "rules": {"properties": <schema of event.properties>}: its "properties"
 * holds keywords ("type": "object") where a schema's "properties" holds only subschemas. */
static bool is_shorthand(const uint8_t *rules, size_t len)
{
    struct sb_mp_reader v;
    struct sb_mp_item it;
    if (get(rules, len, "properties", &v) != 1 || sb_mp_next(&v, &it) < 0 || it.type != SB_MP_MAP)
        return false;
    for (uint32_t i = 0; i < it.v.count; i++) {
        struct sb_mp_item k, val;
        if (sb_mp_next(&v, &k) < 0 || sb_mp_peek(&v, &val) < 0)
            return false;
        if (val.type != SB_MP_MAP && val.type != SB_MP_BOOL)
            return true;
        if (sb_mp_skip(&v) < 0)
            return false;
    }
    return false;
}

static int read_version(struct loader *l, const uint8_t *obj, size_t len, const char *what,
                        int64_t *version)
{
    struct sb_mp_reader v;
    *version = 1;
    int rc = get(obj, len, "version", &v);
    if (rc < 0)
        return -EINVAL;
    if (rc == 1 && sb_mp_read_int(&v, version) < 0)
        return lerr(l, "%s: version must be an integer", what);
    return 0;
}

static int add_traits(struct loader *l, enum sb_rule_type type, struct sb_mp_reader *v)
{
    const uint8_t *p = v->p;
    size_t n = sb_mp_reader_left(v);
    struct sb_mp_reader props, traits;
    bool whole = get(p, n, "properties", &props) == 1 &&
                 get(props.p, sb_mp_reader_left(&props), "traits", &traits) == 1 &&
                 is_type(&traits, SB_MP_MAP);
    if (whole || is_type(v, SB_MP_BOOL))
        return add_rule(l, type, "", 0, 1, p, n);
    struct part part = {"traits", p, n};
    msgpack_sbuffer sb;
    int rc = wrap(&part, 1, &sb);
    if (rc == 0)
        rc = add_rule(l, type, "", 0, 1, (const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int load_config(struct loader *l, const uint8_t *map, size_t len)
{
    struct sb_mp_reader ev, v;
    int rc = get(map, len, "events", &ev);
    struct sb_mp_item it;
    if (rc == 1) {
        if (sb_mp_next(&ev, &it) < 0 || it.type != SB_MP_ARRAY)
            return lerr(l, "plan: \"events\" must be an array");
        for (uint32_t i = 0; i < it.v.count; i++) {
            const uint8_t *e = ev.p;
            if (sb_mp_skip(&ev) < 0)
                return -EINVAL;
            size_t elen = (size_t)(ev.p - e);
            const char *name;
            size_t nlen;
            char what[64];
            snprintf(what, sizeof what, "plan: events[%u]", i);
            if (get(e, elen, "name", &v) != 1 || sb_mp_read_str(&v, &name, &nlen) < 0)
                return lerr(l, "%s: \"name\" (a string) is required", what);
            int64_t version;
            if ((rc = read_version(l, e, elen, what, &version)) < 0)
                return rc;
            rc = get(e, elen, "rules", &v);
            if (rc < 0)
                return -EINVAL;
            if (rc == 0) { /* an event without rules: planned, anything goes */
                if ((rc = add_rule(l, SB_RULE_TRACK, name, nlen, version, (const uint8_t *)"\xc3",
                                   1)) < 0)
                    return rc;
                continue;
            }
            const uint8_t *rp = v.p;
            size_t rn = sb_mp_reader_left(&v);
            if (is_type(&v, SB_MP_MAP) && is_shorthand(rp, rn)) {
                struct part parts[3] = {
                    {"properties", NULL, 0}, {"context", NULL, 0}, {"traits", NULL, 0}};
                for (int k = 0; k < 3; k++) {
                    struct sb_mp_reader sub;
                    if (get(rp, rn, parts[k].name, &sub) == 1) {
                        parts[k].p = sub.p;
                        parts[k].n = sb_mp_reader_left(&sub);
                    }
                }
                msgpack_sbuffer sb;
                rc = wrap(parts, 3, &sb);
                if (rc == 0)
                    rc = add_rule(l, SB_RULE_TRACK, name, nlen, version, (const uint8_t *)sb.data,
                                  sb.size);
                msgpack_sbuffer_destroy(&sb);
            } else
                rc = add_rule(l, SB_RULE_TRACK, name, nlen, version, rp, rn);
            if (rc < 0)
                return rc;
        }
    } else if (rc < 0)
        return -EINVAL;
    if ((rc = get(map, len, "global", &v)) == 1 && !is_type(&v, SB_MP_NIL)) {
        if ((rc = add_rule(l, SB_RULE_COMMON, "", 0, 1, v.p, sb_mp_reader_left(&v))) < 0)
            return rc;
    }
    if ((rc = get(map, len, "identify_traits", &v)) == 1 && !is_type(&v, SB_MP_NIL))
        if ((rc = add_traits(l, SB_RULE_IDENTIFY, &v)) < 0)
            return rc;
    if ((rc = get(map, len, "group_traits", &v)) == 1 && !is_type(&v, SB_MP_NIL))
        if ((rc = add_traits(l, SB_RULE_GROUP, &v)) < 0)
            return rc;
    return rc < 0 ? rc : 0;
}

static int load_public(struct loader *l, struct sb_mp_reader *arr)
{
    struct sb_mp_item it;
    if (sb_mp_next(arr, &it) < 0 || it.type != SB_MP_ARRAY)
        return lerr(l, "plan: rules must be an array");
    for (uint32_t i = 0; i < it.v.count; i++) {
        const uint8_t *e = arr->p;
        if (sb_mp_skip(arr) < 0)
            return -EINVAL;
        size_t elen = (size_t)(arr->p - e);
        struct sb_mp_reader v;
        char what[64];
        snprintf(what, sizeof what, "plan: rules[%u]", i);
        const char *type, *key = "";
        size_t tlen, klen = 0;
        if (get(e, elen, "type", &v) != 1 || sb_mp_read_str(&v, &type, &tlen) < 0)
            return lerr(l, "%s: \"type\" (a string) is required", what);
        int t = -1;
        for (int k = 0; k < 6; k++)
            if (strlen(type_names[k]) == tlen && !strncasecmp(type_names[k], type, tlen))
                t = k;
        if (t < 0)
            return lerr(l,
                        "%s: unknown type \"%.*s\" (TRACK, IDENTIFY, GROUP, PAGE, SCREEN or "
                        "COMMON)",
                        what, (int)tlen, type);
        int rc = get(e, elen, "key", &v);
        if (rc == 1 && !is_type(&v, SB_MP_NIL) && sb_mp_read_str(&v, &key, &klen) < 0)
            return lerr(l, "%s: \"key\" must be a string", what);
        if (t == SB_RULE_TRACK && !klen)
            return lerr(l, "%s: a TRACK rule needs a \"key\" (the event name)", what);
        int64_t version;
        if ((rc = read_version(l, e, elen, what, &version)) < 0)
            return rc;
        if (get(e, elen, "jsonSchema", &v) != 1)
            return lerr(l, "%s: \"jsonSchema\" is required", what);
        if ((rc = add_rule(l, (enum sb_rule_type)t, key, klen, version, v.p,
                           sb_mp_reader_left(&v))) < 0)
            return rc;
    }
    return 0;
}

static int load(struct loader *l, const uint8_t *mp, size_t len, int depth)
{
    struct sb_mp_reader r, v;
    struct sb_mp_item it;
    sb_mp_reader_init(&r, mp, len);
    if (sb_mp_peek(&r, &it) < 0)
        return -EINVAL;
    if (it.type == SB_MP_ARRAY)
        return load_public(l, &r);
    if (it.type != SB_MP_MAP || depth > 2)
        return lerr(l, "plan: expected an object with \"rules\" or \"events\", or an array of "
                       "rules");
    if (get(mp, len, "data", &v) == 1 && is_type(&v, SB_MP_MAP))
        return load(l, v.p, sb_mp_reader_left(&v), depth + 1);
    if (get(mp, len, "rules", &v) == 1) {
        if (is_type(&v, SB_MP_ARRAY))
            return load_public(l, &v);
        if (is_type(&v, SB_MP_MAP))
            return load_config(l, v.p, sb_mp_reader_left(&v));
        return lerr(l, "plan: \"rules\" must be an object or an array");
    }
    if (get(mp, len, "events", &v) == 1)
        return load_config(l, mp, len);
    return lerr(l, "plan: expected an object with \"rules\" or \"events\", or an array of rules");
}

int sb_plan_load_json(const char *json, size_t len, struct sb_plan **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    struct sb_json_error je;
    int rc = sb_json_to_msgpack(json, len, &pk, &je);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "plan JSON at byte %zu: %s", je.offset,
                     je.reason ? je.reason : "error");
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    struct sb_plan *p = calloc(1, sizeof *p);
    if (!p) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    struct loader l = {p, err, errlen};
    rc = load(&l, (const uint8_t *)sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
    if (rc >= 0 && p->n > UINT32_MAX - 1)
        rc = lerr(&l, "plan: too many rules");
    if (rc >= 0)
        rc = build_index(p);
    if (rc < 0) {
        if (rc == -EINVAL && err && errlen && !err[0])
            snprintf(err, errlen, "plan: malformed");
        sb_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void sb_plan_free(struct sb_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->rules[i].key);
        sb_schema_free(p->rules[i].schema);
    }
    free(p->rules);
    free(p->slots);
    free(p->common);
    free(p);
}

size_t sb_plan_rule_count(const struct sb_plan *p)
{
    return p ? p->n : 0;
}

/* Pick among rules of a type and key (NULL key: any) the pinned version or the lowest. */
static const struct rule *pick(const struct sb_plan *p, enum sb_rule_type type, const char *key,
                               size_t klen, bool pinned, int64_t version, bool *key_known)
{
    const struct rule *best = NULL;
    *key_known = false;
    if (key) {
        size_t at = key_hash(type, key, klen) & p->mask;
        uint32_t first = 0;
        for (; p->slots[at]; at = (at + 1) & p->mask) {
            const struct rule *f = &p->rules[p->slots[at] - 1];
            if (f->type == type && f->klen == klen && !memcmp(f->key, key, klen)) {
                first = p->slots[at];
                break;
            }
        }
        for (uint32_t i = first; i; i = p->rules[i - 1].next) {
            const struct rule *r = &p->rules[i - 1];
            *key_known = true;
            if (pinned ? r->version == version : (!best || r->version < best->version))
                best = r;
        }
        return best;
    }
    for (size_t i = 0; i < p->n; i++) { /* identify/group: whatever the key (few rules) */
        const struct rule *r = &p->rules[i];
        if (r->type != type)
            continue;
        *key_known = true;
        if (pinned ? r->version == version : (!best || r->version < best->version))
            best = r;
    }
    return best;
}

static int add_violation(struct sb_violations *out, enum sb_violation_kind kind, const char *path,
                         const char *reason)
{
    if (!out)
        return 0;
    if (out->limit && out->count >= out->limit) {
        out->truncated = true;
        return 0;
    }
    if (out->count == out->cap) {
        size_t cap = out->cap ? 2 * out->cap : 8;
        struct sb_violation *n = realloc(out->items, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        out->items = n;
        out->cap = cap;
    }
    struct sb_violation *v = &out->items[out->count];
    v->kind = kind;
    v->keyword = "plan";
    v->path = strdup(path);
    v->pointer = malloc(strlen(path) + 2);
    v->reason = strdup(reason);
    if (!v->path || !v->pointer || !v->reason) {
        free(v->path);
        free(v->pointer);
        free(v->reason);
        return -ENOMEM;
    }
    v->pointer[0] = '/';
    strcpy(v->pointer + 1, path);
    out->count++;
    return 0;
}

/* context.protocols.event_version of the event map ev (already checked). */
static bool pinned_version(const uint8_t *ev, size_t len, int64_t *version)
{
    struct sb_mp_reader ctx, prot, ver;
    return sb_mp_lookup(ev, len, "context", &ctx) == 1 &&
           sb_mp_lookup(ctx.p, sb_mp_reader_left(&ctx), "protocols", &prot) == 1 &&
           sb_mp_lookup(prot.p, sb_mp_reader_left(&prot), "event_version", &ver) == 1 &&
           sb_mp_read_int(&ver, version) == 0;
}

int sb_plan_check(const struct sb_plan *p, const uint8_t *ev, size_t len, struct sb_violations *out,
                  struct sb_plan_match *match)
{
    struct sb_plan_match m = {true, NULL, 0, SB_RULE_COMMON};
    struct sb_mp_reader v;
    struct sb_mp_item it;
    if (match)
        *match = m;
    sb_mp_reader_init(&v, ev, len);
    if (!p || sb_mp_peek(&v, &it) < 0 || it.type != SB_MP_MAP || sb_mp_check(ev, len, 256) < 0)
        return -EINVAL;

    const char *type = "", *name = NULL;
    size_t tlen = 0, nlen = 0;
    if (sb_mp_lookup(ev, len, "type", &v) == 1)
        sb_mp_read_str(&v, &type, &tlen);
    static const char *wire[] = {"track", "identify", "group", "page", "screen"};
    int t = -1;
    for (int k = 0; k < 5; k++)
        if (strlen(wire[k]) == tlen && !memcmp(wire[k], type, tlen))
            t = k;
    if (t == SB_RULE_TRACK && sb_mp_lookup(ev, len, "event", &v) == 1)
        sb_mp_read_str(&v, &name, &nlen);
    if ((t == SB_RULE_PAGE || t == SB_RULE_SCREEN) && sb_mp_lookup(ev, len, "name", &v) == 1)
        sb_mp_read_str(&v, &name, &nlen);
    return sb_plan_check_event(p, ev, len, t, name, nlen, out, match);
}

int sb_plan_check_event(const struct sb_plan *p, const uint8_t *ev, size_t len, int t,
                        const char *name, size_t nlen, struct sb_violations *out,
                        struct sb_plan_match *match)
{
    struct sb_plan_match m = {true, NULL, 0, SB_RULE_COMMON};
    if (match)
        *match = m;
    if (!p || t > SB_RULE_SCREEN)
        return -EINVAL;
    size_t before = out ? out->count : 0;
    int invalid = 0;
    /* context.protocols.event_version (only looked up when some rule could care) */
    bool pinned = false;
    int64_t version = 0;
    if (t >= 0 && p->n > p->n_common)
        pinned = pinned_version(ev, len, &version);

    /* Common rules first (Segment evaluates the event's own rules, then the common schema;
     * the order only changes the order of the list). */
    for (size_t i = 0; i < p->n_common; i++) {
        int rc = sb_schema_validate_checked(p->rules[p->common[i]].schema, ev, len, out);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            invalid = 1;
            if (!out)
                return 1;
        }
    }
    const struct rule *r = NULL;
    if (t >= 0) {
        bool known = false;
        if (t == SB_RULE_TRACK) {
            r = name ? pick(p, SB_RULE_TRACK, name, nlen, pinned, version, &known) : NULL;
            if (!r) {
                char reason[300];
                if (!name)
                    snprintf(reason, sizeof reason, "track event without an event name");
                else if (known)
                    snprintf(reason, sizeof reason,
                             "version %lld of event '%.*s' is not in the tracking plan",
                             (long long)version, (int)(nlen > 200 ? 200 : nlen), name);
                else
                    snprintf(reason, sizeof reason, "event '%.*s' is not in the tracking plan",
                             (int)(nlen > 200 ? 200 : nlen), name);
                m.planned = false;
                invalid = 1;
                if (add_violation(out, SB_VIOLATION_UNPLANNED_EVENT, "event", reason) < 0)
                    return -ENOMEM;
            }
        } else if (t == SB_RULE_PAGE || t == SB_RULE_SCREEN) {
            if (name)
                r = pick(p, (enum sb_rule_type)t, name, nlen, pinned, version, &known);
            if (!r)
                r = pick(p, (enum sb_rule_type)t, "", 0, pinned, version, &known);
        } else
            r = pick(p, (enum sb_rule_type)t, NULL, 0, pinned, version, &known);
    }
    if (r) {
        m.rule = r->key;
        m.version = r->version;
        m.type = r->type;
        int rc = sb_schema_validate_checked(r->schema, ev, len, out);
        if (rc < 0)
            return rc;
        if (rc == 0)
            invalid = 1;
    }
    if (match)
        *match = m;
    if (!out)
        return invalid;
    size_t added = out->count - before;
    return added ? (int)added : invalid; /* invalid with nothing added: the limit was reached */
}
