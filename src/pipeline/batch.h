/* batch.h: the per-output batcher: collects events into one msgpack batch envelope, closed by
 * count, bytes or flush interval.
 *
 * The envelope is the body of Segment's /v1/batch in msgpack:
 *     {"batch": [event, ...], "sentAt": "2026-11-28T14:07:32.123Z"}
 * written as fixmap(2), "batch", array32(count), the events' bytes as they came, then "sentAt"
 * and a 24-character RFC 3339 UTC time with milliseconds. sentAt is always the last 24 bytes,
 * so an output patches it in place at send time (sb_batch_set_sent_at) without re-encoding.
 * The byte bound counts the whole envelope. An event larger than the bound on its own still
 * makes a batch of one (the per-event limit is verify's job).
 */
#ifndef SEGBUS_PIPELINE_BATCH_H
#define SEGBUS_PIPELINE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Envelope overhead: before the events (fixmap, "batch", array32) and after ("sentAt", time). */
#define SB_BATCH_HEAD_BYTES 12u
#define SB_BATCH_TAIL_BYTES 32u
#define SB_BATCH_SENT_AT_LEN 24u

/* Called with each closed batch: envelope[0..len) holding count events; valid during the call
 * only. Return 0, or -errno to report a failure (the batch stays and is offered again at the
 * next add or flush: nothing is dropped; sb_batcher_add returns the error). */
typedef int (*sb_batch_emit_fn)(void *arg, const uint8_t *envelope, size_t len, uint32_t count);

struct sb_batcher;

int sb_batcher_new(struct sb_batcher **out, const struct sb_batch_limits *limits,
                   sb_batch_emit_fn emit, void *arg);
void sb_batcher_free(struct sb_batcher *b);

/* Add one event (its msgpack map). Closes and emits the open batch first if the event would
 * not fit, and after adding if the batch reached max_events or max_bytes. 0, -ENOMEM, or the
 * emit callback's error (then the event was NOT added: retry later). */
int sb_batcher_add(struct sb_batcher *b, const uint8_t *event, size_t len, uint64_t now_ns);
/* When the open batch must be flushed (monotonic ns), or UINT64_MAX if it is empty. */
uint64_t sb_batcher_deadline(const struct sb_batcher *b);
/* Emit the open batch if it is due at now_ns, or at once if force. 0 (also when nothing was
 * due) or the emit callback's error. */
int sb_batcher_flush(struct sb_batcher *b, uint64_t now_ns, bool force);
/* Events and bytes in the open batch. */
uint32_t sb_batcher_pending(const struct sb_batcher *b);

/* Write a Unix-ms time as "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes, no NUL). */
void sb_format_time_ms(int64_t unix_ms, char out[SB_BATCH_SENT_AT_LEN]);
/* Patch the sentAt of an envelope made by a batcher. 0, or -EINVAL if it is not one. */
int sb_batch_set_sent_at(uint8_t *envelope, size_t len, int64_t unix_ms);
/* Wall clock in Unix ms. */
int64_t sb_wall_ms(void);

#ifdef __cplusplus
}
#endif
#endif
