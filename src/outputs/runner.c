/* runner.c: drives one output: batcher -> spool (tagged) -> one delivery at a time -> retry
 * policy -> ack or dead-letter file, with counters exported as metrics. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "json/json.h"
#include "metrics/metrics.h"
#include "mp/mp_reader.h"
#include "net/loop.h"
#include "outputs/output.h"
#include "outputs/route.h"
#include "pipeline/batch.h"
#include "pipeline/stage.h"
#include "spool/replay.h"
#include "spool/spool.h"

/* A closed batch the spool refused (full, or no space). The daemon stops draining while any
 * output has one, and ring space is only released once durable, so the backlog holds at most
 * what was read but is not durable yet: bounded by the rings' capacity (plus the hub input's
 * bodies in flight), counted in segbus_output_backlog_{batches,bytes}. */
struct backlog_item {
    struct backlog_item *next;
    size_t len, snap_len;
    uint32_t count;
    uint64_t cum;   /* events emitted up to and including this batch */
    uint8_t data[]; /* replay snap, then the envelope */
};

struct sb_output_runner {
    const struct sb_output_config *cfg;
    unsigned index;
    struct sb_loop *loop;
    struct sb_spool *spool;
    const struct sb_output_plugin *plugin;
    void *state;
    struct sb_batcher *batcher;
    struct sb_buf rec;  /* scratch: tag + cover table + envelope for an append */
    struct sb_buf snap; /* scratch: what a closing batch covers of the rings */
    struct sb_replay *replay;

    struct backlog_item *bl_head, *bl_tail;
    size_t bl_n;
    uint64_t bl_bytes;
    int bl_err;         /* why the spool refuses while bl_n: see sb_output_runner_spool_error */
    bool bl_warned;     /* the refusal was logged (not a mere busy spool) */
    uint64_t bl_since;  /* when the backlog formed */
    uint64_t seen_full; /* the spool's refused_full, to tell full from busy */

    /* The batch being delivered (read from the spool), retried until acked or dead-lettered. */
    bool have_batch, in_flight, pumping, closing;
    uint64_t batch_seq;
    /* A split of batch_seq whose first split_parts halves are in the spool already (the spool
     * refused the rest): a retry appends only what is missing. */
    uint64_t split_seq;
    int split_parts;
    struct sb_buf batch;
    uint32_t batch_count;
    struct sb_retry retry;
    uint64_t retry_at_ns;
    struct sb_delivery d;
    uint64_t skip_seq;      /* highest record of other outputs read past (ack it) */
    bool dropped_in_flight; /* drop_oldest dropped the batch being sent: settle it on its end */
    uint64_t acked;

    /* Durability accounting: events handed in, events in closed batches (cumulative), and which
     * spool seq holds the batch that ends at each cumulative count, until it is durable. */
    uint64_t added, emitted, durable_events;
    struct {
        uint64_t cum, seq;
    } * marks;
    size_t marks_head, marks_n, marks_cap;
    uint64_t durable_seq;

    char *dead_letter_path;
    int dl_fd;
    uint64_t rng;
    struct sb_output_counters c;
    struct sb_output_status st; /* done and retrying are computed when asked */
    struct {
        uint64_t from, to; /* events (from, to] by delivery order */
    } dead[SB_OUTPUT_DEAD_RANGES];
    unsigned dead_next;
};

static const char *const type_plugins_note = "not available in this build yet";

const struct sb_output_plugin *sb_output_plugin_for(enum sb_output_type type)
{
    switch (type) {
    case SB_OUTPUT_FILE:
        return &sb_output_file;
    case SB_OUTPUT_SEGMENT:
        return &sb_output_segment;
    case SB_OUTPUT_HUB:
        return &sb_output_hub;
    case SB_OUTPUT_SQLITE:
        return &sb_output_sqlite;
    case SB_OUTPUT_POSTGRES:
        return &sb_output_postgres;
    case SB_OUTPUT_KAFKA:
        return &sb_output_kafka;
    case SB_OUTPUT_WEBHOOK:
        return &sb_output_webhook;
    default:
        return NULL;
    }
}

const char *sb_output_runner_name(const struct sb_output_runner *r)
{
    return r->cfg->name;
}

const struct sb_output_counters *sb_output_runner_counters(const struct sb_output_runner *r)
{
    return &r->c;
}

size_t sb_output_runner_backlog(const struct sb_output_runner *r)
{
    return r->bl_n;
}

int sb_output_runner_spool_error(const struct sb_output_runner *r)
{
    return r->bl_n && r->bl_err != -EBUSY ? r->bl_err : 0;
}

