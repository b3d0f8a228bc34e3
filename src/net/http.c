/* http.c: incremental HTTP/1.1 parsing with limits (http-parser), Retry-After, gzip (zlib). */
#include "net/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zlib.h>

static const struct sb_http_limits default_limits = {16384, 1u << 20, 100};

static struct sb_http_parser *P(http_parser *hp)
{
    return (struct sb_http_parser *)hp->data;
}

static int fail(struct sb_http_parser *p, int err, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct sb_http_parser *p, int err, int status, const char *fmt, ...)
{
    if (!p->failed) {
        p->failed = true;
        p->err = err;
        p->error_status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
    }
    return -1; /* stops http_parser_execute */
}

static int count_header_bytes(struct sb_http_parser *p, size_t len)
{
    p->header_bytes += len;
    if (p->header_bytes > p->lim.max_header_bytes)
        return fail(p, -E2BIG, 431, "request line and headers exceed %zu bytes",
                    p->lim.max_header_bytes);
    return 0;
}

static int on_message_begin(http_parser *hp)
{
    P(hp)->started = true;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct sb_http_parser *p = P(hp);
    if (count_header_bytes(p, len) < 0)
        return -1;
    if (sb_buf_append(&p->url, at, len) < 0)
        return fail(p, -ENOMEM, 500, "out of memory");
    return 0;
}

static int on_status(http_parser *hp, const char *at, size_t len)
{
    (void)at;
    return count_header_bytes(P(hp), len);
}

