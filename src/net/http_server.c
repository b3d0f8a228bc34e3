/* http_server.c: HTTP/1.1 server on the io_uring loop with limits, timeouts and async answers. */
#include "net/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "net/stream.h"
#include "net/tls.h"

enum phase { IDLE, HEADERS, BODY, HANDLING };

struct sconn;

struct sb_http_exchange {
    struct sconn *k; /* NULL once the connection is gone */
    struct sb_http_message msg;
    struct sb_buf inflated;
    bool head;
    char peer[64];
};

struct sconn {
    struct sb_stream s;
    struct sb_http_server *srv;
    struct sconn *next, *prev;
    struct sb_http_parser parser;
    struct sb_http_exchange *ex;
    enum phase phase;
    bool close_after, in_process, fin_sent;
    size_t discarded;
};

struct sb_http_server {
    struct sb_loop *loop;
    struct sb_http_server_options o;
    int fd;
    uint16_t port;
    SSL_CTX *ctx;
    struct sb_op accept_op;
    bool accept_armed, freeing;
    struct sb_timer rearm;
    struct sconn *conns;
    unsigned nconns;
    struct sb_http_server_stats st;
};

static void process(struct sconn *k);
static void conn_timeout(struct sb_stream *s);

/* After the last answer of a connection: send it, then half-close and keep reading (and
 * discarding) for a while before closing. Closing with unread request bytes in the socket makes
 * the kernel send a RST, which can destroy the answer (a 413 for an upload still in flight)
 * before the client has read it. */
#define LINGER_NS 2000000000ull
#define LINGER_MAX_BYTES (4u << 20)
static void linger(struct sconn *k)
{
    k->close_after = true;
    k->phase = IDLE;
    if (k->s.eof) { /* nothing more to read: close once the answer is out */
        if (sb_stream_unsent(&k->s) == 0)
            sb_stream_close(&k->s, 0);
        return;
    }
    sb_stream_deadline(&k->s, LINGER_NS, conn_timeout);
    sb_stream_read(&k->s, true);
    if (sb_stream_unsent(&k->s) == 0 && !k->fin_sent && k->s.fd >= 0) {
        shutdown(k->s.fd, SHUT_WR);
        k->fin_sent = true;
    }
}
static void arm_accept(struct sb_http_server *srv);
static void server_maybe_free(struct sb_http_server *srv);

static int write_response(struct sconn *k, int status, const struct sb_http_header *h, size_t nh,
                          const void *body, size_t len, bool keep, bool head)
{
    char line[160];
    struct sb_buf w = SB_BUF_INIT;
    int err = 0;
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, sb_http_reason(status));
    err |= sb_buf_append_str(&w, line);
    for (size_t i = 0; i < nh; i++) {
        err |= sb_buf_append_str(&w, h[i].name);
        err |= sb_buf_append_str(&w, ": ");
        err |= sb_buf_append_str(&w, h[i].value);
        err |= sb_buf_append_str(&w, "\r\n");
    }
    snprintf(line, sizeof(line), "Content-Length: %zu\r\nConnection: %s\r\n\r\n", len,
             keep ? "keep-alive" : "close");
    err |= sb_buf_append_str(&w, line);
    if (len && !head)
        err |= sb_buf_append(&w, body, len);
    int ret = err ? -ENOMEM : sb_stream_write(&k->s, w.data, w.len);
    sb_buf_free(&w);
    return ret;
}

/* Answer an error ourselves and close once it is sent. */
static void reject(struct sconn *k, int status, const char *reason)
{
    char body[256];
    /* a JSON reason, like the hub's own errors; reason comes from our parser, never from the
     * client's bytes, so it needs no escaping beyond quotes we never produce */
    int n = snprintf(body, sizeof(body), "{\"success\":false,\"error\":\"%s\"}\n", reason);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)strlen(body);
    static const struct sb_http_header ct = {"Content-Type", "application/json"};
    if (write_response(k, status, &ct, 1, body, (size_t)n, false, false) < 0) {
        sb_stream_close(&k->s, -EIO);
        return;
    }
    linger(k);
}

static void conn_timeout(struct sb_stream *s)
{
    struct sconn *k = s->owner;
    if (k->phase == HEADERS || k->phase == BODY) {
        k->srv->st.timeouts++;
        reject(k, 408,
               k->phase == HEADERS ? "request headers not received in time"
                                   : "request body not received in time");
    } else {
        sb_stream_close(s, -ETIMEDOUT);
    }
}

static bool is_gzip(const char *v)
{
    return strcasecmp(v, "gzip") == 0 || strcasecmp(v, "x-gzip") == 0;
}

