/* hub_msgpack_batch.c (fuzz): the hub's request handling on arbitrary bytes as a sidecar's msgpack
 * /v1/batch body: it must answer a status with a JSON reason, never crash, and every event it emits
 * must be one the verify stage accepts, without the write key in it. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sb_config cfg;
    static int loaded;
    struct sb_config_error err;

    if (!loaded) {
        if (sb_config_load_string(&cfg, yaml, sizeof yaml - 1, "fuzz", &err) != 0)
            abort();
        loaded = 1;
    }
    check(&cfg, "/v1/batch", "application/msgpack", NULL, data, size);
    check(&cfg, "/v1/batch", "application/msgpack", "Basic d2s6", data, size);
    check(&cfg, "/v1/track", "application/msgpack", "Basic d2s6", data, size);
    return 0;
}
