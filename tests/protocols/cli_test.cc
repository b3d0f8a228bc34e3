// `segbus plan check|lint`: the real binary on the seed's plan, its Order Completed event and
// broken variants (price as a string, missing order_id, typo'd name); exit codes and report.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace {

const char plan[] = R"({"events": [{"name": "Order Completed", "rules": {"properties": {
 "type": "object", "required": ["order_id", "total", "currency", "products"],
 "properties": {"order_id": {"type": "string"}, "total": {"type": "number", "minimum": 0},
  "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
  "products": {"type": "array", "items": {"type": "object", "required": ["product_id", "price"],
   "properties": {"product_id": {"type": "string"}, "price": {"type": "number"}}}}}}}}]})";

const char good[] =
    R"({"type":"track","event":"Order Completed","properties":{"order_id":"ORD-2024-12345","total":129.98,"currency":"USD","products":[{"product_id":"SKU-12345","price":49.99}]}})";

struct result {
    int code;
    std::string out;
};

struct files {
    std::string dir;
    files()
    {
        char t[] = "/tmp/segbus-plancli-XXXXXX";
        dir = mkdtemp(t);
    }
    ~files()
    {
        std::string cmd = "rm -rf '" + dir + "'";
        EXPECT_EQ(0, system(cmd.c_str()));
    }
    std::string put(const std::string &name, const std::string &text)
    {
        std::string p = dir + "/" + name;
        std::ofstream(p) << text;
        return p;
    }
};

result run(const std::string &args)
{
    std::string cmd = std::string(SEGBUS_BINARY_DIR) + "/src/cli/segbus " + args + " 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    result r{-1, ""};
    char buf[4096];
    size_t n;
    while (p && (n = fread(buf, 1, sizeof buf, p)) > 0)
        r.out.append(buf, n);
    int st = p ? pclose(p) : -1;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

}  // namespace

TEST(PlanCli, SeedEventPassesBrokenVariantsFail)
{
    files f;
    std::string p = f.put("plan.json", plan);
    std::string ok = f.put("ok.ndjson", std::string(good) + "\n");
    auto r = run("plan check " + p + " " + ok);
    EXPECT_EQ(0, r.code) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("1 events checked: 1 clean")) << r.out;

    std::string price = good, missing = good, typo = good;
    price.replace(price.find("49.99"), 5, "\"49.99\"");
    missing.replace(missing.find(R"("order_id":"ORD-2024-12345",)"), 28, "");
    typo.replace(typo.find("Order Completed"), 15, "Order Complted");
    std::string bad = f.put("bad.ndjson", price + "\n" + missing + "\n" + typo + "\n");
    r = run("plan check " + p + " " + bad);
    EXPECT_EQ(1, r.code) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("Type properties.products.0.price: must be number"))
        << r.out;
    EXPECT_NE(std::string::npos, r.out.find("Required properties.order_id")) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("Order Complted: BLOCKED")) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("3 events checked: 0 clean, 3 with violations, 3 would be blocked"))
        << r.out;
    // the gate's flag: with allow handling nothing is blocked, so --fail-on blocked passes
    r = run("plan check --fail-on blocked --invalid allow --unplanned-events allow " + p + " " + bad);
    EXPECT_EQ(0, r.code) << r.out;
    r = run("plan check --fail-on blocked --invalid omit " + p + " " + bad);
    EXPECT_EQ(1, r.code) << r.out;  // the typo is still blocked (unplanned_events: block)

    std::string junk = f.put("junk.ndjson", "{not json\n");
    EXPECT_EQ(65, run("plan check " + p + " " + junk).code);
}

TEST(PlanCli, LintNamesThePlace)
{
    files f;
    auto r = run("plan lint " + f.put("plan.json", plan));
    EXPECT_EQ(0, r.code) << r.out;
    std::string bad = plan;
    bad.replace(bad.find(R"("minimum": 0)"), 12, R"("minimum": "0")");
    r = run("plan lint " + f.put("bad.json", bad));
    EXPECT_EQ(65, r.code) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("Order Completed")) << r.out;
    EXPECT_NE(std::string::npos, r.out.find("/total/minimum")) << r.out;
    EXPECT_EQ(2, run("plan").code);
}
