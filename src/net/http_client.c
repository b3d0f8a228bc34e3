/* http_client.c: HTTP/1.1 keep-alive client pool on the io_uring loop (plain or TLS). */
#include "net/http_client.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "net/stream.h"
#include "net/tls.h"

struct req {
    struct req *next;
    struct sb_buf wire;
    bool head;
    unsigned attempts;
    sb_http_response_fn cb;
    void *arg;
};

struct conn {
    struct sb_stream s;
    struct sb_http_client *c;
    struct conn *next;
    struct addrinfo *ai;
    struct sb_http_parser parser;
    struct req *req;
    bool connected;
    unsigned served; /* requests completed on this connection */
};

struct sb_http_client {
    struct sb_loop *loop;
    struct sb_http_client_options o;
    char host[256];
    char hostport[300]; /* Host header */
    char prefix[512];
    char port[8];
    bool tls;
    SSL_CTX *ctx;
    SSL_SESSION *session; /* the latest ticket, to resume the next connection's handshake */
    struct addrinfo *ais, *ai_pref;
    struct conn *conns;
    unsigned nconns;
    struct req *qhead, *qtail;
    unsigned nqueued;
    struct sb_op defer_op;
    bool defer_posted, freeing;
    int deferred_err;
    char deferred_why[160];
    struct sb_http_client_stats st;
};

static void pump(struct sb_http_client *c);
static void maybe_free(struct sb_http_client *c);

static void req_free(struct req *r)
{
    sb_buf_free(&r->wire);
    free(r);
}

static void req_fail(struct req *r, int err, const char *why)
{
    r->cb(r->arg, err, NULL, why && *why ? why : strerror(-err));
    req_free(r);
}

static void enqueue(struct sb_http_client *c, struct req *r, bool front)
{
    if (front) {
        r->next = c->qhead;
        c->qhead = r;
        if (!c->qtail)
            c->qtail = r;
    } else {
        r->next = NULL;
        if (c->qtail)
            c->qtail->next = r;
        else
            c->qhead = r;
        c->qtail = r;
    }
    c->nqueued++;
}

static struct req *dequeue(struct sb_http_client *c)
{
    struct req *r = c->qhead;
    if (r) {
        c->qhead = r->next;
        if (!c->qhead)
            c->qtail = NULL;
        c->nqueued--;
        r->next = NULL;
    }
    return r;
}

/* ---- per-connection ---- */

static void conn_timeout(struct sb_stream *s)
{
    struct conn *k = s->owner;
    if (k->req) {
        struct req *r = k->req;
        k->req = NULL;
        char why[120];
        snprintf(why, sizeof(why), "%s timed out", k->connected ? "response" : "connect");
        k->c->st.requests++;
        req_fail(r, -ETIMEDOUT, why);
    } else if (!k->connected && k->c->qhead) {
        /* it was opened for a queued request: that request times out */
        struct req *r = dequeue(k->c);
        k->c->st.requests++;
        req_fail(r, -ETIMEDOUT, "connect timed out");
    }
    sb_stream_close(s, -ETIMEDOUT);
}

static void conn_assign(struct conn *k)
{
    struct sb_http_client *c = k->c;
    struct req *r = dequeue(c);
    if (!r)
        return;
    k->req = r;
    if (k->served > 0)
        c->st.reused++;
    sb_http_parser_expect_head(&k->parser, r->head);
    sb_stream_deadline(&k->s, c->o.response_timeout_ns, conn_timeout);
    int ret = sb_stream_write(&k->s, r->wire.data, r->wire.len);
    if (ret < 0)
        sb_stream_close(&k->s, ret); /* on_close fails or retries the request */
}

static void conn_idle(struct conn *k)
{
    sb_stream_deadline(&k->s, k->c->o.idle_timeout_ns, conn_timeout);
}

