/* map_set_msgpack.c: fuzz segbus_map_set_msgpack (msgpack bytes from a language binding): never
 * crash or read out of bounds; whatever it accepts must encode into an event that msgpack-c
 * unpacks completely. */
#include <stdint.h>
#include <stdlib.h>

#include <msgpack.h>

#include "event/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    segbus_map_t *m = segbus_map_new();
    if (!m)
        return 0;
    if (segbus_map_set_msgpack(m, data, size) == 0) {
        segbus_message_t msg = SEGBUS_MESSAGE_INIT;
        msg.user_id = "u";
        msg.event = "E";
        msg.properties = m;
        const uint8_t *out;
        size_t len;
        if (sb_event_encode(NULL, SEGBUS_TRACK, &msg, &out, &len, NULL) == 0) {
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            size_t off = 0;
            if (msgpack_unpack_next(&u, (const char *)out, len, &off) != MSGPACK_UNPACK_SUCCESS ||
                off != len)
                abort(); /* an accepted map must make a well-formed event */
            msgpack_unpacked_destroy(&u);
        }
    }
    segbus_map_free(m);
    return 0;
}
