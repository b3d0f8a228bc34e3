// Protocols: violation handling modes (allow/omit/block), the violations log, and transforms.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

extern "C" {
#include "json/json.h"
#include "metrics/metrics.h"
#include "pipeline/verify.h"
#include "protocols/protocols.h"
#include "protocols/rewrite.h"
}

namespace {

int buf_write(void *data, const char *b, size_t len)
{
    return sb_buf_append(static_cast<sb_buf *>(data), b, len) ? -1 : 0;
}

std::string mp(const std::string &json)
{
    sb_buf b = SB_BUF_INIT;
    msgpack_packer pk;
    sb_json_error je;
    msgpack_packer_init(&pk, &b, buf_write);
    EXPECT_EQ(0, sb_json_to_msgpack(json.data(), json.size(), &pk, &je)) << json;
    std::string s(reinterpret_cast<char *>(b.data), b.len);
    sb_buf_free(&b);
    return s;
}

std::string js(const uint8_t *d, size_t len)
{
    sb_buf b = SB_BUF_INIT;
    size_t used;
    EXPECT_EQ(0, sb_msgpack_to_json(d, len, &used, &b));
    std::string s(reinterpret_cast<char *>(b.data), b.len);
    sb_buf_free(&b);
    return s;
}

// A kv list built from "path=value" lines, as the config loader flattens YAML.
struct kvs {
    std::vector<std::string> p, v;
    std::vector<sb_kv> items;
    sb_kv_list list{};
    kvs(std::initializer_list<std::pair<const char *, const char *>> l)
    {
        for (auto &x : l) {
            p.push_back(x.first);
            v.push_back(x.second);
        }
        for (size_t i = 0; i < p.size(); i++)
            items.push_back(sb_kv{&p[i][0], &v[i][0], int(i + 1)});
        list.items = items.data();
        list.n = items.size();
    }
};

// Applies a transform; returns the JSON of the result ("unchanged" if nothing changed).
std::string transform(std::initializer_list<std::pair<const char *, const char *>> rules,
                      const std::string &event_json)
{
    kvs k(rules);
    sb_transform *t;
    char err[256] = "";
    EXPECT_EQ(0, sb_transform_new(&k.list, &t, err, sizeof err)) << err;
    if (!t)
        return "compile failed";
    std::string in = mp(event_json);
    sb_buf out = SB_BUF_INIT;
    int rc = sb_transform_apply(t, reinterpret_cast<const uint8_t *>(in.data()), in.size(), &out);
    std::string r = rc == 1 ? js(out.data, out.len) : rc == 0 ? "unchanged" : "error";
    sb_buf_free(&out);
    sb_transform_free(t);
    return r;
}

std::string sha256_hex(const std::string &s)
{
    unsigned char d[32];
    unsigned int n;
    EXPECT_EQ(1, EVP_Digest(s.data(), s.size(), d, &n, EVP_sha256(), nullptr));
    std::string h;
    char x[3];
    for (unsigned i = 0; i < n; i++) {
        snprintf(x, sizeof x, "%02x", d[i]);
        h += x;
    }
    return h;
}

const char seed_plan[] = R"({"events": [{"name": "Order Completed",
 "description": "User completes a purchase",
 "rules": {"properties": {"type": "object",
  "required": ["order_id", "total", "currency", "products"],
  "properties": {"order_id": {"type": "string"}, "total": {"type": "number", "minimum": 0},
   "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
   "products": {"type": "array", "items": {"type": "object", "required": ["product_id", "price"],
     "properties": {"product_id": {"type": "string"}, "price": {"type": "number"}}}}}}}}]})";

const char strict_plan[] = R"({"events": [{"name": "Signed Up", "rules": {"properties":
 {"type": "object", "additionalProperties": false, "properties": {"plan": {"type": "string"}}}}}]})";

std::string seed_event(const std::string &props)
{
    return R"({"type":"track","event":"Order Completed","messageId":"m1","properties":)" + props +
           "}";
}
const char good_props[] =
    R"({"order_id":"ORD-2024-12345","total":129.98,"currency":"USD","products":[{"product_id":"SKU-12345","price":49.99},{"product_id":"SKU-67890","price":79.99}]})";

struct handled {
    int verdict;
    std::string out;  // JSON of the omitted event
    std::string kinds;
};

