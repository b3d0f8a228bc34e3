// Violations: kinds, paths and reasons for the seed's Order Completed rules; errors when compiling.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "json/json.h"
#include "plan/schema.h"
}

namespace
{
std::string to_mp(const std::string &json)
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
} // namespace

TEST(Schema, OrderCompletedViolationsHaveKindsAndPaths)
{
    const std::string schema = R"({"type":"object","properties":{"properties":{
      "type":"object","required":["order_id","total","currency","products"],
      "additionalProperties":false,
      "properties":{"order_id":{"type":"string"},"total":{"type":"number","minimum":0},
        "currency":{"type":"string","enum":["USD","EUR","GBP"]},
        "products":{"type":"array","items":{"type":"object","required":["product_id","price"],
          "properties":{"product_id":{"type":"string"},"price":{"type":"number"}}}}}}}})";
    struct sb_schema *s;
    char err[200];
    ASSERT_EQ(0, sb_schema_compile_json(schema.data(), schema.size(), &s, err, sizeof err)) << err;
    std::string ok = to_mp(R"({"event":"Order Completed","properties":{"order_id":"ORD-1",
      "total":129.98,"currency":"USD","products":[{"product_id":"SKU-1","price":49.99}]}})");
    EXPECT_EQ(1, sb_schema_validate(s, (const uint8_t *)ok.data(), ok.size(), nullptr));

    std::string badev = to_mp(R"({"properties":{"total":-1,"currency":"JPY","coupon":"X",
      "products":[{"product_id":"SKU-1","price":49.99},{"product_id":7,"price":"free"},{}]}})");
    struct sb_violations v = {};
    ASSERT_EQ(0, sb_schema_validate(s, (const uint8_t *)badev.data(), badev.size(), &v));
    struct want {
        enum sb_violation_kind kind;
        const char *path, *pointer, *keyword;
    } wants[] = {
        {SB_VIOLATION_REQUIRED, "properties.order_id", "/properties/order_id", "required"},
        {SB_VIOLATION_VALUE, "properties.total", "/properties/total", "minimum"},
        {SB_VIOLATION_VALUE, "properties.currency", "/properties/currency", "enum"},
        {SB_VIOLATION_UNPLANNED_PROPERTY, "properties.coupon", "/properties/coupon",
         "additionalProperties"},
        {SB_VIOLATION_TYPE, "properties.products.1.product_id", "/properties/products/1/product_id",
         "type"},
        {SB_VIOLATION_TYPE, "properties.products.1.price", "/properties/products/1/price", "type"},
        {SB_VIOLATION_REQUIRED, "properties.products.2.product_id",
         "/properties/products/2/product_id", "required"},
        {SB_VIOLATION_REQUIRED, "properties.products.2.price", "/properties/products/2/price",
         "required"},
    };
    ASSERT_EQ(sizeof wants / sizeof wants[0], v.count);
    for (size_t i = 0; i < v.count; i++) {
        bool found = false;
        for (const want &w : wants)
            if (w.kind == v.items[i].kind && std::string(w.path) == v.items[i].path &&
                std::string(w.pointer) == v.items[i].pointer &&
                std::string(w.keyword) == v.items[i].keyword)
                found = true;
        EXPECT_TRUE(found) << sb_violation_kind_name(v.items[i].kind) << " " << v.items[i].path
                           << ": " << v.items[i].reason;
        EXPECT_GT(strlen(v.items[i].reason), 5u);
    }
    // A limit stops collection and says so.
    sb_violations_free(&v);
    v.limit = 2;
    ASSERT_EQ(0, sb_schema_validate(s, (const uint8_t *)badev.data(), badev.size(), &v));
    EXPECT_EQ(2u, v.count);
    EXPECT_TRUE(v.truncated);
    sb_violations_free(&v);
    sb_schema_free(s);
}

