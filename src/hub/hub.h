/* hub.h: the hub's HTTP input: Segment's Tracking API (JSON) and sidecars' msgpack batches on
 * the daemon's loop, answered only once every accepted event is durable in the spool.
 *
 * The daemon supplies a sink (how events enter its pipeline and how far each output's batches
 * are durable); the input does the HTTP side: routes, write keys, envelopes, per-event
 * enrichment (context/integrations merge, receivedAt, sentAt correction, messageId), bad
 * requests with reasons, and 503 + Retry-After when the sink is busy. See docs/hub.md.
 */
#ifndef SEGBUS_HUB_HUB_H
#define SEGBUS_HUB_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "net/http_server.h"
#include "net/loop.h"
#include "pipeline/stage.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the hub hands events on. All called on the loop thread. */
struct sb_hub_sink {
    void *arg;
    size_t n_outputs;
    /* One enriched, verified event (msgpack map); meta has source and received_at_ms set, and
     * verified with sb_event_inspect's fields for exactly these bytes (see stage.h). The
     * daemon runs its pipeline and hands the result to the outputs' batchers. 0, or -errno
     * when it could not be taken (the request then fails with 503, nothing acknowledged). */
    int (*submit)(void *arg, const uint8_t *event, size_t len, struct sb_event_meta *meta);
    /* true when no new request should be taken (spool full, outputs backlogged): 503. */
    bool (*busy)(void *arg);
    /* Events handed to output i so far, and how many of them are durable (monotonic). */
    uint64_t (*added)(void *arg, size_t output);
    uint64_t (*durable)(void *arg, size_t output);
};

struct sb_hub_stats {
    uint64_t requests, accepted_events, rejected_events, bad_requests, unauthorized, busy, pending;
};

struct sb_hub;

/* Start listening with server options so (route/arg are the hub's; the others pass through;
 * max_body_bytes defaults to 1 MiB as received). cfg (sources and write keys) and the sink must
 * outlive the hub. 0 or -errno with err saying why. */
int sb_hub_new(struct sb_hub **out, struct sb_loop *loop, const struct sb_http_server_options *so,
               const struct sb_config *cfg, const struct sb_hub_sink *sink, char *err,
               size_t errlen);
/* Answer the requests whose events have become durable; call after the spool reports
 * durability and on the daemon's tick. */
void sb_hub_poll(struct sb_hub *h);
/* Requests still waiting for durability (for shutdown: keep running until 0). */
size_t sb_hub_pending(const struct sb_hub *h);
uint16_t sb_hub_port(const struct sb_hub *h);
void sb_hub_get_stats(const struct sb_hub *h, struct sb_hub_stats *st);
/* Pending exchanges are answered 503 (their events may still become durable: the client's
 * retry is deduplicated on messageId). Keep running the loop briefly afterwards. */
void sb_hub_free(struct sb_hub *h);

/* The request handling without a server, for tests and fuzzing: turn one request body into
 * events. route is the path ("/v1/batch"), ctype the Content-Type (NULL = JSON), auth the
 * Authorization header (NULL = none). Each accepted event is passed to emit(arg, ...). On
 * return *status is the HTTP status and resp the JSON answer (what the hub would send once
 * durable). 0, or -ENOMEM. */
typedef int (*sb_hub_emit_fn)(void *arg, const uint8_t *event, size_t len,
                              struct sb_event_meta *meta);
int sb_hub_process(const struct sb_config *cfg, const char *route, const char *ctype,
                   const char *auth, const uint8_t *body, size_t len, int64_t now_ms,
                   sb_hub_emit_fn emit, void *arg, int *status, struct sb_buf *resp);

/* RFC 3339 text to Unix milliseconds (Z or +hh:mm offsets, optional fraction). 0 or -EINVAL. */
int sb_hub_parse_time(const char *s, size_t n, int64_t *ms);

#ifdef __cplusplus
}
#endif
#endif
