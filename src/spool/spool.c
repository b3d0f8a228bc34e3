/* spool.c: the durable spool engine: append + group commit through the io_uring loop, segment
 * rotation and recycling, per-output read positions and ack cursors, the bound policy, and
 * recovery on open. The bytes on disk are spool_format.c's (docs/formats-spool.md).
 *
 * Failure policy (fsyncgate): a failed or short WRITE or a failed FSYNC is never retried on the
 * same file. After an fsync error Linux may have dropped the dirty pages and cleared the error,
 * so a second fsync can "succeed" with the data gone. The records of that commit (and every
 * record queued after it) are still in memory: the segment(s) they went to are sealed and marked
 * suspect (never written again, never recycled, deleted once every output has passed them), and
 * the records, with the same seqs, are rewritten into a fresh segment with a new generation and
 * committed again. If no new segment can be made (disk full), the spool stalls: appends fail
 * with that error and a retry timer tries again every retry_ns. Recovery resolves the duplicates
 * the rewrite leaves on disk: a newer segment whose first seq is <= an older one's last seq
 * supersedes the older copies.
 */
#include "spool/spool.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "net/loop.h"
#include "spool/spool_format.h"

#define MOD "spool"
#define MAX_CHUNKS 2 /* pending bytes <= segment room / 2, so one commit spans <= 2 segments */

struct seg {
    uint64_t gen;
    int fd;
    uint64_t size;        /* bytes of the file (its header's segment_bytes) */
    uint64_t first_seq;   /* seq of its first record (from its header) */
    uint64_t last_seq;    /* last record that counts; first_seq - 1 when none */
    uint64_t end;         /* offset after the last record written or queued */
    uint64_t durable_end; /* offset after the last durable record: reads stay below */
    bool sealed;          /* no more appends */
    bool suspect;         /* a write/fsync to it failed: never reused */
};

struct chunk {
    struct seg *seg;
    uint64_t off;
    struct sb_buf buf;
    size_t term;                  /* zero bytes written after the records (not part of them) */
    uint64_t first_seq, last_seq; /* last_seq < first_seq: no records (header only) */
};

struct io {
    struct sb_op op;
    struct sb_spool *sp;
    int idx;
};

struct timeout {
    struct sb_op op;
    struct sb_op remove_op;
    struct __kernel_timespec ts;
    bool armed;
    unsigned inflight; /* SQEs of ours (timeout + remove) the kernel still owns */
};

struct output {
    char *name;
    int fd;
    uint64_t acked;     /* cursor in memory */
    uint64_t persisted; /* cursor on disk */
    uint64_t read_next; /* next seq to hand out */
    uint64_t pos_gen;   /* where read_next's frame is, when pos_gen != 0 */
    uint64_t pos_off;
    uint64_t counter; /* counter of the slot last written successfully */
    uint64_t writing; /* acked value being written */
    bool dirty, inflight;
    int cursor_err;
    unsigned cursor_cqes;
    struct io w_io, s_io;
    uint8_t slot[SB_SPOOL_CUR_SLOT_BYTES];
    uint64_t dropped_oldest, dropped_corrupt;
    /* The destination's own position that goes with acked (sb_spool_ack_at), written into the
     * cursor with it; and what the cursor on disk said at open (sb_spool_output_resume). */
    bool has_pos, w_has_pos, open_has_pos;
    uint64_t out_pos, out_id, w_pos, w_id, open_pos, open_id;
};

struct commit {
    struct chunk ch[MAX_CHUNKS];
    unsigned n;
    unsigned outstanding;
    int err;
    bool active;
    uint64_t t_start;
    uint64_t t_written[MAX_CHUNKS];
    struct io w_io[MAX_CHUNKS], f_io[MAX_CHUNKS], d_io;
};

struct sb_spool {
    struct sb_spool_opts o;
    struct sb_loop *loop;
    bool ro;
    char *dir;
    int dirfd;
    int lockfd;
    uint64_t max_segments;

    struct seg **segs; /* live segments, oldest first */
    size_t nsegs, capsegs;
    struct seg *active;
    uint64_t *free_gens; /* closed files kept for reuse */
    size_t nfree, capfree;
    uint64_t next_gen;

    uint64_t next_seq;
    uint64_t durable_seq;
    uint64_t stall_fail_seq; /* seqs >= this were in a commit that failed */

    struct chunk pend[MAX_CHUNKS];
    unsigned npend;
    uint64_t pend_bytes;
    struct commit c;
    bool dir_dirty;

    bool stalled;
    int stall_err;
    struct sb_buf redo; /* frames of records that must be rewritten to a new segment */

    struct io kick_io;
    bool kick_armed;
    struct timeout delay, retry;

    int inject_n, inject_err;
    int last_err;

    struct output *outs;
    unsigned nouts;

    struct sb_buf rwin; /* read window: bytes [rwin_off, rwin_off + len) of segment rwin_gen */
    uint64_t rwin_gen, rwin_off;
    struct sb_buf scratch;

    struct sb_spool_stats st;
};

/* ---- small helpers --------------------------------------------------------------------- */

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static ssize_t fd_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int fsync_dir(struct sb_spool *sp)
{
    if (fsync(sp->dirfd) < 0)
        return -errno;
    sp->st.fsyncs++;
    return 0;
}

/* Segments are freed on the cursors ON DISK, not the ones in memory: after a crash an output
 * resumes at its cursor on disk and must find every record after it still there (an output
 * that undoes a delivery the cursor never saw, sb_spool_ack_at, would otherwise lose it). */
static uint64_t min_acked(const struct sb_spool *sp)
{
    uint64_t m = sp->durable_seq;
    for (unsigned i = 0; i < sp->nouts; i++)
        if (sp->outs[i].persisted < m)
            m = sp->outs[i].persisted;
    return m;
}

static struct seg *seg_find(const struct sb_spool *sp, uint64_t seq)
{
    /* Segments are ordered by seq too; binary search on first_seq. */
    size_t lo = 0, hi = sp->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sp->segs[mid]->first_seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    struct seg *s = sp->segs[lo - 1];
    return seq <= s->last_seq ? s : NULL;
}

