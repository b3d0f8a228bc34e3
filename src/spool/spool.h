/* spool.h: the daemon's durable spool: batches appended to segment files through the io_uring
 * loop, group-committed with fdatasync, read and acknowledged per output, recovered on start.
 *
 * Model. A record is one opaque batch (bytes). sb_spool_append() gives it the next sequence
 * number (1, 2, ...) and queues it; the spool writes queued records with one io_uring WRITE per
 * segment followed by one FSYNC(DATASYNC) (group commit: all appends made while a commit is in
 * flight go into the next one) and calls on_durable(upto_seq) once the fsync has completed.
 * Only durable records are ever returned by sb_spool_read(). Each output has its own read
 * position and ack cursor: acking seq means every record <= seq was delivered. A segment file is
 * recycled once every output's cursor has passed it. Format: docs/formats-spool.md.
 *
 * Threading: single-threaded, the loop's thread. Callbacks run from sb_loop_run_once(); they
 * may call append/read/ack but not sb_spool_close(). Errors are -errno (see each function).
 */
#ifndef SEGBUS_SPOOL_SPOOL_H
#define SEGBUS_SPOOL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_loop;
struct sb_spool;

enum sb_spool_policy {
    SB_SPOOL_BLOCK = 0,   /* at max_bytes, append fails with -EAGAIN until outputs ack */
    SB_SPOOL_DROP_OLDEST, /* at max_bytes, drop the oldest segment (counted per output) */
};

/* Called when every record with seq <= upto_seq is on stable storage. upto_seq only grows. */
typedef void (*sb_spool_durable_fn)(void *arg, uint64_t upto_seq);
/* drop_oldest is dropping record seq (payload data, len bytes, valid during the call) that
 * output `output` had not acknowledged: so that the loss is counted in the caller's units. */
typedef void (*sb_spool_drop_fn)(void *arg, unsigned output, uint64_t seq, const void *data,
                                 size_t len);

struct sb_spool_opts {
    const char *dir;             /* spool directory, created (0700) if missing; locked (flock) */
    uint64_t segment_bytes;      /* size of each segment file; default 16 MiB, >= 64 KiB */
    uint64_t max_bytes;          /* bound on segment files (live + kept for reuse); default 1 GiB,
                                    at least 2 segments */
    enum sb_spool_policy policy; /* what append does at max_bytes; default SB_SPOOL_BLOCK */
    uint32_t max_record_bytes;   /* longest batch; default min(8 MiB, segment room) */
    uint64_t max_pending_bytes;  /* bytes queued or being committed before append says -EAGAIN;
                                    default 4 MiB, at most (segment_bytes - 64) / 2 */
    uint64_t commit_delay_ns;    /* wait this long after the first append to gather more; 0:
                                    commit on the next loop turn (default) */
    uint32_t keep_free_segments; /* fully acked segments kept for reuse; default 2 */
    uint64_t retry_ns;           /* after a failed commit with no space for a new segment, retry
                                    this often; default 1 s */
    sb_spool_durable_fn on_durable;
    sb_spool_drop_fn on_drop; /* optional */
    void *arg;
};

/* Defaults for everything; the caller sets dir and the callbacks. */
void sb_spool_opts_init(struct sb_spool_opts *opts);

/* Open (creating or recovering) the spool in opts->dir for the given outputs (names become file
 * names: 1..64 of [A-Za-z0-9_.-]; output i below is names[i]). Recovery verifies every record
 * from the oldest cursor on, stops at the first bad record of each segment, truncates the tail
 * there, and makes what it keeps durable (fdatasync) before returning. An output with no cursor
 * file starts at the head: it gets records appended from now on. loop may be NULL for a
 * read-only inspection (tools): then append/ack fail with -EROFS.
 * Errors: -EINVAL bad option or name, -EBUSY another process holds the spool, -errno of the
 * file system, -ENOMEM. */
int sb_spool_open(struct sb_spool **out, struct sb_loop *loop, const struct sb_spool_opts *opts,
                  const char *const *output_names, unsigned n_outputs);

/* Flush what is queued, wait (running the loop) for commits and cursor writes in flight, write
 * the cursors and close. 0, or the -errno of a commit or cursor write that failed on the way
 * (records not made durable are not in the spool: their on_durable never fired). NULL: no-op.
 * Not from inside a spool callback. */
int sb_spool_close(struct sb_spool *spool);

/* Queue one record (len bytes are copied; 0 < len <= max_record_bytes) and return its seq.
 * 0, or: -EMSGSIZE too long or empty; -EAGAIN full: max_bytes reached under SB_SPOOL_BLOCK, or
 * max_pending_bytes queued (retry after on_durable or after acks); -ENOSPC (or another -errno)
 * the file system refused a new segment, nothing was queued (retry later; earlier records are
 * unaffected); -EROFS read-only. */
int sb_spool_append(struct sb_spool *spool, const void *data, size_t len, uint64_t *seq);

/* Start a commit of what is queued now instead of on the next loop turn. 0 or -errno. */
int sb_spool_flush(struct sb_spool *spool);

/* Highest seq known durable (0 if none). */
uint64_t sb_spool_durable_seq(const struct sb_spool *spool);

/* Called per record by sb_spool_read(); data is valid only during the call. Return 0 to take
 * the record (the read position moves past it), nonzero to stop before it. */
typedef int (*sb_spool_record_fn)(void *arg, uint64_t seq, const void *data, size_t len);

