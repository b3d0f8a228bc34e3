/* http_response.c: fuzz the client's response path: the HTTP/1.1 response parser (chunked,
 * Content-Length, read-to-close bodies, 1xx interim responses), Retry-After as both the client
 * and the outputs' retry policy read it, and end of stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "pipeline/retry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool head = data[0] & 1;
    bool eof = data[0] & 2;
    data++;
    size--;
    struct sb_http_limits lim = {2048, 8192, 32};
    struct sb_http_parser p;
    sb_http_parser_init(&p, SB_HTTP_RESPONSE, &lim);
    sb_http_parser_expect_head(&p, head);
    while (size > 0) {
        ssize_t used = sb_http_parser_feed(&p, data, size);
        if (used < 0)
            break;
        if ((size_t)used > size)
            abort();
        data += used;
        size -= (size_t)used;
        if (!sb_http_parser_done(&p)) {
            if (used == 0)
                abort();
            continue;
        }
        const struct sb_http_message *m = sb_http_parser_msg(&p);
        if (m->body_len > lim.max_body_bytes || (head && m->body_len))
            abort();
        const char *ra_text = sb_http_header_get(m, "Retry-After");
        int64_t ra = sb_http_retry_after(ra_text, 300);
        if (ra < -1 || ra > 300)
            abort();
        uint64_t delay = 0;
        if (sb_retry_after_parse(ra_text, 1801353600, &delay) == 0 && delay > SB_RETRY_AFTER_CAP_NS)
            abort(); /* a server can never make an output wait longer than 300 s */
        sb_http_parser_next(&p);
        sb_http_parser_expect_head(&p, head);
    }
    if (eof && !p.failed) {
        int r = sb_http_parser_eof(&p);
        if (r == 0 && sb_http_parser_done(&p) && sb_http_parser_msg(&p)->body_len > 8192)
            abort();
    }
    sb_http_parser_free(&p);
    return 0;
}
