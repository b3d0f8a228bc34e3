/* http_server.h: HTTP/1.1 server on the loop (hub input, /metrics, /health): keep-alive,
 * pipelining answered in order, size limits checked while parsing, header/body/idle timeouts,
 * gzip request bodies, optional TLS. A route callback may answer later (asynchronously). */
#ifndef SEGBUS_NET_HTTP_SERVER_H
#define SEGBUS_NET_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "net/http.h"
#include "net/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_http_server;
/* One request awaiting its answer. */
struct sb_http_exchange;

/* Called once per complete request, in the order requests arrived on the connection; the next
 * request of that connection is not read until this one is answered. req is valid until
 * sb_http_respond(). With Content-Encoding: gzip the body has been inflated already
 * (the header stays). */
typedef void (*sb_http_route_fn)(void *arg, struct sb_http_exchange *ex,
                                 const struct sb_http_message *req);

struct sb_http_server_options {
    const char *bind_addr;     /* numeric IPv4 or IPv6 address; NULL: "127.0.0.1" */
    uint16_t port;             /* 0: an ephemeral port (see sb_http_server_port) */
    const char *tls_cert_file; /* both set: HTTPS */
    const char *tls_key_file;
    size_t max_header_bytes;    /* request line + headers; 0: 16 KiB (431 beyond) */
    size_t max_body_bytes;      /* as received; 0: 1 MiB (413 beyond) */
    size_t max_inflated_bytes;  /* gzip bodies once inflated; 0: 4 * max_body_bytes (413) */
    uint64_t header_timeout_ns; /* first byte of a request to end of headers; 0: 10 s (408) */
    uint64_t body_timeout_ns;   /* end of headers to end of body; 0: 30 s (408) */
    uint64_t idle_timeout_ns;   /* keep-alive connection with no request; 0: 60 s */
    unsigned max_connections;   /* 0: 1024; beyond, new connections are closed at once */
    sb_http_route_fn route;
    void *arg;
};

/* Bind, listen and start accepting on the loop. 0 or -errno with err[] naming what is wrong
 * (bad address, port in use, unreadable cert/key). */
int sb_http_server_new(struct sb_http_server **out, struct sb_loop *loop,
                       const struct sb_http_server_options *opts, char *err, size_t errlen);
/* Stop accepting, close every connection; pending exchanges stay valid until answered (their
 * answers are dropped). The memory goes once the kernel is done (keep running the loop). */
void sb_http_server_free(struct sb_http_server *srv);
/* The bound port (useful with port 0). */
uint16_t sb_http_server_port(const struct sb_http_server *srv);

/* Answer a request (exactly once per exchange; the exchange is gone afterwards). The server adds
 * Content-Length and Connection; headers add the rest (Content-Type, Retry-After, ...). body is
 * copied. 0, -ECONNRESET when the client went away (nothing sent; still freed), -EINVAL. */
int sb_http_respond(struct sb_http_exchange *ex, int status, const struct sb_http_header *headers,
                    size_t nheaders, const void *body, size_t body_len);
/* The client's address as "ip:port" (for logs). */
const char *sb_http_exchange_peer(const struct sb_http_exchange *ex);

struct sb_http_server_stats {
    uint64_t accepted, requests, rejected_limits, timeouts, bad_requests;
    unsigned open;
};
void sb_http_server_get_stats(const struct sb_http_server *srv, struct sb_http_server_stats *st);

#ifdef __cplusplus
}
#endif
#endif
