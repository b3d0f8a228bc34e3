/* output.h: destinations behind one struct of callbacks (Fluent Bit style), and the runner
 * that drives each one: per-output batcher -> spool (tagged records) -> delivery -> retry
 * policy -> ack or dead letter, with metrics.
 *
 * A plugin only knows how to make ONE delivery attempt of one batch envelope (msgpack
 * {batch:[...], sentAt}) and report how it went; the runner owns batching, durability,
 * ordering (one batch in flight per output, in spool order), retries with backoff and
 * Retry-After, X-Retry-Count, giving up after max_retry_duration, the dead-letter file and
 * the counters. Writing a plugin:
 *
 *   static int my_init(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
 *                      char *err, size_t errlen);       // start-up: may block (DNS, files)
 *   static int my_deliver(void *state, struct sb_delivery *d);   // start one attempt
 *   static void my_destroy(void *state);
 *   const struct sb_output_plugin sb_output_mine = {"mine", my_init, my_deliver, my_destroy};
 *
 * deliver() starts the attempt and returns 0 (or -errno if it could not even start: counted
 * as a failed attempt and retried). When the attempt ends, the plugin calls
 * sb_delivery_done(d, &result) exactly once, from the loop, now or later. d and the envelope
 * stay valid until then. A plugin must not call back into the runner otherwise.
 */
#ifndef SEGBUS_OUTPUTS_OUTPUT_H
#define SEGBUS_OUTPUTS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "config/config.h"
#include "pipeline/retry.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_loop;
struct sb_spool;
struct sb_metrics;
struct sb_batcher;
struct sb_event_meta;
struct sb_replay;

/* How an attempt went. status: the HTTP status (local outputs: 200 on success), or <= 0 for
 * no response (-errno). retry_after: the Retry-After header value or NULL. detail: response
 * body or error text, kept in the dead-letter file (not logged: it may echo the request). */
struct sb_output_result {
    int status;
    const char *retry_after;
    const char *detail;
    size_t detail_len;
    uint32_t delivered; /* a refused batch: its first events that were delivered anyway (a
                           plugin sending event by event); they count as sent, not dead */
    /* Local outputs that can undo a delivery (the NDJSON file): where the destination stands
     * after this batch (e.g. file length and inode). Saved with the ack cursor and handed to
     * resume() at the next start, so a batch written but not yet acked before a crash is
     * removed before it is written again: exactly once across crashes. */
    bool has_pos;
    uint64_t pos, pos_id;
};

struct sb_delivery {
    const uint8_t *envelope; /* msgpack {batch, sentAt}; sentAt already set for this attempt */
    size_t len;
    uint32_t count;       /* events in it */
    uint32_t retry_count; /* 0 on the first attempt: send X-Retry-Count when > 0 */
    uint64_t seq;         /* the batch's spool record: the same for every attempt at it */
    void *runner;         /* private */
};

void sb_delivery_done(struct sb_delivery *d, const struct sb_output_result *r);

struct sb_output_plugin {
    const char *type;
    int (*init)(void **state, const struct sb_output_config *cfg, struct sb_loop *loop, char *err,
                size_t errlen);
    int (*deliver)(void *state, struct sb_delivery *d);
    void (*destroy)(void *state);
    /* Optional, after init: the destination should be put back to (pos, pos_id), the position
     * a result reported for the last batch whose ack is on disk; everything after it is
     * delivered again. Not called when no position is known. 0 or -errno (start-up fails). */
    int (*resume)(void *state, uint64_t pos, uint64_t pos_id);
};

extern const struct sb_output_plugin sb_output_file;     /* NDJSON file */
extern const struct sb_output_plugin sb_output_segment;  /* Segment /v1/batch, JSON */
extern const struct sb_output_plugin sb_output_hub;      /* segbus hub, msgpack */
extern const struct sb_output_plugin sb_output_sqlite;   /* warehouse schema in SQLite */
extern const struct sb_output_plugin sb_output_postgres; /* warehouse schema in PostgreSQL */
extern const struct sb_output_plugin sb_output_kafka;    /* Kafka topic per source (kafka.c) */
extern const struct sb_output_plugin sb_output_webhook;  /* signed JSON POSTs (webhook.c) */

/* The plugin for a type, or NULL if this build has none. */
const struct sb_output_plugin *sb_output_plugin_for(enum sb_output_type type);

/* ---- the runner ---------------------------------------------------------------------------- */

struct sb_output_runner;

struct sb_output_counters {
    uint64_t batched, batches, spooled, sent, sent_batches, failed_attempts, retried, dead_lettered,
        dropped_filtered, backlog_batches, split, backlog_bytes, dropped_oldest;
};

/* Create the runner of output `index` (its spool tag and spool cursor index) for cfg, with its
 * plugin. spool_dir gives the default dead-letter path. 0, or -errno with err naming why. */