static int segs_push(struct sb_spool *sp, struct seg *s)
{
    if (sp->nsegs == sp->capsegs) {
        size_t cap = sp->capsegs ? sp->capsegs * 2 : 16;
        struct seg **n = realloc(sp->segs, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        sp->segs = n;
        sp->capsegs = cap;
    }
    sp->segs[sp->nsegs++] = s;
    return 0;
}

static int free_push(struct sb_spool *sp, uint64_t gen)
{
    if (sp->nfree == sp->capfree) {
        size_t cap = sp->capfree ? sp->capfree * 2 : 8;
        uint64_t *n = realloc(sp->free_gens, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        sp->free_gens = n;
        sp->capfree = cap;
    }
    sp->free_gens[sp->nfree++] = gen;
    return 0;
}

static void unlink_gen(struct sb_spool *sp, uint64_t gen)
{
    char name[SB_SPOOL_SEG_NAME_LEN + 1];
    sb_spool_seg_name(name, gen);
    if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT)
        sb_warn(MOD, "%s: cannot remove segment %s: %s", sp->dir, name, strerror(errno));
    sp->st.segments_removed++; /* not made durable: a file that comes back is recovered as free */
}

/* Take a segment out of the live list: keep the file for reuse or delete it. */
static void seg_release(struct sb_spool *sp, size_t i)
{
    struct seg *s = sp->segs[i];
    memmove(sp->segs + i, sp->segs + i + 1, (sp->nsegs - i - 1) * sizeof *sp->segs);
    sp->nsegs--;
    if (sp->active == s)
        sp->active = NULL;
    if (sp->rwin_gen == s->gen)
        sp->rwin_gen = 0;
    close(s->fd);
    if (sp->ro) {
        /* Inspection changes nothing on disk. */
    } else if (!s->suspect && s->size == sp->o.segment_bytes &&
               sp->nfree < sp->o.keep_free_segments && free_push(sp, s->gen) == 0) {
        sb_debug(MOD, "segment %016llx free for reuse", (unsigned long long)s->gen);
    } else {
        unlink_gen(sp, s->gen);
    }
    free(s);
}

/* Free, oldest first, every segment that all outputs have acknowledged. min_acked() is at most
 * durable_seq, so a segment with a record still being committed is never freed. Nor is the one
 * holding the newest record: a restarted daemon reads it (sb_spool_visit) to learn what the
 * last one had spooled. */
static void release_passed(struct sb_spool *sp)
{
    uint64_t m = min_acked(sp);
    while (sp->nsegs) {
        struct seg *s = sp->segs[0];
        if (s == sp->active || !s->sealed || (s->last_seq >= s->first_seq && s->last_seq > m) ||
            (s->first_seq <= sp->durable_seq && sp->durable_seq <= s->last_seq))
            break;
        seg_release(sp, 0);
    }
}

/* ---- cursors ---------------------------------------------------------------------------- */

static void cursor_cqe(struct sb_op *op, int res, uint32_t flags);

static void cursor_kick(struct sb_spool *sp, struct output *o)
{
    if (sp->ro || o->inflight || !o->dirty || !sp->loop)
        return;
    /* Room for both SQEs now: sb_loop_sqe() must not submit the write alone (unlinked) to make
     * room for the fdatasync. */
    struct io_uring *ring = sb_loop_ring(sp->loop);
    if (io_uring_sq_space_left(ring) < 2)
        io_uring_submit(ring);
    struct io_uring_sqe *w = sb_loop_sqe(sp->loop, &o->w_io.op, cursor_cqe);
    if (!w)
        return; /* stays dirty: the next ack or close writes it */
    struct sb_spool_cursor_slot c = {o->counter + 1, o->acked, o->has_pos, o->out_pos, o->out_id};
    sb_spool_cursor_encode(o->slot, &c);
    /* The slot not holding the last good value: a torn write leaves the other one intact. */
    uint64_t off = (c.counter & 1) * SB_SPOOL_CUR_SLOT_STRIDE;
    io_uring_prep_write(w, o->fd, o->slot, sizeof o->slot, off);
    o->cursor_cqes = 1;
    struct io_uring_sqe *f = sb_loop_sqe(sp->loop, &o->s_io.op, cursor_cqe);
    if (f) {
        w->flags |= IOSQE_IO_LINK; /* fdatasync only after the write landed */
        io_uring_prep_fsync(f, o->fd, IORING_FSYNC_DATASYNC);
        o->cursor_cqes = 2;
    } else {
        o->cursor_err = -EBUSY;
    }
    o->writing = o->acked;
    o->w_has_pos = o->has_pos;
    o->w_pos = o->out_pos;
    o->w_id = o->out_id;
    o->dirty = false;
    o->inflight = true;
}

static void cursor_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct io *io = SB_CONTAINER_OF(op, struct io, op);
    struct sb_spool *sp = io->sp;
    struct output *o = &sp->outs[io->idx];
    bool is_write = op == &o->w_io.op;
    if (is_write && res >= 0 && res != (int)sizeof o->slot)
        res = -EIO;
    if (!is_write && res >= 0)
        sp->st.fsyncs++;
    if (res < 0 && !o->cursor_err)
        o->cursor_err = res;
    if (--o->cursor_cqes)
        return;
    o->inflight = false;
    if (o->cursor_err) {
        /* Not retried at once: the old slot is intact, a lost cursor only means a resend. The
         * next ack (or close) writes the same slot again. */
        sp->st.cursor_errors++;
        sb_warn(MOD, "%s: cursor of output %s not saved: %s", sp->dir, o->name,
                strerror(-o->cursor_err));
        o->cursor_err = 0;
        o->dirty = true;
        return;
    }
    o->counter++;
    o->persisted = o->writing;
    sp->st.cursor_writes++;
    if (o->dirty)
        cursor_kick(sp, o);
    release_passed(sp);
}

/* Synchronous cursor write, for open (new outputs) and close. */
static int cursor_write_sync(struct sb_spool *sp, struct output *o)
{
    struct sb_spool_cursor_slot c = {o->counter + 1, o->acked, o->has_pos, o->out_pos, o->out_id};
    uint8_t slot[SB_SPOOL_CUR_SLOT_BYTES];
    sb_spool_cursor_encode(slot, &c);
    int r = pwrite_all(o->fd, slot, sizeof slot, (c.counter & 1) * SB_SPOOL_CUR_SLOT_STRIDE);
    if (r == 0 && fdatasync(o->fd) < 0)
        r = -errno;
    if (r < 0) {
        sp->st.cursor_errors++;
        return r;
    }
    sp->st.fsyncs++;
    sp->st.cursor_writes++;
    o->counter = c.counter;
    o->persisted = o->acked;
    o->dirty = false;
    return 0;
}

/* ---- timeouts on the loop --------------------------------------------------------------- */

static void timeout_remove_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    struct timeout *t = SB_CONTAINER_OF(op, struct timeout, remove_op);
    t->inflight--;
}

static int timeout_arm(struct sb_spool *sp, struct timeout *t, uint64_t after_ns, sb_op_fn fn)
{
    if (t->armed)
        return 0;
    struct io_uring_sqe *sqe = sb_loop_sqe(sp->loop, &t->op, fn);
    if (!sqe)
        return -EBUSY;
    t->ts.tv_sec = (long long)(after_ns / 1000000000u);
    t->ts.tv_nsec = (long long)(after_ns % 1000000000u);
    io_uring_prep_timeout(sqe, &t->ts, 0, 0);
    t->armed = true;
    t->inflight++;
    return 0;
}

static void timeout_cancel(struct sb_spool *sp, struct timeout *t)
{
    if (!t->armed)
        return;
    struct io_uring_sqe *sqe = sb_loop_sqe(sp->loop, &t->remove_op, timeout_remove_cqe);
    if (!sqe)
        return; /* it fires on its own within its timeout; close waits for it */
    io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&t->op, 0);
    t->inflight++;
}

/* Returns true when the timeout really fired (not a removal). */
static bool timeout_done(struct timeout *t, int res)
{
    t->inflight--;
    t->armed = false;
    return res == -ETIME;
}

/* ---- segments ----------------------------------------------------------------------------- */

static int chunk_start(struct sb_spool *sp, struct seg *s, uint64_t off)
{
    if (sp->npend == MAX_CHUNKS)
        return -EAGAIN;
    struct chunk *c = &sp->pend[sp->npend++];
    c->seg = s;
    c->off = off;
    sb_buf_clear(&c->buf);
    c->first_seq = sp->next_seq;
    c->last_seq = sp->next_seq - 1;
    return 0;
}

static int visit_seg(struct sb_spool *sp, struct seg *s, uint64_t from, uint64_t to,
                     sb_spool_record_fn fn, void *arg, bool *stopped);

struct drop_ctx {
    struct sb_spool *sp;
    unsigned out;
};

static int drop_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
    struct drop_ctx *c = arg;
    c->sp->o.on_drop(c->sp->o.arg, c->out, seq, data, len);
    return 0;
}

/* Drop the oldest live segment for drop_oldest: every output that had not passed it skips it
 * and counts what it lost (on_drop: per record, in the caller's units). */
static int drop_oldest(struct sb_spool *sp)
{
    if (sp->nsegs == 0)
        return -EAGAIN;
    struct seg *s = sp->segs[0];
    if (s == sp->active || !s->sealed || s->last_seq > sp->durable_seq)
        return -EAGAIN; /* the oldest is still being written: nothing can go */
    for (unsigned i = 0; i < sp->nouts; i++) {
        struct output *o = &sp->outs[i];
        if (o->acked >= s->last_seq)
            continue;
        uint64_t from = o->acked + 1 > s->first_seq ? o->acked + 1 : s->first_seq;
        uint64_t n = s->last_seq >= from ? s->last_seq - from + 1 : 0;
        o->dropped_oldest += n;
        sp->st.dropped_oldest += n;
        sb_warn(MOD, "%s: spool full (drop_oldest): output %s loses records %llu..%llu", sp->dir,
                o->name, (unsigned long long)from, (unsigned long long)s->last_seq);
        if (sp->o.on_drop) {
            struct drop_ctx c = {sp, i};
            bool stopped = false;
            (void)visit_seg(sp, s, from, s->last_seq, drop_cb, &c, &stopped);
        }
        o->acked = s->last_seq;
        if (o->read_next <= s->last_seq) {
            o->read_next = s->last_seq + 1;
            o->pos_gen = 0;
        }
        o->dirty = true;
        cursor_kick(sp, o);
    }
    seg_release(sp, 0);
    return 0;
}

/* Make a new active segment whose first record will be first_seq and queue its header. The file
 * is a reused one (renamed) or a new one preallocated with fallocate, so that running out of
 * space shows up here, as a clean error, and never in the middle of a commit. */