/* Deliver the output's next durable records after its read position, in order, up to max_bytes
 * of payload (at least one record when one is available, however long). Synchronous pread:
 * outputs read right behind the writer, so records come from the page cache (bench/spool: 64 KiB
 * in ~14 us by pread vs ~12 us by io_uring READ through the loop); a record evicted from the
 * cache costs the loop one disk read. Returns the number delivered (0: nothing new), or
 * -EINVAL bad output, -EIO a read failed. A record that fails its checksum is skipped with the
 * rest of its segment and counted in dropped_corrupt. */
int sb_spool_read(struct sb_spool *spool, unsigned output, size_t max_bytes, sb_spool_record_fn fn,
                  void *arg);

/* Call fn for every durable record with seq >= from_seq still in the spool, oldest first,
 * whoever it is for (start-up: what the last daemon wrote; fn returns nonzero to stop). Reads
 * no output's position. Returns the number visited, or -errno of a read. */
int sb_spool_visit(struct sb_spool *spool, uint64_t from_seq, sb_spool_record_fn fn, void *arg);

/* Move the output's read position back to just after its ack cursor (resend what was read but
 * not acked, e.g. after a failed delivery). 0 or -EINVAL. */
int sb_spool_rewind(struct sb_spool *spool, unsigned output);

/* Acknowledge every record of the output with seq <= seq (cumulative; lower seqs are no-ops).
 * Frees segments that every output's cursor on disk has passed. The cursor is persisted
 * asynchronously (one write + fdatasync in flight per output; a cursor lost in a crash only causes
 * a resend). 0, or -EINVAL bad output or seq beyond the durable records, -EROFS read-only. */
int sb_spool_ack(struct sb_spool *spool, unsigned output, uint64_t seq);

/* sb_spool_ack() that also records where the output's destination stands after delivering
 * everything <= seq (pos, id: opaque to the spool, e.g. a file's length and inode). They are
 * written into the cursor with seq (also when seq equals the cursor: a new position) so that
 * after a crash the output can undo a delivery its cursor never recorded. Same errors. */
int sb_spool_ack_at(struct sb_spool *spool, unsigned output, uint64_t seq, uint64_t pos,
                    uint64_t id);

/* What the output's cursor on disk said at open, for an output that uses sb_spool_ack_at:
 * 1 with *acked (the cursor's seq) and the pos/id saved with it, when the output can rely on
 * it: every record after *acked is still in the spool and will be read again. 0 when there is
 * nothing to rely on (no position saved, or records after it were dropped or lost: then the
 * output must not undo anything). -EINVAL bad output. */
int sb_spool_output_resume(const struct sb_spool *spool, unsigned output, uint64_t *acked,
                           uint64_t *pos, uint64_t *id);

/* Index of an output by name, or -ENOENT. */
int sb_spool_output_index(const struct sb_spool *spool, const char *name);

struct sb_spool_stats {
    uint64_t bytes_used;      /* segment files on disk, live and kept for reuse */
    uint64_t bytes_live;      /* bytes of records some output still needs (approximate) */
    uint64_t segments;        /* live segment files */
    uint64_t free_segments;   /* fully acked files kept for reuse */
    uint64_t records;         /* records some output still needs */
    uint64_t next_seq;        /* seq the next append gets */
    uint64_t durable_seq;     /* highest durable seq */
    uint64_t appended;        /* records accepted by append since open */
    uint64_t appended_bytes;  /* their payload bytes */
    uint64_t durable;         /* records made durable since open */
    uint64_t refused_full;    /* appends refused with -EAGAIN: max_bytes under SB_SPOOL_BLOCK */
    uint64_t refused_pending; /* appends refused with -EAGAIN: max_pending_bytes queued */
    uint64_t refused_nospace; /* appends refused because the file system had no room */
    uint64_t commits;         /* group commits completed (each one fdatasync per segment) */
    uint64_t fsyncs;          /* fdatasync/fsync calls completed (data, directory, cursors) */
    uint64_t data_fsyncs;     /* fdatasyncs of segment data (fsync_ns_total / data_fsyncs = avg) */
    uint64_t fsync_ns_total;  /* sum of data fdatasync latencies (from its write's completion) */
    uint64_t fsync_ns_max;
    uint64_t commit_ns_total; /* sum of group commit latencies (write + fdatasync) */
    uint64_t write_errors;    /* failed or short writes */
    uint64_t fsync_errors;    /* failed fdatasync/fsync: the segment was abandoned */
    uint64_t segments_created, segments_recycled, segments_removed;
    uint64_t dropped_oldest;  /* records dropped by drop_oldest (sum over outputs) */
    uint64_t dropped_corrupt; /* records lost to bad bytes found by recovery or reads */
    uint64_t recovered;       /* records found by recovery that some output still needed */
    uint64_t truncated_bytes; /* bytes cut off the tail by recovery */
    uint64_t cursor_writes, cursor_errors;
};

struct sb_spool_output_stats {
    const char *name;
    uint64_t acked_seq;       /* cursor in memory */
    uint64_t persisted_seq;   /* cursor on disk */
    uint64_t read_seq;        /* last seq handed to the output */
    uint64_t pending;         /* durable records not acked */
    uint64_t dropped_oldest;  /* records this output lost to drop_oldest */
    uint64_t dropped_corrupt; /* records this output lost to bad bytes */
};

void sb_spool_get_stats(const struct sb_spool *spool, struct sb_spool_stats *st);
/* -EINVAL for a bad output. */
int sb_spool_get_output_stats(const struct sb_spool *spool, unsigned output,
                              struct sb_spool_output_stats *st);

/* Testing only: make the next n data commits fail as if fdatasync returned err (after the real
 * write and fdatasync completed), to exercise the abandon-and-rewrite path. */
void sb_spool_inject_fsync_error(struct sb_spool *spool, unsigned n, int err);

#endif