TEST(Schema, CompileErrorsNameThePlace)
{
    const struct {
        const char *schema, *msg;
    } cases[] = {
        {R"({"properties":{"a":{"type":"strin"}}})", "/properties/a/type: unknown type name"},
        {R"({"properties":{"a":{"minimum":"0"}}})", "/properties/a/minimum: must be a number"},
        {R"({"pattern":"(unclosed"})", "/pattern: bad regular expression"},
        {R"({"items":[{"maxLength":-1}]})", "/items/0/maxLength: must be a non-negative integer"},
        {R"({"$ref":"#/definitions/missing"})", "cannot resolve $ref"},
        {R"({"$ref":"http://example.com/other.json"})", "remote references are not supported"},
        {R"({"required":"a"})", "/required: must be an array of strings"},
        {R"([1])", "(root): a schema must be an object or a boolean"},
        {R"({"a":)", "schema JSON at byte 5"},
    };
    for (const auto &c : cases) {
        struct sb_schema *s = nullptr;
        char err[200] = "";
        EXPECT_GT(0, sb_schema_compile_json(c.schema, strlen(c.schema), &s, err, sizeof err))
            << c.schema;
        EXPECT_EQ(nullptr, s);
        EXPECT_NE(nullptr, strstr(err, c.msg)) << c.schema << " -> " << err;
    }
}

TEST(Schema, RefCyclesAndDeepInputsAreBounded)
{
    struct sb_schema *s;
    char err[200];
    const char *cyc =
        R"({"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},
      "$ref":"#/definitions/a"})";
    ASSERT_EQ(0, sb_schema_compile_json(cyc, strlen(cyc), &s, err, sizeof err)) << err;
    std::string one = to_mp("1");
    EXPECT_EQ(-ELOOP, sb_schema_validate(s, (const uint8_t *)one.data(), one.size(), nullptr));
    sb_schema_free(s);
    const char *self = R"({"anyOf":[{"$ref":"#"}]})";
    ASSERT_EQ(0, sb_schema_compile_json(self, strlen(self), &s, err, sizeof err)) << err;
    EXPECT_EQ(-ELOOP, sb_schema_validate(s, (const uint8_t *)one.data(), one.size(), nullptr));
    sb_schema_free(s);
    const char *tree = R"({"items":{"$ref":"#"}})";
    ASSERT_EQ(0, sb_schema_compile_json(tree, strlen(tree), &s, err, sizeof err)) << err;
    std::string deep = to_mp(std::string(60, '[') + std::string(60, ']'));
    EXPECT_EQ(1, sb_schema_validate(s, (const uint8_t *)deep.data(), deep.size(), nullptr));
    EXPECT_EQ(-EINVAL, sb_schema_validate(s, (const uint8_t *)"\x92\x01", 2, nullptr));
    sb_schema_free(s);
}

TEST(Schema, LintChecksAgainstTheMetaSchema)
{
    char err[200];
    const char *good = R"({"type":"object","properties":{"a":{"type":"string"}}})";
    EXPECT_EQ(0, sb_schema_lint_json(good, strlen(good), err, sizeof err)) << err;
    const char *bad = R"({"type":"object","properties":{"a":{"minLength":-3}}})";
    EXPECT_EQ(-EINVAL, sb_schema_lint_json(bad, strlen(bad), err, sizeof err));
    EXPECT_NE(nullptr, strstr(err, "/properties/a/minLength")) << err;
}

