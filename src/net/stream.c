/* stream.c: TCP (+ TLS over memory BIOs) byte stream driven by io_uring connect/recv/send. */
#include "net/stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static void maybe_finish(struct sb_stream *s);
static void arm_recv(struct sb_stream *s);
static void kick_send(struct sb_stream *s);

int sb_stream_init(struct sb_stream *s, struct sb_loop *loop, int fd,
                   const struct sb_stream_cbs *cbs, void *owner)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->fd = fd;
    s->cbs = cbs;
    s->owner = owner;
    s->max_in = 1u << 20;
    s->rx = malloc(SB_STREAM_RX);
    if (!s->rx) {
        close(fd);
        s->fd = -1;
        return -ENOMEM;
    }
    return 0;
}

int sb_stream_tls(struct sb_stream *s, SSL_CTX *ctx, bool server, const char *host)
{
    s->ssl = SSL_new(ctx);
    if (!s->ssl)
        return -ENOMEM;
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->rbio || !s->wbio) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        s->rbio = s->wbio = NULL;
        return -ENOMEM;
    }
    /* An empty rbio means "wait for the socket" (WANT_READ), not end of stream. */
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    s->tls_server = server;
    if (server) {
        SSL_set_accept_state(s->ssl);
        return 0;
    }
    SSL_set_connect_state(s->ssl);
    if (host && *host) {
        /* An IP literal is checked against the certificate's IP SANs and gets no SNI (RFC 6066
         * forbids IP addresses in SNI); a name gets both. */
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
        if (ip) {
            ASN1_OCTET_STRING_free(ip);
            if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), host))
                return -EINVAL;
        } else {
            if (!SSL_set_tlsext_host_name(s->ssl, host) || !SSL_set1_host(s->ssl, host))
                return -EINVAL;
        }
    }
    SSL_set_verify(s->ssl, SSL_VERIFY_PEER, NULL);
    return 0;
}

static void tls_fail(struct sb_stream *s, const char *what)
{
    long vr = s->ssl ? SSL_get_verify_result(s->ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    char ebuf[120] = "";
    if (e)
        ERR_error_string_n(e, ebuf, sizeof(ebuf));
    if (vr != X509_V_OK)
        snprintf(s->errmsg, sizeof(s->errmsg), "TLS %s: certificate verify failed: %s", what,
                 X509_verify_cert_error_string(vr));
    else
        snprintf(s->errmsg, sizeof(s->errmsg), "TLS %s failed: %s", what,
                 ebuf[0] ? ebuf : "protocol error");
    ERR_clear_error();
}

/* Move ciphertext OpenSSL produced into the send queue. Called after every SSL call: pending
 * output must go out before we wait for input, or both sides wait forever. */
static int flush_wbio(struct sb_stream *s)
{
    size_t pending;
    while ((pending = BIO_ctrl_pending(s->wbio)) > 0) {
        if (sb_buf_reserve(&s->queued, pending) < 0)
            return -ENOMEM;
        int n = BIO_read(s->wbio, s->queued.data + s->queued.len, (int)pending);
        if (n <= 0)
            break;
        s->queued.len += (size_t)n;
    }
    kick_send(s);
    return 0;
}

static int tls_write_plain(struct sb_stream *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = SSL_write(s->ssl, p, chunk);
        if (n <= 0) {
            tls_fail(s, "write");
            return -EPROTO;
        }
        p += n;
        len -= (size_t)n;
    }
    return flush_wbio(s);
}

/* Run the handshake and decrypt what arrived. Returns 0, or -errno after which the stream is
 * being closed. */
