/* ring.c: the MPSC ring protocol on plain memory: layout, claim/commit/abort, the validating
 * reader, and repair of records whose writer died. No syscalls (see ring.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring.h"

#define LOAD(p, o) __atomic_load_n((p), __ATOMIC_##o)
#define STORE(p, v, o) __atomic_store_n((p), (v), __ATOMIC_##o)

void (*sb_ring_test_pause_hook)(void);
void (*sb_ring_test_claim_hook)(void);

static inline uint64_t align8(uint64_t n)
{
    return (n + 7u) & ~(uint64_t)7u;
}

/* {length, type} as the first 64-bit word of a header (little endian: length first). */
static inline uint64_t pack(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a | ((uint64_t)(uint32_t)b << 32);
}

static inline uint64_t *word(const struct sb_ring *r, uint64_t pos)
{
    return (uint64_t *)(void *)(r->data + (pos & r->mask));
}

static int capacity_ok(uint64_t cap)
{
    return cap >= SEGBUS_RING_MIN_CAPACITY && cap <= SEGBUS_RING_MAX_CAPACITY &&
           (cap & (cap - 1)) == 0;
}

uint32_t sb_ring_max_payload_for(uint64_t capacity)
{
    uint64_t m = capacity / 8 - SB_RING_HDR;
    return m < SEGBUS_RECORD_MAX ? (uint32_t)m : SEGBUS_RECORD_MAX;
}

int sb_ring_format(void *mem, uint64_t capacity, const uint8_t ring_id[16], int32_t pid,
                   int64_t now_ns)
{
    struct sb_ring_ctrl *ct;

    if (!mem || !capacity_ok(capacity))
        return -EINVAL;
    ct = (struct sb_ring_ctrl *)(void *)((uint8_t *)mem + capacity);
    memset(ct, 0, SB_RING_CTRL_SIZE);
    ct->id.magic = SB_RING_MAGIC;
    ct->id.ctrl_size = SB_RING_CTRL_SIZE;
    ct->id.capacity = capacity;
    ct->id.max_payload = sb_ring_max_payload_for(capacity);
    if (ring_id)
        memcpy(ct->id.ring_id, ring_id, 16);
    memcpy(&ct->id.salt, ct->id.ring_id, sizeof ct->id.salt);
    ct->id.created_ns = now_ns;
    ct->id.creator_pid = pid;
    /* Release: the version is the "ready" flag; an attacher that acquires it sees every field
     * above. */
    STORE(&ct->id.version, SB_RING_VERSION, RELEASE);
    return 0;
}

int sb_ring_attach(struct sb_ring *r, void *mem, size_t size)
{
    struct sb_ring_ctrl *ct;
    uint64_t cap;

    if (!r || !mem || size < SB_RING_CTRL_SIZE)
        return -EPROTO;
    cap = size - SB_RING_CTRL_SIZE;
    if (!capacity_ok(cap))
        return -EPROTO;
    ct = (struct sb_ring_ctrl *)(void *)((uint8_t *)mem + cap);
    /* Acquire: pairs with the creator's release of the version (written last). */
    if (LOAD(&ct->id.version, ACQUIRE) != SB_RING_VERSION)
        return -EPROTO;
    if (LOAD(&ct->id.magic, RELAXED) != SB_RING_MAGIC ||
        LOAD(&ct->id.ctrl_size, RELAXED) != SB_RING_CTRL_SIZE ||
        LOAD(&ct->id.capacity, RELAXED) != cap ||
        LOAD(&ct->id.max_payload, RELAXED) != sb_ring_max_payload_for(cap))
        return -EPROTO;
    r->data = mem;
    r->ctrl = ct;
    r->capacity = cap;
    r->mask = cap - 1;
    r->max_payload = sb_ring_max_payload_for(cap);
    r->salt = LOAD(&ct->id.salt, RELAXED);
    return 0;
}

/* ---- producer ---------------------------------------------------------------------------- */

/* A padding record of `len` bytes at pos, by a producer that owns that room. An 8-byte pad
 * (at most the last 8 bytes before the end) has no room for producer and check words. */
