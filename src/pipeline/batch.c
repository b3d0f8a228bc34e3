/* batch.c: the per-output batcher building msgpack {batch, sentAt} envelopes in one buffer. */
#include "pipeline/batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"

struct sb_batcher {
    struct sb_batch_limits lim;
    sb_batch_emit_fn emit;
    void *arg;
    struct sb_buf buf; /* SB_BATCH_HEAD_BYTES reserved, then the events */
    uint32_t count;
    uint64_t first_ns; /* when the open batch got its first event */
};

static const uint8_t sent_at_key[8] = {0xa6, 's', 'e', 'n', 't', 'A', 't', 0xa0 | 24};

int64_t sb_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sb_format_time_ms(int64_t unix_ms, char out[SB_BATCH_SENT_AT_LEN])
{
    char tmp[40];
    struct tm tm;
    time_t sec = (time_t)(unix_ms / 1000);
    int ms = (int)(unix_ms % 1000);

    if (ms < 0) {
        ms += 1000;
        sec--;
    }
    gmtime_r(&sec, &tm);
    /* Years past 9999 would not fit the fixed width: clamp (never happens with a sane clock). */
    if (tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        memcpy(out, "9999-12-31T23:59:59.999Z", SB_BATCH_SENT_AT_LEN);
        return;
    }
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    tmp[19] = '.';
    tmp[20] = (char)('0' + ms / 100);
    tmp[21] = (char)('0' + ms / 10 % 10);
    tmp[22] = (char)('0' + ms % 10);
    tmp[23] = 'Z';
    memcpy(out, tmp, SB_BATCH_SENT_AT_LEN);
}

int sb_batch_set_sent_at(uint8_t *envelope, size_t len, int64_t unix_ms)
{
    if (len < SB_BATCH_HEAD_BYTES + SB_BATCH_TAIL_BYTES || envelope[0] != 0x82 ||
        memcmp(envelope + len - SB_BATCH_TAIL_BYTES, sent_at_key, sizeof sent_at_key) != 0)
        return -EINVAL;
    sb_format_time_ms(unix_ms, (char *)envelope + len - SB_BATCH_SENT_AT_LEN);
    return 0;
}

int sb_batcher_new(struct sb_batcher **out, const struct sb_batch_limits *limits,
                   sb_batch_emit_fn emit, void *arg)
{
    struct sb_batcher *b;

    if (!limits->max_events || !emit)
        return -EINVAL;
    b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->lim = *limits;
    b->emit = emit;
    b->arg = arg;
    if (sb_buf_reserve(&b->buf, SB_BATCH_HEAD_BYTES + SB_BATCH_TAIL_BYTES + 4096)) {
        free(b);
        return -ENOMEM;
    }
    b->buf.len = SB_BATCH_HEAD_BYTES;
    *out = b;
    return 0;
}

void sb_batcher_free(struct sb_batcher *b)
{
    if (!b)
        return;
    sb_buf_free(&b->buf);
    free(b);
}

uint32_t sb_batcher_pending(const struct sb_batcher *b)
{
    return b->count;
}

uint64_t sb_batcher_deadline(const struct sb_batcher *b)
{
    return b->count ? b->first_ns + b->lim.flush_interval_ns : UINT64_MAX;
}

static int emit(struct sb_batcher *b)
{
    uint8_t *h = b->buf.data;
    char when[SB_BATCH_SENT_AT_LEN];
    int rc;

    if (!b->count)
        return 0;
    if (sb_buf_reserve(&b->buf, SB_BATCH_TAIL_BYTES))
        return -ENOMEM;
    h = b->buf.data;
    h[0] = 0x82; /* fixmap of 2: batch, sentAt */
    memcpy(h + 1,
           "\xa5"
           "batch",
           6);
    h[7] = 0xdd; /* array32, so that the head has a fixed size */
    h[8] = (uint8_t)(b->count >> 24);
    h[9] = (uint8_t)(b->count >> 16);
    h[10] = (uint8_t)(b->count >> 8);
    h[11] = (uint8_t)b->count;
    memcpy(h + b->buf.len, sent_at_key, sizeof sent_at_key);
    sb_format_time_ms(sb_wall_ms(), when);
    memcpy(h + b->buf.len + sizeof sent_at_key, when, sizeof when);
    rc = b->emit(b->arg, h, b->buf.len + SB_BATCH_TAIL_BYTES, b->count);
    if (rc)
        return rc; /* keep the batch; the tail is rewritten next time */
    b->buf.len = SB_BATCH_HEAD_BYTES;
    b->count = 0;
    return 0;
}

int sb_batcher_add(struct sb_batcher *b, const uint8_t *event, size_t len, uint64_t now_ns)
{
    int rc;

    if (b->count && (b->count >= b->lim.max_events ||
                     b->buf.len + len + SB_BATCH_TAIL_BYTES > b->lim.max_bytes)) {
        rc = emit(b);
        if (rc)
            return rc;
    }
    if (sb_buf_append(&b->buf, event, len))
        return -ENOMEM;
    if (!b->count++)
        b->first_ns = now_ns;
    if (b->count >= b->lim.max_events || b->buf.len + SB_BATCH_TAIL_BYTES >= b->lim.max_bytes) {
        rc = emit(b);
        /* The event is in the batch; a failed emit leaves it there for the next flush. */
        (void)rc;
    }
    return 0;
}

int sb_batcher_flush(struct sb_batcher *b, uint64_t now_ns, bool force)
{
    if (!b->count || (!force && now_ns < sb_batcher_deadline(b)))
        return 0;
    return emit(b);
}