static int tls_pump(struct sb_stream *s)
{
    if (!s->handshake_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return flush_wbio(s);
            flush_wbio(s); /* let the alert reach the peer */
            tls_fail(s, "handshake");
            return -ECONNABORTED;
        }
        s->handshake_done = true;
        int ret = flush_wbio(s);
        if (ret == 0 && s->tls_plain.len) {
            ret = tls_write_plain(s, s->tls_plain.data, s->tls_plain.len);
            sb_buf_free(&s->tls_plain);
        }
        if (ret < 0)
            return ret;
        if (!s->tls_server && s->cbs->on_connected)
            s->cbs->on_connected(s, 0);
        if (s->closing)
            return 0;
    }
    for (;;) {
        if (sb_buf_reserve(&s->in, 16384) < 0)
            return -ENOMEM;
        ERR_clear_error();
        int n = SSL_read(s->ssl, s->in.data + s->in.len, 16384);
        if (n > 0) {
            s->in.len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
            s->eof = true;
            break;
        }
        tls_fail(s, "read");
        return -EPROTO;
    }
    return flush_wbio(s); /* session tickets, key updates */
}

static void timer_idle(struct sb_timer *t)
{
    maybe_finish(SB_CONTAINER_OF(t, struct sb_stream, timer));
}

static void finish_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    struct sb_stream *s = SB_CONTAINER_OF(op, struct sb_stream, finish_op);
    s->finish_posted = false;
    if (s->connect_armed || s->recv_armed || s->send_armed)
        return; /* their CQEs call maybe_finish again */
    if (!sb_timer_idle(&s->timer)) {
        /* The cancelled timeout's CQE is on its way (through task work, so only once the loop
         * waits): be called then rather than spin on NOPs until it comes. */
        s->timer.idle_fn = timer_idle;
        return;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (s->ssl) {
        /* Freeing an SSL that was not shut down marks its session not resumable. A close for
         * a TLS or protocol error should, but an ordinary close (idle, done, owner's choice)
         * should not cost the next connection a full handshake. */
        if (s->handshake_done && s->close_err != -EPROTO && s->close_err != -ECONNABORTED)
            SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(s->ssl);
    }
    s->ssl = NULL;
    free(s->rx);
    s->rx = NULL;
    sb_buf_free(&s->in);
    sb_buf_free(&s->sending);
    sb_buf_free(&s->queued);
    sb_buf_free(&s->tls_plain);
    s->cbs->on_close(s, s->close_err); /* may free s */
}

/* The owner's memory is released only from a CQE of our own (finish_op): every other path may
 * still be inside a callback that touches the stream afterwards. */
static void maybe_finish(struct sb_stream *s)
{
    if (!s->closing || s->finish_posted || s->connect_armed || s->recv_armed || s->send_armed)
        return;
    struct io_uring_sqe *sqe = sb_loop_sqe(s->loop, &s->finish_op, finish_cqe);
    if (!sqe)
        return; /* cannot happen after a submit; nothing better to do */
    io_uring_prep_nop(sqe);
    s->finish_posted = true;
}

void sb_stream_close(struct sb_stream *s, int err)
{
    if (s->closing)
        return;
    s->closing = true;
    s->close_err = err;
    sb_timer_cancel(s->loop, &s->timer);
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR); /* completes a pending recv (0) and send (-EPIPE) */
    if (s->connect_armed)
        sb_loop_cancel(s->loop, &s->connect_op);
    if (s->recv_armed)
        sb_loop_cancel(s->loop, &s->recv_op);
    if (s->send_armed)
        sb_loop_cancel(s->loop, &s->send_op);
    maybe_finish(s);
}