handled handle(const char *plan_json, sb_plan_opts o, const std::string &event_json)
{
    sb_plan *plan;
    char err[256];
    EXPECT_EQ(0, sb_plan_load_json(plan_json, strlen(plan_json), &plan, err, sizeof err)) << err;
    std::string in = mp(event_json);
    sb_violations v{};
    sb_plan_match m;
    sb_buf out = SB_BUF_INIT;
    handled h;
    h.verdict = sb_plan_handle(plan, &o, reinterpret_cast<const uint8_t *>(in.data()), in.size(),
                               &v, &m, &out);
    if (h.verdict == SB_PLAN_OMITTED)
        h.out = js(out.data, out.len);
    for (size_t i = 0; i < v.count; i++)
        h.kinds += std::string(sb_violation_kind_name(v.items[i].kind)) + ":" + v.items[i].path + ";";
    sb_violations_free(&v);
    sb_buf_free(&out);
    sb_plan_free(plan);
    return h;
}

sb_plan_opts opts(sb_pmode ue, sb_pmode up, sb_pmode inv)
{
    sb_plan_opts o{};
    o.unplanned_events = ue;
    o.unplanned_properties = up;
    o.invalid = inv;
    return o;
}

}  // namespace

TEST(Transform, DropNestedMissingAndOddNames)
{
    EXPECT_EQ(R"({"type":"track","properties":{"a":{"c":2}}})",
              transform({{"0.drop.0", "properties.a.b"}},
                        R"({"type":"track","properties":{"a":{"b":1,"c":2}}})"));
    EXPECT_EQ("unchanged", transform({{"0.drop.0", "properties.nope.x"}},
                                     R"({"type":"track","properties":{"a":1}})"));
    EXPECT_EQ(R"({"properties":{"x":1}})",
              transform({{"0.drop.0", "properties.Full Name"}, {"0.drop.1", "properties.ñame €"}},
                        R"({"properties":{"Full Name":"Ada","x":1,"ñame €":2}})"));
    // empty names and dots inside names through JSON Pointers
    EXPECT_EQ(R"({"properties":{"x":1}})",
              transform({{"0.drop.0", "/properties/"}, {"0.drop.1", "/properties/a.b~1c"}},
                        R"({"properties":{"":0,"x":1,"a.b/c":3}})"));
    // arrays: a path applies to every element
    EXPECT_EQ(R"({"properties":{"products":[{"id":1},{"id":2},3]}})",
              transform({{"0.drop.0", "properties.products.secret"}},
                        R"({"properties":{"products":[{"id":1,"secret":"s"},{"id":2},3]}})"));
}

TEST(Transform, HashMatchesSaltedSha256)
{
    std::string want = sha256_hex("pepper" "ada@example.com");
    std::string want_num = sha256_hex("pepper" "42");
    EXPECT_EQ(R"({"properties":{"email":")" + want + R"(","n":")" + want_num + R"(","z":null}})",
              transform({{"0.salt", "pepper"},
                         {"0.hash.0", "properties.email"},
                         {"0.hash.1", "properties.n"},
                         {"0.hash.2", "properties.z"}},
                        R"({"properties":{"email":"ada@example.com","n":42,"z":null}})"));
    kvs k({{"0.hash.0", "properties.email"}});
    sb_transform *t;
    char err[256] = "";
    EXPECT_EQ(-EINVAL, sb_transform_new(&k.list, &t, err, sizeof err));
    EXPECT_NE(nullptr, strstr(err, "salt")) << err;
}

TEST(Transform, AllowListSetRemoveRenamePerEvent)
{
    EXPECT_EQ(R"({"type":"track","event":"A","properties":{"keep":1,"deep":{"k":2}}})",
              transform({{"0.allow.0", "properties.keep"}, {"0.allow.1", "properties.deep.k"}},
                        R"({"type":"track","event":"A","properties":{"keep":1,"drop":2,"deep":{"k":2,"x":3}}})"));
    EXPECT_EQ(R"({"type":"track","context":{"ip":"1.2.3.4","app":{"name":"shop","build":7}}})",
              transform({{"0.set.context.app.name", "shop"}, {"0.set.context.app.build", "7"}},
                        R"({"type":"track","context":{"ip":"1.2.3.4"}})"));
    EXPECT_EQ(R"({"type":"track","context":{}})",
              transform({{"0.remove.0", "context.ip"}}, R"({"type":"track","context":{"ip":"x"}})"));
    // per event name and type; rename
    EXPECT_EQ(R"({"type":"track","event":"Order Completed"})",
              transform({{"0.event", "purchase"}, {"0.rename", "Order Completed"}},
                        R"({"type":"track","event":"purchase"})"));
    EXPECT_EQ("unchanged", transform({{"0.event", "purchase"}, {"0.rename", "X"}},
                                     R"({"type":"track","event":"other"})"));
    EXPECT_EQ("unchanged", transform({{"0.type", "identify"}, {"0.drop.0", "properties"}},
                                     R"({"type":"track","properties":{}})"));
    kvs bad({{"0.frobnicate", "x"}});
    sb_transform *t;
    char err[256] = "";
    EXPECT_EQ(-EINVAL, sb_transform_new(&bad.list, &t, err, sizeof err));
    EXPECT_NE(nullptr, strstr(err, "frobnicate")) << err;
}

