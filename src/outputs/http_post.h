/* http_post.h: what every HTTP output (Segment, hub, webhook) does for one delivery attempt:
 * a keep-alive client to the output's URL (one connection: one request in flight, in spool
 * order), one POST with the headers every attempt carries (Content-Type, gzip when the output
 * says so, X-Retry-Count on retries, User-Agent) plus the caller's, and the answer turned into
 * an sb_output_result for the runner's retry policy (src/pipeline/retry.c). */
#ifndef SEGBUS_OUTPUTS_HTTP_POST_H
#define SEGBUS_OUTPUTS_HTTP_POST_H

#include <stddef.h>
#include <stdint.h>

#include "net/http.h"
#include "outputs/output.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_http_post;

/* Called exactly once per sb_http_post_send() that returned 0, from the loop (also when the
 * poster is freed: status -ECANCELED). res and its strings are valid during the call only. */
typedef void (*sb_http_post_done_fn)(void *arg, const struct sb_output_result *res);

/* A poster for cfg's endpoint (url, tls_ca_file, timeout). Resolves the host: call at start-up.
 * 0 or -errno with err naming why. */
int sb_http_post_new(struct sb_http_post **out, const struct sb_output_config *cfg,
                     struct sb_loop *loop, char *err, size_t errlen);
/* POST body (Content-Type content_type) to cfg's path, gzipped when cfg->gzip, with extra[]
 * headers added after the common ones. retry_count > 0 sends X-Retry-Count. The body is copied.
 * 0 (done runs later), or -ENOMEM / -EINVAL (done never runs). */
int sb_http_post_send(struct sb_http_post *p, const void *body, size_t len,
                      const char *content_type, const struct sb_http_header *extra, size_t n_extra,
                      uint32_t retry_count, sb_http_post_done_fn done, void *arg);
/* Fails the request in flight (its done runs now with -ECANCELED). NULL is a no-op. */
void sb_http_post_free(struct sb_http_post *p);

/* done for a plugin that posts a delivery as one request: arg is the sb_delivery. */
void sb_http_post_delivery_done(void *arg, const struct sb_output_result *res);

#ifdef __cplusplus
}
#endif
#endif
