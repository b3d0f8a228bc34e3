// disk_test.cc: segbusd with its spool on a small tmpfs (4 MiB) and the receiver down, so that
// the file system fills: reported (log, /metrics, /health), survived, the configured policy
// applied (block: draining stops and the ring backs up to the producer; drop_oldest: the oldest
// batches go, counted per event), and once the receiver is back every event not counted as
// dropped arrives exactly once. Needs root for mount(8); a failed mount fails the test.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
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

// An event of about 1 KiB, so that a few thousand fill the file system.
std::string big_event(const std::string &id)
{
    return pack({{"type", Val::str("track")},
                 {"userId", Val::str("u1")},
                 {"event", Val::str("Disk Filled")},
                 {"messageId", Val::str(id)},
                 {"properties", Val::raw(map_raw({{"note", Val::str(std::string(1000, 'x'))}}))},
                 {"timestamp", Val::str("2026-11-28T14:00:00.000Z")}});
}

struct FullDisk : ::testing::Test {
    TempDir tmp{"segbus-disk"};
    std::string fs = tmp / "fs", sock = tmp / "segbusd.sock", log = tmp / "segbusd.log",
                cfg = tmp / "segbusd.yaml";
    bool mounted = false;
    uint16_t mport = free_port();
    HubStandIn hub;
    Segbusd d;

    void SetUp() override
    {
        ASSERT_EQ(0, mkdir(fs.c_str(), 0700));
        // The spool's file system: 4 MiB, so that a few thousand events fill it.
        ASSERT_EQ(0, mount("tmpfs", fs.c_str(), "tmpfs", 0, "size=4m"))
            << "cannot mount a 4 MiB tmpfs at " << fs << ": " << strerror(errno)
            << " (this test needs root and mount(2); it does not skip)";
        mounted = true;
        hub.http.port = free_port(); // fixed: the receiver is down first and comes back there
    }
    void TearDown() override
    {
        if (d.alive())
            d.kill9();
        if (mounted) {
            EXPECT_EQ(0, umount2(fs.c_str(), MNT_DETACH)) << strerror(errno);
        }
    }
    void start(const char *policy)
    {
        write_file(cfg, std::string("log_level: info\nshutdown_timeout: 10s\n") +
                            "socket: {path: " + sock + "}\n" + "ring: {capacity: 256KiB}\n" +
                            "batch: {max_events: 20, flush_interval: 10ms}\n" +
                            "spool: {dir: " + fs +
                            "/spool, segment_bytes: 1MiB, max_bytes: "
                            "64MiB, full_policy: " +
                            policy + "}\n" +
                            "metrics: {listen: 127.0.0.1:" + std::to_string(mport) + "}\n" +
                            "outputs:\n  - {type: hub, name: hub, settings: {url: "
                            "http://127.0.0.1:" +
                            std::to_string(hub.http.port) + "/v1/batch, timeout: 2s}}\n");
        ASSERT_TRUE(d.start(cfg, log) && wait_socket(sock)) << slurp(log);
    }
    std::string metrics()
    {
        return http_get(mport, "/metrics");
    }
};

