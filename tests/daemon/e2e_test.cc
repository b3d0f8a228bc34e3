// e2e_test.cc: producers -> shared ring -> a real segbusd process -> an NDJSON file output and
// a hub output to a small HTTP receiver (which first answers 503 with Retry-After): every
// valid event arrives exactly once at both, duplicates and invalid events are counted in
// /metrics, and SIGTERM ends the daemon cleanly.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../pipeline/event_util.h"
#include "harness.h"

extern "C" {
#include "segbus/segbus.h"
}

using namespace sbt;

namespace
{

TEST(E2E, ProducersToFileAndHubExactlyOnce)
{
    TempDir tmp("segbus-e2e");
    std::string dir = tmp.path, sock = dir + "/segbusd.sock", out = dir + "/events.ndjson";
    HubStandIn rx;
    rx.fail_first = 1;
    ASSERT_TRUE(rx.start());
    uint16_t mport = free_port();
    std::string cfg = dir + "/segbusd.yaml";
    {
        std::ofstream f(cfg);
        f << "log_level: info\nshutdown_timeout: 10s\n"
          << "socket: {path: " << sock << "}\n"
          << "ring: {capacity: 1MiB}\n"
          << "batch: {max_events: 100, flush_interval: 20ms}\n"
          << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 16MiB}\n"
          << "metrics: {listen: 127.0.0.1:" << mport << "}\n"
          << "outputs:\n"
          << "  - {type: file, name: file, settings: {path: " << out << "}}\n"
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << rx.http.port
          << "/v1/batch, timeout: 5s}}\n";
    }
    Segbusd d;
    ASSERT_TRUE(d.start(cfg, dir + "/segbusd.log"));
    ASSERT_TRUE(wait_socket(sock)) << slurp(dir + "/segbusd.log");

    const int producers = 4, per = 2500, dups = 100, invalid = 10;
    std::vector<std::thread> ths;
    std::atomic<int> errors{0};
    for (int p = 0; p < producers; p++) {
        ths.emplace_back([&, p] {
            segbus_producer_options_t o;
            segbus_producer_options_init(&o);
            o.full_policy = SEGBUS_FULL_BLOCK;
            o.block_timeout_ms = 5000;
            segbus_producer_t *h;
            if (segbus_producer_open(&h, sock.c_str(), &o) != 0) {
                errors++;
                return;
            }
            for (int i = 0; i < per; i++) {
                std::string e = track("p" + std::to_string(p) + "-" + std::to_string(i),
                                      "user-" + std::to_string(i % 50));
                if (segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()) != 0)
                    errors++;
                if (p == 0 && i < dups && // a producer retrying: same messageId again
                    segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()) != 0)
                    errors++;
            }
            if (p == 1)
                for (int i = 0; i < invalid; i++) {
                    std::string e = pack({{"type", Val::str("track")},
                                          {"event", Val::str("No One")},
                                          {"messageId", Val::str("inv-" + std::to_string(i))}});
                    segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size());
                }
            if (segbus_producer_flush(h, 10000) != 0)
                errors++;
            segbus_producer_close(h);
        });
    }
    for (auto &t : ths)
        t.join();
    ASSERT_EQ(errors.load(), 0) << slurp(dir + "/segbusd.log");

    const size_t want = (size_t)producers * per;
    wait_for([&] { return rx.distinct() >= want && ndjson_message_ids(out).size() >= want; },
             30000);
    std::string metrics = http_get(mport, "/metrics");
    std::string health = http_get(mport, "/health");
    EXPECT_EQ(d.stop(15), 0) << slurp(dir + "/segbusd.log");
    if (getenv("SEGBUS_E2E_VERBOSE"))
        printf("%s\n%s\n", metrics.c_str(), slurp(dir + "/segbusd.log").c_str());

    // Exactly once, at both outputs.
    int lines = 0;
    auto fids = ndjson_message_ids(out, &lines);
    EXPECT_EQ(fids.size(), want);
    EXPECT_EQ((size_t)lines, want);
    {
        std::lock_guard<std::mutex> g(rx.mu);
        EXPECT_EQ(rx.ids.size(), want);
        for (auto &kv : rx.ids)
            ASSERT_EQ(kv.second, 1) << kv.first;
        EXPECT_EQ(rx.bad, 0);
        ASSERT_GE(rx.retry_counts.size(), 2u);
        EXPECT_EQ(rx.retry_counts[0], "");  // first attempt
        EXPECT_EQ(rx.retry_counts[1], "1"); // the retry after the 503
    }
    for (int p = 0; p < producers; p++)
        for (int i = 0; i < per; i++) {
            std::string id = "p" + std::to_string(p) + "-" + std::to_string(i);
            ASSERT_EQ(fids[id], 1) << id;
        }
    // The file holds Segment JSON.
    std::ifstream f(out);
    std::string first;
    std::getline(f, first);
    EXPECT_EQ(first.rfind("{\"type\":\"track\",\"userId\":\"user-", 0), 0u) << first;
    EXPECT_NE(first.find("\"properties\":{\"total\":42}"), std::string::npos) << first;

    // Counted, not silent.
    EXPECT_NE(health.find("200 OK"), std::string::npos) << health;
    EXPECT_NE(metrics.find("segbus_received_events_total{input=\"ring\"} " +
                           std::to_string(want + dups + invalid)),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_deduplicated_events_total " + std::to_string(dups)),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_invalid_events_total{reason=\"no_identity\"} " +
                           std::to_string(invalid)),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_sent_events_total{output=\"hub\"} " + std::to_string(want)),
              std::string::npos)
        << metrics;
    EXPECT_NE(
        metrics.find("segbus_retried_batches_total{output=\"hub\",reason=\"retryable_status\"} 1"),
        std::string::npos)
        << metrics;
}