static int seg_new(struct sb_spool *sp, uint64_t first_seq, struct seg **out)
{
    if (sp->ro)
        return -EROFS;
again:
    while (sp->nfree == 0 && sp->nsegs >= sp->max_segments) {
        if (sp->o.policy != SB_SPOOL_DROP_OLDEST || drop_oldest(sp) < 0)
            return -EAGAIN;
    }
    uint64_t gen = sp->next_gen;
    char name[SB_SPOOL_SEG_NAME_LEN + 1];
    sb_spool_seg_name(name, gen);
    int fd = -1;
    if (sp->nfree) {
        uint64_t old = sp->free_gens[sp->nfree - 1];
        char oldname[SB_SPOOL_SEG_NAME_LEN + 1];
        sb_spool_seg_name(oldname, old);
        /* Overwriting blocks already written is about twice as fast to fdatasync as filling
         * fresh extents (research/uring.md 4.1). The old records stay behind the write head
         * but carry the old generation, so a scan never takes them for new ones. */
        if (renameat(sp->dirfd, oldname, sp->dirfd, name) == 0) {
            sp->nfree--;
            fd = openat(sp->dirfd, name, O_RDWR | O_CLOEXEC);
            if (fd < 0) {
                int e = -errno;
                unlinkat(sp->dirfd, name, 0);
                return e;
            }
            sp->st.segments_recycled++;
        } else {
            sb_warn(MOD, "%s: cannot reuse %s: %s", sp->dir, oldname, strerror(errno));
            sp->nfree--;
            unlinkat(sp->dirfd, oldname, 0);
        }
    }
    if (fd < 0) {
        char tmp[SB_SPOOL_SEG_NAME_LEN + 8];
        snprintf(tmp, sizeof tmp, "%s.tmp", name);
        fd = openat(sp->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
        int r = fallocate(fd, 0, 0, (off_t)sp->o.segment_bytes);
        if (r < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
            r = ftruncate(fd, (off_t)sp->o.segment_bytes); /* no reservation on this fs */
        if (r < 0 || renameat(sp->dirfd, tmp, sp->dirfd, name) < 0) {
            int e = -errno;
            close(fd);
            unlinkat(sp->dirfd, tmp, 0);
            /* A full file system is a bound too: drop_oldest frees the oldest segment's file
             * (kept for reuse, or its blocks returned) and tries again. */
            if (e == -ENOSPC && sp->o.policy == SB_SPOOL_DROP_OLDEST && drop_oldest(sp) == 0)
                goto again;
            return e;
        }
        sp->st.segments_created++;
    }
    struct seg *s = calloc(1, sizeof *s);
    if (!s || segs_push(sp, s) < 0) {
        free(s);
        close(fd);
        unlinkat(sp->dirfd, name, 0);
        return -ENOMEM;
    }
    sp->next_gen++;
    s->gen = gen;
    s->fd = fd;
    s->size = sp->o.segment_bytes;
    s->first_seq = first_seq;
    s->last_seq = first_seq - 1;
    s->end = SB_SPOOL_SEG_HDR_BYTES;
    s->durable_end = SB_SPOOL_SEG_HDR_BYTES;
    if (sp->active)
        sp->active->sealed = true;
    sp->active = s;
    sp->dir_dirty = true; /* the new name must be durable before its records count */
    *out = s;
    return 0;
}

static void seg_header(uint8_t *out, const struct sb_spool *sp, const struct seg *s)
{
    struct sb_spool_seg_hdr h = {SB_SPOOL_VERSION, SB_SPOOL_SEG_HDR_BYTES, s->gen, s->first_seq,
                                 s->size,          realtime_ns()};
    sb_spool_seg_hdr_encode(out, &h);
    (void)sp;
}

/* ---- commits ------------------------------------------------------------------------------ */

static void commit_cqe(struct sb_op *op, int res, uint32_t flags);
static void commit_done(struct sb_spool *sp);
static void kick_cqe(struct sb_op *op, int res, uint32_t flags);
static void delay_cqe(struct sb_op *op, int res, uint32_t flags);
static void try_redo(struct sb_spool *sp);

static void commit_start(struct sb_spool *sp)
{
    if (sp->c.active || sp->npend == 0 || sp->stalled || !sp->loop)
        return;
    struct commit *c = &sp->c;
    /* Swap buffers: the pending chunks become the commit, the commit's old buffers (empty)
     * become the next pending ones. */
    for (unsigned i = 0; i < sp->npend; i++) {
        struct sb_buf b = c->ch[i].buf;
        c->ch[i] = sp->pend[i];
        sp->pend[i].buf = b;
        sb_buf_clear(&sp->pend[i].buf);
    }
    c->n = sp->npend;
    sp->npend = 0;
    sp->pend_bytes = 0;
    c->active = true;
    c->err = 0;
    c->outstanding = 0;
    c->t_start = sb_now_ns();
    /* Room for every SQE of the commit in the SQ now, so that sb_loop_sqe() never has to
     * submit half a link chain to make room (the link flags are set on unsubmitted SQEs). */
    struct io_uring *ring = sb_loop_ring(sp->loop);
    if (io_uring_sq_space_left(ring) < 2 * c->n + 1)
        io_uring_submit(ring);
    struct io_uring_sqe *prev_f = NULL;
    for (unsigned i = 0; i < c->n; i++) {
        struct chunk *ch = &c->ch[i];
        c->t_written[i] = 0;
        /* A zero word after the last record marks the end of data even in a recycled file,
         * whose old bytes follow; the next commit overwrites it. Without it recovery would stop
         * at stale bytes and report (and truncate) a damaged tail. */
        ch->term = 0;
        if (ch->off + ch->buf.len + 8 <= ch->seg->size && sb_buf_reserve(&ch->buf, 8) == 0) {
            memset(ch->buf.data + ch->buf.len, 0, 8);
            ch->buf.len += 8;
            ch->term = 8;
        }
        struct io_uring_sqe *w = sb_loop_sqe(sp->loop, &c->w_io[i].op, commit_cqe);
        if (!w) {
            c->err = -EBUSY;
            break;
        }
        /* A commit spanning two segments is one chain: the new segment is written only after
         * the old one's fdatasync succeeded. So after a crash a record in a newer segment
         * proves every older one durable, and a torn record can only be in the newest
         * segment with records: the tail that recovery truncates. */
        if (prev_f)
            prev_f->flags |= IOSQE_IO_LINK;
        io_uring_prep_write(w, ch->seg->fd, ch->buf.data, (unsigned)ch->buf.len, ch->off);
        c->outstanding++;
        struct io_uring_sqe *f = sb_loop_sqe(sp->loop, &c->f_io[i].op, commit_cqe);
        if (!f) {
            c->err = -EBUSY;
            break;
        }
        /* Linked: the fdatasync starts only after the write completed in full; a failed or
         * short write cancels it (-ECANCELED) and the commit fails as a whole. */
        w->flags |= IOSQE_IO_LINK;
        io_uring_prep_fsync(f, ch->seg->fd, IORING_FSYNC_DATASYNC);
        c->outstanding++;
        prev_f = f;
    }
    if (!c->err && sp->dir_dirty) {
        struct io_uring_sqe *d = sb_loop_sqe(sp->loop, &c->d_io.op, commit_cqe);
        if (d) {
            /* A new or renamed segment's directory entry must be durable with its records. */
            io_uring_prep_fsync(d, sp->dirfd, 0);
            c->outstanding++;
            sp->dir_dirty = false;
        } else {
            c->err = -EBUSY;
        }
    }
    if (c->outstanding == 0)
        commit_done(sp); /* nothing reached the kernel: fails with c->err */
}

static void kick(struct sb_spool *sp)
{
    if (sp->c.active || sp->stalled || !sp->loop || sp->npend == 0)
        return;
    if (sp->o.commit_delay_ns) {
        if (timeout_arm(sp, &sp->delay, sp->o.commit_delay_ns, delay_cqe) == 0)
            return;
    } else if (!sp->kick_armed) {
        /* A NOP: its CQE comes back on the next loop turn, after every append made in this one,
         * so a burst of appends becomes one commit without a timer. */
        struct io_uring_sqe *sqe = sb_loop_sqe(sp->loop, &sp->kick_io.op, kick_cqe);
        if (sqe) {
            io_uring_prep_nop(sqe);
            sp->kick_armed = true;
            return;
        }
    } else {
        return;
    }
    commit_start(sp);
}

static void kick_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    struct sb_spool *sp = SB_CONTAINER_OF(op, struct io, op)->sp;
    sp->kick_armed = false;
    commit_start(sp);
}

static void delay_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct timeout *t = SB_CONTAINER_OF(op, struct timeout, op);
    struct sb_spool *sp = SB_CONTAINER_OF(t, struct sb_spool, delay);
    timeout_done(t, res);
    commit_start(sp);
}

