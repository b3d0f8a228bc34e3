/* hub_json_batch.c (fuzz): the hub's request handling on arbitrary bytes as a JSON /v1/batch body
 * (and as a single /v1/track body): it must answer a status with a JSON reason, never crash, and
 * every event it emits must be one the verify stage accepts, without the write key in it. */
#include "hub_fuzz.h"

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
    check(&cfg, "/v1/batch", NULL, NULL, data, size);
    check(&cfg, "/v1/batch", NULL, "Basic d2s6", data, size);
    check(&cfg, "/v1/track", NULL, "Basic d2s6", data, size);
    return 0;
}