// block: the spool refuses batches, draining stops, the ring fills and the producer's writes
// fail with -EAGAIN (its full-ring policy, counted); nothing written is lost or doubled.
TEST_F(FullDisk, BlockStopsDrainingRingBacksUpThenExactlyOnce)
{
    start("block");
    segbus_producer_options_t po;
    segbus_producer_options_init(&po);
    po.full_policy = SEGBUS_FULL_ERROR;
    segbus_producer_t *p = nullptr;
    ASSERT_EQ(0, producer_open(&p, sock, &po));
    std::vector<std::string> written;
    int refused = 0, in_a_row = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20000 && in_a_row < 200; i++) {
        std::string id = "d-" + std::to_string(i), e = big_event(id);
        int rc = segbus_producer_write(p, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size());
        if (rc == 0) {
            written.push_back(id);
            in_a_row = 0;
        } else {
            ASSERT_EQ(rc, -EAGAIN) << strerror(-rc);
            refused++;
            in_a_row++;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    double fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(in_a_row, 200) << "the ring never backed up: " << written.size() << " written";
    // Reported: a log line, a counter, /health not ok; and the daemon is alive.
    std::string m = metrics();
    EXPECT_GT(metric_value(m, "segbus_spool_nospace_total"), 0) << m;
    EXPECT_EQ(metric_value(m, "segbus_producer_dropped_events_total", "reason=\"full_error\""),
              (double)refused)
        << m;
    double backlog = metric_value(m, "segbus_output_backlog_bytes");
    EXPECT_LE(backlog, 2.0 * 256 * 1024) << "the backlog is bounded by the ring's capacity";
    Reply h = http_request(mport, "GET", "/health");
    EXPECT_EQ(h.status, 503) << h.body;
    EXPECT_NE(h.body.find("No space left on device"), std::string::npos) << h.body;
    EXPECT_NE(slurp(log).find("the spool refuses batches (No space left on device)"),
              std::string::npos)
        << slurp(log);
    EXPECT_TRUE(d.alive());

    // The receiver comes back: everything written arrives, once.
    ASSERT_TRUE(hub.start());
    EXPECT_TRUE(wait_for([&] { return hub.distinct() >= written.size(); }, 30000))
        << hub.distinct() << " of " << written.size() << "\n"
        << slurp(log);
    EXPECT_TRUE(
        wait_for([&] { return http_request(mport, "GET", "/health").status == 200; }, 5000));
    segbus_producer_close(p);
    EXPECT_EQ(d.stop(15), 0) << slurp(log);
    std::lock_guard<std::mutex> g(hub.mu);
    size_t missing = 0, extra = 0;
    for (const auto &id : written) {
        auto it = hub.ids.find(id);
        missing += it == hub.ids.end();
        extra += it == hub.ids.end() ? 0 : (size_t)it->second - 1;
    }
    printf("full disk (block): %zu written in %.1f s until the ring backed up, %d refused at the "
           "producer, backlog %.0f bytes; after the receiver came back: %zu missing, %zu extra, "
           "%zu received\n",
           written.size(), fill_s, refused, backlog, missing, extra, hub.ids.size());
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(extra, 0u);
    EXPECT_EQ(hub.ids.size(), written.size());
    EXPECT_EQ(hub.bad, 0);
}

// drop_oldest: a full file system is a bound too; the oldest batches are dropped to make room,
// counted per event, and every event not counted arrives exactly once.
TEST_F(FullDisk, DropOldestCountsWhatItDropsTheRestExactlyOnce)
{
    start("drop_oldest");
    segbus_producer_options_t po;
    segbus_producer_options_init(&po);
    po.full_policy = SEGBUS_FULL_BLOCK;
    po.block_timeout_ms = 2000;
    segbus_producer_t *p = nullptr;
    ASSERT_EQ(0, producer_open(&p, sock, &po));
    const int n = 8000; // about twice what the file system holds
    for (int i = 0; i < n; i++) {
        std::string e = big_event("o-" + std::to_string(i));
        ASSERT_EQ(0, segbus_producer_write(p, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()))
            << "event " << i << "\n"
            << slurp(log);
    }
    ASSERT_EQ(0, segbus_producer_flush(p, 10000)) << slurp(log);
    segbus_producer_close(p);
    std::string m = metrics();
    double dropped = metric_value(m, "segbus_dropped_events_total", "reason=\"spool_drop_oldest\"");
    EXPECT_GT(dropped, 0) << m;
    EXPECT_GT(metric_value(m, "segbus_spool_dropped_batches_total", "reason=\"drop_oldest\""), 0)
        << m;
    EXPECT_TRUE(d.alive());

    ASSERT_TRUE(hub.start());
    EXPECT_TRUE(wait_for([&] { return hub.distinct() + (size_t)dropped >= (size_t)n; }, 30000))
        << hub.distinct() << " + " << dropped << " of " << n << "\n"
        << slurp(log);
    EXPECT_EQ(d.stop(15), 0) << slurp(log);
    std::lock_guard<std::mutex> g(hub.mu);
    size_t extra = 0, foreign = 0;
    for (const auto &kv : hub.ids) {
        extra += (size_t)kv.second - 1;
        foreign += kv.first.rfind("o-", 0) != 0;
    }
    printf("full disk (drop_oldest): %d written, %.0f dropped (counted), %zu received, %zu extra\n",
           n, dropped, hub.ids.size(), extra);
    EXPECT_EQ(hub.ids.size() + (size_t)dropped, (size_t)n);
    EXPECT_EQ(extra, 0u);
    EXPECT_EQ(foreign, 0u);
}

} // namespace