uint32_t sb_output_runner_pending(const struct sb_output_runner *r)
{
    return sb_batcher_pending(r->batcher);
}

uint64_t sb_output_runner_deadline(const struct sb_output_runner *r)
{
    return sb_batcher_deadline(r->batcher);
}

bool sb_output_runner_idle(const struct sb_output_runner *r)
{
    struct sb_spool_output_stats st;
    struct sb_spool_stats ss;

    if (sb_batcher_pending(r->batcher) || r->bl_n || r->have_batch || r->in_flight)
        return false;
    /* Appended but not yet durable: it will become pending for some output. */
    sb_spool_get_stats(r->spool, &ss);
    if (ss.next_seq > ss.durable_seq + 1)
        return false;
    if (sb_spool_get_output_stats(r->spool, r->index, &st) == 0 && st.pending)
        return false;
    return true;
}

static uint64_t next_rand(struct sb_output_runner *r)
{
    /* xorshift64*: jitter only needs to differ between daemons and attempts. */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 0x2545f4914f6cdd1dull;
}

/* ---- batching and spooling ---------------------------------------------------------------- */

static int backlog_push(struct sb_output_runner *r, const uint8_t *env, size_t len, uint32_t count,
                        uint64_t cum)
{
    struct backlog_item *it = malloc(sizeof *it + r->snap.len + len);

    if (!it)
        return -ENOMEM;
    it->next = NULL;
    it->len = len;
    it->snap_len = r->snap.len;
    it->count = count;
    it->cum = cum;
    if (r->snap.len)
        memcpy(it->data, r->snap.data, r->snap.len);
    memcpy(it->data + it->snap_len, env, len);
    r->bl_bytes += sizeof *it + it->snap_len + len;
    r->c.backlog_bytes = r->bl_bytes;
    if (r->bl_tail)
        r->bl_tail->next = it;
    else
        r->bl_head = it;
    r->bl_tail = it;
    r->bl_n++;
    r->c.backlog_batches = r->bl_n;
    return 0;
}

static void dead_letter(struct sb_output_runner *r, const uint8_t *env, size_t len, int status,
                        const char *reason, const char *detail, size_t detail_len);

/* Remember that the events up to cum are durable once spool seq is (seq 0: already, as soon
 * as every batch before it is). */
static void mark_push(struct sb_output_runner *r, uint64_t cum, uint64_t seq)
{
    size_t tail;

    if (seq == 0 && r->marks_n)
        seq = r->marks[(r->marks_head + r->marks_n - 1) % r->marks_cap].seq;
    if (!r->marks_n && (seq == 0 || seq <= r->durable_seq)) {
        r->durable_events = cum;
        return;
    }
    if (r->marks_n == r->marks_cap) {
        size_t cap = r->marks_cap ? r->marks_cap * 2 : 64;
        __typeof__(r->marks) m = malloc(cap * sizeof *m);
        if (!m)
            return; /* durability reporting lags until a later batch; delivery is unaffected */
        for (size_t i = 0; i < r->marks_n; i++)
            m[i] = r->marks[(r->marks_head + i) % r->marks_cap];
        free(r->marks);
        r->marks = m;
        r->marks_head = 0;
        r->marks_cap = cap;
    }
    tail = (r->marks_head + r->marks_n) % r->marks_cap;
    r->marks[tail].cum = cum;
    r->marks[tail].seq = seq;
    r->marks_n++;
}

static void marks_durable(struct sb_output_runner *r, uint64_t upto_seq)
{
    if (upto_seq > r->durable_seq)
        r->durable_seq = upto_seq;
    while (r->marks_n && r->marks[r->marks_head].seq <= r->durable_seq) {
        r->durable_events = r->marks[r->marks_head].cum;
        r->marks_head = (r->marks_head + 1) % r->marks_cap;
        r->marks_n--;
    }
}

uint64_t sb_output_runner_added(const struct sb_output_runner *r)
{
    return r->added;
}

uint64_t sb_output_runner_durable_events(const struct sb_output_runner *r)
{
    return r->durable_events;
}

/* r->rec = the spool record of an envelope: tag (output index, cover table length), the
 * cover table as it is once this batch is in (snap: what it covers; NULL: nothing new), and the
 * envelope's first len0 bytes, then len1 of env1 (a split batch comes in two pieces). */
