/* plan_stage.c: enforcing a tracking plan per source: allow/omit/block per violation class,
 * context.violations for omitted fields, the blocked-events log (NDJSON, rotated by size) and
 * violation counters by event, type and field. */
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event/event.h"
#include "json/json.h"
#include "metrics/metrics.h"
#include "mp/mp_reader.h"
#include "protocols/protocols.h"
#include "protocols/rewrite.h"

#define MAX_HANDLED 100 /* violations handled per event (more are counted as one block) */
#define MAX_SERIES 1024 /* distinct (event, type, field) counter series per stage */

static int buf_write(void *data, const char *buf, size_t len)
{
    return sb_buf_append(data, buf, len) ? -1 : 0;
}

static int parse_mode(const struct sb_kv *kv, const char *allowed, enum sb_pmode *m, char *err,
                      size_t errlen)
{
    static const char *const names[] = {"allow", "omit", "block"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(kv->value, names[i]) && strstr(allowed, names[i])) {
            *m = (enum sb_pmode)i;
            return 0;
        }
    snprintf(err, errlen, "line %d: violations.%s: '%s' is not one of %s", kv->line, kv->path,
             kv->value, allowed);
    return -EINVAL;
}

int sb_plan_opts_parse(const struct sb_kv_list *kv, struct sb_plan_opts *o, char *err,
                       size_t errlen)
{
    int rc = 0;

    *o = (struct sb_plan_opts){.log_max_bytes = 64ull << 20};
    for (size_t i = 0; i < kv->n && !rc; i++) {
        const struct sb_kv *k = &kv->items[i];
        if (!strcmp(k->path, "unplanned_events")) {
            rc = parse_mode(k, "allow|block", &o->unplanned_events, err, errlen);
        } else if (!strcmp(k->path, "unplanned_properties")) {
            rc = parse_mode(k, "allow|omit", &o->unplanned_properties, err, errlen);
        } else if (!strcmp(k->path, "invalid")) {
            rc = parse_mode(k, "allow|omit|block", &o->invalid, err, errlen);
        } else if (!strcmp(k->path, "forward_to")) {
            free(o->forward_to);
            if (!(o->forward_to = strdup(k->value)))
                rc = -ENOMEM;
        } else if (!strcmp(k->path, "log")) {
            free(o->log_path);
            if (!(o->log_path = strdup(k->value)))
                rc = -ENOMEM;
        } else if (!strcmp(k->path, "log_max_bytes")) {
            char *end;
            unsigned long long v = strtoull(k->value, &end, 10);
            if (end == k->value || *end || k->value[0] == '-') {
                snprintf(err, errlen, "line %d: violations.log_max_bytes: '%s' is not a byte count",
                         k->line, k->value);
                rc = -EINVAL;
            }
            o->log_max_bytes = v;
        } else {
            snprintf(err, errlen,
                     "line %d: violations: unknown key '%s' (known: unplanned_events, "
                     "unplanned_properties, invalid, log, log_max_bytes, forward_to)",
                     k->line, k->path);
            rc = -EINVAL;
        }
    }
    if (rc)
        sb_plan_opts_free(o);
    return rc;
}

void sb_plan_opts_free(struct sb_plan_opts *o)
{
    free(o->log_path);
    o->log_path = NULL;
    free(o->forward_to);
    o->forward_to = NULL;
}

static enum sb_pmode mode_of(const struct sb_plan_opts *o, enum sb_violation_kind k)
{
    switch (k) {
    case SB_VIOLATION_UNPLANNED_EVENT:
        return o->unplanned_events;
    case SB_VIOLATION_UNPLANNED_PROPERTY:
        return o->unplanned_properties;
    default:
        return o->invalid;
    }
}

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n) ? -ENOMEM : 0;
}

/* [{type, field, reason}] of the violations selected by mode (or all when mode < 0). */
static int pack_violations(msgpack_packer *pk, const struct sb_plan_opts *o,
                           const struct sb_violations *v, int mode)
{
    size_t n = 0;
    for (size_t i = 0; i < v->count; i++)
        n += mode < 0 || (int)mode_of(o, v->items[i].kind) == mode;
    if (msgpack_pack_array(pk, n))
        return -ENOMEM;
    for (size_t i = 0; i < v->count; i++) {
        const struct sb_violation *x = &v->items[i];
        if (mode >= 0 && (int)mode_of(o, x->kind) != mode)
            continue;
        if (msgpack_pack_map(pk, 3) || pack_cstr(pk, "type") ||
            pack_cstr(pk, sb_violation_kind_name(x->kind)) || pack_cstr(pk, "field") ||
            pack_cstr(pk, x->path ? x->path : "") || pack_cstr(pk, "reason") ||
            pack_cstr(pk, x->reason ? x->reason : ""))
            return -ENOMEM;
    }
    return 0;
}

