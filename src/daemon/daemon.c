/* daemon.c: segbusd's wiring on one io_uring loop: registry, ring drain, pipeline, outputs,
 * spool, metrics endpoint and signals. */
#include "daemon/daemon.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/tail.h"
#include "hub/hub.h"
#include "kafka_input/kafka_input.h"
#include "metrics/metrics.h"
#include "net/http_server.h"
#include "net/loop.h"
#include "net/uring_ops.h"
#include "outputs/output.h"
#include "pipeline/batch.h"
#include "pipeline/dedup.h"
#include "pipeline/stage.h"
#include "pipeline/verify.h"
#include "protocols/protocols.h"
#include "ring/registry.h"
#include "segbus/segbus.h"
#include "spool/replay.h"
#include "spool/spool.h"

#define SB_TICK_NS (5 * SB_NS_PER_MS) /* batch deadlines, retries, registry, adopted rings */

struct sb_daemon {
    const struct sb_config *cfg;
    struct sb_loop *loop;
    struct sb_metrics *metrics;
    struct sb_pipeline *pipeline;
    struct sb_dedup *dedup; /* the pipeline's dedup stage's table (NULL: none), for prefetching */
    struct sb_spool *spool;
    struct sb_replay *replay; /* what the spool holds of the rings: exact replays after a crash */
    struct sb_output_runner **outs;
    size_t n_outs;
    struct sb_registry *reg;
    struct sb_http_server *http;
    struct sb_tail *tail;       /* GET /tail: recent events for `segbus tail` */
    struct sb_hub *hub;         /* the HTTP input (cfg->http.enabled) */
    struct sb_kafka_input *kin; /* the Kafka input of a delivery worker (cfg->kafka_input) */
    const char *ring_source;    /* name of the source ring events belong to, or NULL */
    int ring_source_idx;        /* its index in cfg->sources (per-source plan/transforms), or -1 */

    struct sb_timer tick;
    struct sb_timer flush_timer; /* the earliest open batch's deadline (see arm_flush) */
    uint64_t flush_at;           /* the deadline it is armed for; 0: not armed */
    struct sb_op futex_op;
    bool futex_armed;
    struct sb_op listen_op;
    bool listen_armed;
    struct sb_op sig_op;
    int sigfd;
    struct signalfd_siginfo si;

    /* Ring space is released only once the events read from it are durable (in fsynced spool
     * records, or dead-lettered), so a SIGKILL loses nothing: a restarted daemon adopts the
     * rings the producers hand back and reads again what was not released. A mark is taken
     * after each drain round: the read position of every ring, and per output how many events
     * it had been handed by then. Once every output has that many durable, every ring is
     * released up to the mark's position (which also moves its durable head: producers' flush
     * waits on it). */
    struct dmark {
        uint64_t *pos; /* per ring, npos of them (rings adopted later: later marks) */
        size_t npos;
        uint64_t *need; /* per output */
    } * marks;
    size_t marks_head, n_marks, marks_cap;

    bool stopping;
    uint64_t stop_deadline_ns;
    int result;

    uint64_t received, unknown_records;
    uint64_t drain_now_ns; /* the drain's clock: see on_record */
    /* Copies of the spool's loss counters, refreshed every tick, for metrics. */
    uint64_t spool_dropped_oldest, spool_dropped_corrupt, spool_refused_full, spool_refused_nospace;
};

/* ---- the drain ---------------------------------------------------------------------------- */

static bool backlogged(const struct sb_daemon *d);

/* Stop the registry's drain call at the end of a ring batch (never inside one: the rest of a
 * batch would not be read again) once an output holds batches the spool refused. One drain
 * call reads up to 64 ring batches; going on after the spool pushed back copied every batch
 * made meanwhile into the backlog, which was most of the daemon's peak memory. */
static int stop_after(struct sb_daemon *d, const struct sb_ring_reader *rd,
                      const struct sb_ring_rec *rec)
{
    return rd && rec == &rd->recs[rd->nrecs - 1] && backlogged(d);
}

/* Start loading the dedup slot of the next record's messageId while this one goes through the
 * pipeline: the lookup's cache miss was a third of the drain's time. */
static void prefetch_next(struct sb_daemon *d, const struct sb_ring_reader *rd,
                          const struct sb_ring_rec *rec)
{
    const uint8_t *id;
    size_t len;

    if (d->dedup && rd && rec + 1 < rd->recs + rd->nrecs &&
        sb_event_guess_message_id(rec[1].data, rec[1].len, &id, &len))
        sb_dedup_prefetch(d->dedup, id, len);
}

static void handle_record(struct sb_daemon *d, const struct sb_ring_reader *rd,
                          const struct sb_ring_rec *rec)
{
    struct sb_event_meta meta = {0};
    const uint8_t *ev;
    size_t len;

    prefetch_next(d, rd, rec);

    if (rec->type != SEGBUS_RECORD_TYPE_EVENT) {
        d->unknown_records++;
        return;
    }
    /* The clock is read once per 64 events (and per drain call): a read per event was 4% of
     * the drain, and the time only orders dedup windows and batch deadlines. */
    if ((d->received++ & 63) == 0)
        d->drain_now_ns = sb_now_ns();
    meta.now_ns = d->drain_now_ns;
    meta.received_at_ms = 0; /* filled lazily by whoever needs wall time (hub) */
    meta.producer_id = rec->producer;
    meta.source = d->ring_source_idx;
    bool tailing = sb_tail_wanted(d->tail, meta.now_ns); /* someone runs `segbus tail` */
    if (tailing)
        sb_tail_begin(d->tail);
    if (sb_pipeline_run(d->pipeline, rec->data, rec->len, &meta, &ev, &len) != SB_STAGE_PASS) {
        if (tailing)
            sb_tail_end(d->tail, rec->data, rec->len, &meta, false);
        return;
    }
    for (size_t i = 0; i < d->n_outs; i++) {
        struct sb_output_runner *r = d->outs[i];
        /* Read again after a crash, and in this output's spool already: not twice. It still
         * went through the pipeline above, so dedup saw it as before. */
        if (sb_replay_covered(d->replay, (unsigned)i))
            continue;
        if (!sb_output_runner_accepts(r, &meta, d->ring_source)) {
            ((struct sb_output_counters *)sb_output_runner_counters(r))->dropped_filtered++;
            continue;
        }
        if (sb_output_runner_add(r, ev, len, meta.now_ns) != 0)
            sb_error("daemon", "%s: out of memory batching an event", sb_output_runner_name(r));
    }
    if (tailing)
        sb_tail_end(d->tail, ev, len, &meta, true);
}

