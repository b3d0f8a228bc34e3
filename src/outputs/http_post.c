/* http_post.c: one POST per delivery attempt for the HTTP outputs (see http_post.h). */
#include "outputs/http_post.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "net/http_client.h"
#include "segbus/segbus.h"

/* The common headers plus a webhook's signature and its extra headers (config-bounded). */
#define MAX_HEADERS (5 + SB_WEBHOOK_MAX_HEADERS)

struct sb_http_post {
    const struct sb_output_config *cfg;
    struct sb_http_client *client;
    struct sb_buf gz;
    /* The request in flight (one at a time: max_connections is 1). */
    sb_http_post_done_fn done;
    void *arg;
    bool busy;
};

int sb_http_post_new(struct sb_http_post **out, const struct sb_output_config *cfg,
                     struct sb_loop *loop, char *err, size_t errlen)
{
    struct sb_http_client_options o = {0};
    struct sb_http_post *p = calloc(1, sizeof *p);
    const char *host = cfg->endpoint.host;
    bool v6 = strchr(host, ':') != NULL;
    char url[512];
    int rc;

    *out = NULL;
    if (!p)
        return -ENOMEM;
    p->cfg = cfg;
    snprintf(url, sizeof url, "%s://%s%s%s:%u", cfg->endpoint.tls ? "https" : "http", v6 ? "[" : "",
             host, v6 ? "]" : "", cfg->endpoint.port);
    o.url = url;
    o.ca_file = cfg->tls_ca_file;
    o.max_connections = 1; /* one batch in flight per output: order is the spool's */
    o.response_timeout_ns = cfg->timeout_ns;
    o.connect_timeout_ns = cfg->timeout_ns;
    rc = sb_http_client_new(&p->client, loop, &o, err, errlen);
    if (rc) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void on_response(void *arg, int err, const struct sb_http_response *resp, const char *why)
{
    struct sb_http_post *p = arg;
    struct sb_output_result res = {0};
    sb_http_post_done_fn done = p->done;

    if (!p->busy)
        return;
    p->busy = false;
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
    done(p->arg, &res);
}

int sb_http_post_send(struct sb_http_post *p, const void *body, size_t len,
                      const char *content_type, const struct sb_http_header *extra, size_t n_extra,
                      uint32_t retry_count, sb_http_post_done_fn done, void *arg)
{
    struct sb_http_header hdrs[MAX_HEADERS];
    struct sb_http_request req = {.method = "POST", .path = p->cfg->endpoint.path};
    char retries[16];
    size_t n = 0;
    int rc;

    if (p->busy || n_extra > MAX_HEADERS - 4)
        return -EINVAL;
    hdrs[n++] = (struct sb_http_header){"Content-Type", content_type};
    if (p->cfg->gzip) {
        sb_buf_clear(&p->gz);
        if (sb_gzip(&p->gz, body, len, -1))
            return -ENOMEM;
        body = p->gz.data;
        len = p->gz.len;
        hdrs[n++] = (struct sb_http_header){"Content-Encoding", "gzip"};
    }
    if (retry_count) {
        snprintf(retries, sizeof retries, "%u", retry_count);
        hdrs[n++] = (struct sb_http_header){"X-Retry-Count", retries};
    }
    hdrs[n++] = (struct sb_http_header){"User-Agent", "segbusd/" SEGBUS_VERSION_STRING};
    for (size_t i = 0; i < n_extra; i++)
        hdrs[n++] = extra[i];
    req.headers = hdrs;
    req.nheaders = n;
    req.body = body;
    req.body_len = len;
    p->done = done;
    p->arg = arg;
    p->busy = true;
    rc = sb_http_client_request(p->client, &req, on_response, p);
    if (rc)
        p->busy = false;
    return rc;
}

void sb_http_post_free(struct sb_http_post *p)
{
    if (!p)
        return;
    sb_http_client_free(p->client); /* fails the request in flight: on_response runs now */
    sb_buf_free(&p->gz);
    free(p);
}

void sb_http_post_delivery_done(void *arg, const struct sb_output_result *res)
{
    sb_delivery_done(arg, res);
}