static void on_connected(struct sb_stream *s, int err)
{
    struct conn *k = s->owner;
    struct sb_http_client *c = k->c;
    if (err < 0) {
        /* Try the next address of the name (e.g. ::1 refused, 127.0.0.1 listening) before
         * failing a request. */
        if (k->ai->ai_next && err != -ECONNABORTED && err != -ETIMEDOUT) {
            c->ai_pref = k->ai->ai_next;
            return; /* on_close re-pumps with the next address */
        }
        c->ai_pref = c->ais;
        struct req *r = dequeue(c);
        if (r) {
            c->st.requests++;
            req_fail(r, err, s->errmsg);
        }
        return;
    }
    k->connected = true;
    c->ai_pref = k->ai;
    if (s->ssl && SSL_session_reused(s->ssl))
        c->st.tls_resumed++;
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sb_stream_no_deadline(s);
    conn_assign(k);
    if (!k->req)
        conn_idle(k);
}

static void complete(struct conn *k)
{
    struct sb_http_client *c = k->c;
    const struct sb_http_message *m = sb_http_parser_msg(&k->parser);
    struct req *r = k->req;
    k->req = NULL;
    k->served++;
    c->st.requests++;
    bool keep = m->keep_alive && !k->s.eof && !c->freeing;
    struct sb_http_response resp = {
        .status = m->status,
        .msg = m,
        .retry_after_s = sb_http_retry_after(sb_http_header_get(m, "Retry-After"), 300),
    };
    r->cb(r->arg, 0, &resp, "");
    req_free(r);
    sb_http_parser_next(&k->parser);
    if (!keep || k->s.closing) {
        sb_stream_close(&k->s, 0);
        return;
    }
    if (sb_stream_avail(&k->s) > 0) {
        /* the server sent more than one response for one request */
        sb_stream_close(&k->s, -EPROTO);
        return;
    }
    conn_assign(k);
    if (!k->req)
        conn_idle(k);
}

static void on_read(struct sb_stream *s)
{
    struct conn *k = s->owner;
    if (!k->req) {
        if (sb_stream_avail(s) > 0)
            sb_stream_close(s, -EPROTO); /* bytes nobody asked for */
        else if (s->eof && !s->closing)
            sb_stream_close(s, 0); /* the server closed it while idle: never reuse it */
        return;
    }
    while (k->req && sb_stream_avail(s) > 0) {
        ssize_t n = sb_http_parser_feed(&k->parser, sb_stream_data(s), sb_stream_avail(s));
        if (n < 0) {
            struct req *r = k->req;
            k->req = NULL;
            k->c->st.requests++;
            req_fail(r, (int)n, k->parser.error);
            sb_stream_close(s, (int)n);
            return;
        }
        sb_stream_consume(s, (size_t)n);
        if (!sb_http_parser_done(&k->parser))
            break;
        complete(k);
        return;
    }
    if (s->eof && k->req && sb_http_parser_busy(&k->parser)) {
        int ret = sb_http_parser_eof(&k->parser);
        if (ret == 0 && sb_http_parser_done(&k->parser)) {
            complete(k);
            return;
        }
        struct req *r = k->req;
        k->req = NULL;
        k->c->st.requests++;
        req_fail(r, -ECONNRESET, k->parser.error);
        sb_stream_close(s, -ECONNRESET);
        return;
    }
    if (s->eof && !s->closing)
        sb_stream_close(s, 0); /* on_close retries or fails a request that got no answer */
}

