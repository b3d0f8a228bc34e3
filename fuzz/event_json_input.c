/* event_json_input.c: fuzz the JSON-text input path of the event API (properties/context text
 * and segbus_map_add_json): never a crash, and every accepted event is one complete msgpack map
 * that msgpack-c decodes to exactly its length. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "event/event.h"

static void check_event(const uint8_t *out, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, (const char *)out, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || u.data.type != MSGPACK_OBJECT_MAP || len > SEGBUS_MAX_EVENT_BYTES)
        abort();
    msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0; /* the API takes NUL-terminated text; an embedded NUL ends it early */
    const uint8_t *out;
    size_t len;

    segbus_message_t m = {0};
    m.user_id = "u";
    m.event = "Fuzzed";
    m.properties_json = text;
    if (sb_event_encode(NULL, SEGBUS_TRACK, &m, &out, &len, NULL) == 0)
        check_event(out, len);

    m.properties_json = NULL;
    m.context_json = text;
    if (sb_event_encode(NULL, SEGBUS_TRACK, &m, &out, &len, NULL) == 0)
        check_event(out, len);

    segbus_map_t *b = segbus_map_new();
    if (b) {
        segbus_map_add_json(b, "v", (const char *)data, size); /* by length: NULs included */
        m.context_json = NULL;
        m.properties = b;
        int rc = sb_event_encode(NULL, SEGBUS_TRACK, &m, &out, &len, NULL);
        if (rc == 0)
            check_event(out, len);
        else if (rc != segbus_map_error(b, NULL) && rc != -EMSGSIZE)
            abort();
        segbus_map_free(b);
    }
    free(text);
    return 0;
}