TEST(Transform, ItemsActInOrderEvenWhenSharingAPass)
{
    // the hash sees the value the earlier item set; the filter sees the earlier rename
    std::string want = sha256_hex("s" "1");
    EXPECT_EQ(R"({"event":"B","properties":{"x":")" + want + R"("}})",
              transform({{"0.set.properties.x", "1"},
                         {"1.salt", "s"},
                         {"1.hash.0", "properties.x"},
                         {"2.event", "a"},
                         {"2.rename", "B"},
                         {"3.event", "B"},
                         {"3.drop.0", "properties.y"}},
                        R"({"event":"a","properties":{"y":2}})"));
    // independent items share one pass: same result as one after the other
    EXPECT_EQ(R"({"type":"track","event":"Order Completed","properties":{"a":1},"context":{}})",
              transform({{"0.type", "track"},
                         {"0.drop.0", "properties.email"},
                         {"1.normalize", "title_case"},
                         {"2.remove.0", "context.ip"}},
                        R"({"type":"track","event":"order completed","properties":{"a":1,"email":"e"},"context":{"ip":"x"}})"));
    // allow-list then set under the same parent: the set field survives
    EXPECT_EQ(R"({"properties":{"k":1,"n":2}})",
              transform({{"0.allow.0", "properties.k"}, {"1.set.properties.n", "2"}},
                        R"({"properties":{"k":1,"z":3}})"));
}

TEST(Transform, TitleCaseAsTheSeedMiddleware)
{
    EXPECT_EQ(R"({"event":"Order Completed"})",
              transform({{"0.normalize", "title_case"}}, R"({"event":"order COMPLETED"})"));
    EXPECT_EQ(R"({"event":"  A  Bc éclair"})",
              transform({{"0.normalize", "title_case"}}, R"({"event":"  a  bC éclair"})"));
    EXPECT_EQ("unchanged", transform({{"0.normalize", "title_case"}}, R"({"event":"Done"})"));
}

TEST(Transform, SeedPiiMiddlewareOnTrack)
{
    EXPECT_EQ(seed_event(good_props).substr(0, 0) +
                  R"({"type":"track","event":"Order Completed","properties":{"order_id":"O"}})",
              transform({{"0.type", "track"},
                         {"0.drop.0", "properties.email"},
                         {"0.drop.1", "properties.phone"},
                         {"0.drop.2", "properties.ip_address"},
                         {"1.normalize", "title_case"}},
                        R"({"type":"track","event":"order completed","properties":{"order_id":"O","email":"a@b.c","phone":"1","ip_address":"::1"}})"));
}

// The transform stage runs in the pipeline after verify: when its rules cannot invalidate an
// event, it derives the new event's metadata from its own rewrite (no second inspection). That
// metadata must be exactly what sb_event_inspect says of the new bytes.
struct stage_run {
    int verdict;
    bool inspected;
    sb_event_meta meta, want;
    int want_rc;
    std::string json, bytes;
    std::string event; // meta's event name, copied while the stage's buffer lived
};