static void write_pad(struct sb_ring *r, uint64_t pos, uint64_t len, uint32_t producer)
{
    uint64_t *h = word(r, pos);

    if (len >= SB_RING_HDR)
        STORE(&h[1],
              pack((int32_t)producer, (int32_t)sb_ring_check(r->salt, pos, producer, (int32_t)len)),
              RELAXED);
    /* Release: the reader that acquires this committed length sees the check word. */
    STORE(&h[0], pack((int32_t)len, SB_RING_TYPE_PAD), RELEASE);
}

/* Padding at the wrap, for a claim whose span may have been repaired meanwhile (see the
 * header CAS in sb_ring_claim): take the first word from 0 to a negative length first, and
 * leave the span alone if the reader got there before us. */
static void write_wrap_pad(struct sb_ring *r, uint64_t pos, uint64_t len, uint32_t producer)
{
    uint64_t zero = 0;

    if (__atomic_compare_exchange_n(word(r, pos), &zero, pack(-(int32_t)len, SB_RING_TYPE_PAD), 0,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        write_pad(r, pos, len, producer);
}

int sb_ring_claim(struct sb_ring *r, uint32_t producer, int32_t type, size_t len,
                  struct sb_ring_slot *c)
{
    struct sb_ring_ctrl *ct = r->ctrl;
    const uint64_t cap = r->capacity;
    uint64_t head, tail, pad, need, want, pos;
    uint32_t reclen;
    uint64_t *h;

    if (type < 1)
        return -EINVAL;
    if (len > r->max_payload)
        return -EMSGSIZE;
    reclen = SB_RING_HDR + (uint32_t)len;
    need = align8(reclen);
    /* Acquire: the reader zeroed the space before it released head; head_cache carries that
     * head on from whichever producer refreshed it, so the zeroing happens before our
     * writes into the space. */
    head = LOAD(&ct->head_cache, ACQUIRE);
    tail = LOAD(&ct->tail, RELAXED);
    for (;;) {
        uint64_t to_end = cap - (tail & r->mask);

        pad = need > to_end ? to_end : 0;
        want = need + pad;
        if (tail - head > cap || want > cap - (tail - head)) {
            /* Acquire: pairs with the reader's release of head after zeroing. */
            head = LOAD(&ct->rd.head, ACQUIRE);
            if (tail - head > cap || want > cap - (tail - head))
                return -EAGAIN; /* full: return at once, never spin on a full ring */
            STORE(&ct->head_cache, head, RELEASE);
        }
        /* Acquire on success is not needed for data (we own the room), release publishes
         * nothing either; relaxed failure just reloads tail. Seq_cst is not needed here. */
        if (__atomic_compare_exchange_n(&ct->tail, &tail, tail + want, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            break;
    }
    if (__builtin_expect(sb_ring_test_claim_hook != NULL, 0))
        sb_ring_test_claim_hook();
    if (pad)
        write_wrap_pad(r, tail, pad, producer);
    pos = tail + pad;
    h = word(r, pos);
    /* CAS from 0, not a store: a writer preempted right after its tail CAS may find that the
     * reader took the still-zero header for a dead producer's claim and padded it (the
     * reader's repair is a CAS from 0 too, so exactly one of us wins). Then nothing of ours is
     * in the ring, and writing now could land on space already reused: return -ESTALE at once
     * and let the caller claim again. Relaxed: the RMW alone decides the owner; the check
     * word's release store below orders the header for the reader. */
    {
        uint64_t zero = 0;
        if (!__atomic_compare_exchange_n(&h[0], &zero, pack(-(int32_t)reclen, type), 0,
                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return -ESTALE;
    }
    /* Release: a reader that acquires this check word and re-reads the length sees our
     * negative length, never stale bytes of an earlier lap paired with our check. */
    STORE(&h[1],
          pack((int32_t)producer, (int32_t)sb_ring_check(r->salt, pos, producer, (int32_t)reclen)),
          RELEASE);
    /* Release fence: orders the header before the payload stores that follow, so that the
     * reader's zero-gap scan never finds payload bytes of a record whose header is still 0.
     * (TSan does not model fences and that scan never runs in the threaded tests.) */
#ifndef __SANITIZE_THREAD__
    __atomic_thread_fence(__ATOMIC_RELEASE);
#endif
    c->pos = pos;
    c->data = (uint8_t *)(h + 2);
    c->len = (uint32_t)len;
    c->type = type;
    c->producer = producer;
    return 0;
}

/* After a commit or abort: 1 if the reader sleeps and must be woken (we took its flag). */
static inline int wake_needed(struct sb_ring_ctrl *ct)
{
    /* Seq_cst load after the seq_cst CAS that published the record: the store-load order of
     * the Dekker pair with the reader's prepare_wait (flag store, then record load). Either
     * the reader sees our record or we see its flag. */
    if (__atomic_load_n(&ct->futex, __ATOMIC_SEQ_CST) == 0)
        return 0;
    /* Only the producer that swaps the flag from 1 pays for the wake syscall. */
    return __atomic_exchange_n(&ct->futex, 0, __ATOMIC_ACQ_REL) != 0;
}

static int finish(struct sb_ring *r, struct sb_ring_slot *c, uint32_t len, int32_t newtype)
{
    uint64_t *h = word(r, c->pos);
    int32_t reclen = (int32_t)(SB_RING_HDR + c->len);
    uint64_t expect = pack(-reclen, c->type);
    uint64_t mine =
        pack((int32_t)c->producer, (int32_t)sb_ring_check(r->salt, c->pos, c->producer, reclen));
    int32_t newlen = newtype == SB_RING_TYPE_PAD ? reclen : (int32_t)(SB_RING_HDR + len);
    uint64_t used, rest;

    /* If the reader repaired this record and the room was reused, the header is someone
     * else's now: its check word differs (it encodes position and producer). */
    if (LOAD(&h[1], RELAXED) != mine)
        goto stale;
    if (newlen != reclen)
        STORE(&h[1],
              pack((int32_t)c->producer,
                   (int32_t)sb_ring_check(r->salt, c->pos, c->producer, newlen)),
              RELAXED);
    /* Seq_cst CAS: publishes the payload (release) and is the full fence before the load of
     * the waiting flag; it fails if the reader turned the record into padding meanwhile. */
    if (!__atomic_compare_exchange_n(&h[0], &expect, pack(newlen, newtype), 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_RELAXED))
        goto stale;
    used = align8((uint64_t)newlen);
    rest = align8((uint64_t)reclen) - used;
    if (rest)
        write_pad(r, c->pos + used, rest, c->producer);
    c->len = 0;
    c->type = 0;
    return wake_needed(r->ctrl);
stale:
    sb_ring_count_drop(r, SEGBUS_DROP_STALE);
    return -ESTALE;
}

int sb_ring_commit(struct sb_ring *r, struct sb_ring_slot *c, uint32_t len)
{
    if (c->type < 1 || len > c->len)
        return -EINVAL;
    return finish(r, c, len, c->type);
}

int sb_ring_abort(struct sb_ring *r, struct sb_ring_slot *c)
{
    if (c->type < 1)
        return -EINVAL;
    return finish(r, c, c->len, SB_RING_TYPE_PAD);
}

int sb_ring_write(struct sb_ring *r, uint32_t producer, int32_t type, const void *data, size_t len)
{
    struct sb_ring_slot c;
    int rc = sb_ring_claim(r, producer, type, len, &c);

    if (rc < 0)
        return rc;
    memcpy(c.data, data, len);
    if (__builtin_expect(sb_ring_test_pause_hook != NULL, 0))
        sb_ring_test_pause_hook();
    return finish(r, &c, (uint32_t)len, type);
}

void sb_ring_count_drop(struct sb_ring *r, int reason)
{
    if (reason >= 0 && reason < SEGBUS_DROP_REASONS)
        __atomic_fetch_add(&r->ctrl->drops[reason], 1, __ATOMIC_RELAXED);
}

uint64_t sb_ring_tail(const struct sb_ring *r)
{
    return LOAD(&r->ctrl->tail, ACQUIRE);
}

uint64_t sb_ring_head(const struct sb_ring *r)
{
    return LOAD(&r->ctrl->rd.head, ACQUIRE);
}

uint64_t sb_ring_durable_head(const struct sb_ring *r)
{
    return LOAD(&r->ctrl->dur.durable_head, ACQUIRE);
}

uint32_t *sb_ring_futex_word(const struct sb_ring *r)
{
    return &r->ctrl->futex;
}

/* ---- reader ------------------------------------------------------------------------------ */

void sb_ring_reader_opts_init(struct sb_ring_reader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->check_ns = 50 * 1000 * 1000;
    o->grace_ns = 10ll * 1000 * 1000 * 1000;
    o->stale_ns = 250 * 1000 * 1000;
    o->gap_ns = 200 * 1000 * 1000;
    o->batch_bytes = 1 << 20;
    o->batch_records = 1024;
}

static void count(struct sb_ring_reader *rd, int which, uint64_t n)
{
    rd->counters[which] += n;
    STORE(&rd->ring.ctrl->rcount[which], rd->counters[which], RELAXED);
}

/* Zero [from, to) of the data area (to - from <= capacity), handling the wrap. */
static void zero_span(struct sb_ring_reader *rd, uint64_t from, uint64_t to)
{
    const struct sb_ring *r = &rd->ring;
    uint64_t n = to - from, idx = from & r->mask, first = r->capacity - idx;

    if (n > r->capacity)
        n = r->capacity;
    if (n <= first) {
        memset(r->data + idx, 0, n);
    } else {
        memset(r->data + idx, 0, first);
        memset(r->data, 0, n - first);
    }
}

static void publish_head(struct sb_ring_reader *rd, uint64_t pos)
{
    struct sb_ring_ctrl *ct = rd->ring.ctrl;

    /* Release: producers acquire head before reusing the room; our zeroing comes first. */
    STORE(&ct->rd.head, pos, RELEASE);
    STORE(&ct->rd.release_to, pos, RELAXED);
    if (!rd->o.track_durable)
        STORE(&ct->dur.durable_head, pos, RELEASE);
    rd->head = pos;
}

int sb_ring_reader_init(struct sb_ring_reader *rd, const struct sb_ring *r,
                        const struct sb_ring_reader_opts *o, int32_t pid, int64_t now_ns)
{
    struct sb_ring_ctrl *ct;
    uint64_t head, tail, rel;

    if (!rd || !r || !r->data)
        return -EINVAL;
    memset(rd, 0, sizeof *rd);
    rd->ring = *r;
    if (o)
        rd->o = *o;
    else
        sb_ring_reader_opts_init(&rd->o);
    if (rd->o.batch_bytes < r->max_payload)
        rd->o.batch_bytes = r->max_payload;
    if (rd->o.batch_records < 1)
        rd->o.batch_records = 1;
    rd->buf = malloc(rd->o.batch_bytes + 8);
    rd->recs = malloc(rd->o.batch_records * sizeof *rd->recs);
    if (!rd->buf || !rd->recs) {
        sb_ring_reader_free(rd);
        return -ENOMEM;
    }
    ct = r->ctrl;
    for (int i = 0; i < SB_RING_R_COUNT; i++)
        rd->counters[i] = LOAD(&ct->rcount[i], RELAXED);
    /* Nothing in the control block is trusted: a head out of range restarts at the tail. */
    head = LOAD(&ct->rd.head, ACQUIRE);
    tail = LOAD(&ct->tail, ACQUIRE) & ~(uint64_t)7;
    rel = LOAD(&ct->rd.release_to, RELAXED);
    if ((head & 7) || tail - head > r->capacity) {
        count(rd, SB_RING_R_CORRUPT_BYTES, tail - head <= r->capacity ? tail - head : 0);
        count(rd, SB_RING_R_CORRUPT, 1);
        head = tail; /* not zeroed: producers may be writing there; check words cope */
    } else if (rel != head && !(rel & 7) && rel - head <= tail - head) {
        /* A reader died between zeroing and publishing head: finish its release. */
        zero_span(rd, head, rel);
        head = rel;
    }
    rd->read_pos = head;
    rd->stall_pos = UINT64_MAX;
    publish_head(rd, head);
    if (rd->o.track_durable)
        STORE(&ct->dur.spool, 1, RELAXED);
    STORE(&ct->hb.reader_pid, pid, RELAXED);
    sb_ring_reader_heartbeat(rd, now_ns);
    return 0;
}

void sb_ring_reader_free(struct sb_ring_reader *rd)
{
    if (!rd)
        return;
    free(rd->buf);
    free(rd->recs);
    rd->buf = NULL;
    rd->recs = NULL;
}

void sb_ring_reader_heartbeat(struct sb_ring_reader *rd, int64_t now_ns)
{
    STORE(&rd->ring.ctrl->hb.heartbeat_ns, now_ns, RELAXED);
}

/* Skip [pos, pos+n) as corrupt. */
static uint64_t skip_corrupt(struct sb_ring_reader *rd, uint64_t pos, uint64_t n)
{
    count(rd, SB_RING_R_CORRUPT, 1);
    count(rd, SB_RING_R_CORRUPT_BYTES, n);
    rd->stall_pos = UINT64_MAX;
    return pos + n;
}

/* Bytes to skip for an unusable header at pos: up to the next position where a record must
 * start (the end of the buffer: producers pad there) or the tail, whichever comes first. */
static uint64_t skip_len(uint64_t to_end, uint64_t avail)
{
    return to_end < avail ? to_end : avail;
}

enum { ST_WAIT = 0, ST_AGAIN = 1 };

/* The record at pos is not readable (length <= 0, or a header not written for this
 * position). Track how long, and repair when allowed. Returns ST_AGAIN when something was
 * repaired or skipped (*pos updated), ST_WAIT otherwise. */
static int stalled(struct sb_ring_reader *rd, uint64_t *pos, uint64_t w0, uint64_t tail,
                   int64_t now)
{
    const struct sb_ring *r = &rd->ring;
    uint64_t p = *pos, to_end = r->capacity - (p & r->mask), avail = tail - p;
    uint64_t *h = word(r, p);
    int32_t len = (int32_t)(uint32_t)w0;
    int64_t stuck;
    int ask;

    if (rd->stall_pos != p) {
        rd->stall_pos = p;
        rd->stall_since = now;
        rd->last_alive_check = now;
        rd->gap_end = 0;
        return ST_WAIT;
    }
    stuck = now - rd->stall_since;
    ask = stuck >= rd->o.check_ns && now - rd->last_alive_check >= rd->o.check_ns;
    if (len < 0) {
        /* In progress. The producer id is only used to ask about liveness. */
        uint64_t w1 = to_end >= SB_RING_HDR ? LOAD(&h[1], RELAXED) : 0;
        uint32_t producer = (uint32_t)w1;
        uint64_t rl = (uint64_t)(-(int64_t)len);
        int repair = stuck >= rd->o.grace_ns;

        if (!repair && ask && rd->o.alive) {
            rd->last_alive_check = now;
            repair = rd->o.alive(rd->o.alive_ctx, producer, p) == 0;
        }
        if (!repair)
            return ST_WAIT;
        if (rl < SB_RING_HDR || rl > SB_RING_HDR + r->max_payload || align8(rl) > to_end ||
            align8(rl) > avail) {
            *pos = skip_corrupt(rd, p, skip_len(to_end, avail));
            return ST_AGAIN;
        }
        /* Seq_cst CAS against the writer's commit CAS: exactly one of them wins. */
        if (!__atomic_compare_exchange_n(&h[0], &w0, pack((int32_t)rl, SB_RING_TYPE_PAD), 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return ST_AGAIN; /* it committed or aborted meanwhile: read it again */
        STORE(&h[1],
              pack((int32_t)producer, (int32_t)sb_ring_check(r->salt, p, producer, (int32_t)rl)),
              RELAXED);
        count(rd, stuck >= rd->o.grace_ns ? SB_RING_R_REPAIRED_GRACE : SB_RING_R_REPAIRED_DEAD, 1);
        rd->stall_pos = UINT64_MAX;
        return ST_AGAIN;
    }
    if (len == 0) {
        /* Claimed but never written: the writer died between its tail CAS and its first
         * header store (or is just slow). Find where the gap ends: the first non-zero word
         * (the next record's header), else the end of the buffer or the tail. */
        uint64_t limit = to_end < avail ? to_end : avail, end = limit;
        int repair;

        if (!ask && stuck < rd->o.grace_ns)
            return ST_WAIT;
        rd->last_alive_check = now;
        for (uint64_t off = 8; off < limit; off += 8)
            if (LOAD(word(r, p + off), RELAXED) != 0) {
                end = off;
                break;
            }
        if (rd->gap_end != p + end) {
            /* Two looks a check interval apart: a live writer would have written its header
             * by the second one. */
            rd->gap_end = p + end;
            rd->gap_since = now;
            return ST_WAIT;
        }
        if (now - rd->gap_since < rd->o.gap_ns)
            return ST_WAIT;
        repair = stuck >= rd->o.grace_ns ||
                 (rd->o.alive && rd->o.alive(rd->o.alive_ctx, SB_RING_PRODUCER_UNKNOWN, p) == 0);
        if (!repair)
            return ST_WAIT;
        {
            /* Against the header store of a writer that was only slow after all. */
            if (!__atomic_compare_exchange_n(&h[0], &w0, pack((int32_t)end, SB_RING_TYPE_PAD), 0,
                                             __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
                return ST_AGAIN; /* a writer appeared after all */
        }
        if (end >= SB_RING_HDR)
            STORE(&h[1],
                  pack(SB_RING_PRODUCER_UNKNOWN,
                       (int32_t)sb_ring_check(r->salt, p, SB_RING_PRODUCER_UNKNOWN, (int32_t)end)),
                  RELAXED);
        count(rd, SB_RING_R_ZERO_GAPS, 1);
        rd->stall_pos = UINT64_MAX;
        return ST_AGAIN;
    }
    /* A committed-looking header that was not written for this position: stale bytes that
     * its writer is about to overwrite, or garbage. Give the writer stale_ns. */
    if (stuck < rd->o.stale_ns)
        return ST_WAIT;
    *pos = skip_corrupt(rd, p, skip_len(to_end, avail));
    return ST_AGAIN;
}

int sb_ring_read(struct sb_ring_reader *rd, int64_t now_ns)
{
    const struct sb_ring *r = &rd->ring;
    struct sb_ring_ctrl *ct = r->ctrl;
    const uint64_t cap = r->capacity;
    uint64_t pos = rd->read_pos, tail;
    size_t used = 0, n = 0, budget = 4 * rd->o.batch_records + 64;

    /* Acquire: headers below the tail we see were claimed before; the per-record length
     * acquire below is what orders the payload. */
    tail = LOAD(&ct->tail, ACQUIRE);
    if (tail - pos > cap || (tail & 7)) {
        /* A producer scribbled on the tail. Read at most one lap and never behind us. */
        count(rd, SB_RING_R_BAD_TAIL, 1);
        tail = (int64_t)(tail - pos) < 0 ? pos : (tail - pos > cap ? pos + cap : tail & ~7ull);
    }
    while (pos != tail && n < rd->o.batch_records && budget-- > 0) {
        uint64_t to_end = cap - (pos & r->mask), avail = tail - pos, alen, w0, w1;
        uint64_t *h = word(r, pos);
        int32_t len, type;
        uint32_t producer, plen;
        int check_ok;

        /* Acquire: pairs with the writer's commit CAS; the payload is visible after it. */
        w0 = LOAD(&h[0], ACQUIRE);
        len = (int32_t)(uint32_t)w0;
        type = (int32_t)(uint32_t)(w0 >> 32);
        if (len <= 0) {
            if (stalled(rd, &pos, w0, tail, now_ns) == ST_AGAIN)
                continue;
            break;
        }
        if (to_end < SB_RING_HDR || len < (int32_t)SB_RING_HDR) {
            /* Only an 8-byte pad can be this short; it carries no check word. */
            if (len == 8 && type == SB_RING_TYPE_PAD) {
                pos += 8;
                continue;
            }
            if (stalled(rd, &pos, w0, tail, now_ns) == ST_AGAIN)
                continue;
            break;
        }
        /* Acquire, then re-read the length: if the check word is a new writer's, its negative
         * length store (made before) is what we now see. */
        w1 = LOAD(&h[1], ACQUIRE);
        if (LOAD(&h[0], RELAXED) != w0) {
            /* Being rewritten right now; if that never settles it is garbage. */
            if (stalled(rd, &pos, 1, tail, now_ns) == ST_AGAIN)
                continue;
            break;
        }
        producer = (uint32_t)w1;
        check_ok = (uint32_t)(w1 >> 32) == sb_ring_check(r->salt, pos, producer, len);
        alen = align8((uint64_t)(uint32_t)len);
        if (!check_ok) {
            if (stalled(rd, &pos, w0, tail, now_ns) == ST_AGAIN)
                continue;
            break;
        }
        if (alen > to_end || alen > avail || (uint32_t)len - SB_RING_HDR > r->max_payload ||
            (type != SB_RING_TYPE_PAD && type < 1)) {
            /* Written for this position by a writer that broke the rules: its record only,
             * when its length is usable at all. */
            uint64_t skip = alen <= to_end && alen <= avail ? alen : skip_len(to_end, avail);
            pos = skip_corrupt(rd, pos, skip);
            continue;
        }
        if (type == SB_RING_TYPE_PAD) {
            pos += alen;
            continue;
        }
        plen = (uint32_t)len - SB_RING_HDR;
        if (used + plen > rd->o.batch_bytes)
            break;
        /* Copy out once; callers parse the copy, never the shared bytes. */
        memcpy(rd->buf + used, h + 2, plen);
        rd->recs[n].type = type;
        rd->recs[n].producer = producer;
        rd->recs[n].len = plen;
        rd->recs[n].data = rd->buf + used;
        rd->recs[n].pos = pos;
        n++;
        used += align8(plen);
        pos += alen;
    }
    if (pos != rd->read_pos && rd->stall_pos != pos)
        rd->stall_pos = UINT64_MAX;
    rd->read_pos = pos;
    rd->nrecs = n;
    if (n)
        count(rd, SB_RING_R_RECORDS, n);
    sb_ring_reader_heartbeat(rd, now_ns);
    return (int)n;
}

void sb_ring_reader_release(struct sb_ring_reader *rd)
{
    if (rd->read_pos == rd->head)
        return;
    /* Record the intent first so that a reader adopting the ring after we die mid-zeroing
     * finishes the job instead of reading half-zeroed records. */
    STORE(&rd->ring.ctrl->rd.release_to, rd->read_pos, RELAXED);
    zero_span(rd, rd->head, rd->read_pos);
    publish_head(rd, rd->read_pos);
}

void sb_ring_reader_set_durable(struct sb_ring_reader *rd, uint64_t pos)
{
    if (pos - LOAD(&rd->ring.ctrl->dur.durable_head, RELAXED) > rd->ring.capacity ||
        (int64_t)(rd->head - pos) < 0)
        return;
    STORE(&rd->ring.ctrl->dur.durable_head, pos, RELEASE);
}

int sb_ring_reader_ready(const struct sb_ring_reader *rd)
{
    return (int32_t)(uint32_t)LOAD(word(&rd->ring, rd->read_pos), ACQUIRE) > 0;
}

int sb_ring_reader_prepare_wait(struct sb_ring_reader *rd)
{
    struct sb_ring_ctrl *ct = rd->ring.ctrl;

    /* Seq_cst store then seq_cst load: the reader's half of the Dekker pair with the
     * producer's commit CAS and flag load (see wake_needed()). */
    __atomic_store_n(&ct->futex, SB_RING_FUTEX_WAITING, __ATOMIC_SEQ_CST);
    if ((int32_t)(uint32_t)__atomic_load_n(word(&rd->ring, rd->read_pos), __ATOMIC_SEQ_CST) > 0) {
        STORE(&ct->futex, 0, RELAXED);
        return 0;
    }
    return 1;
}

void sb_ring_reader_finish_wait(struct sb_ring_reader *rd)
{
    STORE(&rd->ring.ctrl->futex, 0, RELAXED);
}