static int on_record(void *ctx, size_t ring, const struct sb_ring_rec *rec)
{
    struct sb_daemon *d = ctx;
    struct sb_ring_reader *rd = sb_registry_reader(d->reg, ring);

    /* Rings are announced in index order when first read (adopted rings come later). */
    while (sb_replay_rings(d->replay) <= ring) {
        size_t i = sb_replay_rings(d->replay);
        if (sb_replay_ring(d->replay, i, sb_registry_ring_id(d->reg, i),
                           sb_registry_reader(d->reg, i)->head) != 0)
            break; /* out of memory: this ring's replays are batched again (duplicates) */
    }
    sb_replay_begin(d->replay, ring, rec->pos);
    handle_record(d, rd, rec);
    sb_replay_end(d->replay);
    return stop_after(d, rd, rec);
}

static void release(struct sb_daemon *d, size_t ring, uint64_t pos)
{
    sb_registry_release(d->reg, ring, pos);
    sb_replay_released(d->replay, ring, sb_registry_reader(d->reg, ring)->head);
}

static struct dmark *mark_at(struct sb_daemon *d, size_t i)
{
    return &d->marks[(d->marks_head + i) % d->marks_cap];
}

static void check_marks(struct sb_daemon *d)
{
    while (d->n_marks) {
        struct dmark *m = mark_at(d, 0);
        for (size_t o = 0; o < d->n_outs; o++)
            if (sb_output_runner_durable_events(d->outs[o]) < m->need[o])
                return;
        for (size_t r = 0; r < m->npos; r++)
            release(d, r, m->pos[r]);
        d->marks_head = (d->marks_head + 1) % d->marks_cap;
        d->n_marks--;
    }
}

static struct dmark *mark_new(struct sb_daemon *d)
{
    if (d->n_marks == d->marks_cap) {
        size_t cap = d->marks_cap ? d->marks_cap * 2 : 8;
        struct dmark *m = calloc(cap, sizeof *m);
        if (!m)
            return NULL;
        for (size_t i = 0; i < cap; i++) {
            if (i < d->n_marks) {
                m[i] = *mark_at(d, i);
                continue;
            }
            m[i].need = calloc(d->n_outs, sizeof(uint64_t));
            if (!m[i].need) {
                for (size_t k = d->n_marks; k < i; k++)
                    free(m[k].need);
                free(m);
                return NULL;
            }
        }
        /* The slots not carried over (mark_at of the old array beyond n_marks) are freed. */
        for (size_t i = d->n_marks; i < d->marks_cap; i++) {
            free(mark_at(d, i)->need);
            free(mark_at(d, i)->pos);
        }
        free(d->marks);
        d->marks = m;
        d->marks_head = 0;
        d->marks_cap = cap;
    }
    return mark_at(d, d->n_marks++);
}

/* After a drain round: everything every ring handed out has been through the pipeline and
 * to the outputs. The newest mark moves forward while it is close (an eighth of a ring) to
 * the one before it, so marks stay few; else a new one starts. */
static void mark_drained(struct sb_daemon *d)
{
    size_t n = sb_registry_nrings(d->reg);
    struct dmark *m, *last = d->n_marks ? mark_at(d, d->n_marks - 1) : NULL;
    bool moved = !last || last->npos != n, near = d->n_marks >= 2;

    for (size_t r = 0; r < n; r++) {
        struct sb_ring_reader *rd = sb_registry_reader(d->reg, r);
        if (last && r < last->npos && last->pos[r] != rd->read_pos)
            moved = true;
        if (near) {
            struct dmark *prev = mark_at(d, d->n_marks - 2);
            if (r >= prev->npos || r >= last->npos ||
                rd->read_pos - prev->pos[r] > rd->ring.capacity / 8)
                near = false;
        }
    }
    if (!moved)
        return;
    if (!last) {
        /* Nothing waits: what was read is released at once if nothing is pending. */
        bool pending = false;
        for (size_t o = 0; o < d->n_outs; o++)
            pending |=
                sb_output_runner_durable_events(d->outs[o]) < sb_output_runner_added(d->outs[o]);
        if (!pending) {
            for (size_t r = 0; r < n; r++)
                release(d, r, sb_registry_reader(d->reg, r)->read_pos);
            return;
        }
    }
    m = near && last->npos == n ? last : mark_new(d);
    if (!m)
        return; /* out of memory: a later round marks again */
    if (m->npos < n) {
        uint64_t *p = realloc(m->pos, n * sizeof *p);
        if (!p) {
            /* Drop the mark rather than release too early: a later round marks again. */
            d->n_marks--;
            return;
        }
        m->pos = p;
    }
    m->npos = n;
    for (size_t r = 0; r < n; r++)
        m->pos[r] = sb_registry_reader(d->reg, r)->read_pos;
    for (size_t o = 0; o < d->n_outs; o++)
        m->need[o] = sb_output_runner_added(d->outs[o]);
}

