/* replay.c: the cover table carried in spool records, so that a restarted segbusd skips, per
 * output, ring records already in that output's spooled batches (see replay.h). */
#include "spool/replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_BYTES 8u  /* version u8, 0 u8, outputs u16, entries u16, 0 u16 */
#define SNAP_BYTES 24u /* id[16], pos u64 */

struct ent {
    uint8_t id[16];
    long ring;        /* the registry's index, -1: only known from the loaded table */
    uint64_t handled; /* every record before it went to the outputs (or was dropped) */
    uint64_t head;    /* released up to here: nobody reads below it again */
    uint64_t *cover;  /* per output: below it, in that output's appended batches */
};

struct sb_replay {
    unsigned nouts;
    struct ent *ents;
    size_t nents, capents;
    size_t *ring_ent; /* ring index -> entry */
    size_t nrings;
    bool active; /* between begin and end */
    size_t cur;
    uint64_t cur_pos;
    uint64_t *skipped; /* per output */
};

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

int sb_replay_new(struct sb_replay **out, unsigned n_outputs)
{
    struct sb_replay *rp = calloc(1, sizeof *rp);

    *out = NULL;
    if (!rp || n_outputs == 0 || n_outputs > 0xffff ||
        !(rp->skipped = calloc(n_outputs, sizeof *rp->skipped))) {
        free(rp);
        return n_outputs == 0 || n_outputs > 0xffff ? -EINVAL : -ENOMEM;
    }
    rp->nouts = n_outputs;
    *out = rp;
    return 0;
}

void sb_replay_free(struct sb_replay *rp)
{
    if (!rp)
        return;
    for (size_t i = 0; i < rp->nents; i++)
        free(rp->ents[i].cover);
    free(rp->ents);
    free(rp->ring_ent);
    free(rp->skipped);
    free(rp);
}

static struct ent *ent_add(struct sb_replay *rp, const uint8_t id[16])
{
    struct ent *e;

    if (rp->nents == rp->capents) {
        size_t cap = rp->capents ? rp->capents * 2 : 8;
        struct ent *n = realloc(rp->ents, cap * sizeof *n);
        if (!n)
            return NULL;
        rp->ents = n;
        rp->capents = cap;
    }
    e = &rp->ents[rp->nents];
    memset(e, 0, sizeof *e);
    if (!(e->cover = calloc(rp->nouts, sizeof *e->cover)))
        return NULL;
    memcpy(e->id, id, 16);
    e->ring = -1;
    rp->nents++;
    return e;
}

static struct ent *ent_find(struct sb_replay *rp, const uint8_t *id)
{
    for (size_t i = 0; i < rp->nents; i++)
        if (!memcmp(rp->ents[i].id, id, 16))
            return &rp->ents[i];
    return NULL;
}

int sb_replay_load(struct sb_replay *rp, const uint8_t *p, size_t len)
{
    unsigned nouts, n;
    size_t per;

    /* Bytes from disk: checked whole before anything is taken from them. */
    if (len < HEAD_BYTES || p[0] != SB_REPLAY_VERSION || p[1] || p[6] || p[7])
        return -EPROTO;
    nouts = get16(p + 2);
    n = get16(p + 4);
    per = 16 + 8 * (size_t)nouts;
    /* Never more rows than sb_replay_encode writes: also keeps loading linear in practice. */
    if (n > SB_REPLAY_MAX_RINGS || len != HEAD_BYTES + n * per)
        return -EPROTO;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *q = p + HEAD_BYTES + i * per;
        struct ent *e = ent_find(rp, q);
        if (!e && !(e = ent_add(rp, q)))
            return -ENOMEM;
        for (unsigned o = 0; o < nouts && o < rp->nouts; o++) {
            uint64_t v = get64(q + 16 + 8 * o);
            if (v > e->cover[o])
                e->cover[o] = v;
        }
    }
    return 0;
}

int sb_replay_ring(struct sb_replay *rp, size_t ring, const uint8_t id[16], uint64_t head)
{
    struct ent *e;

    if (ring != rp->nrings)
        return ring < rp->nrings ? 0 : -EINVAL; /* announced in order, once */
    {
        size_t *m = realloc(rp->ring_ent, (ring + 1) * sizeof *m);
        if (!m)
            return -ENOMEM;
        rp->ring_ent = m;
    }
    e = ent_find(rp, id);
    if (!e || e->ring >= 0)
        e = ent_add(rp, id);
    if (!e)
        return -ENOMEM;
    e->ring = (long)ring;
    e->handled = e->head = head;
    rp->ring_ent[ring] = (size_t)(e - rp->ents);
    rp->nrings = ring + 1;
    return 0;
}

size_t sb_replay_rings(const struct sb_replay *rp)
{
    return rp->nrings;
}

