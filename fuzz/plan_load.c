/* fuzz/plan_load.c: a tracking plan from outside (JSON); loading must fail cleanly or give a
 * plan that checks the seed's Order Completed event without crashing. */
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "plan/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char ev[] =
        "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u\",\"context\":{"
        "\"protocols\":{\"event_version\":1}},\"properties\":{\"order_id\":\"O-1\",\"total\":"
        "129.98,\"currency\":\"USD\",\"products\":[{\"product_id\":\"S\",\"price\":49.99}]}}";
    struct sb_plan *p = NULL;
    char err[300];
    err[0] = 0;
    if (sb_plan_load_json((const char *)data, size, &p, err, sizeof err) != 0) {
        if (p || !err[0])
            abort(); /* a failure always says why */
        return 0;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (sb_json_to_msgpack(ev, sizeof ev - 1, &pk, NULL) != 0)
        abort();
    struct sb_violations v = {0};
    int rc = sb_plan_check(p, (const uint8_t *)sb.data, sb.size, &v, NULL);
    if (rc >= 0 && (size_t)rc != v.count)
        abort();
    sb_violations_free(&v);
    msgpack_sbuffer_destroy(&sb);
    sb_plan_free(p);
    return 0;
}