static void dispatch(struct sconn *k)
{
    struct sb_http_server *srv = k->srv;
    const struct sb_http_message *m = sb_http_parser_msg(&k->parser);
    struct sb_http_exchange *ex = calloc(1, sizeof(*ex));
    if (!ex) {
        reject(k, 500, "out of memory");
        return;
    }
    ex->k = k;
    ex->msg = *m;
    ex->head = strcmp(m->method, "HEAD") == 0;
    const char *ce = sb_http_header_get(m, "Content-Encoding");
    if (ce && *ce && strcasecmp(ce, "identity") != 0) {
        if (!is_gzip(ce)) {
            free(ex);
            srv->st.bad_requests++;
            reject(k, 415, "unsupported Content-Encoding (only gzip)");
            return;
        }
        int ret = sb_gunzip(&ex->inflated, m->body, m->body_len, srv->o.max_inflated_bytes);
        if (ret < 0) {
            sb_buf_free(&ex->inflated);
            free(ex);
            if (ret == -EFBIG) {
                char why[96];
                snprintf(why, sizeof(why), "inflated body exceeds the limit of %zu bytes",
                         srv->o.max_inflated_bytes);
                srv->st.rejected_limits++;
                reject(k, 413, why);
            } else {
                srv->st.bad_requests++;
                reject(k, 400, ret == -ENOMEM ? "out of memory" : "body is not valid gzip");
            }
            return;
        }
        ex->msg.body = ex->inflated.data ? ex->inflated.data : (const uint8_t *)"";
        ex->msg.body_len = ex->inflated.len;
    }
    k->ex = ex;
    k->phase = HANDLING;
    sb_stream_no_deadline(&k->s); /* the route may take its time (e.g. until durable) */
    srv->st.requests++;
    srv->o.route(srv->o.arg, ex, &ex->msg);
}

