// hub_dest_test.cc: a real segbusd hub fanning out to two webhooks (batch mode and event mode,
// each signed with its own secret, extra headers, one of them answering 503 once) and two NDJSON
// files (rotated by size and by age): per-destination routing by source, allow/deny and the
// events' integrations object, signatures checked by the receiver, every event exactly once where
// it belongs and nowhere else, secrets in no log or metric.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <liburing.h> // before the C headers that include it: its C++ templates

#include "harness.h"

extern "C" {
#include "net/http.h"
#include "net/http_server.h"
}

using namespace sbt;

namespace
{

const char *kWeb = "Authorization: Basic d2tfd2ViOg==\r\n"; // wk_web:
const char *kIos = "Authorization: Basic d2tfaW9zOg==\r\n"; // wk_ios:

// What one webhook endpoint received.
struct Hook {
    std::map<std::string, int> ids;
    int requests = 0, bad_signatures = 0, bad_shape = 0;
    std::vector<std::string> retry_counts, headers;
};

struct Receiver {
    HttpReceiver http;
    std::mutex mu;
    std::map<std::string, Hook> hooks; // by path
    int fail_each_at = 5;              // the 5th POST to /each answers 503 once
    bool start()
    {
        return http.start([this](sb_http_exchange *ex, const sb_http_message *req) {
            std::lock_guard<std::mutex> g(mu);
            std::string p = path(req), b = body(req);
            Hook &h = hooks[p];
            h.requests++;
            h.retry_counts.push_back(header(req, "X-Retry-Count"));
            h.headers.push_back(header(req, "X-Team") + "|" + header(req, "Authorization") + "|" +
                                header(req, "Content-Type") + "|" +
                                header(req, "User-Agent").substr(0, 8));
            if (p == "/each" && h.requests == fail_each_at) {
                respond_json(ex, 503, "{\"error\":\"busy\"}", {{"Retry-After", "0"}});
                return;
            }
            std::string sig =
                p == "/batch" ? header(req, "X-Signature") : header(req, "X-Hub-Signature-256");
            if (!signature_ok(sig, p == "/batch" ? "s3cr3t-batch" : "s3cr3t-each", b)) {
                h.bad_signatures++;
                respond_json(ex, 401, "{\"error\":\"bad signature\"}");
                return;
            }
            auto ids = json_message_ids(b);
            bool batch_shape = b.rfind("{\"batch\":[", 0) == 0 && b.find("\"sentAt\":\"") != b.npos;
            if (p == "/batch" ? !batch_shape : (ids.size() != 1 || b[0] != '{' || batch_shape))
                h.bad_shape++;
            for (auto &id : ids)
                h.ids[id]++;
            respond_json(ex, 200, "{\"ok\":true}");
        });
    }
    Hook get(const std::string &p)
    {
        std::lock_guard<std::mutex> g(mu);
        return hooks[p];
    }
};

std::string event(const std::string &type, const std::string &id, const std::string &extra)
{
    return "{\"type\":\"" + type + "\",\"userId\":\"u-" + id + "\",\"messageId\":\"" + id + "\"" +
           extra + "}";
}

std::string batch(const std::vector<std::string> &events)
{
    std::string b = "{\"batch\":[";
    for (size_t i = 0; i < events.size(); i++)
        b += (i ? "," : "") + events[i];
    return b + "]}";
}

std::set<std::string> ids_of(const std::map<std::string, int> &m)
{
    std::set<std::string> s;
    for (auto &kv : m)
        s.insert(kv.first);
    return s;
}

TEST(HubDestinations, RoutingSignedWebhooksAndRotatedFiles)
{
    TempDir tmp("segbus-hubdest");
    Receiver rx;
    ASSERT_TRUE(rx.start());
    uint16_t port = free_port(), mport = free_port();
    std::string cfg = tmp / "segbusd.yaml", log = tmp / "segbusd.log";
    std::string url = "http://127.0.0.1:" + std::to_string(rx.http.port);
    write_file(cfg, daemon_config(tmp.path, port, mport, 10) +
                        "sources:\n"
                        "  - {name: web, write_keys: [wk_web]}\n"
                        "  - {name: ios, write_keys: [wk_ios]}\n"
                        "outputs:\n"
                        "  - type: webhook\n    name: Webhook\n    sources: [web]\n"
                        "    events: {deny: [Secret Event]}\n"
                        "    settings:\n      url: " +
                        url +
                        "/batch\n      secret: s3cr3t-batch\n"
                        "      headers: {X-Team: growth, Authorization: Bearer tok-123}\n"
                        "  - type: webhook\n    name: each\n"
                        "    events: {allow: [identify, Order Completed]}\n"
                        "    settings: {url: " +
                        url +
                        "/each, mode: event, secret: s3cr3t-each,"
                        " signature_header: X-Hub-Signature-256}\n"
                        "  - {type: file, name: all, settings: {path: " +
                        tmp / "all.ndjson" +
                        ", rotate_bytes: 2KB, keep: 100}}\n"
                        "  - {type: file, name: aged, sources: [ios], settings: {path: " +
                        tmp / "aged.ndjson" + ", rotate_interval: 300ms, keep: 2}}\n");
    Segbusd d;
    ASSERT_TRUE(d.start(cfg, log));
    ASSERT_TRUE(
        wait_for([&] { return http_request(port, "OPTIONS", "/v1/batch").status == 204; }, 5000))
        << slurp(log);

    // web: 70 events; ios: 4 rounds of 5, 600 ms apart (the aged file rotates between them).
    std::vector<std::string> web;
    std::set<std::string> w_oc, w_sec, w_id, w_only, w_nowh, ios;
    for (int i = 0; i < 30; i++)
        web.push_back(event("track", *w_oc.insert("w-oc-" + std::to_string(i)).first,
                            ",\"event\":\"Order Completed\""));
    for (int i = 0; i < 10; i++) {
        web.push_back(event("track", *w_sec.insert("w-sec-" + std::to_string(i)).first,
                            ",\"event\":\"Secret Event\""));
        web.push_back(event("identify", *w_id.insert("w-id-" + std::to_string(i)).first, ""));
        web.push_back(event("track", *w_only.insert("w-only-" + std::to_string(i)).first,
                            ",\"event\":\"Order Completed\","
                            "\"integrations\":{\"All\":false,\"Webhook\":true}"));
        web.push_back(event("track", *w_nowh.insert("w-nowh-" + std::to_string(i)).first,
                            ",\"event\":\"Order Completed\",\"integrations\":{\"Webhook\":false}"));
    }
    Reply r = http_request(port, "POST", "/v1/batch", kWeb, batch(web));
    ASSERT_EQ(r.status, 200) << r.body;
    for (int round = 0; round < 4; round++) {
        std::vector<std::string> evs;
        for (int k = 0; k < 5; k++)
            evs.push_back(event(
                "track", *ios.insert("i-" + std::to_string(round) + "-" + std::to_string(k)).first,
                ",\"event\":\"Order Completed\""));
        r = http_request(port, "POST", "/v1/batch", kIos, batch(evs));
        ASSERT_EQ(r.status, 200) << r.body;
        std::this_thread::sleep_for(std::chrono::milliseconds(600));
    }

    auto all_files = [&] {
        std::map<std::string, int> m;
        std::vector<std::string> files = {tmp / "all.ndjson"};
        for (int k = 1; k <= 100; k++)
            files.push_back(tmp / ("all.ndjson." + std::to_string(k)));
        for (auto &f : files)
            for (auto &kv : ndjson_message_ids(f))
                m[kv.first] += kv.second;
        return m;
    };
    std::set<std::string> want_batch, want_each, want_all;
    for (auto *s : {&w_oc, &w_id, &w_only})
        want_batch.insert(s->begin(), s->end());
    for (auto *s : {&w_oc, &w_id, &w_nowh, &ios})
        want_each.insert(s->begin(), s->end());
    for (auto *s : {&w_oc, &w_sec, &w_id, &w_nowh, &ios})
        want_all.insert(s->begin(), s->end());
    ASSERT_TRUE(wait_for(
        [&] {
            return rx.get("/batch").ids.size() >= want_batch.size() &&
                   rx.get("/each").ids.size() >= want_each.size() &&
                   all_files().size() >= want_all.size();
        },
        20000))
        << slurp(log);
    std::string metrics = http_get(mport, "/metrics");
    EXPECT_EQ(d.stop(15), 0) << slurp(log);

    // Batch mode: signed, the extra headers, Segment's envelope, routed by source, deny and
    // integrations; exactly once.
    Hook hb = rx.get("/batch");
    EXPECT_EQ(hb.bad_signatures, 0);
    EXPECT_EQ(hb.bad_shape, 0);
    EXPECT_EQ(ids_of(hb.ids), want_batch);
    for (auto &kv : hb.ids)
        EXPECT_EQ(kv.second, 1) << kv.first;
    ASSERT_FALSE(hb.headers.empty());
    EXPECT_EQ(hb.headers[0], "growth|Bearer tok-123|application/json|segbusd/");
    EXPECT_EQ(hb.requests, 5); // 50 events in batches of 10

    // Event mode: one signed POST per event; the 503 is retried at that event only.
    Hook he = rx.get("/each");
    EXPECT_EQ(he.bad_signatures, 0);
    EXPECT_EQ(he.bad_shape, 0);
    EXPECT_EQ(ids_of(he.ids), want_each);
    for (auto &kv : he.ids)
        EXPECT_EQ(kv.second, 1) << kv.first;
    EXPECT_EQ(he.requests, (int)want_each.size() + 1);
    ASSERT_GE(he.retry_counts.size(), 6u);
    EXPECT_EQ(he.retry_counts[4], ""); // the one answered 503
    EXPECT_EQ(he.retry_counts[5], "1");
    EXPECT_EQ(he.headers[0], "||application/json|segbusd/");

    // Files: everything not switched off, once, across the size-rotated files.
    auto all = all_files();
    EXPECT_EQ(ids_of(all), want_all);
    for (auto &kv : all)
        EXPECT_EQ(kv.second, 1) << kv.first;
    struct stat st;
    for (int k = 1; k <= 4; k++) {
        std::string f = tmp / ("all.ndjson." + std::to_string(k));
        ASSERT_EQ(stat(f.c_str(), &st), 0) << "rotated by size: " << f;
        EXPECT_GE(st.st_size, 2000) << f;
        EXPECT_LT(st.st_size, 2000 + 10 * 200) << "at most rotate_bytes plus one batch: " << f;
    }
    // Age: round 0 was dropped (keep 2), rounds 1, 2, 3 in .2, .1 and the current file.
    for (int round = 1; round <= 3; round++) {
        std::string f =
            tmp / (round == 3 ? "aged.ndjson" : "aged.ndjson." + std::to_string(3 - round));
        auto m = ndjson_message_ids(f);
        EXPECT_EQ(m.size(), 5u) << f;
        for (int k = 0; k < 5; k++)
            EXPECT_EQ(m["i-" + std::to_string(round) + "-" + std::to_string(k)], 1) << f;
    }
    EXPECT_NE(stat((tmp / "aged.ndjson.3").c_str(), &st), 0) << "keep: 2";

    // Routing is counted, and secrets are nowhere.
    EXPECT_NE(metrics.find("segbus_dropped_events_total{where=\"Webhook\",reason=\"filtered\"} " +
                           std::to_string(90 - want_batch.size())),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_output_last_error_status{output=\"each\"} 503"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_output_consecutive_failures{output=\"each\"} 0"),
              std::string::npos)
        << metrics;
    std::string logs = slurp(log);
    for (const char *secret : {"s3cr3t-batch", "s3cr3t-each", "tok-123"}) {
        EXPECT_EQ(logs.find(secret), std::string::npos) << secret;
        EXPECT_EQ(metrics.find(secret), std::string::npos) << secret;
    }
}

} // namespace