static int handle(const struct sb_plan *plan, const struct sb_plan_opts *o, const uint8_t *ev,
                  size_t len, const struct sb_event_meta *meta, struct sb_violations *v,
                  struct sb_plan_match *match, struct sb_buf *out);

int sb_plan_handle(const struct sb_plan *plan, const struct sb_plan_opts *o, const uint8_t *ev,
                   size_t len, struct sb_violations *v, struct sb_plan_match *match,
                   struct sb_buf *out)
{
    return handle(plan, o, ev, len, NULL, v, match, out);
}

/* The rule type of a call (-1: alias, which plans do not cover). */
static int rule_type(enum sb_call call)
{
    switch (call) {
    case SB_CALL_TRACK:
        return SB_RULE_TRACK;
    case SB_CALL_IDENTIFY:
        return SB_RULE_IDENTIFY;
    case SB_CALL_GROUP:
        return SB_RULE_GROUP;
    case SB_CALL_PAGE:
        return SB_RULE_PAGE;
    case SB_CALL_SCREEN:
        return SB_RULE_SCREEN;
    default:
        return -1;
    }
}

/* meta non-NULL: ev passed sb_event_inspect (checked, type and name in meta), so the plan need
 * not check or look them up again. */
static int handle(const struct sb_plan *plan, const struct sb_plan_opts *o, const uint8_t *ev,
                  size_t len, const struct sb_event_meta *meta, struct sb_violations *v,
                  struct sb_plan_match *match, struct sb_buf *out)
{
    struct sb_rw_rule rules[MAX_HANDLED + 1];
    struct sb_buf val = SB_BUF_INIT;
    msgpack_packer pk;
    size_t nr = 0;
    bool omit = false;
    int rc;

    sb_violations_clear(v);
    v->limit = MAX_HANDLED;
    rc = meta ? sb_plan_check_event(plan, ev, len, rule_type(meta->call), (const char *)meta->event,
                                    meta->event_len, v, match)
              : sb_plan_check(plan, ev, len, v, match);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return SB_PLAN_CLEAN;
    if (v->truncated)
        return SB_PLAN_BLOCKED; /* too broken to repair field by field */
    for (size_t i = 0; i < v->count; i++) {
        enum sb_pmode m = mode_of(o, v->items[i].kind);
        if (m == SB_PMODE_BLOCK)
            return SB_PLAN_BLOCKED;
        omit |= m == SB_PMODE_OMIT;
    }
    if (!omit)
        return SB_PLAN_ALLOWED;
    /* one DROP rule per omitted value (REQUIRED names a missing one: nothing to drop; the
     * whole event, pointer "", is never dropped by omit), then context.violations */
    for (size_t i = 0; i < v->count; i++) {
        const struct sb_violation *x = &v->items[i];
        if (mode_of(o, x->kind) != SB_PMODE_OMIT || x->kind == SB_VIOLATION_REQUIRED ||
            !x->pointer || !x->pointer[0] || !strcmp(x->pointer, "/"))
            continue;
        rules[nr] = (struct sb_rw_rule){.op = SB_RW_DROP, .arrays_by_index = true};
        if ((rc = sb_rw_path_parse(x->pointer, &rules[nr].segs, &rules[nr].n)))
            goto out;
        nr++;
    }
    msgpack_packer_init(&pk, &val, buf_write);
    if ((rc = pack_violations(&pk, o, v, SB_PMODE_OMIT)))
        goto out;
    rules[nr] = (struct sb_rw_rule){.op = SB_RW_SET, .value = val.data, .value_len = val.len};
    if ((rc = sb_rw_path_parse("context.violations", &rules[nr].segs, &rules[nr].n)))
        goto out;
    nr++;
    sb_buf_clear(out);
    rc = sb_rw_apply(ev, len, rules, nr, out);
    if (rc >= 0)
        rc = SB_PLAN_OMITTED;
out:
    for (size_t i = 0; i < nr; i++)
        sb_rw_segs_free(rules[i].segs, rules[i].n);
    sb_buf_free(&val);
    return rc;
}

