// hub_process_test.cc: the hub's request handling (sb_hub_process) on real bodies: every route
// and alias, write keys (Basic and body, unknown, expired), each bad request's status and
// reason, partial batches, sentAt correction, context/integrations merge, msgpack envelopes.
#include <gtest/gtest.h>

#include <msgpack.h>

#include <string>
#include <vector>

// liburing must not be wrapped in extern "C" (C++ templates); its guard keeps it out below.
#include <liburing.h>
extern "C" {
#include "config/config.h"
#include "hub/hub.h"
#include "json/json.h"
#include "pipeline/verify.h"
}

namespace
{

const char *kYaml = R"(sources:
  - name: web
    environment: prod
    write_keys:
      - key: wk_live
      - key: wk_old
        expires: 2020-01-01T00:00:00Z
  - name: app
    environment: dev
    write_keys:
      - wk_app
)";

struct Hub : ::testing::Test {
    sb_config cfg{};
    void SetUp() override
    {
        sb_config_error e{};
        ASSERT_EQ(sb_config_load_string(&cfg, kYaml, strlen(kYaml), "t.yaml", &e), 0) << e.msg;
    }
    void TearDown() override
    {
        sb_config_free(&cfg);
    }

    struct Result {
        int status = 0;
        std::string resp;
        std::vector<std::string> events; // as JSON
        std::vector<int> sources;
    };
    static int emit(void *arg, const uint8_t *ev, size_t len, sb_event_meta *meta)
    {
        auto *r = static_cast<Result *>(arg);
        sb_buf out = SB_BUF_INIT;
        size_t used = 0;
        EXPECT_EQ(sb_msgpack_to_json(ev, len, &used, &out), 0);
        r->events.emplace_back((const char *)out.data, out.len);
        r->sources.push_back(meta->source);
        sb_buf_free(&out);
        // The pipeline's verify stage trusts a verified event's metadata instead of walking it
        // again: it must be exactly what an inspection of these bytes gives.
        sb_event_meta fresh{};
        EXPECT_TRUE(meta->verified);
        EXPECT_EQ(sb_event_inspect(ev, len, &fresh), 0);
        EXPECT_EQ(fresh.call, meta->call);
        EXPECT_EQ(fresh.message_id, meta->message_id);
        EXPECT_EQ(fresh.message_id_len, meta->message_id_len);
        EXPECT_EQ(fresh.event, meta->event);
        EXPECT_EQ(fresh.user_id, meta->user_id);
        EXPECT_EQ(fresh.integrations, meta->integrations);
        EXPECT_EQ(fresh.integrations_len, meta->integrations_len);
        return 0;
    }
    Result run(const char *route, const std::string &body, const char *auth = nullptr,
               const char *ctype = nullptr, int64_t now_ms = 1700000000000)
    {
        Result r;
        sb_buf resp = SB_BUF_INIT;
        EXPECT_EQ(sb_hub_process(&cfg, route, ctype, auth, (const uint8_t *)body.data(),
                                 body.size(), now_ms, emit, &r, &r.status, &resp),
                  0);
        r.resp.assign((const char *)resp.data, resp.len);
        sb_buf_free(&resp);
        return r;
    }
};

const char *kBasicLive = "Basic d2tfbGl2ZTo="; // base64("wk_live:")