static bool backlogged(const struct sb_daemon *d)
{
    for (size_t i = 0; i < d->n_outs; i++)
        if (sb_output_runner_backlog(d->outs[i]))
            return true;
    return false;
}

static void arm_futex(struct sb_daemon *d);
static void arm_flush(struct sb_daemon *d);

/* Drain every ring until empty (bounded), unless the spool pushes back: then leave records in
 * the rings, which fill and make producers apply their full-ring policy. */
static void drain(struct sb_daemon *d)
{
    for (int round = 0; round < 64; round++) {
        long n;
        if (backlogged(d))
            return;
        d->drain_now_ns = sb_now_ns();
        n = sb_registry_drain(d->reg, on_record, d, (int64_t)d->drain_now_ns);
        if (n <= 0)
            break;
        mark_drained(d); /* per round: one round moves a head by at most a capacity */
    }
    check_marks(d);
    arm_futex(d);
    arm_flush(d);
}

/* A batch due before the next tick is closed at its deadline, not up to a tick late: the tick
 * alone put up to 5 ms on top of flush_interval in the delivery latency. */
static void on_flush(struct sb_timer *t)
{
    struct sb_daemon *d = SB_CONTAINER_OF(t, struct sb_daemon, flush_timer);
    uint64_t now = sb_now_ns();

    d->flush_at = 0;
    for (size_t i = 0; i < d->n_outs; i++)
        if (sb_output_runner_deadline(d->outs[i]) <= now)
            sb_output_runner_tick(d->outs[i], now, false);
    check_marks(d);
    arm_flush(d);
}

static void arm_flush(struct sb_daemon *d)
{
    uint64_t due = UINT64_MAX, now;

    if (d->stopping)
        return; /* the tick flushes everything now */
    for (size_t i = 0; i < d->n_outs; i++) {
        uint64_t t = sb_output_runner_deadline(d->outs[i]);
        if (t < due)
            due = t;
    }
    if (due == UINT64_MAX || (d->flush_at && d->flush_at <= due))
        return;
    now = sb_now_ns();
    if (sb_timer_start(d->loop, &d->flush_timer, due > now ? due - now : 0, on_flush) == 0)
        d->flush_at = due;
}

static void on_futex(struct sb_op *op, int res, uint32_t flags)
{
    struct sb_daemon *d = SB_CONTAINER_OF(op, struct sb_daemon, futex_op);
    struct sb_ring_reader *rd = sb_registry_reader(d->reg, 0);

    (void)res;
    (void)flags;
    d->futex_armed = false;
    if (rd)
        sb_ring_reader_finish_wait(rd);
    drain(d);
}

static void arm_futex(struct sb_daemon *d)
{
    struct sb_ring_reader *rd = sb_registry_reader(d->reg, 0);
    struct io_uring_sqe *sqe;

    if (d->futex_armed || !rd || d->stopping)
        return;
    if (!sb_ring_reader_prepare_wait(rd))
        return; /* a record arrived meanwhile: the next tick (or the caller's loop) drains it */
    sqe = sb_loop_sqe(d->loop, &d->futex_op, on_futex);
    if (!sqe) {
        sb_ring_reader_finish_wait(rd);
        return; /* the tick keeps draining */
    }
    /* Shared (not private) futex: producers in other processes wake it. */
    sb_prep_futex_wait(sqe, sb_ring_futex_word(&rd->ring), SB_RING_FUTEX_WAITING, FUTEX2_SIZE_U32);
    d->futex_armed = true;
}

/* ---- registry socket ---------------------------------------------------------------------- */

static void arm_listen(struct sb_daemon *d);

static void on_listen(struct sb_op *op, int res, uint32_t flags)
{
    struct sb_daemon *d = SB_CONTAINER_OF(op, struct sb_daemon, listen_op);

    d->listen_armed = false;
    if (d->stopping)
        return;
    if (res >= 0)
        (void)sb_registry_accept(d->reg);
    arm_listen(d);
}

static void arm_listen(struct sb_daemon *d)
{
    struct io_uring_sqe *sqe;

    if (d->listen_armed || d->stopping)
        return;
    sqe = sb_loop_sqe(d->loop, &d->listen_op, on_listen);
    if (!sqe)
        return;
    io_uring_prep_poll_add(sqe, sb_registry_listen_fd(d->reg), POLLIN);
    d->listen_armed = true;
}

/* ---- periodic work and shutdown ----------------------------------------------------------- */

static bool all_idle(const struct sb_daemon *d)
{
    for (size_t i = 0; i < d->n_outs; i++)
        if (!sb_output_runner_idle(d->outs[i]))
            return false;
    return true;
}