stage_run run_transform_stage(std::initializer_list<std::pair<const char *, const char *>> rules,
                              const std::string &event_json)
{
    kvs k(rules);
    sb_transform *t;
    char err[256] = "";
    stage_run r{};
    EXPECT_EQ(0, sb_transform_new(&k.list, &t, err, sizeof err)) << err;
    sb_stage *st = sb_transform_stage_new(t, 0);
    std::string in = mp(event_json);
    sb_buf scratch = SB_BUF_INIT;
    r.meta.source = 0;
    EXPECT_EQ(0, sb_event_inspect(reinterpret_cast<const uint8_t *>(in.data()), in.size(), &r.meta));
    sb_stage_event ev{reinterpret_cast<const uint8_t *>(in.data()), in.size(), &r.meta, &scratch, 0,
                      false};
    r.verdict = st->process(st, &ev);
    r.inspected = ev.inspected;
    if (r.verdict == SB_STAGE_REPLACE) {
        r.want_rc = sb_event_inspect(scratch.data, scratch.len, &r.want);
        r.json = js(scratch.data, scratch.len);
        r.bytes.assign(reinterpret_cast<char *>(scratch.data), scratch.len);
    }
    if (r.meta.event)
        r.event.assign(reinterpret_cast<const char *>(r.meta.event), r.meta.event_len);
    st->destroy(st);
    sb_buf_free(&scratch);
    return r;
}

void expect_same_meta(const stage_run &r)
{
    ASSERT_EQ(0, r.want_rc) << r.json;
    EXPECT_EQ(r.want.call, r.meta.call);
    // the same places in the new bytes, not just equal text
    EXPECT_EQ(r.want.message_id, r.meta.message_id);
    EXPECT_EQ(r.want.message_id_len, r.meta.message_id_len);
    EXPECT_EQ(r.want.event, r.meta.event);
    EXPECT_EQ(r.want.event_len, r.meta.event_len);
    EXPECT_EQ(r.want.user_id, r.meta.user_id);
    EXPECT_EQ(r.want.user_id_len, r.meta.user_id_len);
    EXPECT_EQ(r.want.integrations, r.meta.integrations);
    EXPECT_EQ(r.want.integrations_len, r.meta.integrations_len);
}

TEST(TransformStage, InspectsItsOwnRewrite)
{
    auto r = run_transform_stage(
        {{"0.drop.0", "properties.email"}, {"1.normalize", "title_case"}, {"2.salt", "s"},
         {"2.hash.0", "userId"}, {"3.set.context.library.name", "segbus"}},
        R"({"type":"track","event":"order completed","userId":"u1","messageId":"m1",)"
        R"("integrations":{"All":false},"properties":{"email":"a@b.c","total":1}})");
    ASSERT_EQ(SB_STAGE_REPLACE, r.verdict);
    EXPECT_TRUE(r.inspected);
    expect_same_meta(r);
    EXPECT_EQ("Order Completed", r.event); // pointers into the freed buffer: compared, not read
    EXPECT_EQ(64u, r.meta.user_id_len); // the hash, where the rewrite put it
}

TEST(TransformStage, WideMapsKeepCanonicalHeaders)
{
    // 20 root keys (map16 header) with one dropped, and a page whose name is absent
    std::string ev = R"({"type":"page","anonymousId":"a","messageId":"m2")";
    for (int i = 0; i < 20; i++)
        ev += ",\"k" + std::to_string(i) + "\":" + std::to_string(i);
    ev += R"(,"sentAt":"x","properties":{"email":"e"}})";
    auto r = run_transform_stage({{"0.drop.0", "sentAt"}, {"0.drop.1", "properties.email"}}, ev);
    ASSERT_EQ(SB_STAGE_REPLACE, r.verdict);
    EXPECT_TRUE(r.inspected);
    expect_same_meta(r);
    EXPECT_EQ(nullptr, r.meta.event);
    EXPECT_EQ(std::string::npos, r.json.find("sentAt"));
    EXPECT_NE(std::string::npos, r.json.find(R"("k19":19,"properties":{}})")) << r.json;
    // the smallest headers, as msgpack-c packs: the same bytes as packing its JSON again
    EXPECT_EQ(mp(r.json), r.bytes);
}

