/* ring.h: the shared-memory MPSC ring protocol (Aeron many-to-one style) on plain memory.
 *
 * Memory: a power-of-two data area followed by a control block (SB_RING_CTRL_SIZE bytes).
 * Positions are 64-bit byte counts that only grow; index = pos & (capacity - 1).
 * Record: 16-byte header {int32 length, int32 type, uint32 producer, uint32 check} + payload,
 * 8-byte aligned. length is 0 while untouched, negative while being written, positive when
 * committed (header + payload bytes, unaligned). type -1 is padding, >= 1 user records.
 * check = sb_ring_check(salt, pos, producer, length): lets the reader tell a header written
 * for this position from stale bytes of an earlier lap, and lets a producer whose record was
 * repaired notice that its header is no longer its own.
 *
 * Nothing here makes a syscall: the caller passes the time, and waking a sleeping reader
 * (a futex) is left to ring_wait.c. Everything the reader reads from the shared memory is
 * validated; the reader's own state (head, counters) lives in private memory.
 * The struct fields of the control block are plain integers accessed only through the
 * __atomic builtins, so that C and the C++ tests share one definition. */
#ifndef SB_RING_H
#define SB_RING_H

#include <stddef.h>
#include <stdint.h>

#include "segbus/segbus.h"

#ifdef __cplusplus
extern "C" {
#endif

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the ring packs {length, type} into one 64-bit word and assumes little endian"
#endif

#define SB_RING_MAGIC 0x31474e5242474553ull /* "SEGBRNG1" */
#define SB_RING_VERSION 1u
#define SB_RING_LINE 128 /* two cache lines: defeats the adjacent-line prefetcher */
#define SB_RING_CTRL_SIZE 4096u
#define SB_RING_HDR 16u
#define SB_RING_ALIGN 8u
#define SB_RING_TYPE_PAD (-1)
#define SB_RING_PRODUCER_UNKNOWN 0u

/* Producer-side drop counters use segbus_drop_reason as index; the reader's counters follow. */
enum sb_ring_rcounter {
    SB_RING_R_REPAIRED_DEAD = 0, /* in-progress records of dead writers turned into padding */
    SB_RING_R_REPAIRED_GRACE,    /* ... of writers still alive after the long grace */
    SB_RING_R_ZERO_GAPS,         /* claimed-but-never-written gaps turned into padding */
    SB_RING_R_CORRUPT,           /* records with an invalid header skipped */
    SB_RING_R_CORRUPT_BYTES,     /* bytes skipped because of them */
    SB_RING_R_BAD_TAIL,          /* times the shared tail was out of range */
    SB_RING_R_RECORDS,           /* records delivered */
    SB_RING_R_COUNT
};

#define SB_ALIGNED(n) __attribute__((aligned(n)))

/* The control block. Each hot word sits on its own 128-byte line. */
struct sb_ring_ctrl {
    /* Identity, written once by the creator; version last (release) so that an attacher that
     * sees the version sees the rest. */
    struct {
        uint64_t magic;
        uint32_t version;
        uint32_t ctrl_size;
        uint64_t capacity;
        uint32_t max_payload;
        uint32_t salt;
        uint8_t ring_id[16];
        int64_t created_ns;
        int32_t creator_pid;
        uint32_t flags;
    } SB_ALIGNED(SB_RING_LINE) id;
    uint64_t tail SB_ALIGNED(SB_RING_LINE);       /* producers CAS */
    uint64_t head_cache SB_ALIGNED(SB_RING_LINE); /* producers, when the cached head was short */
    struct {
        uint64_t head;       /* reader: everything before it is consumed and zeroed */
        uint64_t release_to; /* reader: zeroing in progress up to here (crash recovery) */
    } SB_ALIGNED(SB_RING_LINE) rd;
    struct {
        uint64_t durable_head; /* reader/daemon: everything before it is durable */
        uint32_t spool;        /* 1 when durable_head trails head (a spool exists) */
    } SB_ALIGNED(SB_RING_LINE) dur;
    struct {
        int64_t heartbeat_ns; /* reader's CLOCK_MONOTONIC at its last poll; 0 = none yet */
        int32_t reader_pid;
    } SB_ALIGNED(SB_RING_LINE) hb;
    uint32_t futex SB_ALIGNED(SB_RING_LINE); /* 1 = the reader sleeps or is about to */
    uint64_t drops[SEGBUS_DROP_REASONS] SB_ALIGNED(SB_RING_LINE); /* producers, slow path */
    uint64_t rcount[SB_RING_R_COUNT] SB_ALIGNED(SB_RING_LINE);    /* reader */
};

#ifdef __cplusplus
static_assert(sizeof(struct sb_ring_ctrl) <= SB_RING_CTRL_SIZE, "control block too big");
#else
_Static_assert(sizeof(struct sb_ring_ctrl) <= SB_RING_CTRL_SIZE, "control block too big");
#endif

/* A process's view of one ring: where it is mapped and the validated, private copies of its
 * geometry (never re-read from the shared memory). */
struct sb_ring {
    uint8_t *data;
    struct sb_ring_ctrl *ctrl;
    uint64_t capacity;
    uint64_t mask;
    uint32_t max_payload;
    uint32_t salt;
};

/* Bytes to map for a ring of `capacity`. */
static inline size_t sb_ring_map_size(uint64_t capacity)
{
    return (size_t)capacity + SB_RING_CTRL_SIZE;
}

/* Largest payload for a capacity: min(SEGBUS_RECORD_MAX, capacity/8 - header). */
uint32_t sb_ring_max_payload_for(uint64_t capacity);

/* Lay out a fresh ring in `mem` (sb_ring_map_size(capacity) bytes, zeroed). The version is
 * stored last. -EINVAL if capacity is not a power of two within the limits. */
int sb_ring_format(void *mem, uint64_t capacity, const uint8_t ring_id[16], int32_t pid,
                   int64_t now_ns);

/* Attach to a formatted ring of `size` mapped bytes: check magic, version, capacity against
 * size. Fills *r. -EPROTO on any mismatch (including a version of 0: not ready). */
int sb_ring_attach(struct sb_ring *r, void *mem, size_t size);

/* The check word for a record header. */
static inline uint32_t sb_ring_check(uint32_t salt, uint64_t pos, uint32_t producer, int32_t length)
{
    uint64_t h = (pos ^ ((uint64_t)producer << 40)) * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)(uint32_t)length * 0xc2b2ae3d27d4eb4full;
    h ^= h >> 29;
    return (uint32_t)(h ^ (h >> 32)) ^ salt;
}