int sb_output_runner_new(struct sb_output_runner **out, const struct sb_output_config *cfg,
                         unsigned index, struct sb_loop *loop, struct sb_spool *spool,
                         const char *spool_dir, struct sb_metrics *metrics, char *err,
                         size_t errlen);
void sb_output_runner_free(struct sb_output_runner *r);

/* Give the runner the daemon's replay table (src/spool/replay.h): its spool records then carry
 * what they cover of the rings. NULL (the default): records carry no table. */
void sb_output_runner_set_replay(struct sb_output_runner *r, struct sb_replay *replay);

/* Does this output take this event (sources, allow/deny)? source: the source's index in
 * cfg->sources (-1: none), matched against the output's source names via names[]. */
bool sb_output_runner_accepts(const struct sb_output_runner *r, const struct sb_event_meta *meta,
                              const char *source_name);
/* Batch one event (after the pipeline). 0 or -ENOMEM. */
int sb_output_runner_add(struct sb_output_runner *r, const uint8_t *event, size_t len,
                         uint64_t now_ns);
/* Periodic work: close due batches (or all with force), retry spool appends that were
 * refused, read and deliver from the spool, fire due retries. */
void sb_output_runner_tick(struct sb_output_runner *r, uint64_t now_ns, bool force);
/* The spool made records durable (call for every runner). */
void sb_output_runner_on_durable(struct sb_output_runner *r, uint64_t upto_seq);
/* The spool's drop_oldest dropped record seq (its payload) before this output acknowledged it:
 * count its events if it is this output's, and forget it if it was waiting for a retry. */
void sb_output_runner_on_drop(struct sb_output_runner *r, uint64_t seq, const void *data,
                              size_t len);
/* Closed batches waiting for room in the spool: while any runner has some, stop draining. */
size_t sb_output_runner_backlog(const struct sb_output_runner *r);
/* While there is a backlog because the spool is full, why: -EAGAIN (spool.max_bytes under
 * block), -ENOSPC (file system full) or another -errno; 0 without a backlog or when the spool
 * was only busy (max_pending_bytes in a commit, gone with the next fsync). */
int sb_output_runner_spool_error(const struct sb_output_runner *r);
/* Nothing batched, backlogged, spooled-but-undelivered or in flight. */
bool sb_output_runner_idle(const struct sb_output_runner *r);
/* Events handed to sb_output_runner_add so far, and how many of the first of them are durable
 * (in fsynced spool records, or in the dead-letter file). The daemon uses the pair to tell
 * producers when their records are durable. */
uint64_t sb_output_runner_added(const struct sb_output_runner *r);
uint64_t sb_output_runner_durable_events(const struct sb_output_runner *r);
/* Events waiting in the open batch. */
uint32_t sb_output_runner_pending(const struct sb_output_runner *r);
/* When the open batch is due (monotonic ns; UINT64_MAX: none open), for a timer that flushes it
 * on time rather than at the next periodic tick. */
uint64_t sb_output_runner_deadline(const struct sb_output_runner *r);
const struct sb_output_counters *sb_output_runner_counters(const struct sb_output_runner *r);

/* Delivery status (Segment's Event Delivery view): where delivery stands and how it last went.
 * The events handed to an output are delivered in order, so "event k" (1-based among those
 * sb_output_runner_add took) is done once done >= k. */
struct sb_output_status {
    uint64_t done;                 /* events sent or dead-lettered */
    uint32_t retrying;             /* events of the batch in delivery that failed at least once */
    int last_error_status;         /* HTTP status (> 0) or -errno of the last failed attempt */
    int64_t last_error_ms;         /* its wall time (Unix ms); 0: none yet */
    int64_t last_success_ms;       /* wall time of the last delivered batch; 0: none yet */
    uint64_t consecutive_failures; /* failed attempts since the last success */
};
void sb_output_runner_status(const struct sb_output_runner *r, struct sb_output_status *st);
/* Was event k (as above) dead-lettered rather than delivered? Known for the last
 * SB_OUTPUT_DEAD_RANGES dead-lettered batches; older ones read as delivered. */
#define SB_OUTPUT_DEAD_RANGES 64
bool sb_output_runner_dead_lettered(const struct sb_output_runner *r, uint64_t k);

/* Status gauges per output, next to the counters (values: see struct sb_output_status). */
#define SB_M_LAST_ERROR_STATUS "segbus_output_last_error_status"
#define SB_M_LAST_ERROR_TIME "segbus_output_last_error_timestamp_seconds"
#define SB_M_LAST_SUCCESS_TIME "segbus_output_last_success_timestamp_seconds"
#define SB_M_CONSECUTIVE_FAILURES "segbus_output_consecutive_failures"
#define SB_M_RETRYING "segbus_output_retrying_events"
const char *sb_output_runner_name(const struct sb_output_runner *r);

/* Spool record framing: a 4-byte tag (output index, little endian u16, then u16 0) before the
 * envelope, so that outputs sharing one spool each take their own records. */
#define SB_OUTPUT_TAG_BYTES 4u

#ifdef __cplusplus
}
#endif
#endif