/* ---- the stage ---- */
struct pstage {
    struct sb_plan *plan;
    struct sb_plan_opts o;
    char *source_name;
    int source;
    struct sb_metrics *m;
    struct sb_violations v;
    struct sb_buf line, rec;
    int fd;
    uint64_t log_size;
    uint64_t blocked, omitted, rotations, log_errors;
    uint64_t series[MAX_SERIES * 2]; /* open-addressed set of label hashes (0 = empty) */
    size_t n_series;
    struct sb_violation_sink sink;
    struct sb_buf gen; /* one Violation Generated event */
    uint64_t forwarded, forward_failed;
    uint64_t violated; /* events with violations (the tail notices when this moves) */
};

static const char *const plan_reasons[] = {"malformed", "blocked", "log_failed", NULL};

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h * 0x100000001b3ull) | 1;
}

static void count(struct pstage *ps, const char *event, const struct sb_violation *x)
{
    const char *type = sb_violation_kind_name(x->kind), *field = x->path ? x->path : "";
    uint64_t h = fnv(fnv(fnv(0xcbf29ce484222325ull, event), type), field);
    size_t i = h % (MAX_SERIES * 2);
    uint64_t *c;

    if (!ps->m)
        return;
    while (ps->series[i] && ps->series[i] != h)
        i = (i + 1) % (MAX_SERIES * 2);
    if (!ps->series[i]) {
        if (ps->n_series >= MAX_SERIES) {
            /* bound the label cardinality: arbitrary unplanned names must not grow /metrics */
            event = "(other)";
            field = "(other)";
        } else {
            ps->series[i] = h;
            ps->n_series++;
        }
    }
    const char *const labels[] = {"source", ps->source_name, "event", event, "type",
                                  type,     "field",         field,   NULL};
    if ((c = sb_metrics_counter(ps->m, "segbus_plan_violations_total",
                                "Tracking-plan violations by source, event, type and field.",
                                labels)))
        (*c)++;
}

static int log_open(struct pstage *ps)
{
    struct stat st;
    ps->fd = open(ps->o.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (ps->fd < 0)
        return -errno;
    ps->log_size = fstat(ps->fd, &st) ? 0 : (uint64_t)st.st_size;
    return 0;
}

/* One NDJSON line: {"time_ms", "source", "event", "violations": [...], "message": {...}}.
 * The log is where a block is made visible: a failure to write it drops with its own reason. */
static int log_blocked(struct pstage *ps, const char *event, const uint8_t *ev, size_t len)
{
    msgpack_packer pk;
    struct timespec ts;
    size_t used;
    int rc;

    clock_gettime(CLOCK_REALTIME, &ts);
    sb_buf_clear(&ps->rec);
    sb_buf_clear(&ps->line);
    msgpack_packer_init(&pk, &ps->rec, buf_write);
    if (msgpack_pack_map(&pk, 5) || pack_cstr(&pk, "time_ms") ||
        msgpack_pack_int64(&pk, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) ||
        pack_cstr(&pk, "source") || pack_cstr(&pk, ps->source_name) || pack_cstr(&pk, "event") ||
        pack_cstr(&pk, event) || pack_cstr(&pk, "violations") ||
        pack_violations(&pk, &ps->o, &ps->v, -1) || pack_cstr(&pk, "message") ||
        sb_buf_append(&ps->rec, ev, len))
        return -ENOMEM;
    if ((rc = sb_msgpack_to_json(ps->rec.data, ps->rec.len, &used, &ps->line)) ||
        (rc = sb_buf_append(&ps->line, "\n", 1)))
        return rc;
    if (ps->fd < 0 && (rc = log_open(ps)))
        return rc;
    if (ps->o.log_max_bytes && ps->log_size && ps->log_size + ps->line.len > ps->o.log_max_bytes) {
        char old[4096];
        snprintf(old, sizeof old, "%s.1", ps->o.log_path);
        close(ps->fd);
        ps->fd = -1;
        if (rename(ps->o.log_path, old))
            return -errno;
        ps->rotations++;
        if ((rc = log_open(ps)))
            return rc;
    }
    /* a regular-file append: short writes only on ENOSPC and the like, reported as failure */
    ssize_t w = write(ps->fd, ps->line.data, ps->line.len);
    if (w != (ssize_t)ps->line.len)
        return w < 0 ? -errno : -ENOSPC;
    ps->log_size += (uint64_t)w;
    return 0;
}

static int pack_strn(msgpack_packer *pk, const void *s, size_t n)
{
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n) ? -ENOMEM : 0;
}

