/* http.c: the HTTP outputs: Segment (POST /v1/batch as JSON, Basic auth with the write key,
 * optional gzip) and a segbus hub (the same envelope as msgpack). One attempt per call; the
 * runner decides about retries from the status and Retry-After. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "json/json.h"
#include "segbus/segbus.h"
#include "net/http.h"
#include "net/http_client.h"
#include "outputs/output.h"

struct http_out {
    const struct sb_output_config *cfg;
    bool json; /* Segment: JSON; hub: msgpack */
    struct sb_http_client *client;
    char *auth; /* "Basic base64(key:)", or NULL */
    struct sb_buf body, gz;
    struct sb_delivery *cur;
};

static int http_init_common(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                            char *err, size_t errlen, bool json)
{
    struct sb_http_client_options o = {0};
    struct http_out *h = calloc(1, sizeof *h);
    char url[512];
    int rc;

    if (!h)
        return -ENOMEM;
    h->cfg = cfg;
    h->json = json;
    snprintf(url, sizeof url, "%s://%s%s%s:%u", cfg->endpoint.tls ? "https" : "http",
             strchr(cfg->endpoint.host, ':') ? "[" : "", cfg->endpoint.host,
             strchr(cfg->endpoint.host, ':') ? "]" : "", cfg->endpoint.port);
    o.url = url;
    o.ca_file = cfg->tls_ca_file;
    o.max_connections = 1; /* one batch in flight per output: order is the spool's */
    o.response_timeout_ns = cfg->timeout_ns;
    o.connect_timeout_ns = cfg->timeout_ns;
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
    rc = sb_http_client_new(&h->client, loop, &o, err, errlen);
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

static void on_response(void *arg, int err, const struct sb_http_response *resp, const char *why)
{
    struct http_out *h = arg;
    struct sb_delivery *d = h->cur;
    struct sb_output_result res = {0};

    h->cur = NULL;
    if (!d)
        return;
    if (err < 0) {
        res.status = err;
        res.detail = why;
        res.detail_len = why ? strlen(why) : 0;
    } else {
        res.status = resp->status;
        res.retry_after = sb_http_header_get(resp->msg, "Retry-After");
        res.detail = (const char *)resp->msg->body;
        res.detail_len = resp->msg->body_len;
    }
    sb_delivery_done(d, &res);
}

static int http_deliver(void *state, struct sb_delivery *d)
{
    struct http_out *h = state;
    struct sb_http_header hdrs[6];
    struct sb_http_request req = {.method = "POST", .path = h->cfg->endpoint.path};
    char retries[16];
    size_t n = 0, consumed;
    const void *body = d->envelope;
    size_t body_len = d->len;
    int rc;

    if (h->json) {
        sb_buf_clear(&h->body);
        rc = sb_msgpack_to_json(d->envelope, d->len, &consumed, &h->body);
        if (rc)
            return rc;
        body = h->body.data;
        body_len = h->body.len;
        /* Segment answers 400 to a body over 500 KB and drops the whole batch: never send one;
         * the runner splits the batch instead (the msgpack bound cannot see JSON's escapes). */
        if (body_len > SB_SEGMENT_MAX_BATCH_BYTES && d->count > 0)
            return -EMSGSIZE;
        hdrs[n++] = (struct sb_http_header){"Content-Type", "application/json"};
    } else {
        hdrs[n++] = (struct sb_http_header){"Content-Type", "application/msgpack"};
    }
    if (h->cfg->gzip) {
        sb_buf_clear(&h->gz);
        if (sb_gzip(&h->gz, body, body_len, -1))
            return -ENOMEM;
        body = h->gz.data;
        body_len = h->gz.len;
        hdrs[n++] = (struct sb_http_header){"Content-Encoding", "gzip"};
    }
    if (h->auth)
        hdrs[n++] = (struct sb_http_header){"Authorization", h->auth};
    if (d->retry_count) {
        snprintf(retries, sizeof retries, "%u", d->retry_count);
        hdrs[n++] = (struct sb_http_header){"X-Retry-Count", retries};
    }
    hdrs[n++] = (struct sb_http_header){"User-Agent", "segbusd/" SEGBUS_VERSION_STRING};
    req.headers = hdrs;
    req.nheaders = n;
    req.body = body;
    req.body_len = body_len;
    h->cur = d;
    rc = sb_http_client_request(h->client, &req, on_response, h);
    if (rc)
        h->cur = NULL;
    return rc;
}

static void http_destroy(void *state)
{
    struct http_out *h = state;

    if (!h)
        return;
    sb_http_client_free(h->client); /* fails the request in flight: on_response runs now */
    sb_buf_free(&h->body);
    sb_buf_free(&h->gz);
    free(h->auth);
    free(h);
}

const struct sb_output_plugin sb_output_segment = {"segment", segment_init, http_deliver,
                                                   http_destroy, NULL};
const struct sb_output_plugin sb_output_hub = {"hub", hub_init, http_deliver, http_destroy, NULL};