/* ---- producer side ---- */

struct sb_ring_slot {
    uint64_t pos;  /* position of the record header */
    uint8_t *data; /* payload */
    uint32_t len;  /* payload bytes claimed */
    int32_t type;
    uint32_t producer;
};

/* Test-only hook: when set, called between claim and commit of sb_ring_write() (used to park
 * a producer there and SIGKILL it). Not for production use. */
extern void (*sb_ring_test_pause_hook)(void);
/* Test-only hook: called right after the tail CAS, before the header is written (a writer
 * killed there leaves a zero-length claim). */
extern void (*sb_ring_test_claim_hook)(void);

/* Claim room for `len` payload bytes. 0, -EINVAL (type < 1), -EMSGSIZE, -EAGAIN (no room:
 * returns at once, never spins on a full ring), -ESTALE (preempted between the tail CAS and the
 * header, the claim was repaired as a dead producer's: nothing was written, claim again).
 * Writes the negative-length header. */
int sb_ring_claim(struct sb_ring *r, uint32_t producer, int32_t type, size_t len,
                  struct sb_ring_slot *c);

/* Commit the first `len` bytes of a claim (the rest of the claimed room becomes padding).
 * Returns 0 (reader awake), 1 (the reader sleeps: call sb_ring_wake()), -EINVAL (len bigger
 * than the claim), -ESTALE (the reader repaired the record: it is lost). */
int sb_ring_commit(struct sb_ring *r, struct sb_ring_slot *c, uint32_t len);

/* Turn a claim into padding. 0 or 1 as commit (the reader may have to skip it), -ESTALE. */
int sb_ring_abort(struct sb_ring *r, struct sb_ring_slot *c);

/* claim + copy + commit. 0 or 1 as commit, or the errors of claim and commit. */
int sb_ring_write(struct sb_ring *r, uint32_t producer, int32_t type, const void *data, size_t len);

/* Count a drop of `reason` in the shared control block. */
void sb_ring_count_drop(struct sb_ring *r, int reason);

/* The tail now (acquire): a producer's flush target is the end of its last record. */
uint64_t sb_ring_tail(const struct sb_ring *r);
/* The reader's published head and durable head (acquire). */
uint64_t sb_ring_head(const struct sb_ring *r);
uint64_t sb_ring_durable_head(const struct sb_ring *r);

/* ---- reader side ---- */

/* Answer whether the writer of a stuck record is alive: 1 alive (or unknown), 0 dead.
 * producer is SB_RING_PRODUCER_UNKNOWN for a claim that was never written (length 0); the
 * registry then answers 0 if a producer died while holding a claim below or at `pos`. */
typedef int (*sb_ring_alive_fn)(void *ctx, uint32_t producer, uint64_t pos);

