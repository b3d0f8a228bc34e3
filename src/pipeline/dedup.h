/* dedup.h: exact duplicate detection on messageId over a window of N ids and T seconds.
 *
 * Each id is stored as its 128-bit XXH3 hash (a 64-bit hash would make false duplicates, i.e.
 * silently dropped events, likely at scale). A FIFO ring of (hash, time) in arrival order plus
 * an open-addressing index (linear probing, backward-shift deletion) give O(1) per event and
 * a fixed footprint of about 40 bytes per id of window, allocated up front.
 * An id is a duplicate if it was seen among the last window_count ids and less than
 * window_ns ago. Single-threaded.
 */
#ifndef SEGBUS_PIPELINE_DEDUP_H
#define SEGBUS_PIPELINE_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/stage.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_dedup;

/* window_count 0 makes a dedup that never finds a duplicate. 0, -EINVAL or -ENOMEM. */
int sb_dedup_new(struct sb_dedup **out, uint32_t window_count, uint64_t window_ns);
void sb_dedup_free(struct sb_dedup *d);
/* 1 if id was seen within the window (nothing recorded), else 0 and the id is recorded at
 * now_ns (monotonic, never decreasing). */
int sb_dedup_check(struct sb_dedup *d, const void *id, size_t len, uint64_t now_ns);
/* A hint, for a caller that knows the next id before it checks it: start loading the index
 * slot that id's check will probe first (a cache miss was most of a check). No effect on
 * results; any bytes are fine. */
void sb_dedup_prefetch(const struct sb_dedup *d, const void *id, size_t len);
/* Ids currently remembered. */
size_t sb_dedup_size(const struct sb_dedup *d);

/* The dedup stage over meta->message_id and meta->now_ns; reason "duplicate". The stage owns
 * d. NULL on -ENOMEM (d is freed then). */
struct sb_stage *sb_dedup_stage_new(struct sb_dedup *d);

#ifdef __cplusplus
}
#endif
#endif
