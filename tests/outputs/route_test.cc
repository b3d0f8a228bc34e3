// route_test.cc: which destination takes which event: sources, allow/deny by call type and track
// event name, and the event's integrations object read as Segment reads it (case-sensitive
// destination names, "All", false vs true vs a settings object).
#include <gtest/gtest.h>

#include <msgpack.h>

#include <string>

extern "C" {
#include "config/config.h"
#include "json/json.h"
#include "outputs/route.h"
#include "pipeline/verify.h"
}

namespace
{

// An event from JSON text, as msgpack, and its meta as the verify stage fills it.
struct Ev {
    std::string mp;
    sb_event_meta meta{};
    explicit Ev(const std::string &json)
    {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        sb_json_error je{};
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        EXPECT_EQ(sb_json_to_msgpack(json.data(), json.size(), &pk, &je), 0) << json;
        mp.assign(sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        meta.source = -1;
        EXPECT_EQ(sb_event_inspect((const uint8_t *)mp.data(), mp.size(), &meta), 0) << json;
    }
};

struct Out {
    sb_config cfg{};
    sb_output_config o{};
    explicit Out(const char *name)
    {
        EXPECT_EQ(sb_config_defaults(&cfg), 0);
        EXPECT_EQ(sb_output_defaults(&o, SB_OUTPUT_WEBHOOK, &cfg), 0);
        o.name = strdup(name);
    }
    static void add(sb_str_list &l, const char *s)
    {
        l.items = (char **)realloc(l.items, (l.n + 1) * sizeof *l.items);
        l.items[l.n++] = strdup(s);
    }
    ~Out()
    {
        // Give the output to a config so that sb_config_free frees it the same way.
        cfg.outputs = (sb_output_config *)calloc(1, sizeof o);
        cfg.outputs[0] = o;
        cfg.n_outputs = 1;
        sb_config_free(&cfg);
    }
};

const char *kTrack = R"({"type":"track","userId":"u","event":"Order Completed","messageId":"m1")";

TEST(Route, SourcesFeedOnlyTheirOutputs)
{
    Out w("wh");
    Ev e(std::string(kTrack) + "}");
    EXPECT_EQ(sb_route_check(&w.o, &e.meta, "web"), SB_ROUTE_TAKE); // no sources: all
    EXPECT_EQ(sb_route_check(&w.o, &e.meta, nullptr), SB_ROUTE_TAKE);
    Out::add(w.o.sources, "web");
    Out::add(w.o.sources, "ios");
    EXPECT_EQ(sb_route_check(&w.o, &e.meta, "web"), SB_ROUTE_TAKE);
    EXPECT_EQ(sb_route_check(&w.o, &e.meta, "ios"), SB_ROUTE_TAKE);
    EXPECT_EQ(sb_route_check(&w.o, &e.meta, "android"), SB_ROUTE_SOURCE);
    EXPECT_EQ(sb_route_check(&w.o, &e.meta, nullptr), SB_ROUTE_SOURCE); // a ring without source
}

TEST(Route, AllowAndDenyByTypeAndTrackEventName)
{
    Ev order(std::string(kTrack) + "}");
    Ev viewed(R"({"type":"track","userId":"u","event":"Product Viewed","messageId":"m2"})");
    Ev ident(R"({"type":"identify","userId":"u","messageId":"m3"})");
    // A page whose name equals a track event name is not that event.
    Ev page(R"({"type":"page","userId":"u","name":"Order Completed","messageId":"m4"})");

    Out deny("d");
    Out::add(deny.o.deny, "Order Completed");
    Out::add(deny.o.deny, "identify");
    EXPECT_EQ(sb_route_check(&deny.o, &order.meta, nullptr), SB_ROUTE_DENIED);
    EXPECT_EQ(sb_route_check(&deny.o, &viewed.meta, nullptr), SB_ROUTE_TAKE);
    EXPECT_EQ(sb_route_check(&deny.o, &ident.meta, nullptr), SB_ROUTE_DENIED);
    EXPECT_EQ(sb_route_check(&deny.o, &page.meta, nullptr), SB_ROUTE_TAKE);

    Out allow("a");
    Out::add(allow.o.allow, "Product Viewed");
    Out::add(allow.o.allow, "page");
    EXPECT_EQ(sb_route_check(&allow.o, &order.meta, nullptr), SB_ROUTE_NOT_ALLOWED);
    EXPECT_EQ(sb_route_check(&allow.o, &viewed.meta, nullptr), SB_ROUTE_TAKE);
    EXPECT_EQ(sb_route_check(&allow.o, &ident.meta, nullptr), SB_ROUTE_NOT_ALLOWED);
    EXPECT_EQ(sb_route_check(&allow.o, &page.meta, nullptr), SB_ROUTE_TAKE);

    // Deny wins over allow; matching is exact (case and whole name).
    Out both("b");
    Out::add(both.o.allow, "track");
    Out::add(both.o.deny, "Product Viewed");
    Out::add(both.o.deny, "order completed");
    EXPECT_EQ(sb_route_check(&both.o, &viewed.meta, nullptr), SB_ROUTE_DENIED);
    EXPECT_EQ(sb_route_check(&both.o, &order.meta, nullptr), SB_ROUTE_TAKE);
}

struct Case {
    const char *integrations; // JSON, or nullptr for none
    bool webhook, file;       // does "Webhook" / "file" take it
};

TEST(Route, IntegrationsObjectAsSegmentReadsIt)
{
    Out wh("Webhook"), file("file");
    const Case cases[] = {
        {nullptr, true, true},
        {R"({})", true, true},
        {R"({"All":true})", true, true},
        {R"({"All":false})", false, false},
        {R"({"All":false,"Webhook":true})", true, false},
        {R"({"Webhook":true,"All":false})", true, false}, // order does not matter
        {R"({"Webhook":false})", false, true},
        {R"({"All":true,"Webhook":false})", false, true},
        {R"({"All":false,"Webhook":{"url":"x"}})", true, false}, // settings object: on
        {R"({"All":false,"webhook":true})", false, false},       // names are case-sensitive
        {R"({"All":false,"Salesforce":true})", false, false},
        {R"({"All":false,"Webhook":null})", true, false}, // only false switches off
        {R"({"All":"no"})", true, true},
        {R"({"All":false,"file":true,"Webhook":false})", false, true},
    };
    for (const Case &c : cases) {
        std::string js = kTrack;
        if (c.integrations)
            js += std::string(R"(,"integrations":)") + c.integrations;
        js += "}";
        Ev e(js);
        SCOPED_TRACE(js);
        EXPECT_EQ(sb_route_check(&wh.o, &e.meta, nullptr) == SB_ROUTE_TAKE, c.webhook);
        EXPECT_EQ(sb_route_check(&file.o, &e.meta, nullptr) == SB_ROUTE_TAKE, c.file);
        if (!c.webhook) {
            EXPECT_EQ(sb_route_check(&wh.o, &e.meta, nullptr), SB_ROUTE_INTEGRATIONS);
        }
    }
}

TEST(Route, IntegrationNameOverridesTheOutputName)
{
    Out o("hooks-eu");
    o.o.integration = strdup("Webhooks");
    Ev on(std::string(kTrack) + R"(,"integrations":{"All":false,"Webhooks":true}})");
    Ev by_name(std::string(kTrack) + R"(,"integrations":{"All":false,"hooks-eu":true}})");
    EXPECT_EQ(sb_route_check(&o.o, &on.meta, nullptr), SB_ROUTE_TAKE);
    EXPECT_EQ(sb_route_check(&o.o, &by_name.meta, nullptr), SB_ROUTE_INTEGRATIONS);
}

TEST(Route, MalformedIntegrationsBytesReadAsAbsent)
{
    // Not a map, truncated, or an empty buffer: enabled (verify rejects most of these first;
    // this is the reader's own bound).
    const uint8_t arr[] = {0x91, 0xc2};           // [false]
    const uint8_t cut[] = {0x82, 0xa3, 'A', 'l'}; // {"Al... truncated
    const uint8_t all_false[] = {0x81, 0xa3, 'A', 'l', 'l', 0xc2};
    EXPECT_TRUE(sb_route_integration_enabled(arr, sizeof arr, "x", 1));
    EXPECT_TRUE(sb_route_integration_enabled(cut, sizeof cut, "x", 1));
    EXPECT_TRUE(sb_route_integration_enabled(nullptr, 0, "x", 1));
    EXPECT_FALSE(sb_route_integration_enabled(all_false, sizeof all_false, "x", 1));
    // A truncated value after the key: the cut byte is never read past the end.
    EXPECT_TRUE(sb_route_integration_enabled(all_false, sizeof all_false - 1, "x", 1));
}

} // namespace
