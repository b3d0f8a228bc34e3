/* http_client.h: HTTP/1.1 client on the loop: a small keep-alive pool to one origin (http or
 * https), one request in flight per connection, requests queued in order when all are busy. */
#ifndef SEGBUS_NET_HTTP_CLIENT_H
#define SEGBUS_NET_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "net/http.h"
#include "net/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_http_client;

struct sb_http_client_options {
    const char *url;              /* origin: "http://host[:port]" or "https://host[:port]"; a path
                                     in it is a prefix for every request path */
    const char *ca_file;          /* https: PEM CA bundle; NULL: the system store */
    const char *tls_host;         /* https: name to verify and send as SNI; NULL: the URL's host */
    unsigned max_connections;     /* pool size; 0: 2 */
    uint64_t connect_timeout_ns;  /* TCP connect + TLS handshake; 0: 10 s */
    uint64_t response_timeout_ns; /* request written to response complete; 0: 30 s */
    uint64_t idle_timeout_ns;     /* an idle kept-alive connection is closed after; 0: 60 s */
    size_t max_response_bytes;    /* response body limit; 0: 4 MiB */
};

/* One request. Everything is copied by sb_http_client_request(): the caller's memory may go at
 * once. The client adds Host, Content-Length, Connection: keep-alive; headers may add anything else
 * (Authorization, Content-Type, Content-Encoding, X-Retry-Count ...). */
struct sb_http_request {
    const char *method; /* "POST" */
    const char *path;   /* "/v1/batch" (appended to the URL's path prefix) */
    const struct sb_http_header *headers;
    size_t nheaders;
    const void *body;
    size_t body_len;
};

/* A response, valid only during the callback. */
struct sb_http_response {
    int status;
    const struct sb_http_message *msg; /* headers and body */
    int64_t retry_after_s;             /* Retry-After in seconds clamped to 300, -1 if none */
};

/* err: 0 with resp set, or -errno with resp NULL: -ETIMEDOUT (connect or response timeout),
 * -ECONNREFUSED and other connect errors, -ECONNABORTED (TLS handshake or verification failed),
 * -ECONNRESET (closed before a complete response), -EPROTO (malformed response), -EFBIG (body
 * over max_response_bytes), -ECANCELED (client freed). `why` is a human-readable reason (never
 * NULL when err < 0). */
typedef void (*sb_http_response_fn)(void *arg, int err, const struct sb_http_response *resp,
                                    const char *why);

/* Resolve the URL's host (getaddrinfo: blocking, so call at setup, not on the loop), load the CA
 * store. 0 or -EINVAL (bad URL/options), -ENOENT (host not found), -EIO (CA file) with err[]
 * naming what is wrong. */
int sb_http_client_new(struct sb_http_client **out, struct sb_loop *loop,
                       const struct sb_http_client_options *opts, char *err, size_t errlen);
/* Fail queued and in-flight requests with -ECANCELED (their callbacks run now), close the
 * connections; the memory goes once the kernel is done with it (keep running the loop).
 * NULL is a no-op. */
void sb_http_client_free(struct sb_http_client *c);

/* Send a request (queued if every connection is busy). The callback runs exactly once, from
 * the loop (never from inside this call). A reused keep-alive connection that the server closed
 * before answering is retried once on a new connection. 0, -ENOMEM, -EINVAL. */
int sb_http_client_request(struct sb_http_client *c, const struct sb_http_request *req,
                           sb_http_response_fn cb, void *arg);

struct sb_http_client_stats {
    uint64_t connects;    /* TCP connections opened */
    uint64_t reused;      /* requests sent on an already-used connection */
    uint64_t requests;    /* requests completed (any outcome) */
    uint64_t tls_resumed; /* TLS handshakes that resumed an earlier session */
    unsigned open;        /* connections open now */
    unsigned queued;      /* requests waiting for a connection */
};
void sb_http_client_get_stats(const struct sb_http_client *c, struct sb_http_client_stats *st);

#ifdef __cplusplus
}
#endif
#endif
