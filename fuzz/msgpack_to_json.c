/* fuzz/msgpack_to_json.c: msgpack from outside written as JSON; the output must be valid JSON
 * (checked by the strict checker) and the writer must agree with the cursor on what is valid. */
#include <errno.h>
#include <stdlib.h>

#include "json/json.h"
#include "json/json_internal.h"
#include "mp/mp_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_buf out = SB_BUF_INIT;
    size_t used = 0;
    int rc = sb_msgpack_to_json(data, size, &used, &out);
    if (rc == 0) {
        if (used > size || sb_json_locate((const char *)out.data, out.len, NULL) != 0)
            abort();
        if (sb_mp_check(data, used, SB_JSON_MAX_DEPTH) != 0)
            abort();
    } else if (rc == -EINVAL) {
        if (out.len != 0)
            abort(); /* nothing half-written */
        struct sb_mp_reader r;
        sb_mp_reader_init(&r, data, size);
        /* Either malformed for the cursor too, or nested deeper than the writer allows. */
        if (sb_mp_skip(&r) == 0 && sb_mp_check(data, sb_mp_reader_offset(&r), 64) == 0)
            abort();
    }
    sb_buf_free(&out);
    return 0;
}
