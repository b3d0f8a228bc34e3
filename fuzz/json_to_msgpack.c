/* fuzz/json_to_msgpack.c: JSON text from outside; simdjson and the offset checker must agree,
 * and whatever is accepted must survive msgpack -> JSON -> msgpack unchanged. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "json/json_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_sbuffer a, b;
    msgpack_packer pa, pb;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
    msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
    struct sb_json_error err, err2;
    int rc = sb_json_to_msgpack((const char *)data, size, &pa, &err);
    int rc2 = sb_json_locate((const char *)data, size, &err2);
    if (rc != rc2 && rc != -ENOMEM)
        abort(); /* simdjson and the checker disagree on validity */
    if (rc < 0 && (err.offset != err2.offset || err.offset > size || !err.reason))
        abort();
    if (rc == 0) {
        struct sb_buf out = SB_BUF_INIT;
        size_t used = 0;
        if (sb_msgpack_to_json((const uint8_t *)a.data, a.size, &used, &out) != 0 || used != a.size)
            abort();
        if (sb_json_to_msgpack((const char *)out.data, out.len, &pb, &err) != 0)
            abort();
        /* NaN cannot come from JSON, so the bytes must be identical. */
        if (a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
            abort();
        sb_buf_free(&out);
    }
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    return 0;
}
