/* http.h: HTTP/1.1 messages for the client and server: an incremental parser (http-parser)
 * with size limits, header lookup, Retry-After, and gzip helpers (zlib). */
#ifndef SEGBUS_NET_HTTP_H
#define SEGBUS_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <http_parser.h>

#include "common/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_http_header {
    const char *name; /* NUL-terminated; names compare case-insensitively */
    const char *value;
};

/* A parsed request or response. Strings are NUL-terminated and owned by the parser; valid
 * until the parser moves to the next message (sb_http_parser_next) or is freed. */
struct sb_http_message {
    const char *method; /* requests: "GET", "POST", ... */
    const char *target; /* requests: the request target as sent ("/v1/batch?x=1") */
    const char *path;   /* requests: target without the query */
    int status;         /* responses */
    const struct sb_http_header *headers;
    size_t nheaders;
    const uint8_t *body; /* de-chunked; not inflated (see sb_gunzip) */
    size_t body_len;
    bool keep_alive; /* the peer allows another message on this connection */
    unsigned version_minor;
};

/* Case-insensitive lookup of the first header of that name; NULL when absent. */
const char *sb_http_header_get(const struct sb_http_message *m, const char *name);

struct sb_http_limits {
    size_t max_header_bytes; /* request/status line + headers; default 16 KiB (431 / -E2BIG) */
    size_t max_body_bytes;   /* default 1 MiB (413 / -EFBIG) */
    unsigned max_headers;    /* default 100 (431) */
};

enum sb_http_kind { SB_HTTP_REQUEST, SB_HTTP_RESPONSE };

struct sb_http_parser {
    http_parser hp;
    enum sb_http_kind kind;
    struct sb_http_limits lim;
    struct sb_buf url;  /* target NUL path NUL */
    struct sb_buf strs; /* header names and values, NUL-separated */
    struct sb_buf hdr_offs;
    struct sb_buf hdrs; /* struct sb_http_header[] built when the headers are complete */
    struct sb_buf body;
    size_t header_bytes;
    int last_cb; /* 0 none, 1 field, 2 value: a field or value may arrive in pieces */
    bool started, headers_done, done, failed, head_response;
    int err;
    int error_status; /* requests: the status to answer a bad message with */
    char error[160];
    struct sb_http_message msg;
};

/* Prepare a parser (limits NULL: defaults). 0. Free with sb_http_parser_free. */
int sb_http_parser_init(struct sb_http_parser *p, enum sb_http_kind kind,
                        const struct sb_http_limits *limits);
void sb_http_parser_free(struct sb_http_parser *p);
/* Feed bytes. Returns the number consumed; stops right after a complete message (then
 * sb_http_parser_done() is true and the rest of the input belongs to the next message), or
 * -EPROTO/-E2BIG/-EFBIG/-ENOMEM with p->error naming what is wrong (requests: p->error_status is
 * 400, 413, 431 or 505). A parser that failed stays failed. */
ssize_t sb_http_parser_feed(struct sb_http_parser *p, const uint8_t *data, size_t len);
/* The peer closed: completes a response whose body runs to the end of the stream. 0 or -EPROTO
 * (the message was cut short). */
int sb_http_parser_eof(struct sb_http_parser *p);
static inline bool sb_http_parser_done(const struct sb_http_parser *p)
{
    return p->done;
}
/* True once any byte of a message has been parsed and the message is not complete. */
bool sb_http_parser_busy(const struct sb_http_parser *p);
static inline const struct sb_http_message *sb_http_parser_msg(const struct sb_http_parser *p)
{
    return &p->msg;
}
/* Responses: the next response answers a HEAD request (it has no body). */
static inline void sb_http_parser_expect_head(struct sb_http_parser *p, bool head)
{
    p->head_response = head;
}
/* Forget the message just handled and get ready for the next one. */
void sb_http_parser_next(struct sb_http_parser *p);

/* Retry-After as seconds from now (delta-seconds or an HTTP-date, RFC 9110 10.2.3), clamped to
 * [0, max_s]; -1 when absent or not understood. */
int64_t sb_http_retry_after(const char *value, int64_t max_s);

/* The reason phrase of a status code ("Not Found"); "Unknown" for others. */
const char *sb_http_reason(int status);

/* "Basic <base64(user:pass)>" into out (NUL-terminated), e.g. Segment's write key as the user
 * and an empty password. Returns its length, -ENOSPC if out is too small, -EINVAL for a user
 * with a colon. */
int sb_http_basic_auth(char *out, size_t outlen, const char *user, const char *pass);

/* gzip (RFC 1952) data into out (appended). 0 or -ENOMEM. level -1: zlib default. */
int sb_gzip(struct sb_buf *out, const void *data, size_t len, int level);
/* Inflate gzip (or zlib) data into out (appended), at most max_out bytes. 0, -EFBIG when the
 * output would exceed max_out, -EPROTO for corrupt or truncated input, -ENOMEM. */
int sb_gunzip(struct sb_buf *out, const void *data, size_t len, size_t max_out);

#ifdef __cplusplus
}
#endif
#endif
