/* route_integrations.c (fuzz): routing on arbitrary event bytes (an event's integrations object
 * comes from clients): inspect, then decide for a few destinations; never crash or read out of
 * bounds, and the integrations reader alone on the raw bytes must agree with itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outputs/route.h"
#include "pipeline/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char webhook[] = "Webhook", all[] = "All", empty[] = "";
    static char *const names[] = {webhook, all, empty};
    struct sb_output_config o;
    struct sb_event_meta meta = {0};

    memset(&o, 0, sizeof o);
    o.type = SB_OUTPUT_WEBHOOK;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);
        /* The raw bytes as an integrations map: deterministic. */
        if (sb_route_integration_enabled(data, size, names[i], n) !=
            sb_route_integration_enabled(data, size, names[i], n))
            abort();
    }
    meta.source = -1;
    if (sb_event_inspect(data, size, &meta) != 0)
        return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        o.name = names[i];
        enum sb_route_verdict v = sb_route_check(&o, &meta, "web");
        if (v != SB_ROUTE_TAKE && v != SB_ROUTE_INTEGRATIONS)
            abort(); /* no sources or lists configured: only integrations can exclude */
    }
    return 0;
}
