/* protocols.h: per-source Protocols in the pipeline: the plan stage (violation handling:
 * allow/omit/block, violations log, metrics) and the declarative transform stage (drop, hash,
 * allow-list, set/remove, rename, Title Case). Config keys: docs/protocols.md. */
#ifndef SEGBUS_PROTOCOLS_PROTOCOLS_H
#define SEGBUS_PROTOCOLS_PROTOCOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "config/config.h"
#include "pipeline/stage.h"
#include "plan/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_metrics;

/* ---- transforms ---- */
struct sb_transform;

/* Compile a source's `transforms` list (flattened kv, see config.h). err names the item and
 * its line. 0, -EINVAL or -ENOMEM. An empty list compiles to a transform that changes nothing. */
int sb_transform_new(const struct sb_kv_list *kv, struct sb_transform **out, char *err,
                     size_t errlen);
void sb_transform_free(struct sb_transform *t);
size_t sb_transform_items(const struct sb_transform *t);
/* Apply every matching item in order to the event map ev[0..len). 0: unchanged (out untouched);
 * 1: changed, the new event is in out (cleared first); -EINVAL (malformed), -ENOMEM. */
int sb_transform_apply(const struct sb_transform *t, const uint8_t *ev, size_t len,
                       struct sb_buf *out);
/* A stage applying t to events of source `source` (meta->source); takes ownership of t. */
struct sb_stage *sb_transform_stage_new(struct sb_transform *t, int source);

/* ---- plan stage ---- */
enum sb_pmode { SB_PMODE_ALLOW, SB_PMODE_OMIT, SB_PMODE_BLOCK };

struct sb_plan_opts {
    enum sb_pmode unplanned_events;     /* allow | block */
    enum sb_pmode unplanned_properties; /* allow | omit */
    enum sb_pmode invalid;              /* allow | omit | block (required/type/value) */
    char *log_path;         /* blocked events, NDJSON; NULL = <dir>/<source>.violations.ndjson */
    uint64_t log_max_bytes; /* rotate to <log>.1 past this size; 0 = never */
    char
        *forward_to; /* output that gets a `Violation Generated` track per violation; NULL = none */
};

/* Where `Violation Generated` events go (violations.forward_to): emit hands the embedding
 * daemon one msgpack track event for the named output, on the loop thread. 0 or -errno. */
struct sb_violation_sink {
    int (*emit)(void *arg, const char *output, const uint8_t *ev, size_t len);
    void *arg;
};

/* Parse a source's `violations` list. Unknown keys and bad values are errors naming the line. */
int sb_plan_opts_parse(const struct sb_kv_list *kv, struct sb_plan_opts *o, char *err,
                       size_t errlen);
void sb_plan_opts_free(struct sb_plan_opts *o);

/* Outcome of handling one event (for the stage, the CLI and tests). */
enum sb_plan_verdict { SB_PLAN_CLEAN, SB_PLAN_ALLOWED, SB_PLAN_OMITTED, SB_PLAN_BLOCKED };

/* Check ev against plan and apply opts: SB_PLAN_OMITTED writes the new event (offending
 * properties removed, context.violations set) to out (cleared first). v receives the
 * violations. <0 on malformed events or -ENOMEM. */
int sb_plan_handle(const struct sb_plan *plan, const struct sb_plan_opts *o, const uint8_t *ev,
                   size_t len, struct sb_violations *v, struct sb_plan_match *match,
                   struct sb_buf *out);

/* A plan stage for source `source` named source_name. Takes ownership of plan; copies opts.
 * Blocked events are appended to the violations log; violations are counted in m (may be
 * NULL) as segbus_plan_violations_total{source,event,type,field}. NULL on -ENOMEM. */
struct sb_stage *sb_plan_stage_new(struct sb_plan *plan, const struct sb_plan_opts *o,
                                   const char *source_name, int source, struct sb_metrics *m);
/* Counters of a plan stage (tests, `segbus stat`): events blocked / logged lines / rotations. */
void sb_plan_stage_counts(const struct sb_stage *s, uint64_t *blocked, uint64_t *omitted,
                          uint64_t *rotations);
/* For `segbus tail`: the number of events this stage found violations in so far, and (when
 * that moved since the caller last looked, i.e. for the event just run) the violations of the
 * last such event. s must be a plan stage (name "plan"). */
uint64_t sb_plan_stage_violated(const struct sb_stage *s, const struct sb_violations **last);
/* The violations as a JSON array [{"type","field","reason"}...], appended to out. 0 or -ENOMEM. */
int sb_violations_json(const struct sb_violations *v, struct sb_buf *out);

/* Forward violations to sink (copied) when the stage's opts name an output in forward_to. */
void sb_plan_stage_set_sink(struct sb_stage *s, const struct sb_violation_sink *sink);
/* `Violation Generated` events handed to the sink / refused by it. */
void sb_plan_stage_forwarded(const struct sb_stage *s, uint64_t *forwarded, uint64_t *failed);
/* The `Violation Generated` track event (msgpack, appended to out) for violation x of the event
 * ev[0..len) of source `source`, as Segment forwards them: userId "schema-violations",
 * properties violationType, violationField, violationDescription, eventName, eventType,
 * eventMessageID, eventTimestamp, sourceName. now_ms: its timestamp. 0 or -ENOMEM. */
int sb_violation_generated(const struct sb_violation *x, const uint8_t *ev, size_t len,
                           const struct sb_event_meta *meta, const char *source, int64_t now_ms,
                           struct sb_buf *out);

/* Add the plan and transform stages of every configured source to p (plan first, then
 * transforms: validation sees what the app sent, PII is gone before spooling). Plan files are
 * read and compiled here. 0, or <0 with err naming the source and the problem. */
int sb_protocols_add_stages(struct sb_pipeline *p, const struct sb_config *cfg,
                            struct sb_metrics *m, char *err, size_t errlen);
/* The same, forwarding violations of sources with violations.forward_to (which must name a
 * configured output) to sink (may be NULL: then forward_to is refused). */
int sb_protocols_add_stages_sink(struct sb_pipeline *p, const struct sb_config *cfg,
                                 struct sb_metrics *m, const struct sb_violation_sink *sink,
                                 char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
