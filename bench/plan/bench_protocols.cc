// bench_protocols.cc: the drain's per-event pipeline cost (verify, plan, transform) with the
// seed's plan and its PII transform on vs off, measured in the same run on the same events.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "json/json.h"
#include "pipeline/stage.h"
#include "pipeline/verify.h"
#include "protocols/protocols.h"
}

namespace
{
const char plan_json[] =
    R"({"events":[{"name":"Order Completed","rules":{"properties":{"type":"object",
"required":["order_id","total","currency","products"],"properties":{"order_id":{"type":"string"},
"total":{"type":"number","minimum":0},"currency":{"type":"string","enum":["USD","EUR","GBP"]},
"products":{"type":"array","items":{"type":"object","required":["product_id","price"],
"properties":{"product_id":{"type":"string"},"price":{"type":"number"}}}}}}}}]})";

// The seed's Order Completed event, with the PII its middleware strips (email, phone, ip).
std::string event_json(int i)
{
    char id[64];
    std::snprintf(id, sizeof id, "01890a5d-ac96-774b-bcce-%012d", i);
    return std::string(R"({"type":"track","event":"Order Completed","userId":"USR-12345","messageId":")") +
           id + R"(","timestamp":"2024-05-01T12:34:56.789Z","context":{
"library":{"name":"segbus","version":"0.1.0"},"ip":"203.0.113.7"},"properties":{"order_id":
"ORD-2024-12345","total":129.98,"subtotal":119.98,"tax":10.40,"shipping":5.99,"discount":6.39,
"coupon":"SAVE10","currency":"USD","email":"ada@example.com","phone":"+1 555 0100","ip_address":
"203.0.113.7","products":[{"product_id":"SKU-12345","name":"Premium Widget","price":49.99,
"quantity":1,"category":"Widgets","brand":"Acme"},{"product_id":"SKU-67890","name":
"Deluxe Gadget","price":79.99,"quantity":1,"category":"Gadgets","brand":"Acme"}]}})";
}

int buf_write(void *data, const char *b, size_t len)
{
    return sb_buf_append(static_cast<sb_buf *>(data), b, len) ? -1 : 0;
}

sb_pipeline *build(bool plan_on, bool transform_on)
{
    sb_pipeline *p;
    char err[256];
    if (sb_pipeline_new(&p) || sb_pipeline_add(p, sb_verify_stage_new()))
        return nullptr;
    if (plan_on) {
        sb_plan *plan;
        if (sb_plan_load_json(plan_json, sizeof plan_json - 1, &plan, err, sizeof err))
            return nullptr;
        sb_plan_opts o{};
        o.unplanned_events = SB_PMODE_BLOCK;
        o.unplanned_properties = SB_PMODE_OMIT;
        o.invalid = SB_PMODE_BLOCK;
        o.log_path = const_cast<char *>("/dev/null");
        sb_pipeline_add(p, sb_plan_stage_new(plan, &o, "web", 0, nullptr));
    }
    if (transform_on) {
        // the seed's middleware: strip email/phone/ip_address from track, Title Case names
        static char kv[][2][32] = {{"0.type", "track"},
                                   {"0.drop.0", "properties.email"},
                                   {"0.drop.1", "properties.phone"},
                                   {"0.drop.2", "properties.ip_address"},
                                   {"1.normalize", "title_case"}};
        sb_kv items[5];
        for (int i = 0; i < 5; i++)
            items[i] = sb_kv{kv[i][0], kv[i][1], i + 1};
        sb_kv_list l{items, 5};
        sb_transform *t;
        if (sb_transform_new(&l, &t, err, sizeof err))
            return nullptr;
        sb_pipeline_add(p, sb_transform_stage_new(t, 0));
    }
    return p;
}

double run(sb_pipeline *p, const std::vector<std::string> &evs, size_t iters, size_t *passed)
{
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < iters; i++) {
        const std::string &e = evs[i % evs.size()];
        sb_event_meta meta{};
        meta.source = 0;
        const uint8_t *out;
        size_t out_len;
        *passed += sb_pipeline_run(p, (const uint8_t *)e.data(), e.size(), &meta, &out, &out_len) ==
                   SB_STAGE_PASS;
    }
    auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)iters;
}
} // namespace

int main()
{
    std::vector<std::string> evs;
    for (int i = 0; i < 1024; i++) {
        sb_buf b = SB_BUF_INIT;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, buf_write);
        std::string j = event_json(i);
        if (sb_json_to_msgpack(j.data(), j.size(), &pk, nullptr))
            return 1;
        evs.emplace_back((const char *)b.data, b.len);
        sb_buf_free(&b);
    }
    sb_pipeline *off = build(false, false), *plan = build(true, false), *on = build(true, true);
    if (!off || !plan || !on)
        return 1;
    const size_t iters = 200000;
    double best_off = 1e30, best_plan = 1e30, best_on = 1e30;
    size_t passed = 0;
    // interleaved rounds, best of each: the three see the same machine state
    for (int round = 0; round < 5; round++) {
        best_off = std::min(best_off, run(off, evs, iters, &passed));
        best_plan = std::min(best_plan, run(plan, evs, iters, &passed));
        best_on = std::min(best_on, run(on, evs, iters, &passed));
    }
    if (passed != 3 * 5 * iters) {
        std::fprintf(stderr, "bench: %zu of %zu events passed\n", passed, 3 * 5 * iters);
        return 1;
    }
    double cost = (best_on - best_off) / best_off;
    std::printf("{\"suite\":\"plan\",\"case\":\"pipeline_off\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"note\":\"verify only\"}\n",
                best_off);
    std::printf("{\"suite\":\"plan\",\"case\":\"pipeline_plan\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"note\":\"verify + seed plan\"}\n",
                best_plan);
    std::printf("{\"suite\":\"plan\",\"case\":\"pipeline_plan_pii\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"peer\":\"pipeline_off\",\"peer_value\":%.0f,\"ratio\":%.3f,\"events_per_s_on\":%.0f,"
                "\"events_per_s_off\":%.0f,\"cost\":%.3f,\"goal\":\"cost <= 20%%\",\"met\":%s}\n",
                best_on, best_off, best_on / best_off, 1e9 / best_on, 1e9 / best_off, cost,
                cost <= 0.20 ? "true" : "false");
    std::printf("{\"suite\":\"plan\",\"case\":\"pii_transform_only\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"peer\":\"pipeline_plan\",\"peer_value\":%.0f,\"ratio\":%.3f}\n",
                best_on - best_plan, best_plan, best_on / best_plan);
    sb_pipeline_free(off);
    sb_pipeline_free(plan);
    sb_pipeline_free(on);
    return 0;
}