static void on_close(struct sb_stream *s, int err)
{
    struct conn *k = s->owner;
    struct sb_http_client *c = k->c;
    struct req *r = k->req;
    k->req = NULL;
    for (struct conn **pp = &c->conns; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    c->nconns--;
    if (r) {
        /* A kept-alive connection the server closed before answering (a race every HTTP/1.1
         * client meets): the server did not take the request, retry it once. */
        bool nothing = !sb_http_parser_busy(&k->parser);
        if (nothing && k->served > 0 && r->attempts == 0 && !c->freeing) {
            r->attempts++;
            enqueue(c, r, true);
        } else {
            c->st.requests++;
            req_fail(r, err < 0 ? (err == -ECANCELED ? -ECONNRESET : err) : -ECONNRESET,
                     s->errmsg[0] ? s->errmsg : "connection closed before the response");
        }
    }
    sb_http_parser_free(&k->parser);
    free(k);
    if (c->freeing)
        maybe_free(c);
    else
        pump(c);
}

static const struct sb_stream_cbs conn_cbs = {
    .on_read = on_read,
    .on_connected = on_connected,
    .on_close = on_close,
};

static int conn_open(struct sb_http_client *c)
{
    struct addrinfo *ai = c->ai_pref ? c->ai_pref : c->ais;
    struct conn *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = -errno;
        free(k);
        return e;
    }
    if (sb_stream_init(&k->s, c->loop, fd, &conn_cbs, k) < 0) {
        free(k);
        return -ENOMEM;
    }
    struct sb_http_limits lim = {0, c->o.max_response_bytes, 0};
    lim.max_header_bytes = 65536;
    sb_http_parser_init(&k->parser, SB_HTTP_RESPONSE, &lim);
    k->c = c;
    k->ai = ai;
    int ret = 0;
    if (c->tls)
        ret = sb_stream_tls(&k->s, c->ctx, false, c->o.tls_host ? c->o.tls_host : c->host);
    if (ret == 0 && c->tls) {
        SSL_set_app_data(k->s.ssl, c);
        if (c->session)
            SSL_set_session(k->s.ssl, c->session);
    }
    if (ret == 0)
        ret = sb_stream_connect(&k->s, ai->ai_addr, ai->ai_addrlen);
    if (ret == 0)
        ret = sb_stream_deadline(&k->s, c->o.connect_timeout_ns, conn_timeout);
    k->next = c->conns;
    c->conns = k;
    c->nconns++;
    c->st.connects++;
    if (ret < 0)
        sb_stream_close(&k->s, ret); /* on_close frees it */
    return 0;
}

/* ---- the client ---- */

static void defer_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    struct sb_http_client *c = SB_CONTAINER_OF(op, struct sb_http_client, defer_op);
    c->defer_posted = false;
    if (c->freeing) {
        maybe_free(c);
        return;
    }
    if (c->deferred_err) {
        int err = c->deferred_err;
        c->deferred_err = 0;
        struct req *r = dequeue(c);
        if (r) {
            c->st.requests++;
            req_fail(r, err, c->deferred_why);
        }
    }
    pump(c);
}

static void defer(struct sb_http_client *c)
{
    if (c->defer_posted)
        return;
    struct io_uring_sqe *sqe = sb_loop_sqe(c->loop, &c->defer_op, defer_cqe);
    if (sqe) {
        io_uring_prep_nop(sqe);
        c->defer_posted = true;
    }
}

static void pump(struct sb_http_client *c)
{
    if (c->freeing)
        return;
    unsigned connecting = 0;
    for (struct conn *k = c->conns; k && c->qhead; k = k->next) {
        if (k->s.closing)
            continue;
        if (!k->connected) {
            connecting++;
        } else if (!k->req) {
            conn_assign(k);
        }
    }
    while (c->qhead && connecting < c->nqueued && c->nconns < c->o.max_connections) {
        int ret = conn_open(c);
        if (ret < 0) {
            c->deferred_err = ret;
            snprintf(c->deferred_why, sizeof(c->deferred_why), "socket: %s", strerror(-ret));
            defer(c);
            return;
        }
        connecting++;
    }
}

