/* replay.h: exact replays after a crash. segbusd releases ring space only once what it read is
 * durable, so a restarted daemon reads again what the dead one had read but not released; some
 * of that is already in spooled batches. Every spool record therefore carries a cover table:
 * per ring (by its 16-byte id) and per output, the ring position below which every record is in
 * that output's spooled batches or was never for it (dropped by a stage or filtered). On start
 * the newest record's table is loaded; a ring record below an output's cover still goes through
 * the pipeline (so dedup sees it) but is not batched again for that output.
 *
 * Use (single-threaded, the daemon's loop):
 *   sb_replay_load()                        at start, with the newest record's table
 *   sb_replay_ring()                        for each ring read, when first seen
 *   sb_replay_begin() .. sb_replay_end()    around handing one ring record to the outputs;
 *   sb_replay_covered()                     between them: skip it for this output?
 *   sb_replay_snap()                        when an output closes a batch
 *   sb_replay_encode(), sb_replay_appended() when that batch is appended to the spool
 *   sb_replay_released()                    after ring space is released
 * Bytes of the table: docs/formats-spool.md ("Record payload"). */
#ifndef SEGBUS_SPOOL_REPLAY_H
#define SEGBUS_SPOOL_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_replay;

#define SB_REPLAY_VERSION 1u
#define SB_REPLAY_MAX_RINGS 64u /* entries in one table; more rings: the oldest go (resent) */

int sb_replay_new(struct sb_replay **out, unsigned n_outputs);
void sb_replay_free(struct sb_replay *rp);

/* Load a table written by sb_replay_encode (the newest spool record's). 0, or -EPROTO for
 * bytes that are not a table (nothing loaded: every replayed record is batched again). */
int sb_replay_load(struct sb_replay *rp, const uint8_t *p, size_t len);

/* Ring `ring` (the registry's index) has this id; everything before `head` was released. */
int sb_replay_ring(struct sb_replay *rp, size_t ring, const uint8_t id[16], uint64_t head);
/* Rings announced so far (indices 0..n-1). */
size_t sb_replay_rings(const struct sb_replay *rp);

/* The record at `pos` of ring `ring` is being handed to the outputs. */
void sb_replay_begin(struct sb_replay *rp, size_t ring, uint64_t pos);
/* Is it in output `out`'s spooled batches already (from before a crash)? */
bool sb_replay_covered(const struct sb_replay *rp, unsigned out);
/* Done with it: everything of that ring up to and including it is handled. */
void sb_replay_end(struct sb_replay *rp);

/* Output `out` closes a batch: append to snap what it covers. includes_current: the record
 * between begin and end is in it. 0 or -ENOMEM. */
int sb_replay_snap(struct sb_replay *rp, unsigned out, bool includes_current, struct sb_buf *snap);
/* Append the table to dst as it will be once `out`'s batch with this snap is appended (snap
 * NULL: out's column as it is). 0, -ENOMEM. */
int sb_replay_encode(struct sb_replay *rp, unsigned out, const uint8_t *snap, size_t snap_len,
                     struct sb_buf *dst);
/* That batch is in the spool now. */
void sb_replay_appended(struct sb_replay *rp, unsigned out, const uint8_t *snap, size_t snap_len);

/* Ring space of `ring` before pos is released (no one reads it again). */
void sb_replay_released(struct sb_replay *rp, size_t ring, uint64_t pos);

/* Records skipped per output because they were covered (metrics). */
uint64_t *sb_replay_skipped(struct sb_replay *rp, unsigned out);

#ifdef __cplusplus
}
#endif
#endif
