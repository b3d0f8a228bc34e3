/* verify.c (fuzz): the event verifier on arbitrary bytes (what a producer may leave in the
 * ring): it must answer valid or a reason, never crash or read out of bounds, and what it
 * accepts must have its messageId inside the input. The drain's messageId guess (a prefetch
 * hint) runs on the same bytes and must stay inside them too. */
#include <stdint.h>
#include <stdlib.h>

#include "pipeline/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_event_meta meta = {0};
    int rc = sb_event_inspect(data, size, &meta);
    const uint8_t *id;
    size_t id_len;

    if (sb_event_guess_message_id(data, size, &id, &id_len) &&
        (id < data || id_len > size || id + id_len > data + size))
        abort();

    if (rc == 0) {
        if (!meta.message_id || meta.message_id < data ||
            meta.message_id + meta.message_id_len > data + size || meta.call >= SB_CALL_COUNT)
            abort();
    } else if (rc < -SB_VERIFY_REASON_COUNT || rc > 0) {
        abort();
    }
    return 0;
}
