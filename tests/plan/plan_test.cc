// Tracking plans: the seed's plan, the Config API and Public API shapes, rule choice by type,
// name and pinned version, unplanned events, and load errors that name the rule.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "json/json.h"
#include "plan/plan.h"
}

namespace
{

std::string mp(const std::string &json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    EXPECT_EQ(0, sb_json_to_msgpack(json.data(), json.size(), &pk, nullptr)) << json;
    std::string out(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

struct plan {
    struct sb_plan *p = nullptr;
    explicit plan(const std::string &json)
    {
        char err[300] = "";
        EXPECT_EQ(0, sb_plan_load_json(json.data(), json.size(), &p, err, sizeof err)) << err;
    }
    ~plan()
    {
        sb_plan_free(p);
    }
    // "kind path; kind path; ..." for an event, or "ERR <rc>".
    std::string check(const std::string &event_json, struct sb_plan_match *m = nullptr)
    {
        std::string ev = mp(event_json);
        struct sb_violations v = {};
        int rc = sb_plan_check(p, (const uint8_t *)ev.data(), ev.size(), &v, m);
        int quick = sb_plan_check(p, (const uint8_t *)ev.data(), ev.size(), nullptr, nullptr);
        EXPECT_EQ(rc > 0, quick > 0) << event_json;
        std::string s;
        if (rc < 0)
            s = "ERR " + std::to_string(rc);
        EXPECT_EQ(rc < 0 ? 0u : (size_t)rc, v.count);
        for (size_t i = 0; i < v.count; i++)
            s += std::string(i ? "; " : "") + sb_violation_kind_name(v.items[i].kind) + " " +
                 v.items[i].path;
        sb_violations_free(&v);
        return s;
    }
};

// The example tracking plan of the seed document, as printed there.
const char seed_plan[] = R"({
"events": [
{
"name": "Order Completed",
"description": "User completes a purchase",
"rules": {
"properties": {
"type": "object",
"required": ["order_id", "total", "currency", "products"],
"properties": {
"order_id": { "type": "string" },
"total": { "type": "number", "minimum": 0 },
"currency": { "type": "string", "enum": ["USD", "EUR", "GBP"] },
"products": {
"type": "array",
"items": {
"type": "object",
"required": ["product_id", "price"],
"properties": {
"product_id": { "type": "string" },
"price": { "type": "number" }
}
}
}
}
}
}
}
]
})";

const char seed_event[] = R"({"type":"track","event":"Order Completed","userId":"USR-12345",
"properties":{"order_id":"ORD-2024-12345","total":129.98,"subtotal":119.98,"tax":10.40,
"shipping":5.99,"discount":6.39,"coupon":"SAVE10","currency":"USD","products":[
{"product_id":"SKU-12345","name":"Premium Widget","price":49.99,"quantity":1,
"category":"Widgets","brand":"Acme"},{"product_id":"SKU-67890","name":"Deluxe Gadget",
"price":79.99,"quantity":1,"category":"Gadgets","brand":"Acme"}]}})";

} // namespace

TEST(Plan, SeedPlanAcceptsTheSeedEventAndFlagsBadOnes)
{
    plan p(seed_plan);
    ASSERT_NE(nullptr, p.p);
    EXPECT_EQ(1u, sb_plan_rule_count(p.p));
    struct sb_plan_match m;
    EXPECT_EQ("", p.check(seed_event, &m));
    EXPECT_TRUE(m.planned);
    EXPECT_STREQ("Order Completed", m.rule);
    EXPECT_EQ(1, m.version);
    EXPECT_EQ("Required properties.order_id; Value properties.total; Value properties.currency; "
              "Type properties.products.0.price; Required properties.products.1.product_id",
              p.check(R"({"type":"track","event":"Order Completed","properties":{"total":-5,
                "currency":"JPY","products":[{"product_id":"A","price":"9"},{"price":1}]}})"));
    EXPECT_EQ("Type properties", p.check(R"({"type":"track","event":"Order Completed",
                                            "properties":"oops"})"));
    EXPECT_EQ("Unplanned event event", p.check(R"({"type":"track","event":"Order Complete",
                                                 "properties":{}})",
                                               &m));
    EXPECT_FALSE(m.planned);
    EXPECT_EQ("", p.check(R"({"type":"identify","userId":"u","traits":{"x":1}})"));
    EXPECT_EQ("ERR -22", p.check("[1]"));
}