TEST_F(Hub, EverySingleRouteAndAliasSetsTheType)
{
    const char *routes[][2] = {
        {"/v1/track", "track"},   {"/v1/t", "track"},     {"/v1/identify", "identify"},
        {"/v1/i", "identify"},    {"/v1/page", "page"},   {"/v1/p", "page"},
        {"/v1/screen", "screen"}, {"/v1/s", "screen"},    {"/v1/group", "group"},
        {"/v1/g", "group"},       {"/v1/alias", "alias"}, {"/v1/a", "alias"}};
    for (auto &rt : routes) {
        auto r = run(rt[0], R"({"userId":"u1","event":"E","groupId":"g","previousId":"p",)"
                            R"("type":"bogus","writeKey":"wk_live"})");
        ASSERT_EQ(r.status, 200) << rt[0] << " " << r.resp;
        EXPECT_EQ(r.resp, "{\"success\":true}");
        ASSERT_EQ(r.events.size(), 1u) << rt[0];
        EXPECT_NE(r.events[0].find(std::string("\"type\":\"") + rt[1] + "\""), std::string::npos)
            << r.events[0];
        EXPECT_EQ(r.events[0].find("bogus"), std::string::npos) << r.events[0];
        EXPECT_EQ(r.events[0].find("wk_live"), std::string::npos) << "write key leaked";
        EXPECT_NE(r.events[0].find("\"messageId\":\""), std::string::npos);
        EXPECT_NE(r.events[0].find("\"receivedAt\":\"2023-11-14T22:13:20.000Z\""),
                  std::string::npos)
            << r.events[0];
    }
}

TEST_F(Hub, BatchRoutes)
{
    for (const char *rt : {"/v1/batch", "/v1/b", "/v1/import", "/v1/import/"}) {
        auto r = run(rt,
                     R"({"batch":[{"type":"track","event":"A","userId":"u"},)"
                     R"({"type":"identify","anonymousId":"a"}]})",
                     kBasicLive);
        EXPECT_EQ(r.status, 200) << rt << r.resp;
        EXPECT_EQ(r.events.size(), 2u) << rt;
        EXPECT_EQ(r.sources, std::vector<int>({0, 0}));
    }
}

TEST_F(Hub, WriteKeys)
{
    std::string ev = R"({"userId":"u","event":"E"})";
    EXPECT_EQ(run("/v1/track", ev, kBasicLive).status, 200);
    // Basic without the colon (old clients) is accepted too.
    EXPECT_EQ(run("/v1/track", ev, "Basic d2tfbGl2ZQ==").status, 200);
    auto app = run("/v1/track", R"({"userId":"u","event":"E","writeKey":"wk_app"})");
    EXPECT_EQ(app.status, 200);
    EXPECT_EQ(app.sources, std::vector<int>({1}));
    auto none = run("/v1/track", ev);
    EXPECT_EQ(none.status, 401);
    EXPECT_NE(none.resp.find("no write key"), std::string::npos);
    auto bad = run("/v1/track", R"({"userId":"u","event":"E","writeKey":"nope"})");
    EXPECT_EQ(bad.status, 401);
    EXPECT_NE(bad.resp.find("unknown write key"), std::string::npos);
    EXPECT_EQ(bad.resp.find("nope"), std::string::npos) << "the key must not be echoed";
    auto old = run("/v1/track", R"({"userId":"u","event":"E","writeKey":"wk_old"})");
    EXPECT_EQ(old.status, 401);
    EXPECT_NE(old.resp.find("expired at 2020-01-01T00:00:00.000Z"), std::string::npos) << old.resp;
    // Expired only after its expiry: the same key a while before is live.
    EXPECT_EQ(run("/v1/track", R"({"userId":"u","event":"E","writeKey":"wk_old"})", nullptr,
                  nullptr, 1500000000000)
                  .status,
              200);
    EXPECT_EQ(run("/v1/track", ev, "Bearer xyz").status, 401);
    EXPECT_TRUE(run("/v1/track", ev, "Bearer xyz").events.empty());
}