// msgpack allows any value as a key: a map key must be skipped whole (not just its header), by
// inspect, the plan and the rewrite alike, or they read the rest of the event misaligned. The
// fuzz target found this (fuzz/corpus/transform/container_key.mp).
TEST(TransformStage, ContainerKeysAreSkippedWhole)
{
    sb_buf b = SB_BUF_INIT;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_write);
    auto str = [&](const char *s) {
        msgpack_pack_str(&pk, strlen(s));
        msgpack_pack_str_body(&pk, s, strlen(s));
    };
    msgpack_pack_map(&pk, 6);
    str("type"), str("track");
    msgpack_pack_map(&pk, 2); // a key that is a map holding what looks like fields
    str("event"), str("Fake"), str("userId"), str("fake");
    str("x");
    str("event"), str("order completed");
    str("userId"), str("u1");
    str("messageId"), str("m1");
    str("properties");
    msgpack_pack_map(&pk, 1);
    str("email"), str("a@b.c");
    std::string ev(reinterpret_cast<char *>(b.data), b.len);
    sb_buf_free(&b);
    sb_event_meta meta{};
    ASSERT_EQ(0, sb_event_inspect(reinterpret_cast<const uint8_t *>(ev.data()), ev.size(), &meta));
    ASSERT_EQ(15u, meta.event_len);
    EXPECT_EQ(0, memcmp(meta.event, "order completed", 15));

    kvs k({{"0.drop.0", "properties.email"}, {"1.normalize", "title_case"}});
    sb_transform *t;
    char err[256];
    ASSERT_EQ(0, sb_transform_new(&k.list, &t, err, sizeof err)) << err;
    sb_stage *st = sb_transform_stage_new(t, 0);
    sb_buf scratch = SB_BUF_INIT;
    sb_stage_event se{reinterpret_cast<const uint8_t *>(ev.data()), ev.size(), &meta, &scratch, 0,
                      false};
    ASSERT_EQ(SB_STAGE_REPLACE, st->process(st, &se));
    ASSERT_TRUE(se.inspected);
    sb_event_meta want{};
    ASSERT_EQ(0, sb_event_inspect(scratch.data, scratch.len, &want));
    EXPECT_EQ(want.event, meta.event);
    EXPECT_EQ(want.user_id, meta.user_id);
    EXPECT_EQ(0, memcmp(meta.event, "Order Completed", 15));
    EXPECT_EQ(2u, meta.user_id_len);
    st->destroy(st);
    sb_buf_free(&scratch);

    // the plan sees the real properties after the map key
    sb_plan *plan;
    ASSERT_EQ(0, sb_plan_load_json(R"({"events":[{"name":"order completed","rules":{"properties":{)"
                                   R"("type":"object","required":["total"]}}}]})",
                                   strlen(R"({"events":[{"name":"order completed","rules":{"properties":{)"
                                          R"("type":"object","required":["total"]}}}]})"),
                                   &plan, err, sizeof err))
        << err;
    sb_violations v = {};
    EXPECT_EQ(1, sb_plan_check(plan, reinterpret_cast<const uint8_t *>(ev.data()), ev.size(), &v,
                               nullptr));
    ASSERT_EQ(1u, v.count);
    EXPECT_STREQ("properties.total", v.items[0].path);
    sb_violations_free(&v);
    sb_plan_free(plan);
}

TEST(TransformStage, RulesThatCouldInvalidateLeaveInspectionToThePipeline)
{
    // dropping an identity field may leave an event without one: the pipeline must look
    auto r = run_transform_stage({{"0.drop.0", "anonymousId"}},
                                 R"({"type":"track","event":"E","userId":"u","anonymousId":"a",)"
                                 R"("messageId":"m"})");
    ASSERT_EQ(SB_STAGE_REPLACE, r.verdict);
    EXPECT_FALSE(r.inspected);
    auto u = run_transform_stage({{"0.drop.0", "properties.x"}},
                                 R"({"type":"track","event":"E","userId":"u","messageId":"m",)"
                                 R"("properties":{"y":1}})");
    EXPECT_EQ(SB_STAGE_PASS, u.verdict); // nothing to drop: no rewrite reaches the pipeline
}

TEST(PlanHandling, SeedEventIsClean)
{
    auto h = handle(seed_plan, opts(SB_PMODE_BLOCK, SB_PMODE_OMIT, SB_PMODE_BLOCK),
                    seed_event(good_props));
    EXPECT_EQ(SB_PLAN_CLEAN, h.verdict) << h.kinds;
}

TEST(PlanHandling, TypeViolationOmitAllowBlock)
{
    std::string ev = seed_event(
        R"({"order_id":"O","total":1,"currency":"USD","products":[{"product_id":"P","price":"49.99"}]})");
    auto h = handle(seed_plan, opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_OMIT), ev);
    ASSERT_EQ(SB_PLAN_OMITTED, h.verdict) << h.kinds;
    EXPECT_EQ("Type:properties.products.0.price;", h.kinds);
    std::string reason = h.out.substr(h.out.find("\"reason\":"));
    EXPECT_EQ(
        R"({"type":"track","event":"Order Completed","messageId":"m1","properties":{"order_id":"O","total":1,"currency":"USD","products":[{"product_id":"P"}]},"context":{"violations":[{"type":"Type","field":"properties.products.0.price",)" +
            reason,
        h.out);
    EXPECT_EQ(SB_PLAN_ALLOWED,
              handle(seed_plan, opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_ALLOW), ev).verdict);
    EXPECT_EQ(SB_PLAN_BLOCKED,
              handle(seed_plan, opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_BLOCK), ev).verdict);
}