static int nul(struct sb_http_parser *p, struct sb_buf *b)
{
    if (sb_buf_append(b, "", 1) < 0)
        return fail(p, -ENOMEM, 500, "out of memory");
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct sb_http_parser *p = P(hp);
    if (count_header_bytes(p, len) < 0)
        return -1;
    if (p->headers_done)
        return 0; /* a trailer after a chunked body: counted, not kept (the headers point into
                     strs, which must not move any more) */
    if (p->last_cb != 1) {
        if (p->last_cb == 2 && nul(p, &p->strs) < 0)
            return -1;
        size_t n = p->hdr_offs.len / (2 * sizeof(size_t));
        if (n >= p->lim.max_headers)
            return fail(p, -E2BIG, 431, "more than %u header fields", p->lim.max_headers);
        size_t off[2] = {p->strs.len, 0};
        if (sb_buf_append(&p->hdr_offs, off, sizeof(off)) < 0)
            return fail(p, -ENOMEM, 500, "out of memory");
        p->last_cb = 1;
    }
    if (sb_buf_append(&p->strs, at, len) < 0)
        return fail(p, -ENOMEM, 500, "out of memory");
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct sb_http_parser *p = P(hp);
    if (count_header_bytes(p, len) < 0)
        return -1;
    if (p->headers_done)
        return 0; /* a trailer after a chunked body: counted, not kept (the headers point into
                     strs, which must not move any more) */
    if (p->last_cb != 2) {
        if (nul(p, &p->strs) < 0)
            return -1;
        size_t *offs = (size_t *)(void *)p->hdr_offs.data;
        size_t n = p->hdr_offs.len / (2 * sizeof(size_t));
        offs[2 * (n - 1) + 1] = p->strs.len;
        p->last_cb = 2;
    }
    if (sb_buf_append(&p->strs, at, len) < 0)
        return fail(p, -ENOMEM, 500, "out of memory");
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct sb_http_parser *p = P(hp);
    if (p->last_cb == 1) {
        /* a field without a value cannot be produced by http-parser, but stay safe */
        if (nul(p, &p->strs) < 0)
            return -1;
        size_t *offs = (size_t *)(void *)p->hdr_offs.data;
        size_t n = p->hdr_offs.len / (2 * sizeof(size_t));
        offs[2 * (n - 1) + 1] = p->strs.len;
    }
    if (p->last_cb != 0 && nul(p, &p->strs) < 0)
        return -1;
    size_t n = p->hdr_offs.len / (2 * sizeof(size_t));
    sb_buf_clear(&p->hdrs);
    if (sb_buf_reserve(&p->hdrs, (n + 1) * sizeof(struct sb_http_header)) < 0)
        return fail(p, -ENOMEM, 500, "out of memory");
    struct sb_http_header *h = (struct sb_http_header *)(void *)p->hdrs.data;
    const size_t *offs = (const size_t *)(const void *)p->hdr_offs.data;
    for (size_t i = 0; i < n; i++) {
        h[i].name = (const char *)p->strs.data + offs[2 * i];
        h[i].value = (const char *)p->strs.data + offs[2 * i + 1];
    }
    p->hdrs.len = n * sizeof(*h);
    p->msg.headers = h;
    p->msg.nheaders = n;
    p->msg.version_minor = hp->http_minor;
    if (p->kind == SB_HTTP_REQUEST) {
        if (hp->http_major != 1)
            return fail(p, -EPROTO, 505, "HTTP/%u.%u is not supported", hp->http_major,
                        hp->http_minor);
        size_t ulen = p->url.len;
        if (ulen == 0)
            return fail(p, -EPROTO, 400, "empty request target");
        if (nul(p, &p->url) < 0)
            return -1;
        const char *q = memchr(p->url.data, '?', ulen);
        size_t plen = q ? (size_t)(q - (const char *)p->url.data) : ulen;
        /* path = target up to '?', stored after it; reserve first: appending a buffer to
         * itself would read freed memory if it moved */
        if (sb_buf_reserve(&p->url, plen + 1) < 0)
            return fail(p, -ENOMEM, 500, "out of memory");
        memcpy(p->url.data + p->url.len, p->url.data, plen);
        p->url.len += plen;
        if (nul(p, &p->url) < 0)
            return -1;
        p->msg.target = (const char *)p->url.data;
        p->msg.path = (const char *)p->url.data + ulen + 1;
        p->msg.method = http_method_str((enum http_method)hp->method);
    } else {
        p->msg.status = hp->status_code;
    }
    /* Refuse an oversized body before reading it. */
    if ((hp->flags & F_CHUNKED) == 0 && hp->content_length != UINT64_MAX &&
        hp->content_length > p->lim.max_body_bytes)
        return fail(p, -EFBIG, 413, "body of %llu bytes exceeds the limit of %zu bytes",
                    (unsigned long long)hp->content_length, p->lim.max_body_bytes);
    p->headers_done = true;
    if (p->kind == SB_HTTP_RESPONSE && (p->head_response || hp->status_code == 204 ||
                                        hp->status_code == 304 || hp->status_code / 100 == 1))
        return 1; /* no body follows */
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct sb_http_parser *p = P(hp);
    if (p->body.len + len > p->lim.max_body_bytes)
        return fail(p, -EFBIG, 413, "body exceeds the limit of %zu bytes", p->lim.max_body_bytes);
    if (sb_buf_append(&p->body, at, len) < 0)
        return fail(p, -ENOMEM, 500, "out of memory");
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct sb_http_parser *p = P(hp);
    if (p->kind == SB_HTTP_RESPONSE && hp->status_code / 100 == 1) {
        /* 100 Continue and friends: an interim response, wait for the real one */
        sb_http_parser_next(p);
        return 0;
    }
    p->msg.body = p->body.data ? p->body.data : (const uint8_t *)"";
    p->msg.body_len = p->body.len;
    p->msg.keep_alive = http_should_keep_alive(hp) != 0;
    p->done = true;
    /* Stop after this message: with pipelining the rest of the input is the next request, and
     * it must wait until this one is answered. */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int sb_http_parser_init(struct sb_http_parser *p, enum sb_http_kind kind,
                        const struct sb_http_limits *limits)
{
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->lim = limits ? *limits : default_limits;
    if (!p->lim.max_header_bytes)
        p->lim.max_header_bytes = default_limits.max_header_bytes;
    if (!p->lim.max_body_bytes)
        p->lim.max_body_bytes = default_limits.max_body_bytes;
    if (!p->lim.max_headers)
        p->lim.max_headers = default_limits.max_headers;
    http_parser_init(&p->hp, kind == SB_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
    p->hp.data = p;
    return 0;
}

void sb_http_parser_free(struct sb_http_parser *p)
{
    sb_buf_free(&p->url);
    sb_buf_free(&p->strs);
    sb_buf_free(&p->hdr_offs);
    sb_buf_free(&p->hdrs);
    sb_buf_free(&p->body);
}

void sb_http_parser_next(struct sb_http_parser *p)
{
    sb_buf_clear(&p->url);
    sb_buf_clear(&p->strs);
    sb_buf_clear(&p->hdr_offs);
    sb_buf_clear(&p->hdrs);
    /* A large body buffer is not kept around for the next, probably small, message. */
    if (p->body.cap > 256 * 1024)
        sb_buf_free(&p->body);
    sb_buf_clear(&p->body);
    p->header_bytes = 0;
    p->last_cb = 0;
    p->started = p->headers_done = p->done = false;
    memset(&p->msg, 0, sizeof(p->msg));
    http_parser_pause(&p->hp, 0);
}

bool sb_http_parser_busy(const struct sb_http_parser *p)
{
    return p->started && !p->done;
}

static ssize_t map_error(struct sb_http_parser *p)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    if (!p->failed) {
        if (e == HPE_HEADER_OVERFLOW)
            fail(p, -E2BIG, 431, "headers too large");
        else if (e == HPE_CLOSED_CONNECTION)
            fail(p, -EPROTO, 400, "data after a message that closes the connection");
        else
            fail(p, -EPROTO, 400, "malformed HTTP %s: %s",
                 p->kind == SB_HTTP_REQUEST ? "request" : "response", http_errno_description(e));
    }
    return p->err;
}

ssize_t sb_http_parser_feed(struct sb_http_parser *p, const uint8_t *data, size_t len)
{
    if (p->failed)
        return p->err;
    if (p->done || len == 0)
        return 0;
    size_t n = http_parser_execute(&p->hp, &settings, (const char *)data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    if (p->done)
        return (ssize_t)n;
    if (e != HPE_OK || p->failed)
        return map_error(p);
    if (p->hp.upgrade)
        return fail(p, -EPROTO, 400, "protocol upgrade is not supported"), p->err;
    return (ssize_t)n;
}

int sb_http_parser_eof(struct sb_http_parser *p)
{
    if (p->failed)
        return p->err;
    if (p->done || !p->started)
        return 0;
    http_parser_execute(&p->hp, &settings, NULL, 0);
    if (p->done)
        return 0;
    fail(p, -EPROTO, 400, "connection closed before the end of the %s",
         p->headers_done ? "body" : "headers");
    return p->err;
}

const char *sb_http_header_get(const struct sb_http_message *m, const char *name)
{
    for (size_t i = 0; i < m->nheaders; i++)
        if (strcasecmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return NULL;
}

int64_t sb_http_retry_after(const char *value, int64_t max_s)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    int64_t s;
    if (*value >= '0' && *value <= '9') {
        s = 0;
        const char *c = value;
        for (; *c >= '0' && *c <= '9'; c++) {
            if (s > 100000000) /* far beyond any clamp; avoid overflow */
                s = 100000000;
            else
                s = s * 10 + (*c - '0');
        }
        while (*c == ' ' || *c == '\t')
            c++;
        if (*c)
            return -1;
    } else {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (!end || *end)
            return -1;
        s = (int64_t)timegm(&tm) - (int64_t)time(NULL);
    }
    if (s < 0)
        s = 0;
    if (s > max_s)
        s = max_s;
    return s;
}

const char *sb_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int sb_gzip(struct sb_buf *out, const void *data, size_t len, int level)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    size_t start = out->len;
    uLong bound = deflateBound(&z, (uLong)len);
    if (sb_buf_reserve(out, bound + 32) < 0) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = out->data + start;
    z.avail_out = (uInt)(out->cap - start);
    int r = deflate(&z, Z_FINISH);
    deflateEnd(&z);
    if (r != Z_STREAM_END)
        return -ENOMEM; /* cannot happen with deflateBound room */
    out->len = start + z.total_out;
    return 0;
}

int sb_gunzip(struct sb_buf *out, const void *data, size_t len, size_t max_out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* +32: gzip or zlib header, detected */
        return -ENOMEM;
    size_t start = out->len;
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    int ret = 0;
    for (;;) {
        size_t room = 65536;
        if (out->len - start + room > max_out + 1)
            room = max_out + 1 - (out->len - start);
        if (sb_buf_reserve(out, room) < 0) {
            ret = -ENOMEM;
            break;
        }
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)room;
        int r = inflate(&z, Z_NO_FLUSH);
        out->len += room - z.avail_out;
        if (out->len - start > max_out) {
            ret = -EFBIG;
            break;
        }
        if (r == Z_STREAM_END) {
            ret = z.avail_in == 0 ? 0 : -EPROTO; /* trailing bytes after the gzip member */
            break;
        }
        if (r == Z_OK)
            continue;
        if (r == Z_BUF_ERROR && z.avail_in == 0) {
            ret = -EPROTO; /* truncated */
            break;
        }
        ret = r == Z_MEM_ERROR ? -ENOMEM : -EPROTO;
        break;
    }
    inflateEnd(&z);
    if (ret < 0)
        out->len = start;
    return ret;
}

int sb_http_basic_auth(char *out, size_t outlen, const char *user, const char *pass)
{
    static const char prefix[] = "Basic ";
    size_t ul = strlen(user), pl = strlen(pass);
    if (ul > 4096 || pl > 4096 || strchr(user, ':'))
        return -EINVAL; /* RFC 7617: the user-id cannot contain a colon */
    size_t raw = ul + 1 + pl;
    size_t need = sizeof(prefix) - 1 + 4 * ((raw + 2) / 3) + 1;
    if (outlen < need)
        return -ENOSPC;
    unsigned char *tmp = malloc(raw);
    if (!tmp)
        return -ENOMEM;
    memcpy(tmp, user, ul);
    tmp[ul] = ':';
    memcpy(tmp + ul + 1, pass, pl);
    memcpy(out, prefix, sizeof(prefix) - 1);
    int n = EVP_EncodeBlock((unsigned char *)out + sizeof(prefix) - 1, tmp, (int)raw);
    OPENSSL_cleanse(tmp, raw); /* it held a write key */
    free(tmp);
    return (int)(sizeof(prefix) - 1) + n;
}