int sb_http_client_request(struct sb_http_client *c, const struct sb_http_request *req,
                           sb_http_response_fn cb, void *arg)
{
    if (!c || !req || !req->method || !req->path || !cb || c->freeing || req->path[0] != '/')
        return -EINVAL;
    if (req->body_len && !req->body)
        return -EINVAL;
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *n = req->headers[i].name, *v = req->headers[i].value;
        if (!n || !v || !*n || strpbrk(n, "\r\n:") || strpbrk(v, "\r\n"))
            return -EINVAL; /* header injection */
    }
    if (strpbrk(req->method, " \r\n") || strpbrk(req->path, " \r\n"))
        return -EINVAL;
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->cb = cb;
    r->arg = arg;
    r->head = strcmp(req->method, "HEAD") == 0;
    struct sb_buf *w = &r->wire;
    char line[96];
    int err = 0;
    err |= sb_buf_append_str(w, req->method);
    err |= sb_buf_append_str(w, " ");
    err |= sb_buf_append_str(w, c->prefix);
    err |= sb_buf_append_str(w, req->path);
    err |= sb_buf_append_str(w, " HTTP/1.1\r\nHost: ");
    err |= sb_buf_append_str(w, c->hostport);
    err |= sb_buf_append_str(w, "\r\n");
    for (size_t i = 0; i < req->nheaders; i++) {
        err |= sb_buf_append_str(w, req->headers[i].name);
        err |= sb_buf_append_str(w, ": ");
        err |= sb_buf_append_str(w, req->headers[i].value);
        err |= sb_buf_append_str(w, "\r\n");
    }
    bool body_method = strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
                       strcmp(req->method, "PATCH") == 0;
    if (req->body_len || body_method) {
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", req->body_len);
        err |= sb_buf_append_str(w, line);
    }
    err |= sb_buf_append_str(w, "Connection: keep-alive\r\n\r\n");
    if (req->body_len)
        err |= sb_buf_append(w, req->body, req->body_len);
    if (err) {
        req_free(r);
        return -ENOMEM;
    }
    enqueue(c, r, false);
    pump(c);
    return 0;
}

static int parse_url(struct sb_http_client *c, const char *url, char *err, size_t errlen)
{
    const char *p;
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
        c->tls = false;
        strcpy(c->port, "80");
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;
        c->tls = true;
        strcpy(c->port, "443");
    } else {
        snprintf(err, errlen, "URL '%s' must start with http:// or https://", url);
        return -EINVAL;
    }
    const char *hend;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend) {
            snprintf(err, errlen, "URL '%s': unterminated IPv6 address", url);
            return -EINVAL;
        }
        if ((size_t)(hend - p - 1) >= sizeof(c->host))
            goto toolong;
        memcpy(c->host, p + 1, (size_t)(hend - p - 1));
        c->host[hend - p - 1] = 0;
        hend++;
    } else {
        hend = p + strcspn(p, ":/?#");
        if ((size_t)(hend - p) >= sizeof(c->host))
            goto toolong;
        memcpy(c->host, p, (size_t)(hend - p));
        c->host[hend - p] = 0;
    }
    if (!c->host[0]) {
        snprintf(err, errlen, "URL '%s' has no host", url);
        return -EINVAL;
    }
    bool explicit_port = false;
    if (*hend == ':') {
        char *e;
        long port = strtol(hend + 1, &e, 10);
        if (e == hend + 1 || port <= 0 || port > 65535 || (*e && *e != '/')) {
            snprintf(err, errlen, "URL '%s' has a bad port", url);
            return -EINVAL;
        }
        snprintf(c->port, sizeof(c->port), "%ld", port);
        hend = e;
        explicit_port = true;
    }
    if (*hend && *hend != '/') {
        snprintf(err, errlen, "URL '%s' must be an origin with an optional path", url);
        return -EINVAL;
    }
    if (strlen(hend) >= sizeof(c->prefix))
        goto toolong;
    strcpy(c->prefix, hend);
    size_t pl = strlen(c->prefix);
    while (pl > 0 && c->prefix[pl - 1] == '/')
        c->prefix[--pl] = 0;
    bool v6 = strchr(c->host, ':') != NULL;
    snprintf(c->hostport, sizeof(c->hostport), "%s%s%s%s%s", v6 ? "[" : "", c->host, v6 ? "]" : "",
             explicit_port ? ":" : "", explicit_port ? c->port : "");
    return 0;