static void on_tick(struct sb_timer *t)
{
    struct sb_daemon *d = SB_CONTAINER_OF(t, struct sb_daemon, tick);
    uint64_t now = sb_now_ns();

    /* Connections (hellos, hang-ups) and pidfds: cheap, non-blocking; also accepts. */
    if (!d->stopping) {
        (void)sb_registry_poll(d->reg, 0);
        drain(d);
    }
    for (size_t i = 0; i < d->n_outs; i++)
        sb_output_runner_tick(d->outs[i], now, d->stopping);
    check_marks(d);
    if (d->tail)
        sb_tail_tick(d->tail, now);
    if (d->hub)
        sb_hub_poll(d->hub);
    sb_kafka_input_poll(d->kin); /* what the eventfd left queued; commits; revokes */
    {
        struct sb_spool_stats ss;
        sb_spool_get_stats(d->spool, &ss);
        d->spool_dropped_oldest = ss.dropped_oldest;
        d->spool_dropped_corrupt = ss.dropped_corrupt;
        d->spool_refused_full = ss.refused_full;
        d->spool_refused_nospace = ss.refused_nospace;
    }
    if (d->stopping) {
        if (!backlogged(d) && all_idle(d) && !sb_hub_pending(d->hub)) {
            sb_info("daemon", "everything delivered; exiting");
            d->result = 0;
            sb_loop_stop(d->loop);
            return;
        }
        if (now >= d->stop_deadline_ns) {
            sb_warn("daemon", "shutdown timeout: undelivered batches stay in the spool");
            d->result = 1;
            sb_loop_stop(d->loop);
            return;
        }
    }
    arm_flush(d);
    sb_timer_start(d->loop, &d->tick, SB_TICK_NS, on_tick);
}

void sb_daemon_stop(struct sb_daemon *d)
{
    if (d->stopping)
        return;
    sb_info("daemon", "shutting down: draining, flushing, delivering (up to %.1f s)",
            (double)d->cfg->shutdown_timeout_ns / 1e9);
    /* Take what producers committed up to now, then stop waiting for more. */
    d->drain_now_ns = sb_now_ns();
    (void)sb_registry_drain(d->reg, on_record, d, (int64_t)d->drain_now_ns);
    mark_drained(d); /* released once delivered, so the next daemon does not read it again */
    d->stopping = true;
    d->stop_deadline_ns = sb_now_ns() + d->cfg->shutdown_timeout_ns;
}

static void arm_signal(struct sb_daemon *d);

static void on_signal(struct sb_op *op, int res, uint32_t flags)
{
    struct sb_daemon *d = SB_CONTAINER_OF(op, struct sb_daemon, sig_op);

    (void)flags;
    if (res == (int)sizeof d->si && (d->si.ssi_signo == SIGTERM || d->si.ssi_signo == SIGINT)) {
        sb_info("daemon", "signal %u", d->si.ssi_signo);
        sb_daemon_stop(d);
    }
    arm_signal(d);
}

static void arm_signal(struct sb_daemon *d)
{
    struct io_uring_sqe *sqe = sb_loop_sqe(d->loop, &d->sig_op, on_signal);

    if (sqe)
        io_uring_prep_read(sqe, d->sigfd, &d->si, sizeof d->si, 0);
}

/* ---- metrics endpoint --------------------------------------------------------------------- */

static void on_http(void *arg, struct sb_http_exchange *ex, const struct sb_http_message *req)
{
    struct sb_daemon *d = arg;
    struct sb_buf body = SB_BUF_INIT;
    struct sb_http_header ct = {"Content-Type", "text/plain; version=0.0.4; charset=utf-8"};
    struct sb_http_header js = {"Content-Type", "application/json"};

    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        sb_http_respond(ex, 405, NULL, 0, "method not allowed\n", 19);
        return;
    }
    if (!strcmp(req->path, "/metrics")) {
        if (sb_metrics_render_prometheus(d->metrics, &body) == 0)
            sb_http_respond(ex, 200, &ct, 1, body.data, body.len);
        else
            sb_http_respond(ex, 500, NULL, 0, "out of memory\n", 14);
    } else if (!strcmp(req->path, "/health")) {
        int spool_err = 0;
        for (size_t i = 0; i < d->n_outs && !spool_err; i++)
            spool_err = sb_output_runner_spool_error(d->outs[i]);
        if (d->stopping) {
            sb_http_respond(ex, 503, &js, 1, "{\"status\":\"stopping\"}\n", 22);
        } else if (spool_err) {
            /* Not taking events: they wait in the rings until the spool has room. */
            char b[200];
            int n = snprintf(
                b, sizeof b, "{\"status\":\"spool_full\",\"reason\":\"%s\",\"draining\":false}\n",
                spool_err == -EAGAIN ? "spool.max_bytes reached" : strerror(-spool_err));
            sb_http_respond(ex, 503, &js, 1, b, (size_t)n);
        } else {
            sb_http_respond(ex, 200, &js, 1, "{\"status\":\"ok\"}\n", 16);
        }
    } else if (!strcmp(req->path, "/stats")) {
        if (sb_metrics_render_json(d->metrics, sb_wall_ms(), &body) == 0)
            sb_http_respond(ex, 200, &js, 1, body.data, body.len);
        else
            sb_http_respond(ex, 500, NULL, 0, "out of memory\n", 14);
    } else if (!strcmp(req->path, "/tail") && d->tail) {
        sb_tail_http(d->tail, ex, req, sb_now_ns());
    } else {
        sb_http_respond(ex, 404, NULL, 0, "not found\n", 10);
    }
    sb_buf_free(&body);
}

static int start_metrics(struct sb_daemon *d, char *err, size_t errlen)
{
    struct sb_http_server_options o = {0};
    char host[128];
    const char *listen = d->cfg->metrics.listen, *colon;
    unsigned long port;
    char *end;

    if (!listen)
        return 0;
    colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "metrics.listen '%s' is not host:port", listen);
        return -EINVAL;
    }
    port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535) {
        snprintf(err, errlen, "metrics.listen '%s' has a bad port", listen);
        return -EINVAL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    if (host[0] == '[') { /* [::1]:9464 */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = 0;
    }
    o.bind_addr = host;
    o.port = (uint16_t)port;
    o.max_connections = 64;
    o.max_body_bytes = 4096;
    o.route = on_http;
    o.arg = d;
    return sb_http_server_new(&d->http, d->loop, &o, err, errlen);
}