TEST(Schema, PatternsFollowEcmaScript)
{
    const struct {
        const char *pattern, *value;
        int valid;
    } cases[] = {
        {"^\\d+$", "\"42\"", 1},
        {"^\\d+$", "\"\xe0\xa7\xaa\"", 0},              // Bengali digit: not \d in ECMA
        {"^\\D$", "\"\xdf\x80\"", 1},                   // NKO digit zero is \D
        {"^\\w$", "\"\xc3\xa9\"", 0},                   // e-acute is not \w
        {"^[\\w-]+$", "\"a-b_c\"", 1},                  // \w inside a class
        {"^[^\\W]+$", "\"abc\"", 1},                    // \W inside a negated class
        {"^\\s$", "\"\xe2\x80\x83\"", 1},               // EM SPACE is \s
        {"^\\s$", "\"\xef\xbb\xbf\"", 1},               // U+FEFF is \s in ECMA
        {"^\\p{Letter}+$", "\"\xc3\xa9t\xc3\xa9\"", 1}, // long General_Category names
        {"^\\p{digit}+$", "\"\xe0\xa7\xaa\"", 1},
        {"x$", "\"x\\n\"", 0}, // '$' only at the very end
        {"^[A-Z]{3}$", "\"USD\"", 1},
        {"^\\d{3}$", "\"\\u0661\\u0662\\u0663\"", 0},
    };
    for (const auto &c : cases) {
        std::string schema = std::string("{\"pattern\":\"") + c.pattern + "\"}";
        // The pattern is written as a C string: escape its backslashes for JSON.
        std::string js;
        for (char ch : std::string(c.pattern))
            js += ch == '\\' ? std::string("\\\\") : std::string(1, ch);
        schema = "{\"pattern\":\"" + js + "\"}";
        struct sb_schema *s;
        char err[200];
        ASSERT_EQ(0, sb_schema_compile_json(schema.data(), schema.size(), &s, err, sizeof err))
            << schema << ": " << err;
        std::string v = to_mp(c.value);
        EXPECT_EQ(c.valid, sb_schema_validate(s, (const uint8_t *)v.data(), v.size(), nullptr))
            << c.pattern << " on " << c.value;
        sb_schema_free(s);
    }
    // Invalid UTF-8 in a value (possible in msgpack from outside) never matches, never errors.
    struct sb_schema *s;
    char err[200];
    ASSERT_EQ(0, sb_schema_compile_json("{\"pattern\":\"a\"}", 15, &s, err, sizeof err));
    EXPECT_EQ(0, sb_schema_validate(s, (const uint8_t *)"\xa2\x61\xff", 3, nullptr));
    sb_schema_free(s);
}

TEST(Schema, UniqueItemsOnLargeArraysIsFastAndExact)
{
    struct sb_schema *s;
    char err[200];
    ASSERT_EQ(0, sb_schema_compile_json("{\"uniqueItems\":true}", 20, &s, err, sizeof err));
    // 20,000 distinct items (n^2 would be 2e8 comparisons), then with one late duplicate that
    // differs in encoding (1.0 vs 1) and in key order.
    std::string arr = "[";
    for (int i = 0; i < 20000; i++)
        arr += (i ? "," : "") + std::to_string(i);
    std::string uniq = to_mp(arr + ",{\"a\":1,\"b\":[1.5]}]");
    EXPECT_EQ(1, sb_schema_validate(s, (const uint8_t *)uniq.data(), uniq.size(), nullptr));
    std::string dup = to_mp(arr + ",{\"a\":1,\"b\":[1.5]},{\"b\":[1.5],\"a\":1.0}]");
    struct sb_violations v = {};
    EXPECT_EQ(0, sb_schema_validate(s, (const uint8_t *)dup.data(), dup.size(), &v));
    ASSERT_EQ(1u, v.count);
    EXPECT_STREQ("item 20001 equals item 20000: items must be unique", v.items[0].reason);
    sb_violations_free(&v);
    std::string dup2 = to_mp(arr + ",19999.0]");
    EXPECT_EQ(0, sb_schema_validate(s, (const uint8_t *)dup2.data(), dup2.size(), nullptr));
    // -0.0 and 0 are equal; 0.1 and 0.1000000001 are not.
    std::string z = to_mp("[" + arr.substr(1) + ",-0.0]");
    EXPECT_EQ(0, sb_schema_validate(s, (const uint8_t *)z.data(), z.size(), nullptr));
    std::string f = to_mp("[0.1,0.1000000001,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]");
    EXPECT_EQ(1, sb_schema_validate(s, (const uint8_t *)f.data(), f.size(), nullptr));
    sb_schema_free(s);
}