static void commit_failed(struct sb_spool *sp, int err)
{
    struct commit *c = &sp->c;
    sp->last_err = err;
    uint64_t first = sp->durable_seq + 1, last = sp->next_seq - 1;
    sb_error(MOD,
             "%s: commit of records %llu..%llu failed: %s; abandoning the segment(s) and "
             "rewriting the records to a new one (a failed fsync is never retried in place)",
             sp->dir, (unsigned long long)first, (unsigned long long)last, strerror(-err));
    /* Gather the frames of every record not durable, in seq order: the commit's, then the
     * pending ones. Segment headers (chunks at offset 0) are not records. */
    struct chunk *lists[2 * MAX_CHUNKS];
    unsigned nl = 0;
    for (unsigned i = 0; i < c->n; i++)
        lists[nl++] = &c->ch[i];
    for (unsigned i = 0; i < sp->npend; i++)
        lists[nl++] = &sp->pend[i];
    for (unsigned i = 0; i < nl; i++) {
        struct chunk *ch = lists[i];
        size_t skip = ch->off == 0 ? SB_SPOOL_SEG_HDR_BYTES : 0;
        if (sb_buf_append(&sp->redo, ch->buf.data + skip, ch->buf.len - ch->term - skip) < 0) {
            /* Out of memory on an error path: the records cannot be kept. Say so loudly. */
            sb_error(MOD, "%s: out of memory keeping records %llu..%llu: they are lost", sp->dir,
                     (unsigned long long)first, (unsigned long long)last);
            sb_buf_free(&sp->redo);
            break;
        }
        struct seg *s = ch->seg;
        s->sealed = s->suspect = true;
        if (s->last_seq > sp->durable_seq)
            s->last_seq = sp->durable_seq < s->first_seq ? s->first_seq - 1 : sp->durable_seq;
        if (s->end > s->durable_end)
            s->end = s->durable_end;
        sb_buf_clear(&ch->buf);
    }
    c->n = 0;
    c->active = false;
    for (unsigned i = 0; i < MAX_CHUNKS; i++)
        sp->pend[i].term = c->ch[i].term = 0;
    sp->npend = 0;
    sp->pend_bytes = 0;
    if (sp->active && sp->active->suspect)
        sp->active = NULL;
    /* Suspect segments left with no record are deleted now. */
    for (size_t i = 0; i < sp->nsegs;) {
        struct seg *s = sp->segs[i];
        if (s->suspect && s->last_seq < s->first_seq)
            seg_release(sp, i);
        else
            i++;
    }
    if (sp->redo.len == 0 && sp->next_seq - 1 > sp->durable_seq) {
        /* The records could not be kept: give their seqs up so the spool stays consistent. */
        sp->st.dropped_corrupt += sp->next_seq - 1 - sp->durable_seq;
        sp->durable_seq = sp->next_seq - 1;
    }
    sp->stalled = true;
    sp->stall_err = err;
    try_redo(sp);
}

static void retry_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct timeout *t = SB_CONTAINER_OF(op, struct timeout, op);
    struct sb_spool *sp = SB_CONTAINER_OF(t, struct sb_spool, retry);
    if (timeout_done(t, res))
        try_redo(sp);
}

/* Move the records in sp->redo into a fresh segment (same seqs, new generation) and commit. */
static void try_redo(struct sb_spool *sp)
{
    if (!sp->stalled)
        return;
    struct seg *s;
    int r = seg_new(sp, sp->durable_seq + 1, &s);
    if (r < 0) {
        if (r != sp->stall_err) /* once per distinct error, not once per retry */
            sb_warn(MOD,
                    "%s: no new segment for %llu records waiting to be rewritten: %s; "
                    "appends fail until it works (retry every %llu ms)",
                    sp->dir, (unsigned long long)(sp->next_seq - 1 - sp->durable_seq), strerror(-r),
                    (unsigned long long)(sp->o.retry_ns / 1000000));
        sp->stall_err = r;
        timeout_arm(sp, &sp->retry, sp->o.retry_ns, retry_cqe);
        return;
    }
    sp->stalled = false;
    chunk_start(sp, s, 0);
    struct chunk *ch = &sp->pend[sp->npend - 1];
    uint8_t hdr[SB_SPOOL_SEG_HDR_BYTES];
    seg_header(hdr, sp, s);
    if (sb_buf_append(&ch->buf, hdr, sizeof hdr) < 0 ||
        sb_buf_reserve(&ch->buf, sp->redo.len) < 0) {
        sp->stalled = true;
        sp->stall_err = -ENOMEM;
        timeout_arm(sp, &sp->retry, sp->o.retry_ns, retry_cqe);
        return;
    }
    /* Re-stamp each frame with the new generation; payloads and seqs are unchanged. The frames
     * are our own, built by append, so their lengths are trusted. */
    for (size_t off = 0; off < sp->redo.len;) {
        uint8_t *f = sp->redo.data + off;
        uint32_t len;
        memcpy(&len, f + 24, 4);
        len = le32toh(len);
        sb_spool_rec_regenerate(f, s->gen);
        off += sb_spool_frame_bytes(len);
    }
    sb_buf_append(&ch->buf, sp->redo.data, sp->redo.len); /* reserved above: cannot fail */
    ch->first_seq = sp->durable_seq + 1;
    ch->last_seq = sp->next_seq - 1;
    s->end = SB_SPOOL_SEG_HDR_BYTES + sp->redo.len;
    s->last_seq = sp->next_seq - 1;
    sp->pend_bytes = ch->buf.len;
    sb_buf_clear(&sp->redo);
    sb_info(MOD, "%s: records %llu..%llu rewritten to segment %016llx", sp->dir,
            (unsigned long long)ch->first_seq, (unsigned long long)ch->last_seq,
            (unsigned long long)s->gen);
    commit_start(sp);
}

static void commit_done(struct sb_spool *sp)
{
    struct commit *c = &sp->c;
    if (c->err) {
        commit_failed(sp, c->err);
        return;
    }
    uint64_t upto = sp->durable_seq;
    for (unsigned i = 0; i < c->n; i++) {
        struct chunk *ch = &c->ch[i];
        ch->seg->durable_end = ch->off + ch->buf.len - ch->term;
        if (ch->last_seq >= ch->first_seq)
            upto = ch->last_seq;
        sb_buf_clear(&ch->buf);
    }
    sp->st.durable += upto - sp->durable_seq;
    sp->durable_seq = upto;
    sp->st.commits++;
    sp->st.commit_ns_total += sb_now_ns() - c->t_start;
    c->n = 0;
    c->active = false;
    /* The next group goes out first, so the callback's own appends join the one after. */
    commit_start(sp);
    release_passed(sp);
    if (sp->o.on_durable)
        sp->o.on_durable(sp->o.arg, upto);
}

static void commit_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct io *io = SB_CONTAINER_OF(op, struct io, op);
    struct sb_spool *sp = io->sp;
    struct commit *c = &sp->c;
    uint64_t now = sb_now_ns();
    int i = io->idx;
    if (op != &c->d_io.op && op == &c->w_io[i].op) {
        if (res >= 0 && (size_t)res != c->ch[i].buf.len)
            res = -EIO; /* short write: the linked fsync was cancelled; fail, never patch up */
        if (res == -ECANCELED && c->err) {
            /* Cancelled because an earlier op of the chain failed; already counted. */
        } else if (res < 0) {
            sp->st.write_errors++;
            if (!c->err)
                c->err = res;
        }
        c->t_written[i] = now;
    } else if (op == &c->d_io.op) {
        if (res < 0) {
            sp->st.fsync_errors++;
            if (!c->err)
                c->err = res;
        } else {
            sp->st.fsyncs++;
        }
    } else {
        if (res == 0 && sp->inject_n > 0) {
            sp->inject_n--;
            res = sp->inject_err;
        }
        if (res == -ECANCELED && c->err) {
            /* The write before it failed; already counted. */
        } else if (res < 0) {
            sp->st.fsync_errors++;
            if (!c->err)
                c->err = res;
        } else {
            sp->st.fsyncs++;
            sp->st.data_fsyncs++;
            uint64_t lat = now - (c->t_written[i] ? c->t_written[i] : c->t_start);
            sp->st.fsync_ns_total += lat;
            if (lat > sp->st.fsync_ns_max)
                sp->st.fsync_ns_max = lat;
        }
    }
    if (--c->outstanding == 0)
        commit_done(sp);
}

/* ---- append --------------------------------------------------------------------------------- */

int sb_spool_append(struct sb_spool *sp, const void *data, size_t len, uint64_t *seq)
{
    if (sp->ro)
        return -EROFS;
    if (len == 0 || len > sp->o.max_record_bytes)
        return -EMSGSIZE;
    if (sp->stalled) {
        sp->st.refused_nospace++;
        return sp->stall_err;
    }
    uint64_t fb = sb_spool_frame_bytes(len);
    if (sp->pend_bytes + fb > sp->o.max_pending_bytes) {
        sp->st.refused_pending++;
        return -EAGAIN;
    }
    struct seg *s = sp->active;
    struct chunk *ch = sp->npend ? &sp->pend[sp->npend - 1] : NULL;
    if (!s || s->end + fb > s->size) {
        if (sp->npend == MAX_CHUNKS) {
            sp->st.refused_pending++;
            return -EAGAIN;
        }
        int r = seg_new(sp, sp->next_seq, &s);
        if (r < 0) {
            if (r == -EAGAIN) {
                sp->st.refused_full++;
            } else {
                sp->st.refused_nospace++;
                if (r != sp->last_err)
                    sb_warn(MOD, "%s: cannot make a new segment: %s", sp->dir, strerror(-r));
                sp->last_err = r;
            }
            return r;
        }
        chunk_start(sp, s, 0);
        ch = &sp->pend[sp->npend - 1];
        uint8_t hdr[SB_SPOOL_SEG_HDR_BYTES];
        seg_header(hdr, sp, s);
        if (sb_buf_append(&ch->buf, hdr, sizeof hdr) < 0)
            return -ENOMEM;
        sp->pend_bytes += sizeof hdr;
    } else if (!ch || ch->seg != s) {
        int r = chunk_start(sp, s, s->end);
        if (r < 0) {
            sp->st.refused_pending++;
            return r;
        }
        ch = &sp->pend[sp->npend - 1];
    }
    if (sb_buf_reserve(&ch->buf, fb) < 0)
        return -ENOMEM;
    uint64_t q = sp->next_seq;
    sb_spool_rec_encode(ch->buf.data + ch->buf.len, q, s->gen, data, (uint32_t)len);
    ch->buf.len += fb;
    if (ch->last_seq < ch->first_seq)
        ch->first_seq = q;
    ch->last_seq = q;
    s->end += fb;
    s->last_seq = q;
    sp->next_seq++;
    sp->pend_bytes += fb;
    sp->last_err = 0;
    sp->st.appended++;
    sp->st.appended_bytes += len;
    if (seq)
        *seq = q;
    kick(sp);
    return 0;
}