TEST(Plan, ConfigApiShapeWithVersionsGlobalAndTraits)
{
    plan p(R"({"rules":{
      "events":[
        {"name":"Signed Up","version":1,"rules":{"$schema":"http://json-schema.org/draft-07/schema#",
          "type":"object","properties":{"properties":{"type":"object",
          "required":["signup_method"],"additionalProperties":false,
          "properties":{"signup_method":{"type":"string"},"plan_type":{"type":"string"}}}}}},
        {"name":"Signed Up","version":2,"rules":{"type":"object","properties":{"properties":{
          "type":"object","required":["signup_method","plan_type"]}}}}],
      "global":{"type":"object","properties":{"context":{"type":"object",
          "properties":{"ip":{"type":"string"}}}}},
      "identify_traits":{"type":"object","required":["email"],
          "properties":{"email":{"type":"string","pattern":"^[^@]+@[^@]+$"}}},
      "group_traits":{"type":"object","properties":{"employee_count":{"type":"integer"}}}}})");
    ASSERT_NE(nullptr, p.p);
    EXPECT_EQ(5u, sb_plan_rule_count(p.p));
    struct sb_plan_match m;
    // No version given: the lowest (1), where plan_type is optional and extras are unplanned.
    EXPECT_EQ("Unplanned property properties.extra",
              p.check(R"({"type":"track","event":"Signed Up","properties":{
                "signup_method":"email","extra":1}})",
                      &m));
    EXPECT_EQ(1, m.version);
    // Version 2 pinned: plan_type is required, extras allowed.
    EXPECT_EQ("Required properties.plan_type",
              p.check(R"({"type":"track","event":"Signed Up","properties":{
                "signup_method":"email","extra":1},"context":{"protocols":{"event_version":2}}})",
                      &m));
    EXPECT_EQ(2, m.version);
    EXPECT_EQ("Unplanned event event",
              p.check(R"({"type":"track","event":"Signed Up","properties":{},
                "context":{"protocols":{"event_version":3}}})"));
    // Global applies to every event type.
    EXPECT_EQ("Type context.ip", p.check(R"({"type":"page","name":"Home","context":{"ip":4}})"));
    // Common rules are checked first.
    EXPECT_EQ("Type context.ip; Required traits.email",
              p.check(R"({"type":"identify","traits":{},"context":{"ip":1}})"));
    EXPECT_EQ("Value traits.email",
              p.check(R"({"type":"identify","traits":{"email":"not-an-address"}})"));
    EXPECT_EQ("Type traits.employee_count",
              p.check(R"({"type":"group","groupId":"g","traits":{"employee_count":1.5}})"));
}

TEST(Plan, PublicApiShape)
{
    plan p(R"({"data":{"rules":[
      {"key":"Product Viewed","type":"TRACK","version":1,"jsonSchema":{"type":"object",
        "properties":{"properties":{"type":"object","required":["product_id"]}}}},
      {"key":"","type":"IDENTIFY","version":1,"jsonSchema":{"type":"object","properties":{
        "traits":{"type":"object","properties":{"plan":{"enum":["free","pro"]}}}}}},
      {"key":"Checkout","type":"PAGE","version":1,"jsonSchema":{"type":"object","properties":{
        "properties":{"type":"object","required":["url"]}}}},
      {"key":null,"type":"COMMON","version":1,"jsonSchema":{"type":"object",
        "required":["messageId"]}}]}})");
    ASSERT_NE(nullptr, p.p);
    EXPECT_EQ(4u, sb_plan_rule_count(p.p));
    EXPECT_EQ("Required messageId; Required properties.product_id",
              p.check(R"({"type":"track","event":"Product Viewed","properties":{}})"));
    EXPECT_EQ("", p.check(R"({"type":"track","event":"Product Viewed","messageId":"m",
                            "properties":{"product_id":"p"}})"));
    EXPECT_EQ("Value traits.plan",
              p.check(R"({"type":"identify","messageId":"m","traits":{"plan":"gold"}})"));
    EXPECT_EQ("Required properties.url",
              p.check(R"({"type":"page","name":"Checkout","messageId":"m","properties":{}})"));
    EXPECT_EQ("", p.check(R"({"type":"page","name":"Home","messageId":"m","properties":{}})"));
    // The bare array form loads too.
    plan bare(R"([{"key":"A","type":"track","jsonSchema":true}])");
    EXPECT_EQ("", bare.check(R"({"type":"track","event":"A"})"));
}