static void process(struct sconn *k)
{
    if (k->in_process)
        return;
    k->in_process = true;
    struct sb_stream *s = &k->s;
    while (!k->ex && !k->close_after && !s->closing && sb_stream_avail(s) > 0) {
        if (k->phase == IDLE) {
            k->phase = HEADERS;
            sb_stream_deadline(s, k->srv->o.header_timeout_ns, conn_timeout);
        }
        ssize_t n = sb_http_parser_feed(&k->parser, sb_stream_data(s), sb_stream_avail(s));
        if (n < 0) {
            int st = k->parser.error_status ? k->parser.error_status : 400;
            if (st == 413 || st == 431)
                k->srv->st.rejected_limits++;
            else
                k->srv->st.bad_requests++;
            reject(k, st, k->parser.error);
            break;
        }
        sb_stream_consume(s, (size_t)n);
        if (k->phase == HEADERS && k->parser.headers_done) {
            k->phase = BODY;
            sb_stream_deadline(s, k->srv->o.body_timeout_ns, conn_timeout);
            const char *exp = sb_http_header_get(&k->parser.msg, "Expect");
            if (exp && strcasecmp(exp, "100-continue") == 0 && !sb_http_parser_done(&k->parser))
                sb_stream_write(s, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        if (!sb_http_parser_done(&k->parser))
            break; /* wait for more bytes */
        dispatch(k);
    }
    if (!k->ex && !k->close_after && !s->closing && k->phase == IDLE)
        sb_stream_deadline(s, k->srv->o.idle_timeout_ns, conn_timeout);
    if (s->eof && !k->ex && !s->closing && !k->close_after)
        sb_stream_close(s, 0);
    k->in_process = false;
}

static void on_read(struct sb_stream *s)
{
    struct sconn *k = s->owner;
    if (k->close_after) {
        k->discarded += sb_stream_avail(s);
        sb_stream_consume(s, sb_stream_avail(s));
        if (k->discarded > LINGER_MAX_BYTES || (s->eof && sb_stream_unsent(s) == 0))
            sb_stream_close(s, 0);
        return; /* at EOF with the answer still going out, on_drained closes */
    }
    if (s->eof && k->ex) {
        /* Half-closed client (e.g. `curl` with a pipelined set, or a shutdown(SHUT_WR)):
         * still answer what it asked. */
        return;
    }
    process(k);
}

static void on_drained(struct sb_stream *s)
{
    struct sconn *k = s->owner;
    if (!k->close_after || sb_stream_unsent(s) != 0)
        return;
    if (s->eof) {
        sb_stream_close(s, 0);
    } else if (!k->fin_sent && s->fd >= 0) {
        shutdown(s->fd, SHUT_WR);
        k->fin_sent = true;
    }
}

static void on_close(struct sb_stream *s, int err)
{
    (void)err;
    struct sconn *k = s->owner;
    struct sb_http_server *srv = k->srv;
    if (k->ex)
        k->ex->k = NULL; /* lives on until the route answers */
    if (k->prev)
        k->prev->next = k->next;
    else
        srv->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    srv->nconns--;
    sb_http_parser_free(&k->parser);
    free(k);
    if (srv->freeing)
        server_maybe_free(srv);
}

static const struct sb_stream_cbs conn_cbs = {
    .on_read = on_read,
    .on_drained = on_drained,
    .on_close = on_close,
};

int sb_http_respond(struct sb_http_exchange *ex, int status, const struct sb_http_header *headers,
                    size_t nheaders, const void *body, size_t body_len)
{
    if (!ex)
        return -EINVAL;
    struct sconn *k = ex->k;
    int ret = 0;
    if (status < 100 || status > 999 || (body_len && !body)) {
        ret = -EINVAL;
        status = 500;
        body_len = 0;
    }
    for (size_t i = 0; i < nheaders && ret == 0; i++)
        if (!headers[i].name || !headers[i].value || strpbrk(headers[i].name, "\r\n:") ||
            strpbrk(headers[i].value, "\r\n")) {
            ret = -EINVAL; /* header injection: answer 500 instead */
            status = 500;
            nheaders = 0;
            body_len = 0;
        }
    if (!k) {
        sb_buf_free(&ex->inflated);
        free(ex);
        return -ECONNRESET;
    }
    bool keep = ex->msg.keep_alive && !k->srv->freeing;
    int wr = write_response(k, status, headers, nheaders, body, body_len, keep, ex->head);
    sb_buf_free(&ex->inflated);
    free(ex);
    k->ex = NULL;
    k->phase = IDLE;
    sb_http_parser_next(&k->parser);
    if (wr < 0) {
        sb_stream_close(&k->s, wr);
        return ret ? ret : wr;
    }
    if (!keep || (k->s.eof && sb_stream_avail(&k->s) == 0)) {
        linger(k); /* also when the client half-closed and asked nothing more */
        return ret;
    }
    sb_stream_read(&k->s, true);
    process(k); /* pipelined requests already buffered */
    return ret;
}

const char *sb_http_exchange_peer(const struct sb_http_exchange *ex)
{
    struct sb_http_exchange *e = (struct sb_http_exchange *)ex;
    if (e->peer[0] || !e->k)
        return e->peer[0] ? e->peer : "gone";
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getpeername(e->k->s.fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(e->peer, sizeof(e->peer), "%s:%u", ip, port);
    return e->peer;
}

static void accept_one(struct sb_http_server *srv, int fd)
{
    if (srv->freeing || srv->nconns >= srv->o.max_connections) {
        close(fd);
        return;
    }
    struct sconn *k = calloc(1, sizeof(*k));
    if (!k) {
        close(fd);
        return;
    }
    if (sb_stream_init(&k->s, srv->loop, fd, &conn_cbs, k) < 0) {
        free(k);
        return;
    }
    struct sb_http_limits lim = {srv->o.max_header_bytes, srv->o.max_body_bytes, 100};
    sb_http_parser_init(&k->parser, SB_HTTP_REQUEST, &lim);
    k->srv = srv;
    k->s.max_in = srv->o.max_header_bytes + srv->o.max_body_bytes;
    k->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = k;
    srv->conns = k;
    srv->nconns++;
    srv->st.accepted++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (srv->ctx && sb_stream_tls(&k->s, srv->ctx, true, NULL) < 0) {
        sb_stream_close(&k->s, -ENOMEM);
        return;
    }
    /* a connection that never sends a byte is closed after the header timeout */
    k->phase = HEADERS;
    sb_stream_deadline(&k->s, srv->o.header_timeout_ns, conn_timeout);
    sb_stream_read(&k->s, true);
}

static void rearm_fire(struct sb_timer *t)
{
    struct sb_http_server *srv = SB_CONTAINER_OF(t, struct sb_http_server, rearm);
    if (srv->freeing)
        server_maybe_free(srv);
    else
        arm_accept(srv);
}

static void accept_cqe(struct sb_op *op, int res, uint32_t flags)
{
    struct sb_http_server *srv = SB_CONTAINER_OF(op, struct sb_http_server, accept_op);
    if (!(flags & IORING_CQE_F_MORE))
        srv->accept_armed = false;
    if (res >= 0)
        accept_one(srv, res);
    if (srv->freeing) {
        server_maybe_free(srv);
        return;
    }
    if (!srv->accept_armed) {
        if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
            sb_warn("http", "accept: %s; retrying in 100 ms", strerror(-res));
            sb_timer_start(srv->loop, &srv->rearm, 100000000ull, rearm_fire);
        } else {
            arm_accept(srv);
        }
    }
}

static void arm_accept(struct sb_http_server *srv)
{
    if (srv->accept_armed || srv->freeing)
        return;
    struct io_uring_sqe *sqe = sb_loop_sqe(srv->loop, &srv->accept_op, accept_cqe);
    if (!sqe)
        return;
    io_uring_prep_multishot_accept(sqe, srv->fd, NULL, NULL, SOCK_CLOEXEC);
    srv->accept_armed = true;
}

int sb_http_server_new(struct sb_http_server **out, struct sb_loop *loop,
                       const struct sb_http_server_options *opts, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = 0;
    *out = NULL;
    if (!loop || !opts || !opts->route) {
        snprintf(err, errlen, "no route callback given");
        return -EINVAL;
    }
    if (!opts->tls_cert_file != !opts->tls_key_file) {
        snprintf(err, errlen, "TLS needs both a certificate and a key file");
        return -EINVAL;
    }
    struct sb_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    srv->o = *opts;
    srv->fd = -1;
    struct sb_http_server_options *o = &srv->o;
    if (!o->max_header_bytes)
        o->max_header_bytes = 16384;
    if (!o->max_body_bytes)
        o->max_body_bytes = 1u << 20;
    if (!o->max_inflated_bytes)
        o->max_inflated_bytes = 4 * o->max_body_bytes;
    if (!o->header_timeout_ns)
        o->header_timeout_ns = 10000000000ull;
    if (!o->body_timeout_ns)
        o->body_timeout_ns = 30000000000ull;
    if (!o->idle_timeout_ns)
        o->idle_timeout_ns = 60000000000ull;
    if (!o->max_connections)
        o->max_connections = 1024;
    const char *addr = opts->bind_addr ? opts->bind_addr : "127.0.0.1";
    o->bind_addr = NULL;
    o->tls_cert_file = o->tls_key_file = NULL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(opts->port);
        sl = sizeof(*a4);
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(opts->port);
        sl = sizeof(*a6);
    } else {
        snprintf(err, errlen, "bind address '%s' is not a numeric IPv4 or IPv6 address", addr);
        free(srv);
        return -EINVAL;
    }
    if (opts->tls_cert_file) {
        srv->ctx = sb_tls_server_ctx(opts->tls_cert_file, opts->tls_key_file, err, errlen);
        if (!srv->ctx) {
            free(srv);
            return -EIO;
        }
    }
    int ret;
    srv->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto fail;
    }
    int one = 1;
    setsockopt(srv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(srv->fd, (struct sockaddr *)&ss, sl) < 0) {
        ret = -errno;
        snprintf(err, errlen, "cannot bind %s port %u: %s", addr, opts->port, strerror(errno));
        goto fail;
    }
    if (listen(srv->fd, 511) < 0) {
        ret = -errno;
        snprintf(err, errlen, "listen: %s", strerror(errno));
        goto fail;
    }
    sl = sizeof(ss);
    getsockname(srv->fd, (struct sockaddr *)&ss, &sl);
    srv->port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    arm_accept(srv);
    *out = srv;
    return 0;
fail:
    if (srv->fd >= 0)
        close(srv->fd);
    if (srv->ctx)
        SSL_CTX_free(srv->ctx);
    free(srv);
    return ret;
}

uint16_t sb_http_server_port(const struct sb_http_server *srv)
{
    return srv->port;
}

static void server_maybe_free(struct sb_http_server *srv)
{
    if (srv->nconns || srv->accept_armed || !sb_timer_idle(&srv->rearm))
        return;
    if (srv->fd >= 0)
        close(srv->fd);
    if (srv->ctx)
        SSL_CTX_free(srv->ctx);
    free(srv);
}

void sb_http_server_free(struct sb_http_server *srv)
{
    if (!srv || srv->freeing)
        return;
    srv->freeing = true;
    /* the accept re-arm timer (at most 100 ms) is left to fire: its callback frees the server */
    if (srv->accept_armed) {
        shutdown(srv->fd, SHUT_RDWR);
        sb_loop_cancel(srv->loop, &srv->accept_op);
    }
    for (struct sconn *k = srv->conns; k; k = k->next)
        sb_stream_close(&k->s, -ECANCELED);
    server_maybe_free(srv);
}

void sb_http_server_get_stats(const struct sb_http_server *srv, struct sb_http_server_stats *st)
{
    *st = srv->st;
    st->open = srv->nconns;
}
