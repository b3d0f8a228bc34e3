/* dedup.c: messageId dedup: a FIFO ring of 128-bit hashes with an open-addressing index. */
#include "pipeline/dedup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Inline: ids are short, and the library call's dispatch cost as much as the hashing. */
#define XXH_INLINE_ALL
#include <xxhash.h>

struct entry {
    uint64_t lo, hi; /* XXH3-128 of the id */
    uint64_t t;      /* when it was recorded */
};

struct sb_dedup {
    struct entry *fifo; /* ring of cap entries, oldest at head */
    uint32_t cap, head, count;
    /* Slots hold fifo position + 1 (0 = empty) and the low 32 bits of the hash, so that a probe
     * compares in the index and touches the fifo only on a likely match, and the home slot of
     * an entry is known without the fifo. Load factor <= 1/2. */
    struct slot {
        uint32_t pos1;
        uint32_t tag;
    } * index;
    uint32_t mask;
    uint64_t window_ns; /* 0 = no time bound */
};

/* The window is megabytes touched at random: ask for huge pages so that a probe costs a cache
 * miss but not also a TLB miss (granted only where THP is enabled; plain pages otherwise). */
static void *big_zalloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
    if (bytes >= (2u << 20))
        (void)madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static void big_free(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

int sb_dedup_new(struct sb_dedup **out, uint32_t window_count, uint64_t window_ns)
{
    struct sb_dedup *d;
    uint64_t slots = 2;

    if (window_count > (1u << 30))
        return -EINVAL;
    d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->cap = window_count;
    d->window_ns = window_ns;
    while (slots < 2ull * window_count)
        slots <<= 1;
    d->mask = (uint32_t)(slots - 1);
    d->index = big_zalloc(slots * sizeof *d->index);
    d->fifo = window_count ? big_zalloc(window_count * sizeof *d->fifo) : NULL;
    if (!d->index || (window_count && !d->fifo)) {
        sb_dedup_free(d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

void sb_dedup_free(struct sb_dedup *d)
{
    if (!d)
        return;
    big_free(d->fifo, (size_t)d->cap * sizeof *d->fifo);
    big_free(d->index, ((size_t)d->mask + 1) * sizeof *d->index);
    free(d);
}

size_t sb_dedup_size(const struct sb_dedup *d)
{
    return d->count;
}

static void remove_oldest(struct sb_dedup *d)
{
    const struct entry *e = &d->fifo[d->head];
    uint32_t want = d->head + 1, i = (uint32_t)e->lo & d->mask, j;

    while (d->index[i].pos1 != want)
        i = (i + 1) & d->mask; /* present by construction: every fifo entry is indexed */
    /* Backward-shift deletion: pull later members of the probe run into the hole unless their
     * home slot lies cyclically in (hole, their slot], so lookups never need tombstones. */
    d->index[i].pos1 = 0;
    j = i;
    for (;;) {
        uint32_t k;
        j = (j + 1) & d->mask;
        if (!d->index[j].pos1)
            break;
        k = d->index[j].tag & d->mask;
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        d->index[i] = d->index[j];
        d->index[j].pos1 = 0;
        i = j;
    }
    d->head = d->head + 1 == d->cap ? 0 : d->head + 1;
    d->count--;
}

int sb_dedup_check(struct sb_dedup *d, const void *id, size_t len, uint64_t now_ns)
{
    XXH128_hash_t h;
    uint32_t i, pos;

    if (!d->cap)
        return 0;
    while (d->count && d->window_ns && now_ns - d->fifo[d->head].t >= d->window_ns)
        remove_oldest(d);
    h = XXH3_128bits(id, len);
    for (i = (uint32_t)h.low64 & d->mask; d->index[i].pos1; i = (i + 1) & d->mask) {
        const struct entry *e;
        if (d->index[i].tag != (uint32_t)h.low64)
            continue;
        e = &d->fifo[d->index[i].pos1 - 1];
        if (e->lo == h.low64 && e->hi == h.high64)
            return 1;
    }
    if (d->count == d->cap) {
        remove_oldest(d);
        /* The deletion may have moved entries; find the free slot again. */
        for (i = (uint32_t)h.low64 & d->mask; d->index[i].pos1; i = (i + 1) & d->mask)
            ;
    }
    pos = d->head + d->count;
    if (pos >= d->cap)
        pos -= d->cap;
    d->fifo[pos] = (struct entry){h.low64, h.high64, now_ns};
    d->index[i].pos1 = pos + 1;
    d->index[i].tag = (uint32_t)h.low64;
    d->count++;
    /* The next call (at a full window) removes the oldest id: start loading its home slot now,
     * so that the lookup's cache miss is the only one that call waits for. */
    if (d->count == d->cap)
        __builtin_prefetch(&d->index[(uint32_t)d->fifo[d->head].lo & d->mask], 1);
    return 0;
}

void sb_dedup_prefetch(const struct sb_dedup *d, const void *id, size_t len)
{
    if (d->cap)
        __builtin_prefetch(&d->index[(uint32_t)XXH3_128bits(id, len).low64 & d->mask]);
}

static const char *const dedup_reasons[] = {"duplicate", NULL};

static int dedup_process(struct sb_stage *stage, struct sb_stage_event *ev)
{
    const struct sb_event_meta *m = ev->meta;

    if (!m->message_id)
        return SB_STAGE_PASS; /* verify guarantees one; without verify there is nothing to key */
    if (sb_dedup_check(stage->state, m->message_id, m->message_id_len, m->now_ns)) {
        ev->reason = 0;
        return SB_STAGE_DROP;
    }
    return SB_STAGE_PASS;
}

static void dedup_destroy(struct sb_stage *stage)
{
    sb_dedup_free(stage->state);
    free(stage);
}

struct sb_stage *sb_dedup_stage_new(struct sb_dedup *d)
{
    struct sb_stage *s = calloc(1, sizeof *s);

    if (!s) {
        sb_dedup_free(d);
        return NULL;
    }
    s->name = "dedup";
    s->reasons = dedup_reasons;
    s->process = dedup_process;
    s->destroy = dedup_destroy;
    s->state = d;
    return s;
}