int sb_violation_generated(const struct sb_violation *x, const uint8_t *ev, size_t len,
                           const struct sb_event_meta *meta, const char *source, int64_t now_ms,
                           struct sb_buf *out)
{
    msgpack_packer pk;
    struct sb_mp_reader r;
    const char *ts = NULL;
    size_t ts_len = 0;
    char id[37], when[25];
    uint8_t raw[16];

    if (sb_mp_lookup(ev, len, "timestamp", &r) == 1 && sb_mp_read_str(&r, &ts, &ts_len))
        ts = NULL;
    sb_uuid7(now_ms / 1000, (uint32_t)(now_ms % 1000) * 1000000u, id, raw);
    sb_timestamp_format(now_ms / 1000, (uint32_t)(now_ms % 1000), when);
    msgpack_packer_init(&pk, out, buf_write);
    if (msgpack_pack_map(&pk, 6) || pack_cstr(&pk, "type") || pack_cstr(&pk, "track") ||
        pack_cstr(&pk, "event") || pack_cstr(&pk, "Violation Generated") ||
        pack_cstr(&pk, "userId") || pack_cstr(&pk, "schema-violations") ||
        pack_cstr(&pk, "messageId") || pack_cstr(&pk, id) || pack_cstr(&pk, "timestamp") ||
        pack_cstr(&pk, when) || pack_cstr(&pk, "properties") ||
        msgpack_pack_map(&pk, 7 + (ts != NULL)) || pack_cstr(&pk, "violationType") ||
        pack_cstr(&pk, sb_violation_kind_name(x->kind)) || pack_cstr(&pk, "violationField") ||
        pack_cstr(&pk, x->path ? x->path : "") || pack_cstr(&pk, "violationDescription") ||
        pack_cstr(&pk, x->reason ? x->reason : "") || pack_cstr(&pk, "eventName") ||
        pack_strn(&pk, meta->event ? (const char *)meta->event : "", meta->event_len) ||
        pack_cstr(&pk, "eventType") || pack_cstr(&pk, sb_call_name(meta->call)) ||
        pack_cstr(&pk, "eventMessageID") ||
        pack_strn(&pk, meta->message_id ? (const char *)meta->message_id : "",
                  meta->message_id_len) ||
        pack_cstr(&pk, "sourceName") || pack_cstr(&pk, source) ||
        (ts && (pack_cstr(&pk, "eventTimestamp") || pack_strn(&pk, ts, ts_len))))
        return -ENOMEM;
    return 0;
}

/* One `Violation Generated` per violation to the chosen output. A refusal is counted, never
 * fatal for the event itself: forwarding is a report, not the event's path. */
static void forward(struct pstage *ps, const struct sb_stage_event *ev)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (size_t i = 0; i < ps->v.count; i++) {
        sb_buf_clear(&ps->gen);
        if (sb_violation_generated(&ps->v.items[i], ev->data, ev->len, ev->meta, ps->source_name,
                                   now_ms, &ps->gen) ||
            ps->sink.emit(ps->sink.arg, ps->o.forward_to, ps->gen.data, ps->gen.len))
            ps->forward_failed++;
        else
            ps->forwarded++;
    }
}

