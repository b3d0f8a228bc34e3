/* stage.h: the pipeline's stage interface, shared by the sidecar (ring input) and the hub (HTTP
 * input). An input hands each event (its msgpack bytes plus metadata) to sb_pipeline_run(),
 * which runs the stages in order; each stage passes the event on, drops it with a reason, or
 * replaces its bytes. What comes out the end goes to the per-output batchers (batch.h).
 *
 * Writing a stage (plan validation and transforms are later issues; they are stages like these):
 *
 *   static const char *const my_reasons[] = {"too_many_cats", NULL};
 *   static int my_process(struct sb_stage *st, struct sb_stage_event *ev) {
 *       if (bad(ev->data, ev->len)) { ev->reason = 0; return SB_STAGE_DROP; }
 *       if (rewrite) { sb_buf_clear(ev->scratch); ...append new msgpack...; return
 * SB_STAGE_REPLACE; } return SB_STAGE_PASS;
 *   }
 *   struct sb_stage *s = calloc(1, sizeof *s);
 *   *s = (struct sb_stage){.name = "mine", .reasons = my_reasons, .process = my_process, ...};
 *   sb_pipeline_add(pipeline, s);  // the pipeline owns it now; destroy() frees it
 *
 * Rules: process() runs on the loop thread, must not block, must not keep pointers into
 * ev->data after it returns (the bytes are reused), and must never crash on any bytes (the
 * first stage, verify, has already checked the event's shape, but not every field's type).
 * After a REPLACE the pipeline re-inspects the new bytes (sb_event_inspect) so that later stages
 * see consistent metadata (unless the stage says it did that itself: ev->inspected); a replacement
 * that is not a valid event is dropped and counted against the stage that made it (reason
 * "replaced_invalid").
 */
#ifndef SEGBUS_PIPELINE_STAGE_H
#define SEGBUS_PIPELINE_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The six Segment calls, in this order everywhere (metrics labels, tables). */
enum sb_call {
    SB_CALL_IDENTIFY,
    SB_CALL_TRACK,
    SB_CALL_PAGE,
    SB_CALL_SCREEN,
    SB_CALL_GROUP,
    SB_CALL_ALIAS,
    SB_CALL_COUNT
};
const char *sb_call_name(enum sb_call call);

/* What is known about one event while it crosses the pipeline. Pointers point into the event's
 * bytes (valid during the run only). Filled by the input (the first block) and by
 * sb_event_inspect() (the second). */
struct sb_event_meta {
    /* from the input */
    uint64_t now_ns;        /* CLOCK_MONOTONIC when the event entered the pipeline */
    int64_t received_at_ms; /* wall clock (Unix ms) when it was received */
    uint32_t producer_id;   /* ring producer id, 0 for HTTP */
    int source;             /* index into sb_config.sources, -1 for none */
    /* The input ran sb_event_inspect() on exactly these bytes and filled the block below (the
     * hub does, to name each bad event of a batch): the verify stage does not walk them again. */
    bool verified;
    /* from sb_event_inspect() */
    enum sb_call call;
    const uint8_t *message_id; /* messageId string bytes */
    uint32_t message_id_len;
    const uint8_t *event; /* track: the event name; page/screen: name (may be NULL) */
    uint32_t event_len;
    const uint8_t *user_id; /* may be NULL */
    uint32_t user_id_len;
    const uint8_t *integrations; /* msgpack of the integrations map, or NULL */
    uint32_t integrations_len;
    /* A top-level writeKey entry (a client's configured key): its key-and-value byte range,
     * write_key_end 0 when there is none. The verify stage removes it: keys never reach a
     * destination. */
    uint32_t write_key_at, write_key_end;
};

/* Return values of process(). Negative values are -errno: an internal failure (e.g. -ENOMEM),
 * counted as a drop with reason "internal". */
enum sb_stage_verdict { SB_STAGE_PASS = 0, SB_STAGE_DROP = 1, SB_STAGE_REPLACE = 2 };

struct sb_stage_event {
    const uint8_t *data; /* the event's msgpack map */
    size_t len;
    struct sb_event_meta *meta;
    struct sb_buf *scratch; /* where REPLACE puts the new bytes (cleared by the stage first) */
    unsigned reason;        /* DROP: index into the stage's reasons[] */
    /* REPLACE: the stage set *meta for the new bytes itself, exactly as sb_event_inspect would
     * (a rewrite that knows where it put the fields and that it kept the event valid), so the
     * pipeline skips re-inspecting them. Cleared before each stage. */
    bool inspected;
};

struct sb_stage {
    const char *name;           /* metrics label: "verify", "dedup", "plan", ... */
    const char *const *reasons; /* NULL-terminated drop reasons (metrics labels), may be NULL */
    int (*process)(struct sb_stage *stage, struct sb_stage_event *ev);
    void (*destroy)(struct sb_stage *stage); /* frees the stage and its state; may be NULL */
    void *state;
    /* Filled by sb_pipeline_add: per-reason drop counters (metrics read them). */
    uint64_t *dropped; /* [n_reasons + 2]: reasons..., then "internal", "replaced_invalid" */
    uint64_t passed, replaced;
    unsigned n_reasons;
};

struct sb_pipeline;
struct sb_metrics;

/* A pipeline with no stages (everything passes). 0 or -ENOMEM. */
int sb_pipeline_new(struct sb_pipeline **out);
/* Append a stage; the pipeline owns it from now on (even on failure). 0 or -ENOMEM. */
int sb_pipeline_add(struct sb_pipeline *p, struct sb_stage *stage);
/* Run one event through every stage. On SB_STAGE_PASS, *out and *out_len are the bytes to batch:
 * the input's, or the pipeline's buffer after a replace (valid until the next run). On
 * SB_STAGE_DROP nothing is output (the stage's counter says why). Never fails otherwise. */
int sb_pipeline_run(struct sb_pipeline *p, const uint8_t *data, size_t len,
                    struct sb_event_meta *meta, const uint8_t **out, size_t *out_len);
/* Stages in order, for metrics. */
size_t sb_pipeline_stages(const struct sb_pipeline *p, struct sb_stage *const **stages);
/* Destroys every stage. NULL is a no-op. */
void sb_pipeline_free(struct sb_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif
