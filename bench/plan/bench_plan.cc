// bench_plan.cc: ns per event for sb_plan_check (seed plan, seed event) next to JSON->msgpack.
#include <chrono>
#include <cstdio>
#include <string>

extern "C" {
#include "json/json.h"
#include "plan/plan.h"
}

namespace
{
const char plan_json[] =
    R"({"events":[{"name":"Order Completed","rules":{"properties":{"type":"object",
"required":["order_id","total","currency","products"],"properties":{"order_id":{"type":"string"},
"total":{"type":"number","minimum":0},"currency":{"type":"string","enum":["USD","EUR","GBP"]},
"products":{"type":"array","items":{"type":"object","required":["product_id","price"],
"properties":{"product_id":{"type":"string"},"price":{"type":"number"}}}}}}}}]})";

const char event_json[] =
    R"({"type":"track","event":"Order Completed","userId":"USR-12345","messageId":
"01890a5d-ac96-774b-bcce-b302099a8057","timestamp":"2024-05-01T12:34:56.789Z","context":{
"library":{"name":"segbus","version":"0.1.0"},"ip":"203.0.113.7"},"properties":{"order_id":
"ORD-2024-12345","total":129.98,"subtotal":119.98,"tax":10.40,"shipping":5.99,"discount":6.39,
"coupon":"SAVE10","currency":"USD","products":[{"product_id":"SKU-12345","name":
"Premium Widget","price":49.99,"quantity":1,"category":"Widgets","brand":"Acme"},{"product_id":
"SKU-67890","name":"Deluxe Gadget","price":79.99,"quantity":1,"category":"Gadgets","brand":
"Acme"}]}})";

template <typename F> double ns_per_op(F f, size_t iters)
{
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        auto t0 = std::chrono::steady_clock::now();
        for (size_t i = 0; i < iters; i++)
            f();
        auto t1 = std::chrono::steady_clock::now();
        double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)iters;
        best = ns < best ? ns : best;
    }
    return best;
}
} // namespace

int main()
{
    struct sb_plan *plan;
    char err[200];
    if (sb_plan_load_json(plan_json, sizeof plan_json - 1, &plan, err, sizeof err)) {
        std::fprintf(stderr, "plan: %s\n", err);
        return 1;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (sb_json_to_msgpack(event_json, sizeof event_json - 1, &pk, nullptr))
        return 1;
    std::string ev(sb.data, sb.size);
    bool ok = true;
    struct sb_violations v = {};
    double check = ns_per_op(
        [&] {
            sb_violations_clear(&v);
            ok &= sb_plan_check(plan, (const uint8_t *)ev.data(), ev.size(), &v, nullptr) == 0;
        },
        200000);
    double parse = ns_per_op(
        [&] {
            sb.size = 0;
            ok &= sb_json_to_msgpack(event_json, sizeof event_json - 1, &pk, nullptr) == 0;
        },
        200000);
    if (!ok)
        return 1;
    std::printf("{\"suite\":\"plan\",\"case\":\"seed_order_completed_check\",\"unit\":\"ns/event\","
                "\"value\":%.0f,\"peer\":\"json_to_msgpack of the same event\",\"peer_value\":"
                "%.0f,\"ratio\":%.3f}\n",
                check, parse, check / parse);
    sb_violations_free(&v);
    msgpack_sbuffer_destroy(&sb);
    sb_plan_free(plan);
    return 0;
}
