/* webhook.c: the webhook output: each batch (mode: batch) or each event (mode: event) POSTed as
 * JSON to the configured URL, signed with HMAC-SHA256 of the exact body bytes under the
 * output's secret ("X-Signature: sha256=<hex>"), with the configured extra headers. Retries,
 * Retry-After, X-Retry-Count and dead letters are the runner's, as for the Segment output.
 *
 * Event mode posts a batch's events one after the other on the one connection; the events
 * already answered 2xx are remembered per batch (by its spool record), so a retry of the batch
 * resumes at the event that failed instead of sending the delivered ones again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "json/json.h"
#include "mp/mp_reader.h"
#include "outputs/http_post.h"
#include "outputs/output.h"
#include "pipeline/batch.h"
#include "pipeline/retry.h"

#define SIG_PREFIX "sha256="
#define SIG_LEN (sizeof SIG_PREFIX - 1 + 2 * 32)

struct webhook_out {
    const struct sb_output_config *cfg;
    struct sb_http_post *post;
    struct sb_http_header *headers; /* signature (when signed) then the configured ones */
    size_t n_headers;
    char sig[SIG_LEN + 1];
    struct sb_buf body, detail;

    /* Event mode: the batch being posted event by event. */
    struct sb_delivery *cur;
    uint64_t seq;        /* its spool record */
    uint32_t done;       /* its first events already answered 2xx */
    size_t done_off;     /* byte offset of event `done` in the envelope */
    uint32_t attempt_at; /* `done` when this attempt started: X-Retry-Count goes on that POST */
};

/* Sign body into w->sig; the header points at it. */
static int sign(struct webhook_out *w, const void *body, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    const char *key = w->cfg->secret;

    if (!key)
        return 0;
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), body, len, mac, &n) || n != 32)
        return -EIO;
    memcpy(w->sig, SIG_PREFIX, sizeof SIG_PREFIX - 1);
    for (unsigned i = 0; i < n; i++) {
        w->sig[sizeof SIG_PREFIX - 1 + 2 * i] = hex[mac[i] >> 4];
        w->sig[sizeof SIG_PREFIX - 1 + 2 * i + 1] = hex[mac[i] & 15];
    }
    w->sig[SIG_LEN] = 0;
    return 0;
}

static int post(struct webhook_out *w, uint32_t retry_count, sb_http_post_done_fn done, void *arg)
{
    int rc = sign(w, w->body.data, w->body.len);

    if (rc)
        return rc;
    return sb_http_post_send(w->post, w->body.data, w->body.len, "application/json", w->headers,
                             w->n_headers, retry_count, done, arg);
}

static int post_next_event(struct webhook_out *w);

/* Event mode: one event answered. */
static void on_event(void *arg, const struct sb_output_result *res)
{
    struct webhook_out *w = arg;
    struct sb_delivery *d = w->cur;
    int rc = 0;

    if (!d)
        return;
    if (sb_retry_classify(res->status) == SB_HTTP_SUCCESS) {
        struct sb_mp_reader rd;
        const uint8_t *ev = d->envelope + SB_BATCH_HEAD_BYTES;
        size_t evlen = d->len - SB_BATCH_HEAD_BYTES - SB_BATCH_TAIL_BYTES;
        sb_mp_reader_init(&rd, ev + w->done_off, evlen - w->done_off);
        if (sb_mp_skip(&rd) == 0)
            w->done_off += sb_mp_reader_offset(&rd);
        w->done++;
        if (w->done < d->count && (rc = post_next_event(w)) == 0)
            return;
        w->cur = NULL;
        if (w->done < d->count) { /* could not start the next POST: retried as a failure */
            struct sb_output_result r = {.status = rc, .detail = "could not start the request"};
            r.detail_len = strlen(r.detail);
            sb_delivery_done(d, &r);
            return;
        }
        sb_delivery_done(d, res);
        return;
    }
    /* The batch failed at this event: tell which, so a dead-letter line says what was
     * delivered already (the events before it were). */
    struct sb_output_result r = *res;
    r.delivered = w->done; /* if the runner gives the batch up, these were delivered */
    char head[96];
    snprintf(head, sizeof head, "event %u of %u (the earlier ones were delivered): ", w->done + 1,
             d->count);
    sb_buf_clear(&w->detail);
    if (sb_buf_append_str(&w->detail, head) == 0 &&
        sb_buf_append(&w->detail, res->detail ? res->detail : "", res->detail_len) == 0) {
        r.detail = (const char *)w->detail.data;
        r.detail_len = w->detail.len;
    }
    w->cur = NULL;
    sb_delivery_done(d, &r);
}

static int post_next_event(struct webhook_out *w)
{
    struct sb_delivery *d = w->cur;
    const uint8_t *ev = d->envelope + SB_BATCH_HEAD_BYTES;
    size_t evlen = d->len - SB_BATCH_HEAD_BYTES - SB_BATCH_TAIL_BYTES, used;
    int rc;

    if (w->done_off >= evlen)
        return -EPROTO;
    sb_buf_clear(&w->body);
    rc = sb_msgpack_to_json(ev + w->done_off, evlen - w->done_off, &used, &w->body);
    if (rc)
        return rc == -ENOMEM ? -ENOMEM : -EPROTO;
    return post(w, w->done == w->attempt_at ? d->retry_count : 0, on_event, w);
}

static int webhook_deliver(void *state, struct sb_delivery *d)
{
    struct webhook_out *w = state;
    size_t consumed;
    int rc;

    if (w->cfg->webhook_mode == SB_WEBHOOK_BATCH) {
        sb_buf_clear(&w->body);
        rc = sb_msgpack_to_json(d->envelope, d->len, &consumed, &w->body);
        if (rc)
            return rc;
        return post(w, d->retry_count, sb_http_post_delivery_done, d);
    }
    if (d->seq != w->seq || d->count == 0) { /* a new batch, not a retry of the last one */
        w->seq = d->seq;
        w->done = 0;
        w->done_off = 0;
    }
    if (w->done >= d->count) {
        struct sb_output_result ok = {.status = 200};
        sb_delivery_done(d, &ok);
        return 0;
    }
    w->cur = d;
    w->attempt_at = w->done;
    rc = post_next_event(w);
    if (rc)
        w->cur = NULL;
    return rc;
}

static void webhook_destroy(void *state)
{
    struct webhook_out *w = state;

    if (!w)
        return;
    sb_http_post_free(w->post); /* fails a POST in flight: its callback runs now */
    sb_buf_free(&w->body);
    sb_buf_free(&w->detail);
    free(w->headers);
    free(w);
}

static int webhook_init(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                        char *err, size_t errlen)
{
    struct webhook_out *w = calloc(1, sizeof *w);
    int rc;

    if (!w)
        return -ENOMEM;
    w->cfg = cfg;
    w->headers = calloc(cfg->headers.n + 1, sizeof *w->headers);
    if (!w->headers) {
        free(w);
        return -ENOMEM;
    }
    if (cfg->secret)
        w->headers[w->n_headers++] = (struct sb_http_header){
            cfg->signature_header ? cfg->signature_header : "X-Signature", w->sig};
    for (size_t i = 0; i < cfg->headers.n; i++)
        w->headers[w->n_headers++] =
            (struct sb_http_header){cfg->headers.items[i].path, cfg->headers.items[i].value};
    rc = sb_http_post_new(&w->post, cfg, loop, err, errlen);
    if (rc) {
        webhook_destroy(w);
        return rc;
    }
    *state = w;
    return 0;
}

const struct sb_output_plugin sb_output_webhook = {"webhook", webhook_init, webhook_deliver,
                                                   webhook_destroy, NULL};