TEST(PlanHandling, RequiredMissingOmitListsButKeeps)
{
    std::string ev = seed_event(R"({"total":1,"currency":"USD","products":[]})");
    auto h = handle(seed_plan, opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_OMIT), ev);
    ASSERT_EQ(SB_PLAN_OMITTED, h.verdict);
    EXPECT_EQ("Required:properties.order_id;", h.kinds);
    EXPECT_NE(std::string::npos, h.out.find(R"("properties":{"total":1,"currency":"USD","products":[]})"));
    EXPECT_NE(std::string::npos, h.out.find(R"("context":{"violations":[{"type":"Required","field":"properties.order_id")"));
    EXPECT_EQ(SB_PLAN_BLOCKED,
              handle(seed_plan, opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_BLOCK), ev).verdict);
}

TEST(PlanHandling, ValueViolationOmitKeepsExistingContext)
{
    std::string ev = R"({"type":"track","event":"Order Completed","context":{"ip":"x"},"properties":{"order_id":"O","total":-1,"currency":"JPY","products":[]}})";
    auto h = handle(seed_plan, opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_OMIT), ev);
    ASSERT_EQ(SB_PLAN_OMITTED, h.verdict);
    EXPECT_EQ("Value:properties.total;Value:properties.currency;", h.kinds);
    EXPECT_EQ(0u, h.out.find(R"({"type":"track","event":"Order Completed","context":{"ip":"x","violations":[{"type":"Value","field":"properties.total")"))
        << h.out;
    EXPECT_NE(std::string::npos, h.out.find(R"("properties":{"order_id":"O","products":[]}})"));
}

TEST(PlanHandling, UnplannedEventAllowBlock)
{
    std::string ev = seed_event(good_props);
    ev.replace(ev.find("Order Completed"), 15, "Order Complete");  // the typo
    auto h = handle(seed_plan, opts(SB_PMODE_BLOCK, SB_PMODE_ALLOW, SB_PMODE_ALLOW), ev);
    EXPECT_EQ(SB_PLAN_BLOCKED, h.verdict);
    EXPECT_EQ("Unplanned event:event;", h.kinds);
    EXPECT_EQ(SB_PLAN_ALLOWED,
              handle(seed_plan, opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_BLOCK), ev).verdict);
}

TEST(PlanHandling, UnplannedPropertyOmitAllow)
{
    std::string ev = R"({"type":"track","event":"Signed Up","properties":{"plan":"pro","email":"a@b.c"}})";
    auto h = handle(strict_plan, opts(SB_PMODE_BLOCK, SB_PMODE_OMIT, SB_PMODE_BLOCK), ev);
    ASSERT_EQ(SB_PLAN_OMITTED, h.verdict) << h.kinds;
    EXPECT_EQ(0u, h.out.find(R"({"type":"track","event":"Signed Up","properties":{"plan":"pro"},"context":{"violations":[{"type":"Unplanned property","field":"properties.email")"))
        << h.out;
    EXPECT_EQ(SB_PLAN_ALLOWED,
              handle(strict_plan, opts(SB_PMODE_BLOCK, SB_PMODE_ALLOW, SB_PMODE_BLOCK), ev).verdict);
}