struct sb_ring_reader_opts {
    sb_ring_alive_fn alive; /* NULL: every writer counts as alive (repair only after grace) */
    void *alive_ctx;
    int64_t check_ns;     /* stuck this long: ask alive() (default 50 ms) */
    int64_t grace_ns;     /* stuck this long with the writer alive: repair anyway (10 s) */
    int64_t stale_ns;     /* a header that is not for this position: wait this long (250 ms) */
    int64_t gap_ns;       /* a never-written claim must look the same this long before it is
                             padded, so that a writer merely preempted after its CAS is not
                             taken for a dead one (200 ms) */
    size_t batch_bytes;   /* payload bytes one read copies out at most (>= max payload; 1 MiB) */
    size_t batch_records; /* records one read hands out at most (1024) */
    int track_durable;    /* 1: durable head is advanced by sb_ring_reader_set_durable() */
};

/* One record handed out by a read: the payload is a private copy (the reader's batch buffer),
 * valid until the next read. */
struct sb_ring_rec {
    int32_t type;
    uint32_t producer;
    uint32_t len;
    const uint8_t *data;
    uint64_t pos;
};

struct sb_ring_reader {
    struct sb_ring ring;
    struct sb_ring_reader_opts o;
    uint64_t head;     /* private: consumed and published up to here */
    uint64_t read_pos; /* private: handed out up to here (released later) */
    uint8_t *buf;      /* batch payloads */
    struct sb_ring_rec *recs;
    size_t nrecs;
    /* stall tracking */
    uint64_t stall_pos;
    int64_t stall_since;
    int64_t last_alive_check;
    uint64_t gap_end; /* zero-gap repair candidate [stall_pos, gap_end) */
    int64_t gap_since;
    uint64_t counters[SB_RING_R_COUNT]; /* private copies, mirrored to the control block */
};

/* Default options. */
void sb_ring_reader_opts_init(struct sb_ring_reader_opts *o);

/* Adopt an attached ring as its (only) reader: take head from the control block (validated;
 * a head out of range restarts at the tail, counted as corrupt bytes), finish a release a
 * dead reader left half done, allocate the batch buffer. -ENOMEM, -EINVAL. */
int sb_ring_reader_init(struct sb_ring_reader *rd, const struct sb_ring *r,
                        const struct sb_ring_reader_opts *o, int32_t pid, int64_t now_ns);
void sb_ring_reader_free(struct sb_ring_reader *rd);

/* Hand out the next batch of committed records (at most the option limits) as private
 * copies in rd->recs[0..n). Does not consume them: sb_ring_reader_release() does. Repairs a
 * stuck record per the options. Returns n >= 0. */
int sb_ring_read(struct sb_ring_reader *rd, int64_t now_ns);

/* Consume everything handed out so far: zero it and publish head (and durable head unless
 * track_durable). */
void sb_ring_reader_release(struct sb_ring_reader *rd);

/* The daemon made everything before `pos` durable (pos <= head). */
void sb_ring_reader_set_durable(struct sb_ring_reader *rd, uint64_t pos);

/* 1 if the record at the read position is committed (a read would hand something out or
 * skip padding), 0 otherwise. Cheap: one load. */
int sb_ring_reader_ready(const struct sb_ring_reader *rd);

/* Sleep protocol. prepare: set the waiting flag, full fence, re-check. Returns 1 when the
 * caller may wait on sb_ring_futex_word() while it holds 1 (with a timeout: a writer may
 * die between commit and wake), 0 when a record arrived meanwhile (flag already cleared).
 * finish: clear the flag after the wait. */
int sb_ring_reader_prepare_wait(struct sb_ring_reader *rd);
void sb_ring_reader_finish_wait(struct sb_ring_reader *rd);

/* Address and expected value of the futex word (shared, not private) for FUTEX_WAIT or
 * IORING_OP_FUTEX_WAIT with FUTEX2_SIZE_U32. */
uint32_t *sb_ring_futex_word(const struct sb_ring *r);
#define SB_RING_FUTEX_WAITING 1u

/* Reader bookkeeping: heartbeat (now) and pid. */
void sb_ring_reader_heartbeat(struct sb_ring_reader *rd, int64_t now_ns);

/* ---- ring_wait.c (syscalls) ---- */

/* FUTEX_WAKE (shared) on the ring's futex word. */
void sb_ring_wake(struct sb_ring *r);
/* Spin for spin_ns, then sleep on the futex until a commit wakes us or timeout_ns passes.
 * Returns 1 if a record is ready, 0 on timeout. */
int sb_ring_reader_wait(struct sb_ring_reader *rd, int64_t spin_ns, int64_t timeout_ns);
/* CLOCK_MONOTONIC in ns. */
int64_t sb_ring_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif /* SB_RING_H */