uint16_t sb_daemon_metrics_port(const struct sb_daemon *d)
{
    return d->http ? sb_http_server_port(d->http) : 0;
}

static double spool_bytes(void *arg)
{
    struct sb_daemon *d = arg;
    struct sb_spool_stats st;

    sb_spool_get_stats(d->spool, &st);
    return (double)st.bytes_used;
}

static double ring_fill(void *arg)
{
    struct sb_daemon *d = arg;
    struct sb_ring_reader *rd = sb_registry_reader(d->reg, 0);
    uint64_t tail;

    if (!rd || !rd->ring.capacity)
        return 0;
    tail = sb_ring_tail(&rd->ring);
    return tail >= rd->head ? (double)(tail - rd->head) / (double)rd->ring.capacity : 0;
}

static double output_backlog(void *arg)
{
    return (double)sb_output_runner_backlog(arg);
}

static double producers(void *arg)
{
    return (double)sb_registry_live_producers(((struct sb_daemon *)arg)->reg);
}

static void register_metrics(struct sb_daemon *d)
{
    struct sb_metrics *m = d->metrics;
    struct sb_stage *const *st;
    size_t n = sb_pipeline_stages(d->pipeline, &st);
    const char *const ring_in[] = {"input", "ring", NULL};
    const char *const unknown[] = {"where", "ring", "reason", "unknown_record_type", NULL};

    sb_metrics_counter_ref(m, SB_M_RECEIVED, "Events taken from an input.", ring_in, &d->received);
    sb_metrics_counter_ref(m, SB_M_DROPPED, "Events not delivered, by where and reason.", unknown,
                           &d->unknown_records);
    for (size_t i = 0; i < n; i++) {
        for (unsigned k = 0; k < st[i]->n_reasons + 2; k++) {
            const char *reason = k < st[i]->n_reasons    ? st[i]->reasons[k]
                                 : k == st[i]->n_reasons ? "internal"
                                                         : "replaced_invalid";
            if (!strcmp(st[i]->name, "verify")) {
                const char *const l[] = {"reason", reason, NULL};
                sb_metrics_counter_ref(m, SB_M_INVALID, "Events that are not valid events.", l,
                                       &st[i]->dropped[k]);
            } else if (!strcmp(st[i]->name, "dedup") && k == 0) {
                sb_metrics_counter_ref(m, SB_M_DEDUPLICATED,
                                       "Events dropped as duplicates of a recent messageId.", NULL,
                                       &st[i]->dropped[k]);
            } else {
                const char *const l[] = {"stage", st[i]->name, "reason", reason, NULL};
                sb_metrics_counter_ref(m, SB_M_STAGE_DROPPED, "Events dropped by a stage.", l,
                                       &st[i]->dropped[k]);
            }
        }
    }
    sb_metrics_gauge_fn(m, SB_M_SPOOL_BYTES, "Bytes of spool segment files.", NULL, spool_bytes, d);
    {
        /* The spool counts records (batches), not events. */
        const char *const oldest[] = {"reason", "drop_oldest", NULL};
        const char *const corrupt[] = {"reason", "corrupt", NULL};
        sb_metrics_counter_ref(m, "segbus_spool_dropped_batches_total",
                               "Spooled batches lost: spool.full_policy drop_oldest, or bad bytes.",
                               oldest, &d->spool_dropped_oldest);
        sb_metrics_counter_ref(m, "segbus_spool_dropped_batches_total", NULL, corrupt,
                               &d->spool_dropped_corrupt);
        /* Not a loss: appends refused while the spool was full (events wait in the rings). */
        sb_metrics_counter_ref(m, "segbus_spool_full_total",
                               "Spool appends refused at spool.max_bytes (draining paused).", NULL,
                               &d->spool_refused_full);
        sb_metrics_counter_ref(m, "segbus_spool_nospace_total",
                               "Spool appends refused: no space left on the file system (draining "
                               "paused until there is).",
                               NULL, &d->spool_refused_nospace);
    }
    {
        /* The primary ring: what the drain repaired or skipped (its private counters), and
         * what producers dropped at a full ring (counted by them in the shared control block:
         * shown as they say; nothing relies on these numbers). */
        struct sb_ring_reader *rd = sb_registry_reader(d->reg, 0);
        static const struct {
            int idx;
            const char *reason;
        } rr[] = {{SB_RING_R_REPAIRED_DEAD, "repaired_dead_writer"},
                  {SB_RING_R_REPAIRED_GRACE, "repaired_stuck_writer"},
                  {SB_RING_R_CORRUPT, "corrupt_record"}};
        static const char *const pr[SEGBUS_DROP_REASONS] = {
            "full_error", "full_drop", "full_timeout", "stale", "repaired", "corrupt"};
        for (size_t i = 0; rd && i < sizeof rr / sizeof *rr; i++) {
            const char *const l[] = {"where", "ring", "reason", rr[i].reason, NULL};
            sb_metrics_counter_ref(m, SB_M_DROPPED, NULL, l, &rd->counters[rr[i].idx]);
        }
        for (int i = 0; rd && i < SEGBUS_DROP_REASONS; i++) {
            const char *const l[] = {"reason", pr[i], NULL};
            sb_metrics_counter_ref(m, "segbus_producer_dropped_events_total",
                                   "Events producers could not write, as they report them.", l,
                                   &rd->ring.ctrl->drops[i]);
        }
    }
    {
        const char *const l[] = {"ring", "primary", NULL};
        sb_metrics_gauge_fn(m, SB_M_RING_FILL, "Fraction of the ring holding unread records.", l,
                            ring_fill, d);
    }
    sb_metrics_gauge_fn(m, SB_M_PRODUCERS, "Producers registered and alive.", NULL, producers, d);
    for (size_t i = 0; i < d->n_outs; i++) {
        const char *const l[] = {"output", sb_output_runner_name(d->outs[i]), NULL};
        sb_metrics_gauge_fn(m, "segbus_output_backlog_batches",
                            i ? NULL
                              : "Closed batches held in memory: the spool refused them "
                                "(full); draining waits meanwhile.",
                            l, output_backlog, d->outs[i]);
    }
}

