/* http_request.c: fuzz the server's request path: the HTTP/1.1 request parser with small limits,
 * fed in two pieces (split point from the first byte), every pipelined message in turn, and the
 * bounded gzip inflation of bodies that say Content-Encoding: gzip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0] % 64;
    data++;
    size--;
    if (split > size)
        split = size;
    struct sb_http_limits lim = {1024, 4096, 32};
    struct sb_http_parser p;
    sb_http_parser_init(&p, SB_HTTP_REQUEST, &lim);
    const uint8_t *pieces[2] = {data, data + split};
    size_t lens[2] = {split, size - split};
    for (int i = 0; i < 2 && !p.failed; i++) {
        const uint8_t *d = pieces[i];
        size_t n = lens[i];
        while (n > 0) {
            ssize_t used = sb_http_parser_feed(&p, d, n);
            if (used < 0)
                break;
            if ((size_t)used > n)
                abort();
            d += used;
            n -= (size_t)used;
            if (!sb_http_parser_done(&p)) {
                if (used == 0)
                    abort(); /* no progress without a message or an error */
                continue;
            }
            const struct sb_http_message *m = sb_http_parser_msg(&p);
            if (!m->method || !m->target || !m->path || strlen(m->path) > strlen(m->target))
                abort();
            if (m->body_len > lim.max_body_bytes)
                abort();
            for (size_t h = 0; h < m->nheaders; h++)
                if (!m->headers[h].name || !m->headers[h].value)
                    abort();
            const char *ce = sb_http_header_get(m, "Content-Encoding");
            if (ce && strcasecmp(ce, "gzip") == 0) {
                struct sb_buf out = SB_BUF_INIT;
                int r = sb_gunzip(&out, m->body, m->body_len, 8192);
                if (r == 0 && out.len > 8192)
                    abort();
                sb_buf_free(&out);
            }
            sb_http_parser_next(&p);
        }
    }
    if (p.failed && (p.error_status < 400 || p.error[0] == 0))
        abort(); /* every failure names its status and reason */
    sb_http_parser_free(&p);
    return 0;
}
