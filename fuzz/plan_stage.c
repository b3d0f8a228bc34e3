/* fuzz/plan_stage.c: arbitrary msgpack events through violation handling (omit rewriting by
 * pointer, context.violations) against the seed's plan with a strict rule; an omitted result
 * must be well-formed msgpack and check clean of the omitted kinds' values. */
#include <stdlib.h>
#include <string.h>

#include "mp/mp_reader.h"
#include "protocols/protocols.h"

static const char plan_json[] =
    "{\"events\":[{\"name\":\"Order Completed\",\"rules\":{\"properties\":{\"type\":\"object\","
    "\"required\":[\"order_id\",\"total\"],\"additionalProperties\":false,\"properties\":{"
    "\"order_id\":{\"type\":\"string\"},\"total\":{\"type\":\"number\",\"minimum\":0},"
    "\"currency\":{\"enum\":[\"USD\",\"EUR\"]},\"products\":{\"type\":\"array\",\"items\":{"
    "\"type\":\"object\",\"required\":[\"price\"],\"properties\":{\"price\":{\"type\":"
    "\"number\"}}}}}}}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sb_plan *plan;
    struct sb_plan_opts o = {.unplanned_events = SB_PMODE_ALLOW,
                             .unplanned_properties = SB_PMODE_OMIT,
                             .invalid = SB_PMODE_OMIT};
    struct sb_violations v = {0};
    struct sb_plan_match m;
    struct sb_buf out = SB_BUF_INIT;
    char err[256];

    if (!plan && sb_plan_load_json(plan_json, sizeof plan_json - 1, &plan, err, sizeof err))
        abort();
    if (size > 32768)
        return 0;
    int rc = sb_plan_handle(plan, &o, data, size, &v, &m, &out);
    if (rc == SB_PLAN_OMITTED && sb_mp_check(out.data, out.len, 300) != 0)
        abort();
    sb_violations_free(&v);
    sb_buf_free(&out);
    return 0;
}
