/* drain_receiver.c: the receiver of bench/drain's end-to-end cases: a Segment-like HTTP server
 * on loopback (segbus's own io_uring HTTP server) taking POST /v1/batch JSON bodies from
 * segbusd's Segment output or from @segment/analytics-node, answering 200 at once. Per event it
 * takes the producer's enqueue time (properties.t_ns, CLOCK_MONOTONIC ns, which processes on
 * one machine share) and the arrival time, so latency and delivered events/s are measured in
 * one place for both senders.
 *   drain_receiver            prints "port N" on stdout, then reads commands on stdin:
 *   reset                     forget what arrived
 *   report                    print one JSON object: events, first enqueue, last arrival,
 *                             delivered events/s, latency p50/p99/max (ms), requests
 *   (end of input)            exit */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liburing.h>

#include "net/http_server.h"
#include "net/loop.h"

struct recv {
    int64_t *lat; /* arrival - enqueue, ns, one per event */
    size_t n, cap;
    uint64_t events, requests, bad, first_enq, last_arrival;
    struct sb_op in_op;
    char in[256];
    size_t in_len;
    struct sb_loop *loop;
};

static void add_latency(struct recv *r, int64_t ns)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 65536;
        int64_t *p = realloc(r->lat, cap * sizeof *p);
        if (!p) {
            r->bad++;
            return;
        }
        r->lat = p;
        r->cap = cap;
    }
    r->lat[r->n++] = ns;
}

static void route(void *arg, struct sb_http_exchange *ex, const struct sb_http_message *req)
{
    static const char stamp[] = "\"t_ns\":", mid[] = "\"messageId\":";
    struct recv *r = arg;
    uint64_t now = sb_now_ns();
    const char *p = (const char *)req->body, *end = p + req->body_len;
    struct sb_http_header ct = {"Content-Type", "application/json"};

    r->requests++;
    if (strcmp(req->method, "POST") != 0) {
        sb_http_respond(ex, 405, NULL, 0, "", 0);
        return;
    }
    /* Events are counted by their messageId; t_ns is read where an event has one. The
     * senders' JSON has no spaces after colons (segbusd's writer, JSON.stringify). */
    for (const char *q = p; (q = memmem(q, (size_t)(end - q), mid, sizeof mid - 1));
         q += sizeof mid - 1)
        r->events++;
    for (const char *q = p; (q = memmem(q, (size_t)(end - q), stamp, sizeof stamp - 1));) {
        char *e;
        q += sizeof stamp - 1;
        uint64_t t = strtoull(q, &e, 10);
        if (e == q || t > now) {
            r->bad++;
            continue;
        }
        if (!r->first_enq || t < r->first_enq)
            r->first_enq = t;
        add_latency(r, (int64_t)(now - t));
        q = e;
    }
    r->last_arrival = now;
    sb_http_respond(ex, 200, &ct, 1, "{\"success\":true}", 16);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(struct recv *r)
{
    double p50 = 0, p99 = 0, max = 0, secs = 0;
    if (r->n) {
        qsort(r->lat, r->n, sizeof *r->lat, cmp64);
        p50 = (double)r->lat[r->n / 2] / 1e6;
        p99 = (double)r->lat[r->n * 99 / 100] / 1e6;
        max = (double)r->lat[r->n - 1] / 1e6;
    }
    if (r->first_enq && r->last_arrival > r->first_enq)
        secs = (double)(r->last_arrival - r->first_enq) / 1e9;
    printf("{\"events\": %" PRIu64 ", \"stamped\": %zu, \"requests\": %" PRIu64
           ", \"bad\": %" PRIu64 ", \"seconds\": %.3f, \"delivered_per_s\": %.1f, "
           "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}\n",
           r->events, r->n, r->requests, r->bad, secs, secs > 0 ? (double)r->n / secs : 0, p50, p99,
           max);
    fflush(stdout);
}

static void arm_stdin(struct recv *r);

static void on_stdin(struct sb_op *op, int res, uint32_t flags)
{
    struct recv *r = SB_CONTAINER_OF(op, struct recv, in_op);
    char *nl;

    (void)flags;
    if (res <= 0) {
        sb_loop_stop(r->loop);
        return;
    }
    r->in_len += (size_t)res;
    while ((nl = memchr(r->in, '\n', r->in_len))) {
        *nl = 0;
        if (!strcmp(r->in, "report")) {
            report(r);
        } else if (!strcmp(r->in, "reset")) {
            r->n = 0;
            r->events = r->requests = r->bad = r->first_enq = r->last_arrival = 0;
        } else {
            fprintf(stderr, "drain_receiver: unknown command '%s'\n", r->in);
        }
        size_t used = (size_t)(nl + 1 - r->in);
        memmove(r->in, nl + 1, r->in_len - used);
        r->in_len -= used;
    }
    if (r->in_len == sizeof r->in)
        r->in_len = 0; /* a line longer than any command: drop it */
    arm_stdin(r);
}

static void arm_stdin(struct recv *r)
{
    struct io_uring_sqe *sqe = sb_loop_sqe(r->loop, &r->in_op, on_stdin);
    if (sqe)
        io_uring_prep_read(sqe, 0, r->in + r->in_len, (unsigned)(sizeof r->in - r->in_len), 0);
}

int main(void)
{
    struct recv r = {0};
    struct sb_http_server_options o = {0};
    struct sb_http_server *srv;
    char err[256];
    int rc;

    if ((rc = sb_loop_new(&r.loop, 256))) {
        fprintf(stderr, "drain_receiver: io_uring: %s\n", strerror(-rc));
        return 1;
    }
    o.bind_addr = "127.0.0.1";
    o.route = route;
    o.arg = &r;
    o.max_body_bytes = 8u << 20;
    if ((rc = sb_http_server_new(&srv, r.loop, &o, err, sizeof err))) {
        fprintf(stderr, "drain_receiver: %s\n", err);
        return 1;
    }
    printf("port %u\n", sb_http_server_port(srv));
    fflush(stdout);
    arm_stdin(&r);
    sb_loop_run(r.loop);
    sb_http_server_free(srv);
    for (int i = 0; i < 10; i++)
        sb_loop_run_once(r.loop, 1000000);
    sb_loop_free(r.loop);
    free(r.lat);
    return 0;
}