TEST(PlanStage, BlockedEventsGoToTheRotatedLog)
{
    char dir[] = "/tmp/segbus-prot-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(dir));
    std::string log = std::string(dir) + "/v.ndjson";
    sb_plan *plan;
    char err[256];
    ASSERT_EQ(0, sb_plan_load_json(seed_plan, strlen(seed_plan), &plan, err, sizeof err));
    sb_plan_opts o = opts(SB_PMODE_BLOCK, SB_PMODE_ALLOW, SB_PMODE_BLOCK);
    o.log_path = &log[0];
    o.log_max_bytes = 600;
    sb_stage *st = sb_plan_stage_new(plan, &o, "web", 0, nullptr);
    ASSERT_NE(nullptr, st);
    std::string ev = mp(seed_event(R"({"order_id":7})"));
    sb_event_meta meta{};
    meta.source = 0;
    // what verify's sb_event_inspect fills in: stages read the call and name from meta
    meta.call = SB_CALL_TRACK;
    meta.event = reinterpret_cast<const uint8_t *>("Order Completed");
    meta.event_len = 15;
    sb_buf scratch = SB_BUF_INIT;
    for (int i = 0; i < 3; i++) {
        sb_stage_event se{reinterpret_cast<const uint8_t *>(ev.data()), ev.size(), &meta, &scratch, 0};
        EXPECT_EQ(SB_STAGE_DROP, st->process(st, &se));
        EXPECT_STREQ("blocked", st->reasons[se.reason]);
    }
    meta.source = 1;  // another source's events are not this plan's business
    sb_stage_event other{reinterpret_cast<const uint8_t *>(ev.data()), ev.size(), &meta, &scratch, 0};
    EXPECT_EQ(SB_STAGE_PASS, st->process(st, &other));
    uint64_t blocked, omitted, rotations;
    sb_plan_stage_counts(st, &blocked, &omitted, &rotations);
    EXPECT_EQ(3u, blocked);
    EXPECT_GE(rotations, 1u);
    st->destroy(st);
    sb_buf_free(&scratch);
    std::ifstream f(log);
    std::string line;
    ASSERT_TRUE(std::getline(f, line));
    EXPECT_NE(std::string::npos, line.find(R"("source":"web","event":"Order Completed","violations":[{"type":"Required","field":"properties.total")"))
        << line;
    EXPECT_NE(std::string::npos, line.find(R"("message":{"type":"track","event":"Order Completed")"));
    std::ifstream f1(log + ".1");
    EXPECT_TRUE(std::getline(f1, line));
    std::remove((log + ".1").c_str());
    std::remove(log.c_str());
    rmdir(dir);
}

// A plan stage run on a verified event (meta as sb_event_inspect fills it).
int run_plan_stage(sb_stage *st, const std::string &event_json)
{
    std::string ev = mp(event_json);
    sb_event_meta meta{};
    EXPECT_EQ(0, sb_event_inspect(reinterpret_cast<const uint8_t *>(ev.data()), ev.size(), &meta))
        << event_json;
    meta.source = 0;
    sb_buf scratch = SB_BUF_INIT;
    sb_stage_event se{reinterpret_cast<const uint8_t *>(ev.data()), ev.size(), &meta, &scratch, 0,
                      false};
    int rc = st->process(st, &se);
    sb_buf_free(&scratch);
    return rc;
}

struct captured {
    std::vector<std::pair<std::string, std::string>> events; // (output, JSON)
    int fail = 0;
    static int emit(void *arg, const char *output, const uint8_t *ev, size_t len)
    {
        auto *c = static_cast<captured *>(arg);
        if (c->fail)
            return -ENOSPC;
        c->events.emplace_back(output, js(ev, len));
        return 0;
    }
};

TEST(PlanStage, ViolationGeneratedGoesToTheChosenOutput)
{
    sb_plan *plan;
    char err[256];
    ASSERT_EQ(0, sb_plan_load_json(seed_plan, strlen(seed_plan), &plan, err, sizeof err));
    sb_plan_opts o = opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_ALLOW);
    o.log_path = const_cast<char *>("/dev/null");
    o.forward_to = const_cast<char *>("violations");
    sb_stage *st = sb_plan_stage_new(plan, &o, "web", 0, nullptr);
    ASSERT_NE(nullptr, st);
    captured cap;
    sb_violation_sink sink{captured::emit, &cap};
    sb_plan_stage_set_sink(st, &sink);
    std::string bad = R"({"type":"track","event":"Order Completed","userId":"u","messageId":"m-7",)"
                      R"("timestamp":"2026-11-28T10:00:00.000Z","properties":{"order_id":7}})";
    EXPECT_EQ(SB_STAGE_PASS, run_plan_stage(st, bad)); // allowed, but reported
    ASSERT_GE(cap.events.size(), 2u);                  // order_id's type, total missing, ...
    for (auto &e : cap.events) {
        EXPECT_EQ("violations", e.first);
        EXPECT_NE(std::string::npos, e.second.find(R"({"type":"track","event":"Violation Generated","userId":"schema-violations","messageId":")"))
            << e.second;
    }
    const std::string &first = cap.events[0].second;
    EXPECT_NE(std::string::npos,
              first.find(R"("properties":{"violationType":"Required","violationField":"properties.total",)"
                         R"("violationDescription":"required property 'total' is missing",)"
                         R"("eventName":"Order Completed","eventType":"track","eventMessageID":"m-7",)"
                         R"("sourceName":"web","eventTimestamp":"2026-11-28T10:00:00.000Z"}})"))
        << first;
    size_t n = cap.events.size();
    // a clean event generates nothing; a refusing sink is counted, the event still flows
    std::string good = R"({"type":"track","event":"Order Completed","userId":"u","messageId":"m-8",)"
                       R"("properties":{"order_id":"A","total":1,"currency":"USD","products":[]}})";
    EXPECT_EQ(SB_STAGE_PASS, run_plan_stage(st, good));
    EXPECT_EQ(n, cap.events.size());
    cap.fail = 1;
    EXPECT_EQ(SB_STAGE_PASS, run_plan_stage(st, bad));
    uint64_t fwd, failed;
    sb_plan_stage_forwarded(st, &fwd, &failed);
    EXPECT_EQ(n, fwd);
    EXPECT_EQ(n, failed);
    st->destroy(st);
}