static void recv_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct sb_stream *s = SB_CONTAINER_OF(op, struct sb_stream, recv_op);
    s->recv_armed = false;
    if (s->closing) {
        maybe_finish(s);
        return;
    }
    if (res == -EINTR || res == -EAGAIN) {
        arm_recv(s);
        return;
    }
    if (res < 0) {
        snprintf(s->errmsg, sizeof(s->errmsg), "recv: %s", strerror(-res));
        sb_stream_close(s, res);
        return;
    }
    s->bytes_in += (uint64_t)res;
    if (res == 0) {
        s->eof = true;
    } else if (s->ssl) {
        if (BIO_write(s->rbio, s->rx, res) != res) {
            sb_stream_close(s, -ENOMEM);
            return;
        }
        int ret = tls_pump(s);
        if (ret < 0) {
            if (!s->handshake_done && !s->tls_server && s->cbs->on_connected)
                s->cbs->on_connected(s, ret);
            sb_stream_close(s, ret);
            return;
        }
        if (s->closing)
            return;
    } else if (sb_buf_append(&s->in, s->rx, (size_t)res) < 0) {
        sb_stream_close(s, -ENOMEM);
        return;
    }
    if (s->eof && s->ssl && !s->handshake_done) {
        snprintf(s->errmsg, sizeof(s->errmsg), "TLS handshake: connection closed by the peer");
        if (!s->tls_server && s->cbs->on_connected)
            s->cbs->on_connected(s, -ECONNRESET);
        sb_stream_close(s, -ECONNRESET);
        return;
    }
    s->cbs->on_read(s);
    if (s->closing || s->eof)
        return; /* at EOF the owner decides when to close (it may still have to answer) */
    arm_recv(s);
}

static void arm_recv(struct sb_stream *s)
{
    if (s->recv_armed || s->closing || !s->reading || s->eof || s->fd < 0 || s->connect_armed)
        return;
    if (sb_stream_avail(s) >= s->max_in)
        return; /* back-pressure: the owner has not consumed what it has */
    struct io_uring_sqe *sqe = sb_loop_sqe(s->loop, &s->recv_op, recv_cqe);
    if (!sqe) {
        sb_stream_close(s, -EBUSY);
        return;
    }
    io_uring_prep_recv(sqe, s->fd, s->rx, SB_STREAM_RX, 0);
    s->recv_armed = true;
}

void sb_stream_read(struct sb_stream *s, bool on)
{
    s->reading = on;
    if (on)
        arm_recv(s);
}

static void send_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct sb_stream *s = SB_CONTAINER_OF(op, struct sb_stream, send_op);
    s->send_armed = false;
    if (s->closing) {
        maybe_finish(s);
        return;
    }
    if (res == 0)
        res = -EPIPE; /* nothing sent of a non-empty buffer: do not spin on it */
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
        snprintf(s->errmsg, sizeof(s->errmsg), "send: %s", strerror(-res));
        sb_stream_close(s, res);
        return;
    }
    if (res > 0) {
        s->sent += (size_t)res;
        s->bytes_out += (uint64_t)res;
    }
    if (s->sent >= s->sending.len) {
        sb_buf_clear(&s->sending);
        s->sent = 0;
    }
    kick_send(s);
    if (!s->send_armed && !s->closing && s->cbs->on_drained)
        s->cbs->on_drained(s);
}

/* One send in flight per socket: two SENDs on one TCP socket may complete out of order. */
static void kick_send(struct sb_stream *s)
{
    if (s->send_armed || s->closing || s->connect_armed || s->fd < 0)
        return;
    if (s->sent >= s->sending.len) {
        if (s->queued.len == 0)
            return;
        struct sb_buf t = s->sending;
        s->sending = s->queued;
        s->queued = t;
        sb_buf_clear(&s->queued);
        s->sent = 0;
    }
    struct io_uring_sqe *sqe = sb_loop_sqe(s->loop, &s->send_op, send_cqe);
    if (!sqe) {
        sb_stream_close(s, -EBUSY);
        return;
    }
    io_uring_prep_send(sqe, s->fd, s->sending.data + s->sent, s->sending.len - s->sent,
                       MSG_NOSIGNAL | MSG_WAITALL);
    s->send_armed = true;
}