toolong:
    snprintf(err, errlen, "URL '%.64s...' is too long", url);
    return -EINVAL;
}

/* OpenSSL hands us each new session (TLS 1.3: each ticket, after the handshake); keeping the
 * latest lets a reconnect skip the full handshake. Returning 1 keeps the reference. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct sb_http_client *c = SSL_get_app_data(ssl);
    if (!c)
        return 0;
    if (c->session)
        SSL_SESSION_free(c->session);
    c->session = sess;
    return 1;
}

int sb_http_client_new(struct sb_http_client **out, struct sb_loop *loop,
                       const struct sb_http_client_options *opts, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = 0;
    *out = NULL;
    if (!loop || !opts || !opts->url) {
        snprintf(err, errlen, "no URL given");
        return -EINVAL;
    }
    struct sb_http_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->o = *opts;
    if (!c->o.max_connections)
        c->o.max_connections = 2;
    if (!c->o.connect_timeout_ns)
        c->o.connect_timeout_ns = 10000000000ull;
    if (!c->o.response_timeout_ns)
        c->o.response_timeout_ns = 30000000000ull;
    if (!c->o.idle_timeout_ns)
        c->o.idle_timeout_ns = 60000000000ull;
    if (!c->o.max_response_bytes)
        c->o.max_response_bytes = 4u << 20;
    c->o.url = NULL;
    c->o.ca_file = NULL;
    c->o.tls_host = NULL; /* copied below; the caller's strings may go */
    int ret = parse_url(c, opts->url, err, errlen);
    if (ret < 0) {
        free(c);
        return ret;
    }
    if (opts->tls_host && *opts->tls_host) {
        c->o.tls_host = strdup(opts->tls_host);
        if (!c->o.tls_host) {
            free(c);
            return -ENOMEM;
        }
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    int g = getaddrinfo(c->host, c->port, &hints, &c->ais);
    if (g == EAI_ADDRFAMILY || g == EAI_NONAME) {
        /* AI_ADDRCONFIG hides ::1 on hosts with no global IPv6; ask again without it */
        hints.ai_flags = 0;
        g = getaddrinfo(c->host, c->port, &hints, &c->ais);
    }
    if (g != 0) {
        snprintf(err, errlen, "cannot resolve host '%s': %s", c->host, gai_strerror(g));
        free((void *)c->o.tls_host);
        free(c);
        return -ENOENT;
    }
    if (c->tls) {
        c->ctx = sb_tls_client_ctx(opts->ca_file, err, errlen);
        if (!c->ctx) {
            freeaddrinfo(c->ais);
            free((void *)c->o.tls_host);
            free(c);
            return -EIO;
        }
        SSL_CTX_set_session_cache_mode(c->ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c->ctx, new_session);
    }
    *out = c;
    return 0;
}

static void maybe_free(struct sb_http_client *c)
{
    if (c->nconns > 0 || c->defer_posted)
        return;
    if (c->session)
        SSL_SESSION_free(c->session);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    freeaddrinfo(c->ais);
    free((void *)c->o.tls_host);
    free(c);
}

void sb_http_client_free(struct sb_http_client *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = true;
    struct req *r;
    while ((r = dequeue(c)) != NULL)
        req_fail(r, -ECANCELED, "client closed");
    for (struct conn *k = c->conns; k; k = k->next) {
        if (k->req) {
            struct req *q = k->req;
            k->req = NULL;
            req_fail(q, -ECANCELED, "client closed");
        }
        sb_stream_close(&k->s, -ECANCELED);
    }
    maybe_free(c);
}

void sb_http_client_get_stats(const struct sb_http_client *c, struct sb_http_client_stats *st)
{
    *st = c->st;
    st->open = c->nconns;
    st->queued = c->nqueued;
}