// A big plan (rules are found through a hash of type and name): every event finds its own rule
// and versions, names differing only in case or by type are distinct, and the checked-event entry
// point the pipeline uses agrees with sb_plan_check.
TEST(Plan, ManyRulesAreFoundByTypeNameAndVersion)
{
    std::string json = R"({"events":[)";
    for (int i = 0; i < 500; i++)
        for (int ver = 1; ver <= 2; ver++)
            json += std::string(i || ver > 1 ? "," : "") + R"({"name":"Event )" + std::to_string(i) +
                    R"(","version":)" + std::to_string(ver) +
                    R"(,"rules":{"properties":{"type":"object","required":["v)" +
                    std::to_string(ver) + R"("]}}})";
    json += "]}";
    plan p(json);
    ASSERT_EQ(1000u, sb_plan_rule_count(p.p));
    for (int i = 0; i < 500; i += 37) {
        std::string name = "Event " + std::to_string(i);
        sb_plan_match m{};
        // the lowest version by default, the pinned one when asked
        EXPECT_EQ("", p.check(R"({"type":"track","event":")" + name + R"(","properties":{"v1":1}})", &m));
        EXPECT_EQ(1, m.version);
        EXPECT_EQ(name, m.rule);
        EXPECT_EQ("Required properties.v2",
                  p.check(R"({"type":"track","event":")" + name +
                          R"(","properties":{"v1":1},"context":{"protocols":{"event_version":2}}})",
                          &m));
        EXPECT_EQ(2, m.version);
        EXPECT_EQ("Unplanned event event",
                  p.check(R"({"type":"track","event":")" + name +
                          R"(","context":{"protocols":{"event_version":3}}})"));
    }
    EXPECT_EQ("Unplanned event event", p.check(R"({"type":"track","event":"event 1"})"));
    EXPECT_EQ("Unplanned event event", p.check(R"({"type":"track","event":"Event 500"})"));
    // page rules are not track rules of the same name
    EXPECT_EQ("", p.check(R"({"type":"page","name":"Event 1"})"));
    std::string ev = mp(R"({"type":"track","event":"Event 7","properties":{}})");
    sb_violations v = {};
    EXPECT_EQ(1, sb_plan_check_event(p.p, (const uint8_t *)ev.data(), ev.size(), SB_RULE_TRACK,
                                     "Event 7", 7, &v, nullptr));
    EXPECT_EQ(1, sb_plan_check(p.p, (const uint8_t *)ev.data(), ev.size(), nullptr, nullptr));
    sb_violations_free(&v);
}

TEST(Plan, LoadErrorsNameTheRule)
{
    const struct {
        const char *json, *msg;
    } cases[] = {
        {R"({"events":[{"name":"A","rules":{"properties":{"type":"objekt"}}}]})",
         "rule TRACK 'A' version 1: schema /properties/properties/type: unknown type name"},
        {R"({"events":[{"rules":{}}]})", "events[0]: \"name\" (a string) is required"},
        {R"({"events":[{"name":"A","version":"2"}]})", "events[0]: version must be an integer"},
        {R"([{"key":"A","type":"PURCHASE","jsonSchema":{}}])", "unknown type \"PURCHASE\""},
        {R"([{"type":"TRACK","jsonSchema":{}}])", "needs a \"key\""},
        {R"({"something":1})", "expected an object with \"rules\" or \"events\""},
        {R"({"events":[)", "plan JSON at byte 11"},
    };
    for (const auto &c : cases) {
        struct sb_plan *p = nullptr;
        char err[300] = "";
        EXPECT_GT(0, sb_plan_load_json(c.json, strlen(c.json), &p, err, sizeof err)) << c.json;
        EXPECT_EQ(nullptr, p);
        EXPECT_NE(nullptr, strstr(err, c.msg)) << c.json << " -> " << err;
    }
}