TEST_F(Hub, BadRequestsNameWhatIsWrong)
{
    auto r = run("/v1/track", R"({"userId":"u", "event": tru})", kBasicLive);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.resp.find("invalid JSON at byte "), std::string::npos) << r.resp;

    r = run("/v2/track", "{}", kBasicLive);
    EXPECT_EQ(r.status, 404);
    EXPECT_NE(r.resp.find("unknown route /v2/track"), std::string::npos);

    std::string big =
        R"({"userId":"u","event":"E","properties":{"x":")" + std::string(33000, 'a') + "\"}}";
    r = run("/v1/track", big, kBasicLive);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.resp.find("32 KB"), std::string::npos) << r.resp;

    std::string batch = R"({"batch":[)";
    for (int i = 0; i < 1100; i++)
        batch += std::string(i ? "," : "") + R"({"type":"track","userId":"u","event":")" +
                 std::string(450, 'e') + "\"}";
    batch += "]}";
    r = run("/v1/batch", batch, kBasicLive);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.resp.find("500 KB"), std::string::npos) << r.resp;
    EXPECT_TRUE(r.events.empty());

    r = run("/v1/batch", R"({"batch":{}})", kBasicLive);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.resp.find("no \\\"batch\\\" array"), std::string::npos) << r.resp;
    r = run("/v1/batch", R"([1,2])", kBasicLive);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.resp.find("must be an object"), std::string::npos) << r.resp;

    r = run("/v1/track", R"({"event":"E"})", kBasicLive);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.resp.find("event 0: missing userId or anonymousId"), std::string::npos) << r.resp;
}

TEST_F(Hub, PartialBatchTakesTheGoodAndNamesTheBad)
{
    auto r = run("/v1/batch",
                 R"({"batch":[{"type":"track","event":"A","userId":"u"},)"
                 R"({"type":"track","event":"B"},)"
                 R"({"type":"track","userId":"u"},)"
                 R"(7,)"
                 R"({"type":"alias","userId":"u","previousId":"p"}]})",
                 kBasicLive);
    EXPECT_EQ(r.status, 200) << r.resp;
    EXPECT_EQ(r.events.size(), 2u);
    EXPECT_NE(r.resp.find("\"accepted\":2"), std::string::npos) << r.resp;
    EXPECT_NE(r.resp.find("{\"index\":1,\"reason\":\"no_identity\""), std::string::npos) << r.resp;
    EXPECT_NE(r.resp.find("{\"index\":2,\"reason\":\"no_event\""), std::string::npos) << r.resp;
    EXPECT_NE(r.resp.find("{\"index\":3,\"reason\":\"not_a_map\""), std::string::npos) << r.resp;

    r = run("/v1/batch", R"({"batch":[{"type":"track","event":"B"}]})", kBasicLive);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.resp.find("\"success\":false"), std::string::npos);
}

TEST_F(Hub, SentAtCorrectsTheClockSkew)
{
    // The client's clock is an hour behind; its event was made 2 s before it sent the batch.
    auto r = run("/v1/batch",
                 R"({"sentAt":"2023-11-14T21:13:20.000Z","batch":[{"type":"track","event":"A",)"
                 R"("userId":"u","timestamp":"2023-11-14T21:13:18.000Z"}]})",
                 kBasicLive);
    ASSERT_EQ(r.events.size(), 1u) << r.resp;
    const std::string &e = r.events[0];
    EXPECT_NE(e.find("\"timestamp\":\"2023-11-14T22:13:18.000Z\""), std::string::npos) << e;
    EXPECT_NE(e.find("\"originalTimestamp\":\"2023-11-14T21:13:18.000Z\""), std::string::npos);
    EXPECT_NE(e.find("\"sentAt\":\"2023-11-14T21:13:20.000Z\""), std::string::npos);
    EXPECT_NE(e.find("\"receivedAt\":\"2023-11-14T22:13:20.000Z\""), std::string::npos);
    // Offsets are understood.
    r = run("/v1/track",
            R"({"event":"A","userId":"u","timestamp":"2023-11-14T23:13:19.500+01:00",)"
            R"("sentAt":"2023-11-14T22:13:20Z"})",
            kBasicLive);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_NE(r.events[0].find("\"timestamp\":\"2023-11-14T22:13:19.500Z\""), std::string::npos)
        << r.events[0];
    // No timestamp: the receive time.
    r = run("/v1/track", R"({"event":"A","userId":"u"})", kBasicLive);
    EXPECT_NE(r.events[0].find("\"timestamp\":\"2023-11-14T22:13:20.000Z\""), std::string::npos);
    // A given messageId is kept.
    r = run("/v1/track", R"({"event":"A","userId":"u","messageId":"m-1"})", kBasicLive);
    EXPECT_NE(r.events[0].find("\"messageId\":\"m-1\""), std::string::npos);
    EXPECT_EQ(r.events[0].find("\"messageId\"", r.events[0].find("m-1")), std::string::npos);
}