int sb_stream_write(struct sb_stream *s, const void *data, size_t len)
{
    if (s->closing)
        return -EPIPE;
    if (len == 0)
        return 0;
    if (s->ssl && !s->handshake_done)
        return sb_buf_append(&s->tls_plain, data, len);
    if (s->ssl) {
        int ret = tls_write_plain(s, data, len);
        if (ret < 0)
            sb_stream_close(s, ret);
        return ret;
    }
    if (sb_buf_append(&s->queued, data, len) < 0)
        return -ENOMEM;
    kick_send(s);
    return 0;
}

size_t sb_stream_unsent(const struct sb_stream *s)
{
    return (s->sending.len - s->sent) + s->queued.len + s->tls_plain.len +
           (s->wbio ? BIO_ctrl_pending(s->wbio) : 0);
}

void sb_stream_consume(struct sb_stream *s, size_t n)
{
    s->in_off += n;
    if (s->in_off >= s->in.len) {
        s->in.len = 0;
        s->in_off = 0;
    } else if (s->in_off > 65536 && s->in_off * 2 > s->in.len) {
        memmove(s->in.data, s->in.data + s->in_off, s->in.len - s->in_off);
        s->in.len -= s->in_off;
        s->in_off = 0;
    }
    arm_recv(s);
}

static void connect_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct sb_stream *s = SB_CONTAINER_OF(op, struct sb_stream, connect_op);
    s->connect_armed = false;
    if (s->closing) {
        maybe_finish(s);
        return;
    }
    if (res < 0) {
        snprintf(s->errmsg, sizeof(s->errmsg), "connect: %s", strerror(-res));
        if (s->cbs->on_connected)
            s->cbs->on_connected(s, res);
        sb_stream_close(s, res);
        return;
    }
    s->reading = true;
    if (s->ssl) {
        int ret = tls_pump(s); /* sends the ClientHello */
        if (ret < 0) {
            if (s->cbs->on_connected)
                s->cbs->on_connected(s, ret);
            sb_stream_close(s, ret);
            return;
        }
    } else if (s->cbs->on_connected) {
        s->cbs->on_connected(s, 0);
    }
    kick_send(s);
    arm_recv(s);
}

int sb_stream_connect(struct sb_stream *s, const struct sockaddr *addr, socklen_t len)
{
    if (len > sizeof(s->peer))
        return -EINVAL;
    memcpy(&s->peer, addr, len);
    s->peer_len = len;
    struct io_uring_sqe *sqe = sb_loop_sqe(s->loop, &s->connect_op, connect_cqe);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_connect(sqe, s->fd, (struct sockaddr *)&s->peer, s->peer_len);
    s->connect_armed = true;
    return 0;
}

static void deadline_fire(struct sb_timer *t)
{
    struct sb_stream *s = SB_CONTAINER_OF(t, struct sb_stream, timer);
    s->timer_at = 0;
    if (s->closing) {
        maybe_finish(s); /* a close whose cancel came too late may be waiting for this */
        return;
    }
    if (s->deadline_at == 0)
        return;
    uint64_t now = sb_now_ns();
    if (now < s->deadline_at) { /* the deadline moved later since the timer was armed */
        s->timer_at = s->deadline_at;
        sb_timer_start(s->loop, &s->timer, s->deadline_at - now, deadline_fire);
        return;
    }
    s->deadline_at = 0;
    s->deadline_fn(s);
}

int sb_stream_deadline(struct sb_stream *s, uint64_t after_ns, void (*fn)(struct sb_stream *s))
{
    if (s->closing)
        return 0;
    s->deadline_at = sb_now_ns() + after_ns;
    s->deadline_fn = fn;
    if (s->timer_at && s->timer_at <= s->deadline_at)
        return 0; /* fires first and re-arms for the rest */
    s->timer_at = s->deadline_at;
    return sb_timer_start(s->loop, &s->timer, after_ns, deadline_fire);
}

void sb_stream_no_deadline(struct sb_stream *s)
{
    s->deadline_at = 0; /* the armed timer, if any, finds nothing to do */
}
