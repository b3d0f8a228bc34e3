/* stream.h: a TCP byte stream on the loop, optionally TLS (OpenSSL over memory BIOs), with one
 * recv and one send in flight at a time. The HTTP client and server are built on it.
 *
 * The owner embeds a struct sb_stream, gives callbacks, and frees its memory only in on_close,
 * which is the last call the stream makes (after every SQE of the stream has completed).
 * Single-threaded, loop thread only.
 */
#ifndef SEGBUS_NET_STREAM_H
#define SEGBUS_NET_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "common/buf.h"
#include "net/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_stream;

struct sb_stream_cbs {
    /* Plaintext arrived in s->in (from s->in_off); consume it with sb_stream_consume(). Also
     * called once with s->eof set when the peer closed its side: reading stops, and the owner
     * closes the stream when it is done (it may still write, e.g. answer a half-closed client). */
    void (*on_read)(struct sb_stream *s);
    /* Client side: TCP connected and, with TLS, handshake done and verified (err 0), or failed
     * (-errno; s->errmsg says why). Not called after the stream was closed by its owner. */
    void (*on_connected)(struct sb_stream *s, int err);
    /* Optional: everything written so far has been handed to the kernel. */
    void (*on_drained)(struct sb_stream *s);
    /* The last call: fd closed, all ops done. err is what sb_stream_close() was given. */
    void (*on_close)(struct sb_stream *s, int err);
};

struct sb_stream {
    struct sb_loop *loop;
    int fd;
    const struct sb_stream_cbs *cbs;
    void *owner;

    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    bool tls_server, handshake_done;
    struct sb_buf tls_plain; /* plaintext written before the handshake finished */

    struct sb_op connect_op, recv_op, send_op, finish_op;
    struct sb_timer timer;
    uint64_t deadline_at; /* when deadline_fn is due (sb_now_ns), 0: none */
    uint64_t timer_at;    /* when the armed timer fires */
    void (*deadline_fn)(struct sb_stream *s);
    bool connect_armed, recv_armed, send_armed, finish_posted;

    uint8_t *rx;      /* recv staging buffer (SB_STREAM_RX bytes) */
    struct sb_buf in; /* plaintext received */
    size_t in_off;    /* consumed prefix of in */
    size_t max_in;    /* stop reading while in holds this much unconsumed */
    bool reading, eof, closing;
    int close_err;

    struct sb_buf sending; /* in flight (immutable until its CQE) */
    size_t sent;
    struct sb_buf queued; /* written after the send was armed */

    struct sockaddr_storage peer;
    socklen_t peer_len;
    uint64_t bytes_in, bytes_out;
    char errmsg[200];
};

#define SB_STREAM_RX 16384

/* Set up a stream on a connected or to-be-connected fd (the stream owns fd from now on, even on
 * failure). 0 or -ENOMEM. */
int sb_stream_init(struct sb_stream *s, struct sb_loop *loop, int fd,
                   const struct sb_stream_cbs *cbs, void *owner);
/* Turn on TLS: server side, or client side with SNI and hostname/IP verification against host
 * (the SSL_CTX decides the trust store; verification is required). 0 or -errno. */
int sb_stream_tls(struct sb_stream *s, SSL_CTX *ctx, bool server, const char *host);
/* Client: connect to addr (copied) with IORING_OP_CONNECT; then the TLS handshake if enabled;
 * then on_connected. 0 or -errno. */
int sb_stream_connect(struct sb_stream *s, const struct sockaddr *addr, socklen_t len);
/* Start (or resume) reading; server streams call this after accept. */
void sb_stream_read(struct sb_stream *s, bool on);
/* Queue bytes to send (copied). 0, -ENOMEM, or -EPIPE once closing. */
int sb_stream_write(struct sb_stream *s, const void *data, size_t len);
/* Bytes still queued or in flight. */
size_t sb_stream_unsent(const struct sb_stream *s);
/* Mark n plaintext bytes of s->in as handled. */
void sb_stream_consume(struct sb_stream *s, size_t n);
static inline size_t sb_stream_avail(const struct sb_stream *s)
{
    return s->in.len - s->in_off;
}
static inline const uint8_t *sb_stream_data(const struct sb_stream *s)
{
    return s->in.data + s->in_off;
}
/* A deadline for the stream (replaces the previous one); fn runs on the loop when it passes.
 * Cheap to move often: the one kernel timer is only re-armed when the deadline comes earlier
 * than it, and a timer that fires early re-arms itself for the current deadline. */
int sb_stream_deadline(struct sb_stream *s, uint64_t after_ns, void (*fn)(struct sb_stream *s));
void sb_stream_no_deadline(struct sb_stream *s);
/* Close (idempotent): shuts the socket down, cancels its ops, then calls on_close(err) from the
 * loop once all of them have completed. */
void sb_stream_close(struct sb_stream *s, int err);

#ifdef __cplusplus
}
#endif
#endif