static int plan_process(struct sb_stage *st, struct sb_stage_event *ev)
{
    struct pstage *ps = st->state;
    struct sb_plan_match match;
    char event[256] = "";
    int rc;

    if (ev->meta->source != ps->source)
        return SB_STAGE_PASS;
    /* every event a stage sees passed sb_event_inspect (verify, or the re-inspection after a
     * replace): its bytes are checked and meta matches them */
    rc = handle(ps->plan, &ps->o, ev->data, ev->len, ev->meta, &ps->v, &match, ev->scratch);
    if (rc == -EINVAL) {
        ev->reason = 0;
        return SB_STAGE_DROP;
    }
    if (rc < 0)
        return rc;
    if (rc == SB_PLAN_CLEAN)
        return SB_STAGE_PASS;
    if (ev->meta->event) {
        size_t n = ev->meta->event_len < sizeof event - 1 ? ev->meta->event_len : sizeof event - 1;
        memcpy(event, ev->meta->event, n);
        event[n] = 0;
    }
    ps->violated++;
    for (size_t i = 0; i < ps->v.count; i++)
        count(ps, event, &ps->v.items[i]);
    if (ps->sink.emit && ps->o.forward_to)
        forward(ps, ev);
    if (rc == SB_PLAN_BLOCKED) {
        ps->blocked++;
        if (log_blocked(ps, event, ev->data, ev->len)) {
            ps->log_errors++;
            ev->reason = 2;
        } else {
            ev->reason = 1;
        }
        return SB_STAGE_DROP;
    }
    if (rc == SB_PLAN_OMITTED) {
        ps->omitted++;
        return SB_STAGE_REPLACE;
    }
    return SB_STAGE_PASS;
}

static void plan_destroy_parts(struct pstage *ps)
{
    if (ps->fd >= 0)
        close(ps->fd);
    sb_plan_free(ps->plan);
    sb_plan_opts_free(&ps->o);
    sb_violations_free(&ps->v);
    sb_buf_free(&ps->line);
    sb_buf_free(&ps->rec);
    sb_buf_free(&ps->gen);
    free(ps->source_name);
    free(ps);
}

static void plan_destroy(struct sb_stage *st)
{
    plan_destroy_parts(st->state);
    free(st);
}

struct sb_stage *sb_plan_stage_new(struct sb_plan *plan, const struct sb_plan_opts *o,
                                   const char *source_name, int source, struct sb_metrics *m)
{
    struct sb_stage *st = calloc(1, sizeof *st);
    struct pstage *ps = calloc(1, sizeof *ps);

    if (!st || !ps || !(ps->source_name = strdup(source_name ? source_name : "")) ||
        !(ps->o.log_path = strdup(o->log_path ? o->log_path : "violations.ndjson"))) {
        if (ps)
            free(ps->source_name);
        free(ps);
        free(st);
        sb_plan_free(plan);
        return NULL;
    }
    ps->o.unplanned_events = o->unplanned_events;
    ps->o.unplanned_properties = o->unplanned_properties;
    ps->o.invalid = o->invalid;
    ps->o.log_max_bytes = o->log_max_bytes;
    ps->plan = plan;
    ps->source = source;
    ps->m = m;
    ps->fd = -1;
    if (o->forward_to && !(ps->o.forward_to = strdup(o->forward_to))) {
        plan_destroy_parts(ps); /* frees the plan too: the stage owned it */
        free(st);
        return NULL;
    }
    *st = (struct sb_stage){.name = "plan",
                            .reasons = plan_reasons,
                            .process = plan_process,
                            .destroy = plan_destroy,
                            .state = ps};
    return st;
}

void sb_plan_stage_counts(const struct sb_stage *s, uint64_t *blocked, uint64_t *omitted,
                          uint64_t *rotations)
{
    const struct pstage *ps = s->state;
    *blocked = ps->blocked;
    *omitted = ps->omitted;
    *rotations = ps->rotations;
}

void sb_plan_stage_set_sink(struct sb_stage *s, const struct sb_violation_sink *sink)
{
    struct pstage *ps = s->state;
    ps->sink = sink ? *sink : (struct sb_violation_sink){0};
}

void sb_plan_stage_forwarded(const struct sb_stage *s, uint64_t *forwarded, uint64_t *failed)
{
    const struct pstage *ps = s->state;
    *forwarded = ps->forwarded;
    *failed = ps->forward_failed;
}

uint64_t sb_plan_stage_violated(const struct sb_stage *s, const struct sb_violations **last)
{
    const struct pstage *ps = s->state;
    if (last)
        *last = &ps->v;
    return ps->violated;
}

int sb_violations_json(const struct sb_violations *v, struct sb_buf *out)
{
    struct sb_buf mp = SB_BUF_INIT;
    struct sb_plan_opts all = {0};
    msgpack_packer pk;
    size_t used;
    int rc;

    msgpack_packer_init(&pk, &mp, buf_write);
    rc = pack_violations(&pk, &all, v, -1);
    if (!rc)
        rc = sb_msgpack_to_json(mp.data, mp.len, &used, out);
    sb_buf_free(&mp);
    return rc < 0 ? rc : rc ? -ENOMEM : 0;
}
