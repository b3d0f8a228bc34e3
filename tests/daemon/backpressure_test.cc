// backpressure_test.cc: a full spool pauses the drain at once: a real segbusd whose hub is down
// fills its smallest spool, and the batches it then holds in memory stay within one ring batch
// (not the up to 64 ring batches one drain call reads); once the hub is back, every event
// arrives exactly once and the producers' records left in the ring follow.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "../pipeline/event_util.h"
#include "harness.h"

extern "C" {
#include "config/config.h"
#include "daemon/daemon.h"
#include "segbus/segbus.h"
}

using namespace sbt;

namespace
{

// The value of a metric line that starts with `prefix` in a Prometheus text, or -1.
double metric(const std::string &text, const std::string &prefix)
{
    size_t at = 0;
    while ((at = text.find(prefix, at)) != std::string::npos) {
        if (at == 0 || text[at - 1] == '\n')
            return atof(text.c_str() + at + prefix.size());
        at += prefix.size();
    }
    return -1;
}

TEST(Backpressure, FullSpoolPausesTheDrainWithinOneRingBatch)
{
    TempDir tmp("segbus-backpressure");
    std::string dir = tmp.path, sock = dir + "/segbusd.sock", log = dir + "/segbusd.log";
    HubStandIn rx;
    rx.http.port = free_port(); // down until started below
    uint16_t mport = free_port();
    const int max_events = 100;
    {
        std::ofstream f(dir + "/segbusd.yaml");
        f << "log_level: info\nshutdown_timeout: 10s\n"
          << "socket: {path: " << sock << "}\n"
          << "ring: {capacity: 16MiB}\n"
          << "batch: {max_events: " << max_events << ", flush_interval: 20ms}\n"
          << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 4MiB}\n"
          << "metrics: {listen: 127.0.0.1:" << mport << "}\n"
          << "outputs:\n"
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << rx.http.port
          << "/v1/batch, timeout: 5s}}\n";
    }
    Segbusd d;
    ASSERT_TRUE(d.start(dir + "/segbusd.yaml", log));
    ASSERT_TRUE(wait_socket(sock)) << slurp(log);

    // About 10 MB of events: more than the 4 MiB spool, less than the ring.
    const int n = 32000;
    segbus_producer_options_t o;
    segbus_producer_options_init(&o);
    o.full_policy = SEGBUS_FULL_ERROR;
    segbus_producer_t *h;
    ASSERT_EQ(0, segbus_producer_open(&h, sock.c_str(), &o));
    // The daemon is stopped while they are written, so that its first drain call finds them all
    // in the ring (one call reads up to 64 ring batches of 1024).
    ASSERT_EQ(0, kill(d.pid, SIGSTOP));
    int written = 0;
    for (int i = 0; i < n; i++) {
        std::string e = track("bp-" + std::to_string(i), "user-" + std::to_string(i % 7),
                              "Order Completed " + std::string(200, 'x'));
        written += segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()) == 0;
    }
    kill(d.pid, SIGCONT);
    ASSERT_EQ(written, n) << "the ring should hold them all";

    // The spool fills and the drain stops: what was received stays well below what was written.
    std::string m;
    ASSERT_TRUE(wait_for(
        [&] {
            m = http_get(mport, "/metrics");
            return metric(m, "segbus_output_backlog_batches{output=\"hub\"} ") > 0;
        },
        10000))
        << m;
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // ticks come and go
    m = http_get(mport, "/metrics");
    double backlog = metric(m, "segbus_output_backlog_batches{output=\"hub\"} ");
    // One ring batch is at most 1024 records: its batches, plus the open one flushed by a tick.
    printf("backlog %.0f batches after the spool filled\n", backlog);
    EXPECT_GE(backlog, 1);
    EXPECT_LE(backlog, 1024 / max_events + 2) << m;

    // The hub comes back: everything arrives, exactly once.
    ASSERT_TRUE(rx.start());
    EXPECT_TRUE(wait_for([&] { return rx.distinct() >= (size_t)n; }, 30000)) << rx.distinct();
    EXPECT_EQ(rx.distinct(), (size_t)n);
    EXPECT_EQ(rx.max_copies(), 1);
    segbus_producer_close(h);
    EXPECT_EQ(d.stop(15), 0) << slurp(log);
}

// The group-commit buffer segbusd gives its spool: 2 MB, or more when an output's batches are
// bigger (a batch must fit in one commit, or it could never be spooled).
TEST(Backpressure, SpoolPendingFitsTheLargestBatch)
{
    for (auto [max_bytes, want] : {std::pair<const char *, uint64_t>{"500KB", 2u << 20},
                                   {"1900KiB", 2u << 20},
                                   {"4MiB", (4u << 20) + (64u << 10)}}) {
        std::string text = std::string("outputs:\n  - {type: file, name: f, batch: {max_bytes: ") +
                           max_bytes + "}, settings: {path: /tmp/x}}\n";
        sb_config cfg;
        sb_config_error err{};
        ASSERT_EQ(0, sb_config_load_string(&cfg, text.data(), text.size(), "t", &err)) << text;
        EXPECT_EQ(want, sb_daemon_spool_pending(&cfg)) << max_bytes;
        sb_config_free(&cfg);
    }
}

} // namespace