/* ---- the hub's HTTP input (src/hub): its events take the ring's path ------------------------ */

static int hub_submit(void *arg, const uint8_t *event, size_t len, struct sb_event_meta *meta)
{
    struct sb_daemon *d = arg;
    const char *source = meta->source >= 0 ? d->cfg->sources[meta->source].name : NULL;
    const uint8_t *ev;
    size_t n;

    d->received++;
    meta->now_ns = sb_now_ns();
    bool tailing = sb_tail_wanted(d->tail, meta->now_ns); /* someone runs `segbus tail` */
    if (tailing)
        sb_tail_begin(d->tail);
    if (sb_pipeline_run(d->pipeline, event, len, meta, &ev, &n) != SB_STAGE_PASS) {
        if (tailing)
            sb_tail_end(d->tail, event, len, meta, false);
        return 0; /* dropped with a counted reason (e.g. a duplicate): nothing to wait for */
    }
    for (size_t i = 0; i < d->n_outs; i++) {
        struct sb_output_runner *r = d->outs[i];
        if (!sb_output_runner_accepts(r, meta, source)) {
            ((struct sb_output_counters *)sb_output_runner_counters(r))->dropped_filtered++;
            continue;
        }
        if (sb_output_runner_add(r, ev, n, meta->now_ns) != 0)
            return -ENOMEM;
    }
    if (tailing)
        sb_tail_end(d->tail, ev, n, meta, true);
    return 0;
}

static bool hub_busy(void *arg)
{
    struct sb_daemon *d = arg;
    return d->stopping || backlogged(d);
}

static uint64_t hub_added(void *arg, size_t o)
{
    return sb_output_runner_added(((struct sb_daemon *)arg)->outs[o]);
}

static uint64_t hub_durable(void *arg, size_t o)
{
    return sb_output_runner_durable_events(((struct sb_daemon *)arg)->outs[o]);
}

/* The Kafka input of a delivery worker: its events take the hub's path (same sink). */
static int start_kafka_input(struct sb_daemon *d, char *err, size_t errlen)
{
    struct sb_hub_sink sink = {d, d->n_outs, hub_submit, hub_busy, hub_added, hub_durable};

    if (!d->cfg->kafka_input.brokers)
        return 0;
    return sb_kafka_input_new(&d->kin, d->loop, d->cfg, &sink, d->metrics, err, errlen);
}

static int start_hub(struct sb_daemon *d, char *err, size_t errlen)
{
    const struct sb_config *cfg = d->cfg;
    struct sb_http_server_options o = {0};
    struct sb_hub_sink sink = {d, d->n_outs, hub_submit, hub_busy, hub_added, hub_durable};
    char host[128];
    const char *listen = cfg->http.listen, *colon;
    unsigned long port;
    char *end;

    if (!cfg->http.enabled)
        return 0;
    colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "http.listen '%s' is not host:port", listen ? listen : "");
        return -EINVAL;
    }
    port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535) {
        snprintf(err, errlen, "http.listen '%s' has a bad port", listen);
        return -EINVAL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = 0;
    }
    o.bind_addr = host;
    o.port = (uint16_t)port;
    o.tls_cert_file = cfg->http.tls_cert;
    o.tls_key_file = cfg->http.tls_key;
    o.max_body_bytes = cfg->http.max_body_bytes;
    o.max_header_bytes = cfg->http.max_header_bytes;
    o.max_connections = cfg->http.max_connections;
    o.header_timeout_ns = cfg->http.header_timeout_ns;
    o.body_timeout_ns = cfg->http.body_timeout_ns;
    o.idle_timeout_ns = cfg->http.idle_timeout_ns;
    int rc = sb_hub_new(&d->hub, d->loop, &o, cfg, &sink, err, errlen);
    if (rc == 0)
        sb_info("daemon", "hub: Segment HTTP API on %s:%u", host, sb_hub_port(d->hub));
    return rc;
}

uint16_t sb_daemon_hub_port(const struct sb_daemon *d)
{
    return d->hub ? sb_hub_port(d->hub) : 0;
}

/* ---- set-up ------------------------------------------------------------------------------- */

static void on_spool_drop(void *arg, unsigned out, uint64_t seq, const void *data, size_t len)
{
    struct sb_daemon *d = arg;

    if (out < d->n_outs)
        sb_output_runner_on_drop(d->outs[out], seq, data, len);
}

static void on_durable(void *arg, uint64_t upto_seq)
{
    struct sb_daemon *d = arg;

    for (size_t i = 0; i < d->n_outs; i++)
        sb_output_runner_on_durable(d->outs[i], upto_seq);
    check_marks(d);
    if (d->hub)
        sb_hub_poll(d->hub);
    sb_kafka_input_on_durable(d->kin); /* commit what just became durable */
}

/* violations.forward_to: a `Violation Generated` event made by the plan stage goes straight to
 * the named output (chosen explicitly, so its source/allow filters do not apply). */