static int record_build(struct sb_output_runner *r, const uint8_t *snap, size_t snap_len,
                        const uint8_t *env0, size_t len0, const uint8_t *env1, size_t len1)
{
    uint8_t tag[SB_OUTPUT_TAG_BYTES] = {(uint8_t)r->index, (uint8_t)(r->index >> 8), 0, 0};
    size_t tlen;

    sb_buf_clear(&r->rec);
    if (sb_buf_append(&r->rec, tag, sizeof tag))
        return -ENOMEM;
    if (r->replay && sb_replay_encode(r->replay, r->index, snap, snap_len, &r->rec))
        return -ENOMEM;
    tlen = r->rec.len - SB_OUTPUT_TAG_BYTES; /* <= 0xffff: sb_replay_encode keeps it so */
    r->rec.data[2] = (uint8_t)tlen;
    r->rec.data[3] = (uint8_t)(tlen >> 8);
    if (sb_buf_append(&r->rec, env0, len0) || (len1 && sb_buf_append(&r->rec, env1, len1)))
        return -ENOMEM;
    return 0;
}

/* Append one batch envelope as a tagged record; 0 when spooled, else the spool's error. */
static int spool_append(struct sb_output_runner *r, const uint8_t *snap, size_t snap_len,
                        const uint8_t *env, size_t len, uint32_t count, uint64_t cum)
{
    uint64_t seq;
    int rc = record_build(r, snap, snap_len, env, len, NULL, 0);

    if (rc == 0)
        rc = sb_spool_append(r->spool, r->rec.data, r->rec.len, &seq);
    if (rc == 0) {
        r->c.spooled += count;
        mark_push(r, cum, seq);
        if (r->replay)
            sb_replay_appended(r->replay, r->index, snap, snap_len);
        return 0;
    }
    if (rc == -EMSGSIZE) {
        /* Cannot ever fit: keep it in the dead-letter file rather than lose it silently. */
        dead_letter(r, env, len, 0, "batch larger than a spool record", NULL, 0);
        r->c.dead_lettered += count;
        mark_push(r, cum, 0);
        return 0;
    }
    return rc;
}

/* The spool refused an append with rc: note why (-EAGAIN is either full, at max_bytes, or only
 * busy: max_pending_bytes in a commit, gone with the next fsync) and say so once per episode:
 * the backlog forms in on_batch and empties in backlog_retry. */
static void refused(struct sb_output_runner *r, int rc)
{
    if (rc == -EAGAIN) {
        struct sb_spool_stats st;
        sb_spool_get_stats(r->spool, &st);
        if (st.refused_full == r->seen_full)
            rc = -EBUSY;
        r->seen_full = st.refused_full;
    }
    r->bl_err = rc;
    if (rc == -EBUSY || r->bl_warned)
        return;
    r->bl_warned = true;
    sb_warn("output",
            "%s: the spool refuses batches (%s): draining paused, events wait in the rings "
            "(producers' full-ring policy applies)",
            r->cfg->name, rc == -EAGAIN ? "full: spool.max_bytes reached" : strerror(-rc));
}

static void backlog_retry(struct sb_output_runner *r)
{
    bool had = r->bl_head != NULL;
    int rc = 0;

    while (r->bl_head) {
        struct backlog_item *it = r->bl_head;
        if ((rc = spool_append(r, it->data, it->snap_len, it->data + it->snap_len, it->len,
                               it->count, it->cum)) != 0)
            break;
        r->bl_head = it->next;
        if (!r->bl_head)
            r->bl_tail = NULL;
        r->bl_n--;
        r->bl_bytes -= sizeof *it + it->snap_len + it->len;
        free(it);
    }
    r->c.backlog_batches = r->bl_n;
    r->c.backlog_bytes = r->bl_bytes;
    if (rc && rc != -ENOMEM)
        refused(r, rc);
    if (had && !r->bl_head) {
        if (r->bl_warned)
            sb_info("output", "%s: the spool takes batches again after %.1f s; draining resumes",
                    r->cfg->name, (double)(sb_now_ns() - r->bl_since) / 1e9);
        r->bl_err = 0;
        r->bl_warned = false;
    }
}

static int on_batch(void *arg, const uint8_t *envelope, size_t len, uint32_t count)
{
    struct sb_output_runner *r = arg;
    int rc;

    /* Closed while the event being added is already in it (closed by count or bytes after the
     * add), or before it (it did not fit): the batch covers the ring up to that event or not. */
    bool includes_current = r->emitted + count > r->added;
    sb_buf_clear(&r->snap);
    if (r->replay && sb_replay_snap(r->replay, r->index, includes_current, &r->snap))
        return -ENOMEM;
    r->c.batches++;
    r->c.batched += count;
    r->emitted += count;
    /* Keep spool order: once something waits, everything after it waits behind it. */
    if (!r->bl_head) {
        rc = spool_append(r, r->snap.data, r->snap.len, envelope, len, count, r->emitted);
        if (rc == 0)
            return 0;
        if (rc == -ENOMEM)
            return rc;
        r->bl_since = sb_now_ns();
        refused(r, rc);
    }
    return backlog_push(r, envelope, len, count, r->emitted);
}

