/* hub_fuzz.h: what the two hub fuzz targets share: a fixed config text, an emit callback that
 * checks every event the hub hands on, and check(), which runs one request through the hub. */
#ifndef SEGBUS_FUZZ_HUB_FUZZ_H
#define SEGBUS_FUZZ_HUB_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "config/config.h"
#include "hub/hub.h"
#include "json/json.h"
#include "mp/mp_reader.h"
#include "pipeline/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char yaml[] = "sources:\n  - name: web\n    write_keys:\n      - wk\n"
                           "      - {key: old, expires: 2020-01-01T00:00:00Z}\n";

static int emit(void *arg, const uint8_t *ev, size_t len, struct sb_event_meta *meta)
{
    struct sb_event_meta m = {0};
    struct sb_mp_reader v;
    (void)arg;
    if (meta->source != 0 || sb_event_inspect(ev, len, &m) != 0)
        abort();
    if (sb_mp_lookup(ev, len, "writeKey", &v) != 0) /* the key never travels on */
        abort();
    return 0;
}

static void check(const struct sb_config *cfg, const char *route, const char *ctype,
                  const char *auth, const uint8_t *data, size_t size)
{
    struct sb_buf resp = SB_BUF_INIT, scratch = SB_BUF_INIT;
    struct sb_json_error je;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int status = 0;

    if (sb_hub_process(cfg, route, ctype, auth, data, size, 1700000000000, emit, NULL, &status,
                       &resp) != 0)
        abort();
    if (status != 200 && status != 400 && status != 401)
        abort();
    /* The answer is always one JSON object. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (sb_json_to_msgpack((const char *)resp.data, resp.len, &pk, &je) != 0)
        abort();
    msgpack_sbuffer_destroy(&sb);
    sb_buf_free(&resp);
    sb_buf_free(&scratch);
}

#endif