int sb_spool_flush(struct sb_spool *sp)
{
    if (sp->ro)
        return -EROFS;
    if (sp->stalled)
        return sp->stall_err;
    commit_start(sp);
    return 0;
}

uint64_t sb_spool_durable_seq(const struct sb_spool *sp)
{
    return sp->durable_seq;
}

/* ---- read and ack --------------------------------------------------------------------------- */

/* Bytes [off, off + n) of segment s, through the read window. Never past durable_end: bytes
 * there may still be in flight. NULL with *err set on failure. */
static const uint8_t *seg_bytes(struct sb_spool *sp, struct seg *s, uint64_t off, size_t n,
                                size_t *avail, int *err)
{
    uint64_t lim = s->durable_end;
    if (off >= lim) {
        *avail = 0;
        return sp->rwin.data;
    }
    if (sp->rwin_gen == s->gen && off >= sp->rwin_off && off + n <= sp->rwin_off + sp->rwin.len) {
        *avail = (size_t)(sp->rwin_off + sp->rwin.len - off);
        return sp->rwin.data + (off - sp->rwin_off);
    }
    size_t want = n < (256u << 10) ? (256u << 10) : n;
    if (want > lim - off)
        want = (size_t)(lim - off);
    sb_buf_clear(&sp->rwin);
    sp->rwin_gen = 0;
    if (sb_buf_reserve(&sp->rwin, want) < 0) {
        *err = -ENOMEM;
        return NULL;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = fd_pread(&s->fd, sp->rwin.data + got, want - got, off + got);
        if (r < 0) {
            *err = (int)r;
            return NULL;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    sp->rwin.len = got;
    sp->rwin_gen = s->gen;
    sp->rwin_off = off;
    *avail = got;
    return sp->rwin.data;
}

static void lose_rest_of_seg(struct sb_spool *sp, struct output *o, struct seg *s,
                             enum sb_spool_status why)
{
    uint64_t n = s->last_seq - o->read_next + 1;
    sb_error(MOD, "%s: segment %016llx: record %llu unreadable (%s): output %s skips %llu records",
             sp->dir, (unsigned long long)s->gen, (unsigned long long)o->read_next,
             sb_spool_status_str(why), o->name, (unsigned long long)n);
    o->dropped_corrupt += n;
    sp->st.dropped_corrupt += n;
    o->read_next = s->last_seq + 1;
    o->pos_gen = 0;
}

int sb_spool_read(struct sb_spool *sp, unsigned output, size_t max_bytes, sb_spool_record_fn fn,
                  void *arg)
{
    if (output >= sp->nouts || !fn)
        return -EINVAL;
    struct output *o = &sp->outs[output];
    int delivered = 0;
    size_t bytes = 0;
    while (o->read_next <= sp->durable_seq && delivered < INT_MAX) {
        struct seg *s = seg_find(sp, o->read_next);
        if (!s) {
            /* Not in any segment: dropped (drop_oldest) or lost; go to the next one there is. */
            uint64_t next = UINT64_MAX;
            for (size_t i = 0; i < sp->nsegs; i++)
                if (sp->segs[i]->first_seq > o->read_next &&
                    sp->segs[i]->last_seq >= sp->segs[i]->first_seq) {
                    next = sp->segs[i]->first_seq;
                    break;
                }
            if (next == UINT64_MAX || next > sp->durable_seq)
                break;
            o->read_next = next;
            o->pos_gen = 0;
            continue;
        }
        struct sb_spool_rec_expect exp = {s->gen, 0, sp->o.max_record_bytes};
        uint64_t off = o->pos_gen == s->gen ? o->pos_off : SB_SPOOL_SEG_HDR_BYTES;
        struct sb_spool_rec rec;
        enum sb_spool_status why = SB_SPOOL_OK;
        for (;;) {
            size_t avail = 0, need = SB_SPOOL_REC_HDR_BYTES;
            int err = 0;
            const uint8_t *p = seg_bytes(sp, s, off, need, &avail, &err);
            if (!p)
                return err;
            why = sb_spool_rec_check(p, avail, &exp, &rec, &need);
            if (why == SB_SPOOL_SHORT && need <= s->durable_end - off) {
                p = seg_bytes(sp, s, off, need, &avail, &err);
                if (!p)
                    return err;
                why = sb_spool_rec_check(p, avail, &exp, &rec, &need);
            }
            if (why != SB_SPOOL_OK || rec.seq >= o->read_next)
                break;
            off += rec.frame_bytes; /* positioning: skip records before read_next */
        }
        if (why == SB_SPOOL_OK && rec.seq != o->read_next)
            why = SB_SPOOL_BAD_SEQ;
        if (why != SB_SPOOL_OK) {
            lose_rest_of_seg(sp, o, s, why);
            continue;
        }
        if (delivered > 0 && bytes + rec.len > max_bytes)
            break;
        if (fn(arg, rec.seq, rec.payload, rec.len) != 0) {
            o->pos_gen = s->gen;
            o->pos_off = off;
            break;
        }
        delivered++;
        bytes += rec.len;
        o->read_next = rec.seq + 1;
        o->pos_gen = s->gen;
        o->pos_off = off + rec.frame_bytes;
        if (bytes >= max_bytes)
            break;
    }
    return delivered;
}

/* fn for every durable record of segment s with seq in [from, to]. The count, or -errno. */
static int visit_seg(struct sb_spool *sp, struct seg *s, uint64_t from, uint64_t to,
                     sb_spool_record_fn fn, void *arg, bool *stopped)
{
    struct sb_spool_rec_expect exp = {s->gen, 0, sp->o.max_record_bytes};
    uint64_t off = SB_SPOOL_SEG_HDR_BYTES;
    int n = 0;
    for (;;) {
        size_t avail = 0, need = SB_SPOOL_REC_HDR_BYTES;
        int err = 0;
        struct sb_spool_rec rec;
        const uint8_t *p = seg_bytes(sp, s, off, need, &avail, &err);
        if (!p)
            return err;
        enum sb_spool_status why = sb_spool_rec_check(p, avail, &exp, &rec, &need);
        if (why == SB_SPOOL_SHORT && need <= s->durable_end - off) {
            p = seg_bytes(sp, s, off, need, &avail, &err);
            if (!p)
                return err;
            why = sb_spool_rec_check(p, avail, &exp, &rec, &need);
        }
        /* Stop at the end of what is durable, or at a bad record (reads count those). */
        if (why != SB_SPOOL_OK || rec.seq > s->last_seq || rec.seq > sp->durable_seq ||
            rec.seq > to)
            return n;
        if (rec.seq >= from) {
            n++;
            if (fn(arg, rec.seq, rec.payload, rec.len) != 0) {
                *stopped = true;
                return n;
            }
        }
        off += rec.frame_bytes;
    }
}

int sb_spool_visit(struct sb_spool *sp, uint64_t from_seq, sb_spool_record_fn fn, void *arg)
{
    int n = 0;
    bool stopped = false;
    if (!fn)
        return -EINVAL;
    for (size_t i = 0; i < sp->nsegs && !stopped; i++) {
        struct seg *s = sp->segs[i];
        if (s->last_seq < s->first_seq || s->last_seq < from_seq)
            continue;
        int r = visit_seg(sp, s, from_seq, UINT64_MAX, fn, arg, &stopped);
        if (r < 0)
            return r;
        n += r;
    }
    return n;
}

int sb_spool_rewind(struct sb_spool *sp, unsigned output)
{
    if (output >= sp->nouts)
        return -EINVAL;
    struct output *o = &sp->outs[output];
    o->read_next = o->acked + 1;
    o->pos_gen = 0;
    return 0;
}

int sb_spool_ack(struct sb_spool *sp, unsigned output, uint64_t seq)
{
    if (output >= sp->nouts || seq > sp->durable_seq)
        return -EINVAL;
    if (sp->ro)
        return -EROFS;
    struct output *o = &sp->outs[output];
    if (seq <= o->acked)
        return 0;
    o->acked = seq;
    if (o->read_next <= seq) {
        o->read_next = seq + 1;
        o->pos_gen = 0;
    }
    o->dirty = true;
    cursor_kick(sp, o);
    release_passed(sp);
    return 0;
}

int sb_spool_ack_at(struct sb_spool *sp, unsigned output, uint64_t seq, uint64_t pos, uint64_t id)
{
    if (output >= sp->nouts || seq > sp->durable_seq)
        return -EINVAL;
    if (sp->ro)
        return -EROFS;
    struct output *o = &sp->outs[output];
    if (seq < o->acked)
        return 0;
    o->has_pos = true;
    o->out_pos = pos;
    o->out_id = id;
    if (seq == o->acked) {
        o->dirty = true; /* same seq, new position: still worth saving */
        cursor_kick(sp, o);
        return 0;
    }
    return sb_spool_ack(sp, output, seq);
}

int sb_spool_output_resume(const struct sb_spool *sp, unsigned output, uint64_t *acked,
                           uint64_t *pos, uint64_t *id)
{
    if (output >= sp->nouts)
        return -EINVAL;
    const struct output *o = &sp->outs[output];
    if (!o->open_has_pos)
        return 0;
    *acked = o->persisted;
    *pos = o->open_pos;
    *id = o->open_id;
    return 1;
}

int sb_spool_output_index(const struct sb_spool *sp, const char *name)
{
    for (unsigned i = 0; i < sp->nouts; i++)
        if (strcmp(sp->outs[i].name, name) == 0)
            return (int)i;
    return -ENOENT;
}

/* ---- stats ------------------------------------------------------------------------------------
 */

void sb_spool_get_stats(const struct sb_spool *sp, struct sb_spool_stats *st)
{
    *st = sp->st;
    st->segments = sp->nsegs;
    st->free_segments = sp->nfree;
    st->next_seq = sp->next_seq;
    st->durable_seq = sp->durable_seq;
    uint64_t used = sp->nfree * sp->o.segment_bytes, live = 0;
    uint64_t m = min_acked(sp);
    for (size_t i = 0; i < sp->nsegs; i++) {
        used += sp->segs[i]->size;
        if (sp->segs[i]->last_seq > m)
            live += sp->segs[i]->end;
    }
    st->bytes_used = used;
    st->bytes_live = live;
    st->records = sp->next_seq - 1 - m;
}

int sb_spool_get_output_stats(const struct sb_spool *sp, unsigned output,
                              struct sb_spool_output_stats *st)
{
    if (output >= sp->nouts)
        return -EINVAL;
    const struct output *o = &sp->outs[output];
    st->name = o->name;
    st->acked_seq = o->acked;
    st->persisted_seq = o->persisted;
    st->read_seq = o->read_next - 1;
    st->pending = sp->durable_seq > o->acked ? sp->durable_seq - o->acked : 0;
    st->dropped_oldest = o->dropped_oldest;
    st->dropped_corrupt = o->dropped_corrupt;
    return 0;
}

void sb_spool_inject_fsync_error(struct sb_spool *sp, unsigned n, int err)
{
    sp->inject_n = (int)n;
    sp->inject_err = err;
}

/* ---- open and recovery -------------------------------------------------------------------------
 */

void sb_spool_opts_init(struct sb_spool_opts *o)
{
    memset(o, 0, sizeof *o);
    o->segment_bytes = 16u << 20;
    o->max_bytes = 1ull << 30;
    o->policy = SB_SPOOL_BLOCK;
    o->max_pending_bytes = 4u << 20;
    o->keep_free_segments = 2;
    o->retry_ns = 1000000000ull;
}

static int check_opts(struct sb_spool_opts *o)
{
    if (!o->dir || !*o->dir) {
        sb_error(MOD, "spool: no directory given");
        return -EINVAL;
    }
    if (o->segment_bytes < (64u << 10) || o->segment_bytes % 4096) {
        sb_error(MOD, "spool: segment_bytes %llu must be a multiple of 4096 and >= 64 KiB",
                 (unsigned long long)o->segment_bytes);
        return -EINVAL;
    }
    if (o->max_bytes / o->segment_bytes < 2) {
        sb_error(MOD, "spool: max_bytes %llu must hold at least 2 segments of %llu bytes",
                 (unsigned long long)o->max_bytes, (unsigned long long)o->segment_bytes);
        return -EINVAL;
    }
    if (o->policy != SB_SPOOL_BLOCK && o->policy != SB_SPOOL_DROP_OLDEST) {
        sb_error(MOD, "spool: unknown policy %d", (int)o->policy);
        return -EINVAL;
    }
    /* A failed commit and the queue behind it must fit one fresh segment. */
    uint64_t room = (o->segment_bytes - SB_SPOOL_SEG_HDR_BYTES) / 2;
    if (!o->max_pending_bytes || o->max_pending_bytes > room)
        o->max_pending_bytes = room;
    o->max_pending_bytes &= ~(uint64_t)7;
    uint64_t rec_room = o->max_pending_bytes - SB_SPOOL_SEG_HDR_BYTES - SB_SPOOL_REC_HDR_BYTES;
    if (!o->max_record_bytes)
        o->max_record_bytes = (uint32_t)(rec_room < (8u << 20) ? rec_room : (8u << 20));
    if (o->max_record_bytes > rec_room) {
        sb_error(MOD, "spool: max_record_bytes %u exceeds what a commit can hold (%llu)",
                 o->max_record_bytes, (unsigned long long)rec_room);
        return -EINVAL;
    }
    if (!o->retry_ns)
        o->retry_ns = 1000000000ull;
    return 0;
}

struct found {
    uint64_t gen;
    int fd;
    uint64_t file_bytes;
    struct sb_spool_seg_hdr hdr;
    enum sb_spool_status hdr_status;
    struct sb_spool_scan scan;
    bool scanned, keep;
};

static int cmp_found(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    return x->gen < y->gen ? -1 : x->gen > y->gen;
}

static int open_outputs(struct sb_spool *sp, const char *const *names, bool *have, bool *corrupt)
{
    for (unsigned i = 0; i < sp->nouts; i++) {
        struct output *o = &sp->outs[i];
        o->fd = -1;
        for (unsigned j = 0; j < i; j++)
            if (strcmp(names[j], names[i]) == 0) {
                sb_error(MOD, "spool: output name '%s' given twice", names[i]);
                return -EINVAL;
            }
        o->name = strdup(names[i]);
        if (!o->name)
            return -ENOMEM;
        o->w_io.sp = o->s_io.sp = sp;
        o->w_io.idx = o->s_io.idx = (int)i;
        char fname[80];
        snprintf(fname, sizeof fname, "%s.cursor", names[i]);
        int flags = sp->ro ? O_RDONLY : O_RDWR | O_CREAT;
        o->fd = openat(sp->dirfd, fname, flags | O_CLOEXEC, 0600);
        if (o->fd < 0 && !(sp->ro && errno == ENOENT)) {
            int e = -errno;
            sb_error(MOD, "%s/%s: %s", sp->dir, fname, strerror(errno));
            return e;
        }
        uint8_t buf[SB_SPOOL_CUR_FILE_BYTES];
        ssize_t n = o->fd >= 0 ? fd_pread(&o->fd, buf, sizeof buf, 0) : 0;
        if (n < 0)
            return (int)n;
        if (n == 0 && !sp->ro && fallocate(o->fd, 0, 0, SB_SPOOL_CUR_FILE_BYTES) < 0 &&
            errno != EOPNOTSUPP) {
            /* Both slots' blocks reserved now: a later cursor write never needs new space. */
            int e = -errno;
            sb_error(MOD, "%s/%s: %s", sp->dir, fname, strerror(errno));
            return e;
        }
        struct sb_spool_cursor_slot c;
        enum sb_spool_status st = sb_spool_cursor_pick(buf, (size_t)n, &c);
        if (st == SB_SPOOL_OK) {
            have[i] = true;
            o->acked = o->persisted = c.acked_seq;
            o->counter = c.counter;
            o->has_pos = o->open_has_pos = c.has_out_pos;
            o->out_pos = o->open_pos = c.out_pos;
            o->out_id = o->open_id = c.out_id;
        } else if (n > 0) {
            /* Progress unknown: resend everything still spooled rather than skip it. */
            corrupt[i] = true;
            sb_warn(MOD, "%s/%s: unreadable cursor (%s): output %s gets every spooled record again",
                    sp->dir, fname, sb_spool_status_str(st), names[i]);
        }
    }
    return 0;
}

static int recover(struct sb_spool *sp, const char *const *names)
{
    int ret = 0;
    bool *have = calloc(sp->nouts + 1, sizeof *have);
    bool *corrupt = calloc(sp->nouts + 1, sizeof *corrupt);
    struct found *f = NULL;
    size_t nf = 0, capf = 0;
    DIR *d = NULL;
    if (!have || !corrupt) {
        ret = -ENOMEM;
        goto out;
    }
    ret = open_outputs(sp, names, have, corrupt);
    if (ret < 0)
        goto out;

    int dfd = dup(sp->dirfd);
    if (dfd < 0 || !(d = fdopendir(dfd))) {
        ret = -errno;
        if (dfd >= 0)
            close(dfd);
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t gen;
        size_t l = strlen(de->d_name);
        if (!sp->ro && l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0) {
            unlinkat(sp->dirfd, de->d_name, 0); /* a segment creation that never finished */
            continue;
        }
        if (!sb_spool_seg_name_parse(de->d_name, &gen))
            continue;
        if (nf == capf) {
            capf = capf ? capf * 2 : 16;
            struct found *nfp = realloc(f, capf * sizeof *f);
            if (!nfp) {
                ret = -ENOMEM;
                goto out;
            }
            f = nfp;
        }
        memset(&f[nf], 0, sizeof f[nf]);
        f[nf].gen = gen;
        f[nf].fd = -1;
        nf++;
    }
    if (nf)
        qsort(f, nf, sizeof *f, cmp_found);

    uint64_t lowest = UINT64_MAX; /* the lowest cursor among outputs that have one */
    bool any_have = false;
    for (unsigned i = 0; i < sp->nouts; i++) {
        if (corrupt[i])
            lowest = 0;
        else if (have[i] && sp->outs[i].acked < lowest)
            lowest = sp->outs[i].acked;
        any_have |= have[i];
    }
    if (!any_have && lowest == UINT64_MAX)
        lowest = 0; /* no cursor at all: nothing tells what was delivered; keep everything */

    for (size_t i = 0; i < nf; i++) {
        char name[SB_SPOOL_SEG_NAME_LEN + 1];
        sb_spool_seg_name(name, f[i].gen);
        f[i].fd = openat(sp->dirfd, name, (sp->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (f[i].fd < 0) {
            ret = -errno;
            sb_error(MOD, "%s/%s: %s", sp->dir, name, strerror(errno));
            goto out;
        }
        struct stat stt;
        if (fstat(f[i].fd, &stt) < 0) {
            ret = -errno;
            goto out;
        }
        f[i].file_bytes = (uint64_t)stt.st_size;
        uint8_t hb[SB_SPOOL_SEG_HDR_BYTES];
        ssize_t n = fd_pread(&f[i].fd, hb, sizeof hb, 0);
        f[i].hdr_status =
            n < 0 ? SB_SPOOL_IO_ERROR : sb_spool_seg_hdr_decode(hb, (size_t)n, &f[i].hdr);
        if (f[i].hdr_status == SB_SPOOL_OK && f[i].hdr.generation != f[i].gen)
            f[i].hdr_status = SB_SPOOL_BAD_GENERATION;
        if (f[i].gen >= sp->next_gen)
            sp->next_gen = f[i].gen + 1;
    }

    /* Scan, from the oldest segment an output may still need; older ones are known passed by
     * the next valid header's first seq, without reading them. */
    for (size_t i = 0; i < nf; i++) {
        if (f[i].hdr_status != SB_SPOOL_OK)
            continue;
        size_t j = i + 1;
        while (j < nf && f[j].hdr_status != SB_SPOOL_OK)
            j++;
        if (j < nf && f[j].hdr.first_seq > f[i].hdr.first_seq && f[j].hdr.first_seq - 1 <= lowest)
            continue;
        f[i].scan.generation = f[i].gen;
        f[i].scan.file_bytes = f[i].file_bytes;
        f[i].scan.max_len = UINT32_MAX; /* records written under a larger limit stay readable */
        if (sb_spool_scan_segment(fd_pread, &f[i].fd, &f[i].scan, NULL, NULL, &sp->scratch) < 0) {
            ret = -ENOMEM;
            goto out;
        }
        f[i].scanned = true;
        if (f[i].scan.stop != SB_SPOOL_END)
            sb_warn(MOD, "%s: segment %016llx: records end at offset %llu: %s%s%s", sp->dir,
                    (unsigned long long)f[i].gen, (unsigned long long)f[i].scan.end_offset,
                    sb_spool_status_str(f[i].scan.stop), f[i].scan.io_error ? ": " : "",
                    f[i].scan.io_error ? strerror(-f[i].scan.io_error) : "");
    }

    /* Newest first: a newer segment supersedes older copies of the same seqs (left by a
     * rewrite after a failed commit); a hole between segments is counted as lost. */
    uint64_t next_first = 0;
    size_t tail = SIZE_MAX;
    for (size_t k = nf; k-- > 0;) {
        struct found *x = &f[k];
        if (!x->scanned || x->scan.records == 0)
            continue;
        if (tail == SIZE_MAX)
            tail = k;
        if (next_first) {
            if (x->scan.first_seq >= next_first) {
                x->scan.records = 0; /* entirely superseded */
                continue;
            }
            if (x->scan.last_seq >= next_first) {
                x->scan.records -= x->scan.last_seq - next_first + 1;
                x->scan.last_seq = next_first - 1;
            } else if (x->scan.last_seq + 1 < next_first && next_first - 1 > lowest) {
                uint64_t from =
                    x->scan.last_seq + 1 > lowest + 1 ? x->scan.last_seq + 1 : lowest + 1;
                uint64_t n = next_first - from;
                sp->st.dropped_corrupt += n;
                sb_error(MOD, "%s: records %llu..%llu are missing from the spool (lost)", sp->dir,
                         (unsigned long long)from, (unsigned long long)(next_first - 1));
            }
        }
        x->keep = true;
        next_first = x->scan.first_seq;
    }

    /* The tail: truncate at its first bad record, reallocate the space, make it durable. */
    if (tail != SIZE_MAX) {
        struct found *t = &f[tail];
        uint64_t seg_bytes =
            t->hdr.segment_bytes < t->file_bytes ? t->hdr.segment_bytes : t->file_bytes;
        if (t->scan.stop != SB_SPOOL_END && !sp->ro) {
            uint64_t cut = seg_bytes - t->scan.end_offset;
            if (ftruncate(t->fd, (off_t)t->scan.end_offset) < 0 ||
                fallocate(t->fd, 0, 0, (off_t)t->hdr.segment_bytes) < 0) {
                /* Cannot clean the tail: seal it; new records go to a new segment. */
                sb_warn(MOD, "%s: cannot truncate segment %016llx: %s", sp->dir,
                        (unsigned long long)t->gen, strerror(errno));
                t->scan.stop = SB_SPOOL_BAD_LENGTH;
            } else {
                t->scan.stop = SB_SPOOL_END;
                t->file_bytes = t->hdr.segment_bytes;
                sp->st.truncated_bytes += cut;
                sb_warn(MOD, "%s: segment %016llx truncated at offset %llu after record %llu",
                        sp->dir, (unsigned long long)t->gen, (unsigned long long)t->scan.end_offset,
                        (unsigned long long)t->scan.last_seq);
            }
        }
    }

    /* Keep what holds records; the rest is free space (or quarantined if damaged). */
    uint64_t last_seq = 0;
    for (size_t k = 0; k < nf; k++) {
        struct found *x = &f[k];
        if (!x->keep) {
            if (x->hdr_status != SB_SPOOL_OK && x->hdr_status != SB_SPOOL_END &&
                !(x->hdr_status == SB_SPOOL_BAD_GENERATION) && k + 1 < nf)
                sb_warn(MOD, "%s: segment %016llx has a bad header (%s); reusing it", sp->dir,
                        (unsigned long long)x->gen, sb_spool_status_str(x->hdr_status));
            close(x->fd);
            x->fd = -1;
            if (sp->ro)
                continue;
            if (x->file_bytes == sp->o.segment_bytes && sp->nfree < sp->o.keep_free_segments) {
                if (free_push(sp, x->gen) < 0) {
                    ret = -ENOMEM;
                    goto out;
                }
            } else {
                unlink_gen(sp, x->gen);
                sp->st.segments_removed--; /* recovery housekeeping, not a release */
            }
            continue;
        }
        if (!sp->ro && fdatasync(x->fd) < 0) {
            /* What recovery found may only be in the page cache; it must be on disk before it
             * counts as durable. */
            ret = -errno;
            sb_error(MOD, "%s: fdatasync of segment %016llx: %s", sp->dir,
                     (unsigned long long)x->gen, strerror(errno));
            goto out;
        }
        struct seg *s = calloc(1, sizeof *s);
        if (!s || segs_push(sp, s) < 0) {
            free(s);
            ret = -ENOMEM;
            goto out;
        }
        s->gen = x->gen;
        s->fd = x->fd;
        x->fd = -1;
        s->size = x->hdr.segment_bytes < x->file_bytes ? x->hdr.segment_bytes : x->file_bytes;
        s->first_seq = x->scan.first_seq;
        s->last_seq = x->scan.last_seq;
        s->end = s->durable_end = x->scan.end_offset;
        s->sealed = true;
        if (k == tail && x->scan.stop == SB_SPOOL_END && s->size == sp->o.segment_bytes &&
            x->scan.last_seq + 1 == x->scan.first_seq + x->scan.records) {
            s->sealed = false;
            sp->active = s;
        }
        last_seq = s->last_seq;
    }

    sp->next_seq = last_seq + 1;
    for (unsigned i = 0; i < sp->nouts; i++)
        if (have[i] && sp->outs[i].acked + 1 > sp->next_seq)
            sp->next_seq = sp->outs[i].acked + 1; /* never reuse a seq an output has acked */
    if (sp->active && sp->active->last_seq + 1 != sp->next_seq) {
        sp->active->sealed = true;
        sp->active = NULL;
    }
    sp->durable_seq = sp->next_seq - 1;
    uint64_t oldest = sp->nsegs ? sp->segs[0]->first_seq : sp->next_seq;
    for (unsigned i = 0; i < sp->nouts; i++) {
        struct output *o = &sp->outs[i];
        if (!have[i] && !corrupt[i]) {
            o->acked = sp->durable_seq; /* a new output starts at the head */
            if (!sp->ro) {
                ret = cursor_write_sync(sp, o);
                if (ret < 0) {
                    sb_error(MOD, "%s: cannot write the cursor of output %s: %s", sp->dir, o->name,
                             strerror(-ret));
                    goto out;
                }
                sp->dir_dirty = true;
            }
        } else if (corrupt[i]) {
            o->acked = 0;
        }
        if (o->acked + 1 < oldest) {
            o->acked = oldest - 1; /* already delivered, or dropped before the restart */
            /* Records after the saved position are gone: undoing to it would lose what was
             * delivered of them. */
            o->open_has_pos = o->has_pos = false;
        }
        o->read_next = o->acked + 1;
        if (sp->durable_seq > o->acked)
            sp->st.recovered = sp->st.recovered > sp->durable_seq - o->acked
                                   ? sp->st.recovered
                                   : sp->durable_seq - o->acked;
    }
    if (!sp->ro) {
        release_passed(sp);
        ret = fsync_dir(sp); /* unlinks, truncations and new cursor files */
        sp->dir_dirty = false;
        if (ret < 0)
            goto out;
    }
    if (sp->nsegs)
        sb_info(MOD, "%s: recovered %zu segment(s), records %llu..%llu, next seq %llu", sp->dir,
                sp->nsegs, (unsigned long long)oldest, (unsigned long long)sp->durable_seq,
                (unsigned long long)sp->next_seq);
    else
        sb_info(MOD, "%s: spool empty, next seq %llu", sp->dir, (unsigned long long)sp->next_seq);
out:
    for (size_t k = 0; k < nf; k++)
        if (f[k].fd >= 0)
            close(f[k].fd);
    free(f);
    if (d)
        closedir(d);
    free(have);
    free(corrupt);
    return ret;
}

int sb_spool_open(struct sb_spool **out, struct sb_loop *loop, const struct sb_spool_opts *opts,
                  const char *const *names, unsigned n_outputs)
{
    *out = NULL;
    if (!opts)
        return -EINVAL;
    for (unsigned i = 0; i < n_outputs; i++)
        if (!sb_spool_output_name_ok(names[i])) {
            sb_error(MOD, "spool: bad output name '%s' (1..64 of A-Z a-z 0-9 _ . -)",
                     names[i] ? names[i] : "(null)");
            return -EINVAL;
        }
    struct sb_spool *sp = calloc(1, sizeof *sp);
    if (!sp)
        return -ENOMEM;
    sp->o = *opts;
    sp->dirfd = sp->lockfd = -1;
    int ret = check_opts(&sp->o);
    if (ret < 0) {
        free(sp);
        return ret;
    }
    sp->loop = loop;
    sp->ro = loop == NULL;
    sp->max_segments = sp->o.max_bytes / sp->o.segment_bytes;
    sp->next_gen = 1;
    sp->kick_io.sp = sp;
    sp->kick_io.idx = -1;
    for (int i = 0; i < MAX_CHUNKS; i++) {
        sp->c.w_io[i].sp = sp->c.f_io[i].sp = sp;
        sp->c.w_io[i].idx = sp->c.f_io[i].idx = i;
    }
    sp->c.d_io.sp = sp;
    sp->c.d_io.idx = MAX_CHUNKS;
    sp->dir = strdup(opts->dir);
    sp->outs = calloc(n_outputs ? n_outputs : 1, sizeof *sp->outs);
    sp->nouts = n_outputs;
    if (!sp->dir || !sp->outs) {
        ret = -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < n_outputs; i++)
        sp->outs[i].fd = -1;
    if (!sp->ro && mkdir(sp->dir, 0700) < 0 && errno != EEXIST) {
        ret = -errno;
        sb_error(MOD, "%s: cannot create the spool directory: %s", sp->dir, strerror(errno));
        goto fail;
    }
    sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        ret = -errno;
        sb_error(MOD, "%s: %s", sp->dir, strerror(errno));
        goto fail;
    }
    sp->lockfd =
        openat(sp->dirfd, "lock", (sp->ro ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0600);
    if (sp->lockfd >= 0 && flock(sp->lockfd, (sp->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
        ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
        sb_error(MOD, "%s: the spool is in use by another process", sp->dir);
        goto fail;
    }
    if (sp->lockfd < 0 && !sp->ro) {
        ret = -errno;
        goto fail;
    }
    ret = recover(sp, names);
    if (ret < 0)
        goto fail;
    *out = sp;
    return 0;
fail:
    sp->ro = true; /* close must not write anything */
    sb_spool_close(sp);
    return ret;
}

static bool busy(const struct sb_spool *sp)
{
    if (sp->c.active || sp->kick_armed || sp->delay.inflight || sp->retry.inflight)
        return true;
    for (unsigned i = 0; i < sp->nouts; i++)
        if (sp->outs[i].inflight)
            return true;
    return false;
}

int sb_spool_close(struct sb_spool *sp)
{
    if (!sp)
        return 0;
    int ret = 0;
    if (sp->loop && !sp->ro) {
        if (sp->stalled)
            ret = sp->stall_err;
        commit_start(sp);
        timeout_cancel(sp, &sp->retry);
        timeout_cancel(sp, &sp->delay);
        uint64_t deadline = sb_now_ns() + 30000000000ull;
        while (busy(sp)) {
            /* Commits may chain (a commit's completion starts the next). */
            int r = sb_loop_run_once(sp->loop, 100000000);
            if (r < 0 && r != -EINTR && r != -ETIME) {
                ret = r;
                break;
            }
            if (!sp->c.active && sp->npend && !sp->stalled)
                commit_start(sp);
            if (sb_now_ns() > deadline) {
                sb_error(MOD, "%s: close: I/O still in flight after 30 s", sp->dir);
                ret = -ETIMEDOUT;
                break;
            }
        }
        if (sp->next_seq - 1 > sp->durable_seq) {
            sb_error(MOD, "%s: close: records %llu..%llu were never made durable", sp->dir,
                     (unsigned long long)(sp->durable_seq + 1),
                     (unsigned long long)(sp->next_seq - 1));
            if (!ret)
                ret = sp->last_err ? sp->last_err : -EIO;
        }
        for (unsigned i = 0; i < sp->nouts; i++) {
            struct output *o = &sp->outs[i];
            if (o->fd >= 0 && !o->inflight && o->persisted != o->acked) {
                int r = cursor_write_sync(sp, o);
                if (r < 0 && !ret)
                    ret = r;
            }
        }
        if (busy(sp)) {
            /* Something is still owned by the kernel: leaking beats a use-after-free. */
            sb_error(MOD, "%s: close: leaking the spool, I/O still in flight", sp->dir);
            return ret ? ret : -EBUSY;
        }
    }
    for (size_t i = 0; i < sp->nsegs; i++) {
        close(sp->segs[i]->fd);
        free(sp->segs[i]);
    }
    free(sp->segs);
    free(sp->free_gens);
    for (unsigned i = 0; i < sp->nouts; i++) {
        if (sp->outs[i].fd >= 0)
            close(sp->outs[i].fd);
        free(sp->outs[i].name);
    }
    free(sp->outs);
    for (int i = 0; i < MAX_CHUNKS; i++) {
        sb_buf_free(&sp->pend[i].buf);
        sb_buf_free(&sp->c.ch[i].buf);
    }
    sb_buf_free(&sp->redo);
    sb_buf_free(&sp->rwin);
    sb_buf_free(&sp->scratch);
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    if (sp->lockfd >= 0)
        close(sp->lockfd);
    free(sp->dir);
    free(sp);
    return ret;
}