TEST_F(Hub, BatchContextAndIntegrationsMergeUnderTheEvents)
{
    auto r = run("/v1/batch",
                 R"({"context":{"library":{"name":"go"},"ip":"1.2.3.4"},)"
                 R"("integrations":{"All":false},"batch":[)"
                 R"({"type":"track","event":"A","userId":"u","context":{"ip":"5.6.7.8"}},)"
                 R"({"type":"track","event":"B","userId":"u","integrations":{"All":true}}]})",
                 kBasicLive);
    ASSERT_EQ(r.events.size(), 2u) << r.resp;
    EXPECT_NE(r.events[0].find(R"("context":{"ip":"5.6.7.8","library":{"name":"go"}})"),
              std::string::npos)
        << r.events[0];
    EXPECT_NE(r.events[0].find(R"("integrations":{"All":false})"), std::string::npos);
    EXPECT_NE(r.events[1].find(R"("context":{"library":{"name":"go"},"ip":"1.2.3.4"})"),
              std::string::npos)
        << r.events[1];
    EXPECT_NE(r.events[1].find(R"("integrations":{"All":true})"), std::string::npos);
}

TEST_F(Hub, MsgpackBatchesFromSidecars)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    auto str = [&](const char *s) {
        msgpack_pack_str(&pk, strlen(s));
        msgpack_pack_str_body(&pk, s, strlen(s));
    };
    msgpack_pack_map(&pk, 3);
    str("writeKey");
    str("wk_app");
    str("sentAt");
    str("2023-11-14T22:13:20.000Z");
    str("batch");
    msgpack_pack_array(&pk, 3);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_map(&pk, 4);
        str("type");
        str("track");
        str("event");
        str("Sidecar");
        str("userId");
        str("u");
        str("messageId");
        str(i == 0 ? "m0" : i == 1 ? "m1" : "m2");
    }
    std::string body(sb.data, sb.size);
    auto r = run("/v1/batch", body, nullptr, "application/msgpack");
    EXPECT_EQ(r.status, 200) << r.resp;
    ASSERT_EQ(r.events.size(), 3u);
    EXPECT_EQ(r.sources, std::vector<int>({1, 1, 1}));
    EXPECT_NE(r.events[2].find("\"messageId\":\"m2\""), std::string::npos);
    // Truncated msgpack is refused whole.
    r = run("/v1/batch", body.substr(0, body.size() - 3), nullptr, "application/msgpack");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.resp.find("invalid msgpack"), std::string::npos);
    EXPECT_TRUE(r.events.empty());
    msgpack_sbuffer_destroy(&sb);
}

TEST(HubTime, Parse)
{
    int64_t ms = 0;
    EXPECT_EQ(sb_hub_parse_time("1970-01-01T00:00:00Z", 20, &ms), 0);
    EXPECT_EQ(ms, 0);
    EXPECT_EQ(sb_hub_parse_time("2000-02-29T12:00:00.123456Z", 27, &ms), 0);
    EXPECT_EQ(ms, 951825600123);
    EXPECT_NE(sb_hub_parse_time("2000-13-01T00:00:00Z", 20, &ms), 0);
    EXPECT_NE(sb_hub_parse_time("2000-01-01T00:00:00", 19, &ms), 0);
    EXPECT_NE(sb_hub_parse_time("2000-01-01T00:00:00.Z", 21, &ms), 0);
}

} // namespace