static int forward_violation(void *arg, const char *output, const uint8_t *ev, size_t len)
{
    struct sb_daemon *d = arg;
    for (size_t i = 0; i < d->n_outs; i++)
        if (d->outs[i] && !strcmp(sb_output_runner_name(d->outs[i]), output))
            return sb_output_runner_add(d->outs[i], ev, len, sb_now_ns());
    return -ENOENT;
}

static int build_pipeline(struct sb_daemon *d, char *err, size_t errlen)
{
    const struct sb_violation_sink sink = {forward_violation, d};
    struct sb_stage *s;
    int rc = sb_pipeline_new(&d->pipeline);

    if (rc)
        return rc;
    if (!(s = sb_verify_stage_new()) || sb_pipeline_add(d->pipeline, s))
        return -ENOMEM;
    /* per-source plan then transforms: after verify, before dedup, so PII never reaches disk */
    if ((rc = sb_protocols_add_stages_sink(d->pipeline, d->cfg, d->metrics, &sink, err, errlen)))
        return rc;
    if (d->cfg->dedup.window_count) {
        struct sb_dedup *dd;
        rc = sb_dedup_new(&dd, d->cfg->dedup.window_count, d->cfg->dedup.window_ns);
        if (rc)
            return rc;
        if (!(s = sb_dedup_stage_new(dd)) || sb_pipeline_add(d->pipeline, s))
            return -ENOMEM;
        d->dedup = dd; /* owned by the stage, which lives as long as the daemon */
    }
    return 0;
}

static int load_cover(void *arg, uint64_t seq, const void *data, size_t len)
{
    struct sb_daemon *d = arg;
    const uint8_t *p = data;
    size_t tlen = len >= SB_OUTPUT_TAG_BYTES ? (size_t)p[2] | (size_t)p[3] << 8 : 0;

    if (tlen && SB_OUTPUT_TAG_BYTES + tlen <= len &&
        sb_replay_load(d->replay, p + SB_OUTPUT_TAG_BYTES, tlen) == 0)
        sb_info("daemon",
                "spool record %llu says what of the rings is spooled already: ring "
                "records read again are not batched twice",
                (unsigned long long)seq);
    else
        sb_warn("daemon",
                "spool record %llu has no cover table: ring records read again after "
                "the restart may be delivered twice",
                (unsigned long long)seq);
    return 1;
}

/* The newest spool record's cover table: what the last daemon had spooled of each ring. */
static int load_replay(struct sb_daemon *d, char *err, size_t errlen)
{
    int rc = sb_replay_new(&d->replay, (unsigned)d->cfg->n_outputs);
    uint64_t last = sb_spool_durable_seq(d->spool);

    if (rc) {
        snprintf(err, errlen, "replay table: %s", strerror(-rc));
        return rc;
    }
    if (last && (rc = sb_spool_visit(d->spool, last, load_cover, d)) < 0) {
        snprintf(err, errlen, "spool %s: reading record %llu: %s", d->cfg->spool.dir,
                 (unsigned long long)last, strerror(-rc));
        return rc;
    }
    for (unsigned o = 0; o < d->cfg->n_outputs; o++) {
        const char *const l[] = {"output", d->cfg->outputs[o].name, NULL};
        sb_metrics_counter_ref(d->metrics, "segbus_replay_skipped_events_total",
                               "Ring records read again after a restart that were in this "
                               "output's spool already (not batched twice).",
                               l, sb_replay_skipped(d->replay, o));
    }
    return 0;
}

uint64_t sb_daemon_spool_pending(const struct sb_config *cfg)
{
    /* Half the spool's default: its queued and committing buffers (up to twice this) were a
     * quarter of the daemon's peak RSS, and 2 MB group commits drained as fast as 4 MB ones
     * (bench/drain). Never less than the largest batch an output closes, so any fits. */
    uint64_t pending = 2u << 20;

    for (size_t i = 0; i < cfg->n_outputs; i++)
        if (cfg->outputs[i].batch.max_bytes + (64u << 10) > pending)
            pending = cfg->outputs[i].batch.max_bytes + (64u << 10);
    return pending;
}

