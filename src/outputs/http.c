/* http.c: the HTTP outputs: Segment (POST /v1/batch as JSON, Basic auth with the write key,
 * optional gzip) and a segbus hub (the same envelope as msgpack). One attempt per call, sent by
 * http_post.c; the runner decides about retries from the status and Retry-After. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "json/json.h"
#include "mp/mp_reader.h"
#include "pipeline/batch.h"
#include "outputs/http_post.h"
#include "outputs/output.h"

struct http_out {
    bool json; /* Segment: JSON; hub: msgpack */
    struct sb_http_post *post;
    char *auth; /* "Basic base64(key:)", or NULL */
    struct sb_buf body, scratch;
};

static int http_init_common(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                            char *err, size_t errlen, bool json)
{
    struct http_out *h = calloc(1, sizeof *h);
    int rc;

    if (!h)
        return -ENOMEM;
    h->json = json;
    if (cfg->write_key) {
        size_t klen = strlen(cfg->write_key);
        unsigned char *raw = malloc(klen + 2);
        size_t b64 = 4 * ((klen + 1 + 2) / 3) + 1;
        h->auth = malloc(b64 + 8);
        if (!raw || !h->auth) {
            free(raw);
            free(h->auth);
            free(h);
            return -ENOMEM;
        }
        memcpy(raw, cfg->write_key, klen);
        raw[klen] = ':'; /* Segment: user = write key, empty password, with the colon */
        memcpy(h->auth, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)h->auth + 6, raw, (int)klen + 1);
        free(raw);
    }
    rc = sb_http_post_new(&h->post, cfg, loop, err, errlen);
    if (rc) {
        free(h->auth);
        free(h);
        return rc;
    }
    *state = h;
    return 0;
}

static int segment_init(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                        char *err, size_t errlen)
{
    return http_init_common(state, cfg, loop, err, errlen, true);
}

static int hub_init(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                    char *err, size_t errlen)
{
    return http_init_common(state, cfg, loop, err, errlen, false);
}

/* -EMSGSIZE if an event of the batch is over Segment's 32 KB once written as JSON. JSON is at
 * most 8 times its msgpack (a 1-byte false is "false,", a control character "\u0001"), so only
 * events over 4 KB of msgpack are written out again to be measured. */
static int event_too_large(struct http_out *h, const struct sb_delivery *d)
{
    struct sb_mp_reader rd;
    size_t consumed;

    if (d->len < SB_BATCH_HEAD_BYTES + SB_BATCH_TAIL_BYTES)
        return 0;
    sb_mp_reader_init(&rd, d->envelope + SB_BATCH_HEAD_BYTES,
                      d->len - SB_BATCH_HEAD_BYTES - SB_BATCH_TAIL_BYTES);
    for (uint32_t i = 0; i < d->count; i++) {
        size_t at = sb_mp_reader_offset(&rd);
        if (sb_mp_skip(&rd) != 0)
            return 0; /* not ours to judge: the JSON writer reports malformed batches */
        size_t len = sb_mp_reader_offset(&rd) - at;
        if (len * 8 <= SB_SEGMENT_MAX_EVENT_BYTES)
            continue;
        sb_buf_clear(&h->scratch);
        if (sb_msgpack_to_json(d->envelope + SB_BATCH_HEAD_BYTES + at, len, &consumed, &h->scratch))
            return 0;
        if (h->scratch.len > SB_SEGMENT_MAX_EVENT_BYTES)
            return -EMSGSIZE;
    }
    return 0;
}

static int http_deliver(void *state, struct sb_delivery *d)
{
    struct http_out *h = state;
    struct sb_http_header auth = {"Authorization", h->auth};
    const void *body = d->envelope;
    size_t body_len = d->len, consumed;
    int rc;

    if (h->json) {
        sb_buf_clear(&h->body);
        rc = sb_msgpack_to_json(d->envelope, d->len, &consumed, &h->body);
        if (rc)
            return rc;
        body = h->body.data;
        body_len = h->body.len;
        /* Segment answers 400 to a body over 500 KB, or with one event over 32 KB, and drops
         * the whole batch: never send one; the runner splits the batch instead, down to the
         * one event that is too large, which it dead-letters (the msgpack bounds the pipeline
         * checked cannot see JSON's escapes). */
        if (body_len > SB_SEGMENT_MAX_BATCH_BYTES && d->count > 0)
            return -EMSGSIZE;
        rc = event_too_large(h, d);
        if (rc)
            return rc;
    }
    return sb_http_post_send(h->post, body, body_len,
                             h->json ? "application/json" : "application/msgpack", &auth,
                             h->auth ? 1 : 0, d->retry_count, sb_http_post_delivery_done, d);
}

static void http_destroy(void *state)
{
    struct http_out *h = state;

    if (!h)
        return;
    sb_http_post_free(h->post);
    sb_buf_free(&h->body);
    sb_buf_free(&h->scratch);
    free(h->auth);
    free(h);
}

const struct sb_output_plugin sb_output_segment = {"segment", segment_init, http_deliver,
                                                   http_destroy, NULL};
const struct sb_output_plugin sb_output_hub = {"hub", hub_init, http_deliver, http_destroy, NULL};