int sb_output_runner_add(struct sb_output_runner *r, const uint8_t *event, size_t len,
                         uint64_t now_ns)
{
    int rc = sb_batcher_add(r->batcher, event, len, now_ns);

    if (rc == 0)
        r->added++;
    return rc;
}

void sb_output_runner_set_replay(struct sb_output_runner *r, struct sb_replay *replay)
{
    r->replay = replay;
}

bool sb_output_runner_accepts(const struct sb_output_runner *r, const struct sb_event_meta *meta,
                              const char *source_name)
{
    return sb_route_check(r->cfg, meta, source_name) == SB_ROUTE_TAKE;
}

/* ---- dead letters ------------------------------------------------------------------------- */

static void json_string(struct sb_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    sb_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            sb_buf_append(b, e, 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            /* Bytes outside ASCII are escaped one by one: a response body is not trusted to be
             * UTF-8, and this keeps the file valid JSON whatever it held. */
            char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            sb_buf_append(b, e, 6);
        } else {
            sb_buf_append(b, s + i, 1);
        }
    }
    sb_buf_append(b, "\"", 1);
}

static void dead_letter(struct sb_output_runner *r, const uint8_t *env, size_t len, int status,
                        const char *reason, const char *detail, size_t detail_len)
{
    struct sb_buf line = SB_BUF_INIT;
    char head[200], when[SB_BATCH_SENT_AT_LEN + 1];
    size_t consumed;
    ssize_t w;

    if (r->dl_fd < 0) {
        r->dl_fd = open(r->dead_letter_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (r->dl_fd < 0) {
            sb_error("output", "%s: cannot open dead-letter file %s: %s; batch of %zu bytes lost",
                     r->cfg->name, r->dead_letter_path, strerror(errno), len);
            return;
        }
    }
    sb_format_time_ms(sb_wall_ms(), when);
    when[SB_BATCH_SENT_AT_LEN] = 0;
    snprintf(head, sizeof head,
             "{\"time\":\"%s\",\"output\":\"%s\",\"status\":%d,\"reason\":", when, r->cfg->name,
             status);
    sb_buf_append_str(&line, head);
    json_string(&line, reason, strlen(reason));
    sb_buf_append_str(&line, ",\"response\":");
    json_string(&line, detail ? detail : "", detail ? detail_len : 0);
    sb_buf_append_str(&line, ",\"envelope\":");
    if (sb_msgpack_to_json(env, len, &consumed, &line) != 0)
        sb_buf_append_str(&line, "null");
    sb_buf_append_str(&line, "}\n");
    w = line.data ? write(r->dl_fd, line.data, line.len) : -1;
    if (w != (ssize_t)line.len)
        sb_error("output", "%s: dead-letter write failed: %s", r->cfg->name,
                 w < 0 ? strerror(errno) : "short write");
    else
        (void)fdatasync(r->dl_fd); /* it is the only copy once the spool record is acked */
    sb_buf_free(&line);
}

/* ---- delivery ----------------------------------------------------------------------------- */

static void pump(struct sb_output_runner *r, uint64_t now_ns);

static int read_cb(void *arg, uint64_t seq, const void *data, size_t len)
{
    struct sb_output_runner *r = arg;
    const uint8_t *p = data;
    unsigned tag;
    size_t skip;

    if (r->have_batch)
        return 1; /* one batch at a time: stop before this record */
    if (len < SB_OUTPUT_TAG_BYTES + SB_BATCH_HEAD_BYTES + SB_BATCH_TAIL_BYTES) {
        r->skip_seq = seq; /* not ours to judge (or unreadable): skip */
        return 0;
    }
    tag = (unsigned)p[0] | (unsigned)p[1] << 8;
    skip = (size_t)p[2] | (size_t)p[3] << 8; /* the cover table: for start-up, not delivery */
    if (tag != r->index ||
        len < SB_OUTPUT_TAG_BYTES + skip + SB_BATCH_HEAD_BYTES + SB_BATCH_TAIL_BYTES) {
        r->skip_seq = seq;
        return 0;
    }
    p += SB_OUTPUT_TAG_BYTES + skip;
    len -= SB_OUTPUT_TAG_BYTES + skip;
    sb_buf_clear(&r->batch);
    if (sb_buf_append(&r->batch, p, len))
        return 1; /* out of memory: try again next tick */
    r->batch_count = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    r->batch_seq = seq;
    r->have_batch = true;
    r->retry = (struct sb_retry){0};
    r->retry_at_ns = 0;
    return 0;
}

/* Split the batch being delivered into two halves appended to the spool as new records (the
 * plugin found it too large once encoded), then ack it. 0, or -errno (the batch stays). */
static int split_batch(struct sb_output_runner *r)
{
    struct sb_mp_reader rd;
    const uint8_t *ev = r->batch.data + SB_BATCH_HEAD_BYTES;
    size_t len = r->batch.len - SB_BATCH_HEAD_BYTES - SB_BATCH_TAIL_BYTES, mid = 0;
    uint32_t half = r->batch_count / 2;
    struct sb_buf env = SB_BUF_INIT;
    int rc = 0;

    sb_mp_reader_init(&rd, ev, len);
    for (uint32_t i = 0; i < half; i++)
        if (sb_mp_skip(&rd) != 0)
            return -EPROTO;
    mid = sb_mp_reader_offset(&rd);
    if (r->split_seq != r->batch_seq) {
        r->split_seq = r->batch_seq;
        r->split_parts = 0;
    }
    for (int part = r->split_parts; part < 2; part++) {
        const uint8_t *p = part ? ev + mid : ev;
        size_t n = part ? len - mid : mid;
        uint32_t count = part ? r->batch_count - half : half;
        uint8_t head[SB_BATCH_HEAD_BYTES];
        uint64_t seq;

        memcpy(head, r->batch.data, SB_BATCH_HEAD_BYTES);
        head[8] = (uint8_t)(count >> 24);
        head[9] = (uint8_t)(count >> 16);
        head[10] = (uint8_t)(count >> 8);
        head[11] = (uint8_t)count;
        sb_buf_clear(&env);
        if (sb_buf_append(&env, head, sizeof head) || sb_buf_append(&env, p, n) ||
            record_build(r, NULL, 0, env.data, env.len,
                         r->batch.data + r->batch.len - SB_BATCH_TAIL_BYTES, SB_BATCH_TAIL_BYTES)) {
            rc = -ENOMEM;
            break;
        }
        if ((rc = sb_spool_append(r->spool, r->rec.data, r->rec.len, &seq)))
            break;
        r->split_parts = part + 1;
    }
    sb_buf_free(&env);
    if (rc == 0)
        r->c.split++;
    return rc;
}

static void note_failure(struct sb_output_runner *r, int status)
{
    r->st.last_error_status = status;
    r->st.last_error_ms = sb_wall_ms();
    r->st.consecutive_failures++;
}

void sb_output_runner_status(const struct sb_output_runner *r, struct sb_output_status *st)
{
    *st = r->st;
    st->done = r->c.sent + r->c.dead_lettered;
    st->retrying = r->have_batch && r->retry.retries ? r->batch_count : 0;
}

bool sb_output_runner_dead_lettered(const struct sb_output_runner *r, uint64_t k)
{
    for (unsigned i = 0; i < SB_OUTPUT_DEAD_RANGES && i < r->dead_next; i++)
        if (k > r->dead[i].from && k <= r->dead[i].to)
            return true;
    return false;
}

void sb_delivery_done(struct sb_delivery *d, const struct sb_output_result *res)
{
    struct sb_output_runner *r = d->runner;
    uint64_t now = sb_now_ns(), delay = 0;
    enum sb_http_outcome o;

    r->in_flight = false;
    if (r->closing)
        return; /* cancelled by the plugin's destroy: the batch stays in the spool */
    if (r->dropped_in_flight) {
        /* drop_oldest took it from the spool meanwhile: delivered after all, or dropped. */
        r->dropped_in_flight = false;
        if (res->status >= 200 && res->status < 300) {
            r->c.dropped_oldest -= r->batch_count;
            r->c.sent += r->batch_count;
            r->c.sent_batches++;
        }
        r->have_batch = false;
        if (!r->pumping)
            pump(r, now);
        return;
    }
    if (res->status == -EMSGSIZE && r->batch_count > 1) {
        int rc = split_batch(r);
        if (rc == 0) {
            sb_info("output", "%s: batch of %u events too large once encoded: split in two",
                    r->cfg->name, r->batch_count);
            sb_spool_ack(r->spool, r->index, r->batch_seq);
            r->acked = r->batch_seq;
            r->have_batch = false;
        } else {
            r->retry_at_ns = now + SB_RETRY_BASE_NS; /* the spool is full: try again soon */
        }
        if (!r->pumping)
            pump(r, now);
        return;
    }
    if (res->status == -EMSGSIZE) /* one event alone too large: retrying cannot help */
        o = SB_HTTP_DEAD_LETTER;
    else
        o = sb_retry_next(&r->retry, res->status, res->retry_after, now, time(NULL),
                          r->cfg->max_retry_duration_ns, next_rand(r), &delay);
    switch (o) {
    case SB_HTTP_SUCCESS:
        r->st.last_success_ms = sb_wall_ms();
        r->st.consecutive_failures = 0;
        r->c.sent += r->batch_count;
        r->c.sent_batches++;
        if (res->has_pos)
            sb_spool_ack_at(r->spool, r->index, r->batch_seq, res->pos, res->pos_id);
        else
            sb_spool_ack(r->spool, r->index, r->batch_seq);
        r->acked = r->batch_seq;
        r->have_batch = false;
        break;
    case SB_HTTP_RETRY:
        note_failure(r, res->status);
        r->c.failed_attempts++;
        r->c.retried++;
        r->retry_at_ns = now + delay;
        /* Without a response the detail is our own error text (TLS verification, timeout),
         * which says what to fix; a response body is not logged (it may echo the request). */
        if (res->status > 0)
            sb_warn("output", "%s: batch of %u events failed (HTTP %d); retry %u in %.3f s",
                    r->cfg->name, r->batch_count, res->status, r->retry.retries,
                    (double)delay / 1e9);
        else
            sb_warn("output", "%s: batch of %u events failed (%.*s); retry %u in %.3f s",
                    r->cfg->name, r->batch_count,
                    res->detail_len ? (int)(res->detail_len < 200 ? res->detail_len : 200) : 9,
                    res->detail_len ? res->detail : "no detail", r->retry.retries,
                    (double)delay / 1e9);
        break;
    case SB_HTTP_DEAD_LETTER: {
        uint32_t ok = res->delivered < r->batch_count ? res->delivered : 0;
        note_failure(r, res->status);
        r->c.sent += ok;
        r->dead[r->dead_next % SB_OUTPUT_DEAD_RANGES].from = r->c.sent + r->c.dead_lettered;
        r->dead[r->dead_next % SB_OUTPUT_DEAD_RANGES].to =
            r->c.sent + r->c.dead_lettered + r->batch_count - ok;
        r->dead_next++;
        r->c.failed_attempts++;
        r->c.dead_lettered += r->batch_count - ok;
        sb_error("output", "%s: batch of %u events refused (%s %d): written to %s", r->cfg->name,
                 r->batch_count, res->status > 0 ? "HTTP" : "error", res->status,
                 r->dead_letter_path);
        dead_letter(r, r->batch.data, r->batch.len, res->status,
                    res->status == -EMSGSIZE ? "too large for the destination"
                    : sb_retry_classify(res->status) == SB_HTTP_DEAD_LETTER
                        ? "not retryable"
                        : "gave up after max_retry_duration",
                    res->detail, res->detail_len);
        sb_spool_ack(r->spool, r->index, r->batch_seq);
        r->acked = r->batch_seq;
        r->have_batch = false;
        break;
    }
    }
    if (!r->pumping)
        pump(r, now);
}

static void attempt(struct sb_output_runner *r)
{
    int rc;

    sb_batch_set_sent_at(r->batch.data, r->batch.len, sb_wall_ms());
    r->d = (struct sb_delivery){.envelope = r->batch.data,
                                .len = r->batch.len,
                                .count = r->batch_count,
                                .retry_count = r->retry.retries,
                                .seq = r->batch_seq,
                                .runner = r};
    r->in_flight = true;
    rc = r->plugin->deliver(r->state, &r->d);
    if (rc < 0 && r->in_flight) {
        struct sb_output_result res = {.status = rc, .detail = "could not start the request"};
        res.detail_len = strlen(res.detail);
        sb_delivery_done(&r->d, &res);
    }
}

static void pump(struct sb_output_runner *r, uint64_t now_ns)
{
    r->pumping = true;
    for (int guard = 0; guard < 4096; guard++) {
        if (r->in_flight)
            break;
        if (r->have_batch) {
            if (r->retry_at_ns && now_ns < r->retry_at_ns)
                break;
            attempt(r);
            continue; /* a synchronous plugin finished already; an async one is in flight */
        }
        int n = sb_spool_read(r->spool, r->index, 1, read_cb, r);
        if (!r->have_batch && r->skip_seq > r->acked &&
            sb_spool_ack(r->spool, r->index, r->skip_seq) == 0)
            r->acked = r->skip_seq;
        if (n <= 0)
            break;
    }
    r->pumping = false;
}

void sb_output_runner_on_durable(struct sb_output_runner *r, uint64_t upto_seq)
{
    marks_durable(r, upto_seq);
    backlog_retry(r);
    if (!r->pumping)
        pump(r, sb_now_ns());
}

void sb_output_runner_on_drop(struct sb_output_runner *r, uint64_t seq, const void *data,
                              size_t len)
{
    const uint8_t *p = data;
    size_t skip;

    if (len < SB_OUTPUT_TAG_BYTES || ((unsigned)p[0] | (unsigned)p[1] << 8) != r->index)
        return;
    skip = SB_OUTPUT_TAG_BYTES + ((size_t)p[2] | (size_t)p[3] << 8);
    if (len < skip + SB_BATCH_HEAD_BYTES)
        return;
    p += skip;
    r->c.dropped_oldest +=
        (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    /* Counted as dropped: not delivered from memory either. One in flight is let finish (and is
     * delivered then); count it back when it is. */
    if (r->have_batch && r->batch_seq == seq) {
        if (r->in_flight)
            r->dropped_in_flight = true;
        else
            r->have_batch = false;
    }
}

void sb_output_runner_tick(struct sb_output_runner *r, uint64_t now_ns, bool force)
{
    int rc;

    backlog_retry(r);
    rc = sb_batcher_flush(r->batcher, now_ns, force);
    if (rc)
        sb_warn("output", "%s: closing a batch failed: %s", r->cfg->name, strerror(-rc));
    if (force)
        sb_spool_flush(r->spool);
    if (!r->pumping)
        pump(r, now_ns);
}

/* ---- life cycle --------------------------------------------------------------------------- */

static double backlog_bytes(void *arg)
{
    return (double)((struct sb_output_runner *)arg)->bl_bytes;
}

static double g_last_error_status(void *arg)
{
    return ((struct sb_output_runner *)arg)->st.last_error_status;
}

static double g_last_error_time(void *arg)
{
    return (double)((struct sb_output_runner *)arg)->st.last_error_ms / 1e3;
}

static double g_last_success_time(void *arg)
{
    return (double)((struct sb_output_runner *)arg)->st.last_success_ms / 1e3;
}

static double g_consecutive_failures(void *arg)
{
    return (double)((struct sb_output_runner *)arg)->st.consecutive_failures;
}

static double g_retrying(void *arg)
{
    struct sb_output_status st;
    sb_output_runner_status(arg, &st);
    return st.retrying;
}

static void register_metrics(struct sb_output_runner *r, struct sb_metrics *m)
{
    const char *const out[] = {"output", r->cfg->name, NULL};
    const char *const retry[] = {"output", r->cfg->name, "reason", "retryable_status", NULL};
    const char *const failed[] = {"output", r->cfg->name, "reason", "attempt_failed", NULL};
    const char *const dead[] = {"output", r->cfg->name, "reason", "refused_or_expired", NULL};
    const char *const filt[] = {"where", r->cfg->name, "reason", "filtered", NULL};
    const char *const oldest[] = {"where", r->cfg->name, "reason", "spool_drop_oldest", NULL};

    if (!m)
        return;
    sb_metrics_counter_ref(m, SB_M_BATCHED, "Events put into batches, per output.", out,
                           &r->c.batched);
    sb_metrics_counter_ref(m, SB_M_BATCHES, "Batches closed, per output.", out, &r->c.batches);
    sb_metrics_counter_ref(m, SB_M_SPOOLED, "Events written to the spool, per output.", out,
                           &r->c.spooled);
    sb_metrics_counter_ref(m, SB_M_SENT, "Events delivered, per output.", out, &r->c.sent);
    sb_metrics_counter_ref(m, SB_M_RETRIED, "Batches scheduled for another attempt.", retry,
                           &r->c.retried);
    sb_metrics_counter_ref(m, SB_M_FAILED, "Delivery attempts that failed.", failed,
                           &r->c.failed_attempts);
    sb_metrics_counter_ref(m, SB_M_DEAD_LETTERED, "Events written to the dead-letter file.", dead,
                           &r->c.dead_lettered);
    sb_metrics_counter_ref(m, SB_M_DROPPED, "Events not delivered to an output, by reason.", filt,
                           &r->c.dropped_filtered);
    sb_metrics_counter_ref(m, SB_M_DROPPED, NULL, oldest, &r->c.dropped_oldest);
    sb_metrics_gauge_fn(m, "segbus_output_backlog_bytes",
                        "Bytes of those batches: at most what was read from the rings and is not "
                        "durable yet.",
                        out, backlog_bytes, r);
    sb_metrics_gauge_fn(m, SB_M_LAST_ERROR_STATUS,
                        "HTTP status (or -errno) of the output's last failed attempt; 0: none.",
                        out, g_last_error_status, r);
    sb_metrics_gauge_fn(m, SB_M_LAST_ERROR_TIME,
                        "Unix time of the output's last failed attempt; 0: none.", out,
                        g_last_error_time, r);
    sb_metrics_gauge_fn(m, SB_M_LAST_SUCCESS_TIME,
                        "Unix time of the output's last delivered batch; 0: none.", out,
                        g_last_success_time, r);
    sb_metrics_gauge_fn(m, SB_M_CONSECUTIVE_FAILURES,
                        "Failed attempts of the output since its last success.", out,
                        g_consecutive_failures, r);
    sb_metrics_gauge_fn(m, SB_M_RETRYING,
                        "Events in the output's batch being retried (0: not retrying).", out,
                        g_retrying, r);
}

int sb_output_runner_new(struct sb_output_runner **out, const struct sb_output_config *cfg,
                         unsigned index, struct sb_loop *loop, struct sb_spool *spool,
                         const char *spool_dir, struct sb_metrics *metrics, char *err,
                         size_t errlen)
{
    struct sb_output_runner *r;
    int rc;

    *out = NULL;
    if (index > 0xffff) {
        snprintf(err, errlen, "too many outputs");
        return -EINVAL;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->cfg = cfg;
    r->index = index;
    r->loop = loop;
    r->spool = spool;
    r->dl_fd = -1;
    r->rng = sb_now_ns() ^ ((uint64_t)getpid() << 32) ^ index;
    if (!r->rng)
        r->rng = 1;
    r->plugin = sb_output_plugin_for(cfg->type);
    if (!r->plugin) {
        snprintf(err, errlen, "output %s: type %s is %s", cfg->name, sb_output_type_name(cfg->type),
                 type_plugins_note);
        free(r);
        return -ENOTSUP;
    }
    if (cfg->dead_letter) {
        r->dead_letter_path = strdup(cfg->dead_letter);
    } else {
        size_t n = strlen(spool_dir) + strlen(cfg->name) + 20;
        r->dead_letter_path = malloc(n);
        if (r->dead_letter_path)
            snprintf(r->dead_letter_path, n, "%s/%s.dead.ndjson", spool_dir, cfg->name);
    }
    if (!r->dead_letter_path) {
        free(r);
        return -ENOMEM;
    }
    rc = sb_batcher_new(&r->batcher, &cfg->batch, on_batch, r);
    if (rc) {
        sb_output_runner_free(r);
        return rc;
    }
    rc = r->plugin->init(&r->state, cfg, loop, err, errlen);
    if (rc) {
        r->plugin = NULL;
        sb_output_runner_free(r);
        return rc;
    }
    if (r->plugin->resume) {
        uint64_t acked, pos, id;
        if (sb_spool_output_resume(spool, index, &acked, &pos, &id) == 1 &&
            (rc = r->plugin->resume(r->state, pos, id)) != 0) {
            snprintf(err, errlen, "output %s: cannot resume after spool record %llu: %s", cfg->name,
                     (unsigned long long)acked, strerror(-rc));
            sb_output_runner_free(r);
            return rc;
        }
    }
    register_metrics(r, metrics);
    *out = r;
    return 0;
}

void sb_output_runner_free(struct sb_output_runner *r)
{
    if (!r)
        return;
    r->closing = true;
    if (r->plugin && r->plugin->destroy)
        r->plugin->destroy(r->state);
    sb_batcher_free(r->batcher);
    while (r->bl_head) {
        struct backlog_item *it = r->bl_head;
        r->bl_head = it->next;
        free(it);
    }
    sb_buf_free(&r->rec);
    sb_buf_free(&r->snap);
    sb_buf_free(&r->batch);
    free(r->marks);
    if (r->dl_fd >= 0)
        close(r->dl_fd);
    free(r->dead_letter_path);
    free(r);
}
