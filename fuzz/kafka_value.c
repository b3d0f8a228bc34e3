/* kafka_value.c (fuzz): a Kafka message value as the workers' kafka input reads it (outside
 * bytes: whoever can produce to the topics), decoded as auto, JSON and msgpack, then inspected
 * as an event: never a crash or a read out of bounds, and what is accepted is a map whose bytes
 * lie inside the value or the scratch buffer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "kafka_input/kafka_input.h"
#include "pipeline/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum sb_kafka_value_format fmts[] = {SB_KAFKA_VALUE_AUTO, SB_KAFKA_VALUE_JSON,
                                                      SB_KAFKA_VALUE_MSGPACK};
    msgpack_sbuffer scratch;

    msgpack_sbuffer_init(&scratch);
    for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
        size_t len = 0;
        const uint8_t *ev = sb_kafka_value_decode(fmts[f], data, size, &scratch, &len);
        struct sb_event_meta meta = {0};
        if (!ev)
            continue;
        bool in_value = ev == data && len == size;
        bool in_scratch = ev == (const uint8_t *)scratch.data && len == scratch.size;
        if (!len || (!in_value && !in_scratch))
            abort();
        if ((ev[0] & 0xf0) != 0x80 && ev[0] != 0xde && ev[0] != 0xdf)
            abort();
        (void)sb_event_inspect(ev, len, &meta);
    }
    msgpack_sbuffer_destroy(&scratch);
    return 0;
}
