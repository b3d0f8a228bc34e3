/* tail.h: the live event view behind `segbus tail`: a bounded in-memory ring of recent events
 * (as JSON, with what each stage and output did with them) served as a long-poll at
 * GET /tail on the metrics endpoint.
 *
 * Costless when nobody looks: events are only recorded for TAIL_ACTIVE_NS after the last /tail
 * request (or while one waits), so the drain pays one comparison per event otherwise. The ring
 * holds at most SB_TAIL_MAX_EVENTS events and SB_TAIL_MAX_BYTES of JSON (oldest go first; a
 * client that falls behind is told how many it missed).
 *
 * GET /tail?after=SEQ&wait_ms=MS&limit=N&type=T&event=E&userId=U&settled=1&last=N
 *   after    first sequence number wanted (the previous answer's "next"); absent: from now
 *            (or the last N recorded events with last=N)
 *   wait_ms  hold the request up to this long (max 30000) until a matching event exists
 *   settled  only events whose every output has a final status (in order: stops at the first
 *            matching event still in flight)
 * Answer: {"next":SEQ,"missed":N,"events":[{"seq","time_ms","type","event","userId",
 *          "status":"passed"|"violation"|"blocked"|"dropped","stage","reason",
 *          "violations":[{"type","field","reason"}],"outputs":{NAME:STATUS},"message":{..}}]}
 * "violation": passed with tracking-plan violations (allowed or omitted); "blocked": the plan
 * stage stopped it (reason "blocked", or "log_failed"); "violations" only when there were some.
 * Output status: "filtered" (the output does not take it: sources, allow/deny, integrations),
 * "batched", "spooled" (durable), "retrying" (in the batch being delivered, which failed at least
 * once: the output's last error is in /metrics), "delivered", "dead_lettered" (refused or given
 * up: in the dead-letter file). Outputs deliver their spool in order, one batch at a time, so
 * the output's count of events done tells which are (a batch split for size is re-spooled behind
 * later ones and may show early).
 */
#ifndef SEGBUS_DAEMON_TAIL_H
#define SEGBUS_DAEMON_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http_server.h"
#include "outputs/output.h"
#include "pipeline/stage.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SB_TAIL_MAX_EVENTS 4096
#define SB_TAIL_MAX_BYTES (4u << 20)

struct sb_tail {
    uint64_t active_until_ns; /* record events while now < this */
    struct sb_tail_impl *impl;
};

/* outs stays owned by the daemon and must outlive the tail. 0 or -ENOMEM. */
int sb_tail_new(struct sb_tail **out, struct sb_output_runner *const *outs, size_t n_outs,
                struct sb_pipeline *pipeline);
/* Answers waiting requests (503) and frees everything. NULL is a no-op. */
void sb_tail_free(struct sb_tail *t);

/* Is anybody tailing? The drain's only cost when not. */
static inline bool sb_tail_wanted(const struct sb_tail *t, uint64_t now_ns)
{
    return t && now_ns < t->active_until_ns;
}
/* Around one event, when wanted: begin before sb_pipeline_run, end after the outputs were
 * handed the event (passed) or the pipeline dropped it (data: the bytes it was given). */
void sb_tail_begin(struct sb_tail *t);
void sb_tail_end(struct sb_tail *t, const uint8_t *data, size_t len,
                 const struct sb_event_meta *meta, bool passed);

/* GET /tail. */
void sb_tail_http(struct sb_tail *t, struct sb_http_exchange *ex, const struct sb_http_message *req,
                  uint64_t now_ns);
/* Answer waiting requests that have events or whose wait is over (call every tick). */
void sb_tail_tick(struct sb_tail *t, uint64_t now_ns);

#ifdef __cplusplus
}
#endif
#endif