// Events made durable while the destination fails are delivered by the next daemon after a
// SIGKILL: the spool is recovered, the output's cursor resumes, nothing is lost or doubled.
TEST(E2E, SigkillWithUndeliveredSpoolRecovers)
{
    TempDir tmp("segbus-e2e");
    std::string dir = tmp.path, sock = dir + "/segbusd.sock";
    HubStandIn rx;
    rx.fail_first = 1 << 30;
    rx.fail_status = 500;
    rx.fail_retry_after = nullptr;
    ASSERT_TRUE(rx.start());
    std::string cfg = dir + "/segbusd.yaml";
    {
        std::ofstream f(cfg);
        f << "socket: {path: " << sock << "}\n"
          << "batch: {max_events: 50, flush_interval: 10ms}\n"
          << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 16MiB}\n"
          << "metrics: {listen: \"\"}\n"
          << "outputs:\n"
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << rx.http.port
          << "/v1/batch, timeout: 5s}}\n";
    }
    const int N = 1000;
    {
        Segbusd d;
        ASSERT_TRUE(d.start(cfg, dir + "/first.log"));
        ASSERT_TRUE(wait_socket(sock)) << slurp(dir + "/first.log");
        segbus_producer_t *h;
        ASSERT_EQ(segbus_producer_open(&h, sock.c_str(), nullptr), 0);
        for (int i = 0; i < N; i++) {
            std::string e = track("k" + std::to_string(i));
            ASSERT_EQ(segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()), 0);
        }
        // Returns once every event is in an fsynced spool record.
        ASSERT_EQ(segbus_producer_flush(h, 10000), 0) << slurp(dir + "/first.log");
        segbus_producer_close(h);
        wait_for(
            [&] {
                std::lock_guard<std::mutex> g(rx.mu);
                return rx.requests > 0;
            },
            5000);
        d.kill9();
    }
    {
        std::lock_guard<std::mutex> g(rx.mu);
        EXPECT_GE(rx.requests, 1);
        EXPECT_TRUE(rx.ids.empty()); // nothing was accepted before the crash
        rx.fail_first = 0;
    }
    Segbusd d2;
    ASSERT_TRUE(d2.start(cfg, dir + "/second.log"));
    wait_for([&] { return rx.distinct() >= (size_t)N; }, 30000);
    EXPECT_EQ(d2.stop(15), 0) << slurp(dir + "/second.log");
    {
        std::lock_guard<std::mutex> g(rx.mu);
        EXPECT_EQ(rx.ids.size(), (size_t)N) << slurp(dir + "/second.log");
        for (auto &kv : rx.ids)
            ASSERT_EQ(kv.second, 1) << kv.first;
    }
}

} // namespace