int sb_daemon_new(struct sb_daemon **out, const struct sb_config *cfg, char *err, size_t errlen)
{
    struct sb_daemon *d;
    struct sb_spool_opts so;
    struct sb_registry_config rc_cfg;
    const char **names = NULL;
    sigset_t mask;
    int rc;

    *out = NULL;
    if (!cfg->n_outputs) {
        snprintf(err, errlen, "no outputs configured: nothing to deliver to");
        return -EINVAL;
    }
    d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->cfg = cfg;
    d->sigfd = -1;
    d->ring_source = cfg->ring.source;
    d->ring_source_idx = -1;
    for (size_t i = 0; cfg->ring.source && i < cfg->n_sources; i++)
        if (!strcmp(cfg->sources[i].name, cfg->ring.source))
            d->ring_source_idx = (int)i;
    sb_log_set_level((enum sb_log_level)cfg->log_level);

    if ((rc = sb_loop_new(&d->loop, 256))) {
        snprintf(err, errlen, "io_uring: %s", strerror(-rc));
        goto fail;
    }
    err[0] = 0; /* build_pipeline names a bad plan or transform itself */
    if ((rc = sb_metrics_new(&d->metrics)) || (rc = build_pipeline(d, err, errlen))) {
        if (!err[0])
            snprintf(err, errlen, "pipeline: %s", strerror(-rc));
        goto fail;
    }

    names = calloc(cfg->n_outputs, sizeof *names);
    d->outs = calloc(cfg->n_outputs, sizeof *d->outs);
    if (!names || !d->outs) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_outputs; i++)
        names[i] = cfg->outputs[i].name;
    sb_spool_opts_init(&so);
    so.dir = cfg->spool.dir;
    so.segment_bytes = cfg->spool.segment_bytes;
    so.max_bytes = cfg->spool.max_bytes;
    so.max_pending_bytes = sb_daemon_spool_pending(cfg);
    so.policy =
        cfg->spool.full_policy == SB_SPOOL_FULL_DROP_OLDEST ? SB_SPOOL_DROP_OLDEST : SB_SPOOL_BLOCK;
    so.on_durable = on_durable;
    so.on_drop = on_spool_drop;
    so.arg = d;
    rc = sb_spool_open(&d->spool, d->loop, &so, names, (unsigned)cfg->n_outputs);
    free(names);
    names = NULL;
    if (rc) {
        snprintf(err, errlen, "spool %s: %s", cfg->spool.dir,
                 rc == -EBUSY ? "in use by another segbusd" : strerror(-rc));
        goto fail;
    }
    if ((rc = load_replay(d, err, errlen)))
        goto fail;
    for (size_t i = 0; i < cfg->n_outputs; i++) {
        rc = sb_output_runner_new(&d->outs[i], &cfg->outputs[i], (unsigned)i, d->loop, d->spool,
                                  cfg->spool.dir, d->metrics, err, errlen);
        if (rc)
            goto fail;
        sb_output_runner_set_replay(d->outs[i], d->replay);
        d->n_outs++;
    }

    sb_registry_config_init(&rc_cfg);
    rc_cfg.socket_path = cfg->socket.path;
    rc_cfg.capacity = cfg->ring.capacity;
    rc_cfg.uids = cfg->socket.allowed_uids;
    rc_cfg.nuids = cfg->socket.n_allowed_uids;
    rc_cfg.gids = cfg->socket.allowed_gids;
    rc_cfg.ngids = cfg->socket.n_allowed_gids;
    rc_cfg.reader.grace_ns = (int64_t)cfg->ring.producer_grace_ns;
    rc_cfg.reader.track_durable = 1; /* producers' flush waits for the spool's fsync */
    rc_cfg.hold_release = 1;         /* ring space is freed once durable: see struct dmark */
    rc = sb_registry_open(&d->reg, &rc_cfg);
    /* A daemon SIGKILLed a moment ago may still appear to listen: the kernel tears its
     * io_uring (which holds a poll on the listen socket) down asynchronously after the exit.
     * Give it a moment rather than fail a restart. */
    for (int i = 0; rc == -EADDRINUSE && i < 100; i++) {
        usleep(20 * 1000);
        rc = sb_registry_open(&d->reg, &rc_cfg);
    }
    if (rc) {
        snprintf(err, errlen, "socket %s: %s", cfg->socket.path,
                 rc == -EADDRINUSE ? "another segbusd listens there" : strerror(-rc));
        goto fail;
    }
    if (d->cfg->metrics.listen && (rc = sb_tail_new(&d->tail, d->outs, d->n_outs, d->pipeline))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((rc = start_metrics(d, err, errlen)) || (rc = start_hub(d, err, errlen)) ||
        (rc = start_kafka_input(d, err, errlen)))
        goto fail;
    register_metrics(d);

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    /* Signals arrive as reads on the loop, not as handlers racing with it. */
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    d->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (d->sigfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        goto fail;
    }
    *out = d;
    return 0;
fail:
    free(names);
    sb_daemon_free(d);
    return rc ? rc : -EINVAL;
}

int sb_daemon_run(struct sb_daemon *d)
{
    int rc;

    d->result = 0;
    arm_signal(d);
    arm_listen(d);
    drain(d);
    sb_timer_start(d->loop, &d->tick, SB_TICK_NS, on_tick);
    sb_info("daemon", "segbusd %s: socket %s, %zu output(s), spool %s", SEGBUS_VERSION_STRING,
            d->cfg->socket.path, d->n_outs, d->cfg->spool.dir);
    rc = sb_loop_run(d->loop);
    if (rc < 0)
        return rc;
    return d->result;
}

void sb_daemon_free(struct sb_daemon *d)
{
    if (!d)
        return;
    if (d->loop) {
        /* The loop still runs below (the spool's close, the final drain): a flush or tick timer
         * firing then would reach the runners freed here. Cancelled, they never fire. */
        sb_timer_cancel(d->loop, &d->flush_timer);
        sb_timer_cancel(d->loop, &d->tick);
    }
    sb_tail_free(d->tail);       /* answers waiting /tail requests */
    sb_kafka_input_free(d->kin); /* commits what is durable: before the outputs go */
    if (d->http)
        sb_http_server_free(d->http);
    sb_hub_free(d->hub);
    for (size_t i = 0; i < d->n_outs; i++)
        sb_output_runner_free(d->outs[i]);
    free(d->outs);
    sb_replay_free(d->replay);
    if (d->spool) {
        int rc = sb_spool_close(d->spool);
        if (rc)
            sb_error("daemon", "closing the spool: %s", strerror(-rc));
    }
    sb_registry_close(d->reg);
    sb_pipeline_free(d->pipeline);
    sb_metrics_free(d->metrics);
    if (d->loop) {
        /* Let cancelled requests and closed sockets complete before the memory goes. */
        for (int i = 0; i < 20 && sb_loop_run_once(d->loop, 5 * (int64_t)SB_NS_PER_MS) > 0; i++)
            ;
        sb_loop_free(d->loop);
    }
    if (d->sigfd >= 0)
        close(d->sigfd);
    for (size_t i = 0; i < d->marks_cap; i++) {
        free(d->marks[i].need);
        free(d->marks[i].pos);
    }
    free(d->marks);
    free(d);
}