void sb_replay_begin(struct sb_replay *rp, size_t ring, uint64_t pos)
{
    if (ring >= rp->nrings)
        return;
    rp->active = true;
    rp->cur = rp->ring_ent[ring];
    rp->cur_pos = pos;
    rp->ents[rp->cur].handled = pos;
}

bool sb_replay_covered(const struct sb_replay *rp, unsigned out)
{
    if (!rp->active || out >= rp->nouts || rp->ents[rp->cur].cover[out] <= rp->cur_pos)
        return false;
    rp->skipped[out]++;
    return true;
}

void sb_replay_end(struct sb_replay *rp)
{
    if (!rp->active)
        return;
    /* Positions only grow, so the next record is at cur_pos + 1 or later. */
    rp->ents[rp->cur].handled = rp->cur_pos + 1;
    rp->active = false;
}

int sb_replay_snap(struct sb_replay *rp, unsigned out, bool includes_current, struct sb_buf *snap)
{
    for (size_t i = 0; i < rp->nents && out < rp->nouts; i++) {
        const struct ent *e = &rp->ents[i];
        uint64_t v = e->handled;
        uint8_t b[SNAP_BYTES];
        if (e->ring < 0)
            continue; /* not read by this daemon: its column stays as loaded */
        if (includes_current && rp->active && i == rp->cur)
            v = rp->cur_pos + 1;
        if (v < e->cover[out])
            v = e->cover[out];
        if (v <= e->head)
            continue; /* released: a reader starts above it anyway */
        memcpy(b, e->id, 16);
        put64(b + 16, v);
        if (sb_buf_append(snap, b, sizeof b))
            return -ENOMEM;
    }
    return 0;
}

static uint64_t snap_value(const uint8_t *snap, size_t len, const uint8_t *id)
{
    for (size_t off = 0; snap && off + SNAP_BYTES <= len; off += SNAP_BYTES)
        if (!memcmp(snap + off, id, 16))
            return get64(snap + off + 16);
    return 0;
}

/* Does entry e still matter to a reader after a crash? */
static bool ent_live(const struct sb_replay *rp, const struct ent *e, unsigned out, uint64_t sv)
{
    for (unsigned o = 0; o < rp->nouts; o++) {
        uint64_t v = o == out && sv > e->cover[o] ? sv : e->cover[o];
        if (v > (e->ring >= 0 ? e->head : 0))
            return true;
    }
    return false;
}

int sb_replay_encode(struct sb_replay *rp, unsigned out, const uint8_t *snap, size_t snap_len,
                     struct sb_buf *dst)
{
    size_t per = 16 + 8 * (size_t)rp->nouts, start = dst->len;
    size_t max = (0xffffu - HEAD_BYTES) / per;
    unsigned n = 0;
    uint8_t head[HEAD_BYTES] = {SB_REPLAY_VERSION, 0, (uint8_t)rp->nouts,
                                (uint8_t)(rp->nouts >> 8)};

    if (max > SB_REPLAY_MAX_RINGS)
        max = SB_REPLAY_MAX_RINGS;
    if (sb_buf_append(dst, head, sizeof head))
        return -ENOMEM;
    /* Newest entries last: when there are too many, the ones left out are the oldest (their
     * records are then batched again after a crash: duplicates, never a loss). */
    for (size_t k = rp->nents; k-- > 0 && n < max;) {
        const struct ent *e = &rp->ents[k];
        uint64_t sv = snap_value(snap, snap_len, e->id);
        if (!ent_live(rp, e, out, sv))
            continue;
        if (sb_buf_reserve(dst, per))
            return -ENOMEM;
        memcpy(dst->data + dst->len, e->id, 16);
        for (unsigned o = 0; o < rp->nouts; o++)
            put64(dst->data + dst->len + 16 + 8 * o,
                  o == out && sv > e->cover[o] ? sv : e->cover[o]);
        dst->len += per;
        n++;
    }
    dst->data[start + 4] = (uint8_t)n;
    dst->data[start + 5] = (uint8_t)(n >> 8);
    return 0;
}

void sb_replay_appended(struct sb_replay *rp, unsigned out, const uint8_t *snap, size_t snap_len)
{
    if (out >= rp->nouts)
        return;
    for (size_t off = 0; snap && off + SNAP_BYTES <= snap_len; off += SNAP_BYTES) {
        struct ent *e = ent_find(rp, snap + off);
        uint64_t v = get64(snap + off + 16);
        if (e && v > e->cover[out])
            e->cover[out] = v;
    }
}

void sb_replay_released(struct sb_replay *rp, size_t ring, uint64_t pos)
{
    if (ring < rp->nrings && pos > rp->ents[rp->ring_ent[ring]].head)
        rp->ents[rp->ring_ent[ring]].head = pos;
}

uint64_t *sb_replay_skipped(struct sb_replay *rp, unsigned out)
{
    return out < rp->nouts ? &rp->skipped[out] : NULL;
}
