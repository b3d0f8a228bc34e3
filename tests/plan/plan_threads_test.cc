// Many threads share one compiled plan and each its own JSON parser: results match the
// single-threaded ones (run under ThreadSanitizer with the concurrency label).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "json/json.h"
#include "plan/plan.h"
}

TEST(PlanThreads, SharedPlanPerThreadParsers)
{
    const std::string plan_json =
        R"({"events":[{"name":"Order Completed","rules":{"properties":{"type":"object",
        "required":["order_id","total"],"properties":{"total":{"type":"number","minimum":0},
        "sku":{"type":"string","pattern":"^SKU-\\d+$"}}}}}]})";
    struct sb_plan *plan;
    char err[200];
    ASSERT_EQ(0, sb_plan_load_json(plan_json.data(), plan_json.size(), &plan, err, sizeof err))
        << err;
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([&, t] {
            msgpack_sbuffer sb;
            msgpack_packer pk;
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            struct sb_violations v = {};
            for (int i = 0; i < 500; i++) {
                bool bad = (i + t) % 3 == 0;
                std::string ev =
                    R"({"type":"track","event":"Order Completed","properties":{)" +
                    std::string(bad ? R"("sku":"X-1")" : R"("order_id":"o","total":1)") +
                    std::string(i % 7 == 0 ? std::string(t * 50, ' ') : "") + "}}";
                sb.size = 0;
                if (sb_json_to_msgpack(ev.data(), ev.size(), &pk, nullptr) != 0) {
                    mismatches++;
                    continue;
                }
                sb_violations_clear(&v);
                int rc = sb_plan_check(plan, (const uint8_t *)sb.data, sb.size, &v, nullptr);
                if (rc != (bad ? 3 : 0)) // order_id and total missing, sku not matching
                    mismatches++;
            }
            sb_violations_free(&v);
            msgpack_sbuffer_destroy(&sb);
        });
    for (auto &th : threads)
        th.join();
    EXPECT_EQ(0, mismatches.load());
    sb_plan_free(plan);
}