TEST(PlanStage, ViolationSeriesAreBoundedWithAnOverflowSeries)
{
    sb_plan *plan;
    char err[256];
    sb_metrics *m;
    ASSERT_EQ(0, sb_metrics_new(&m));
    ASSERT_EQ(0, sb_plan_load_json(seed_plan, strlen(seed_plan), &plan, err, sizeof err));
    sb_plan_opts o = opts(SB_PMODE_ALLOW, SB_PMODE_ALLOW, SB_PMODE_ALLOW);
    o.log_path = const_cast<char *>("/dev/null");
    sb_stage *st = sb_plan_stage_new(plan, &o, "web", 0, m);
    ASSERT_NE(nullptr, st);
    // 1100 distinct unplanned names (as a buggy app would send), each twice
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1100; i++)
            EXPECT_EQ(SB_STAGE_PASS,
                      run_plan_stage(st, R"({"type":"track","event":"Random )" + std::to_string(i) +
                                             R"(","userId":"u","messageId":"m"})"));
    double v = 0;
    const char *const first[] = {"source", "web", "event", "Random 0", "type", "Unplanned event",
                                 "field", "event", nullptr};
    ASSERT_EQ(0, sb_metrics_get(m, "segbus_plan_violations_total", first, &v));
    EXPECT_EQ(2, v);
    const char *const over[] = {"source", "web", "event", "(other)", "type", "Unplanned event",
                                "field", "(other)", nullptr};
    ASSERT_EQ(0, sb_metrics_get(m, "segbus_plan_violations_total", over, &v));
    EXPECT_EQ(2 * (1100 - 1024), v); // the overflow is counted, under one series
    const char *const last[] = {"source", "web", "event", "Random 1099", "type", "Unplanned event",
                                "field", "event", nullptr};
    EXPECT_NE(0, sb_metrics_get(m, "segbus_plan_violations_total", last, &v));
    sb_buf b = SB_BUF_INIT;
    ASSERT_EQ(0, sb_metrics_render_prometheus(m, &b));
    std::string text(reinterpret_cast<char *>(b.data), b.len);
    size_t series = 0;
    for (size_t at = 0; (at = text.find("\nsegbus_plan_violations_total{", at)) != std::string::npos; at++)
        series++;
    EXPECT_EQ(1025u, series); // 1024 named ones and the overflow
    sb_buf_free(&b);
    st->destroy(st);
    sb_metrics_free(m);
}

TEST(PlanOpts, KeysAndErrors)
{
    kvs k({{"unplanned_events", "block"}, {"unplanned_properties", "omit"}, {"invalid", "omit"},
           {"log_max_bytes", "1000"}});
    sb_plan_opts o;
    char err[256] = "";
    ASSERT_EQ(0, sb_plan_opts_parse(&k.list, &o, err, sizeof err)) << err;
    EXPECT_EQ(SB_PMODE_BLOCK, o.unplanned_events);
    EXPECT_EQ(SB_PMODE_OMIT, o.unplanned_properties);
    EXPECT_EQ(SB_PMODE_OMIT, o.invalid);
    EXPECT_EQ(1000u, o.log_max_bytes);
    sb_plan_opts_free(&o);
    kvs bad({{"unplanned_events", "omit"}});
    EXPECT_EQ(-EINVAL, sb_plan_opts_parse(&bad.list, &o, err, sizeof err));
    EXPECT_NE(nullptr, strstr(err, "allow|block")) << err;
}
