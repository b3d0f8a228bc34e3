// crash_test.cc: segbusd under faults with real processes: SIGKILLed 20 times under load from
// several producer processes and restarted on the same spool and socket (every event arrives
// exactly once at its NDJSON file output and, through a real hub, at the hub's output); the file
// output undoing writes its cursor never saw; a hub receiver down for a while
// (SEGBUS_RECEIVER_DOWN_S, default 30 s, as the issue asks): nothing lost, it catches up.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../pipeline/event_util.h"
#include "harness.h"

extern "C" {
#include "segbus/segbus.h"
}

using namespace sbt;
using Clock = std::chrono::steady_clock;

namespace
{

// segbusd on the test's config, its log appended to (one log across restarts). The socket file
// a killed daemon leaves behind goes first, so that wait_socket() sees the new daemon's.
bool restart(Segbusd &d, const std::string &cfg, const std::string &sock, const std::string &log)
{
    unlink(sock.c_str());
    return d.start(cfg, log, true) && wait_socket(sock);
}

// A producer process: `per` events with ids "p<k>-<i>" in bursts, blocking on a full ring,
// then flushes until everything is durable (handing its rings to whichever daemon runs).
// Exit status 0 when every write and the final flush succeeded.
[[noreturn]] void producer_main(const std::string &sock, int k, int per)
{
    segbus_producer_options_t o;
    segbus_producer_options_init(&o);
    o.full_policy = SEGBUS_FULL_BLOCK;
    o.block_timeout_ms = 200;
    segbus_producer_t *h = nullptr;
    for (int i = 0; i < 2000 && segbus_producer_open(&h, sock.c_str(), &o) != 0; i++)
        usleep(5000);
    if (!h)
        _exit(2);
    for (int i = 0; i < per; i++) {
        std::string e = track("p" + std::to_string(k) + "-" + std::to_string(i));
        int rc, tries = 0;
        while ((rc = segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size())) ==
                   -EAGAIN &&
               tries++ < 300)
            usleep(1000);
        if (rc != 0)
            _exit(3);
        if (i % 10 == 9)
            usleep(4000);
    }
    int rc = -1;
    for (int i = 0; i < 60 && (rc = segbus_producer_flush(h, 1000)) != 0; i++)
        ;
    segbus_producer_close(h);
    _exit(rc == 0 ? 0 : 4);
}

// Counts, for producers' ids "p<k>-<i>", how many are missing and how many extra copies there
// are in ids (messageId -> copies).
struct Tally {
    size_t missing = 0, extra = 0;
};
Tally tally(const std::map<std::string, int> &ids, int producers, int per)
{
    Tally t;
    for (int k = 0; k < producers; k++)
        for (int i = 0; i < per; i++) {
            auto it = ids.find("p" + std::to_string(k) + "-" + std::to_string(i));
            if (it == ids.end())
                t.missing++;
            else
                t.extra += (size_t)it->second - 1;
        }
    return t;
}

// A segbus hub (segbusd with the HTTP input, dedup on messageId, an NDJSON file output) that the
// sidecar under test delivers to; never killed.
struct Hub {
    TempDir tmp{"segbus-hub"};
    std::string out = tmp / "hub.ndjson", log = tmp / "hub.log";
    uint16_t port = free_port(), metrics_port = free_port();
    Segbusd d;
    bool start()
    {
        write_file(tmp / "hub.yaml",
                   "log_level: info\nshutdown_timeout: 10s\n"
                   "socket: {path: " +
                       tmp.path +
                       "/hub.sock}\n"
                       "batch: {max_events: 500, flush_interval: 10ms}\n"
                       "dedup: {window_count: 200000, window_time: 1h}\n"
                       "spool: {dir: " +
                       tmp.path +
                       "/spool, segment_bytes: 4MiB, max_bytes: 64MiB}\n"
                       "metrics: {listen: 127.0.0.1:" +
                       std::to_string(metrics_port) +
                       "}\n"
                       "http: {enabled: true, listen: 127.0.0.1:" +
                       std::to_string(port) +
                       "}\n"
                       "sources:\n  - {name: sidecars, environment: prod, write_keys: [wk_crash]}\n"
                       "outputs:\n  - {type: file, name: file, settings: {path: " +
                       out + "}}\n");
        return d.start(tmp / "hub.yaml", log) &&
               wait_for([&] { return http_request(port, "OPTIONS", "/v1/batch").status == 204; },
                        5000);
    }
};

// The sidecar is SIGKILLed 20 times while 3 producer processes write 15000 events, and
// restarted each time on the same spool and socket. Its NDJSON file output and, through a real
// hub, the hub's output each hold every event exactly once: ring space is released only once
// durable (nothing lost), spool records say what they cover of the rings (what the next daemon
// reads again is not batched twice), the file output cuts back what it wrote after its last
// ack on disk, and the hub drops by messageId what the sidecar sent but could not record as
// acknowledged before it died.
// The sidecar both tests run: a small ring and spool, metrics off; the outputs follow.
std::string sidecar_config(const std::string &dir, const std::string &sock)
{
    return "log_level: info\nshutdown_timeout: 10s\nsocket: {path: " + sock +
           "}\nring: {capacity: 256KiB}\nbatch: {max_events: 100, flush_interval: 20ms}\n"
           "spool: {dir: " +
           dir +
           "/spool, segment_bytes: 1MiB, max_bytes: 32MiB}\nmetrics: {listen: \"\"}\noutputs:\n";
}

// n producer processes (producer_main) writing `per` events each; their pids into kids.
bool start_producers(const std::string &sock, int n, int per, std::vector<pid_t> &kids)
{
    for (int k = 0; k < n; k++) {
        pid_t p = fork();
        if (p == 0)
            producer_main(sock, k, per);
        if (p < 0)
            return false;
        kids.push_back(p);
    }
    return true;
}

TEST(DaemonCrash, Sigkill20TimesUnderLoadEveryEventExactlyOnce)
{
    const int kills = getenv("SEGBUS_CRASH_KILLS") ? atoi(getenv("SEGBUS_CRASH_KILLS")) : 20;
    const int producers = 3, per = 5000;
    Hub hub;
    ASSERT_TRUE(hub.start()) << slurp(hub.log);
    TempDir tmp("segbus-crash");
    std::string dir = tmp.path, sock = dir + "/segbusd.sock", out = dir + "/events.ndjson",
                log = dir + "/segbusd.log", cfg = dir + "/segbusd.yaml";
    {
        std::ofstream f(cfg);
        f << sidecar_config(dir, sock) << "  - {type: file, name: file, settings: {path: " << out
          << "}}\n"
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << hub.port
          << "/v1/batch, write_key: wk_crash, timeout: 5s}}\n";
    }
    Segbusd d;
    ASSERT_TRUE(restart(d, cfg, sock, log)) << slurp(log);

    std::vector<pid_t> kids;
    ASSERT_TRUE(start_producers(sock, producers, per, kids));
    std::mt19937 rng(12345);
    auto t0 = Clock::now();
    for (int i = 0; i < kills; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(80 + rng() % 120));
        d.kill9();
        ASSERT_TRUE(restart(d, cfg, sock, log)) << slurp(log);
    }
    double kill_s = std::chrono::duration<double>(Clock::now() - t0).count();
    int failed = 0;
    for (pid_t p : kids) {
        int st = 0;
        auto deadline = Clock::now() + std::chrono::seconds(40);
        while (waitpid(p, &st, WNOHANG) == 0 && Clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (Clock::now() >= deadline) {
            kill(p, SIGKILL);
            waitpid(p, &st, 0);
        }
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    EXPECT_EQ(failed, 0) << "producers that could not write or flush";
    // Every producer flushed: all events are durable; let the last daemon deliver and stop.
    const size_t all = (size_t)(producers * per);
    wait_for([&] { return ndjson_message_ids(out).size() >= all; }, 20000);
    wait_for([&] { return ndjson_message_ids(hub.out).size() >= all; }, 20000);
    EXPECT_EQ(d.stop(15), 0) << slurp(log);
    double resent =
        metric_value(http_get(hub.metrics_port, "/metrics"), "segbus_deduplicated_events_total");
    EXPECT_EQ(hub.d.stop(15), 0) << slurp(hub.log);
    int lines = 0, hub_lines = 0;
    Tally side = tally(ndjson_message_ids(out, &lines), producers, per);
    Tally at_hub = tally(ndjson_message_ids(hub.out, &hub_lines), producers, per);
    printf("crash: %d kills in %.1f s, %d events; sidecar file: %d lines, %zu missing, %zu extra "
           "copies; hub: %d lines, %zu missing, %zu extra copies (it dropped %.0f resent by the "
           "sidecar)\n",
           kills, kill_s, producers * per, lines, side.missing, side.extra, hub_lines,
           at_hub.missing, at_hub.extra, resent);
    EXPECT_EQ(side.missing, 0u) << slurp(log).substr(0, 20000);
    EXPECT_EQ(side.extra, 0u) << slurp(log).substr(0, 20000);
    EXPECT_EQ(lines, producers * per);
    EXPECT_EQ(at_hub.missing, 0u) << slurp(hub.log).substr(0, 20000);
    EXPECT_EQ(at_hub.extra, 0u) << slurp(hub.log).substr(0, 20000);
    EXPECT_EQ(hub_lines, producers * per);
    EXPECT_GE(resent, 0) << "the hub's /metrics has no segbus_deduplicated_events_total";
}

// The NDJSON file output undoes lines written after its last acknowledgement on disk: here a
// clean stop saves the cursor with the file's length, a line is then appended as if a batch had
// been written and the daemon killed before its ack was saved; the next start cuts it off.
TEST(DaemonCrash, FileOutputCutsBackWhatItsCursorNeverSaw)
{
    TempDir tmp("segbus-undo");
    std::string sock = tmp / "segbusd.sock", out = tmp / "events.ndjson", log = tmp / "segbusd.log",
                cfg = tmp / "segbusd.yaml";
    write_file(cfg, "log_level: info\nsocket: {path: " + sock +
                        "}\nbatch: {max_events: 10, flush_interval: 10ms}\n"
                        "spool: {dir: " +
                        tmp.path +
                        "/spool}\nmetrics: {listen: \"\"}\n"
                        "outputs:\n  - {type: file, name: file, settings: {path: " +
                        out + "}}\n");
    Segbusd d;
    ASSERT_TRUE(restart(d, cfg, sock, log)) << slurp(log);
    segbus_producer_t *h = nullptr;
    ASSERT_EQ(0, producer_open(&h, sock));
    for (int i = 0; i < 25; i++) {
        std::string e = track("u-" + std::to_string(i));
        ASSERT_EQ(0, segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()));
    }
    ASSERT_EQ(0, segbus_producer_flush(h, 5000));
    ASSERT_TRUE(wait_for([&] { return ndjson_message_ids(out).size() == 25; }, 5000));
    segbus_producer_close(h);
    ASSERT_EQ(d.stop(10), 0) << slurp(log);
    std::string before = slurp(out);
    {
        std::ofstream f(out, std::ios::app);
        f << "{\"type\":\"track\",\"messageId\":\"written-but-never-acked\"}\n";
    }
    ASSERT_TRUE(restart(d, cfg, sock, log)) << slurp(log);
    EXPECT_EQ(slurp(out), before) << slurp(log);
    EXPECT_NE(slurp(log).find("removed"), std::string::npos) << slurp(log);
    EXPECT_EQ(d.stop(10), 0) << slurp(log);
}

// The hub receiver is down (connection refused) while producers write: the batches wait in the
// spool, the output retries with backoff, and once the receiver is up every event arrives.
TEST(DaemonFault, ReceiverDownNothingLostCatchesUp)
{
    const int down_s =
        getenv("SEGBUS_RECEIVER_DOWN_S") ? atoi(getenv("SEGBUS_RECEIVER_DOWN_S")) : 30;
    const int producers = 2, per = 4000;
    TempDir tmp("segbus-down");
    std::string dir = tmp.path, sock = dir + "/segbusd.sock", log = dir + "/segbusd.log",
                cfg = dir + "/segbusd.yaml";
    HubStandIn rx;
    rx.http.port = free_port();
    {
        std::ofstream f(cfg);
        f << sidecar_config(dir, sock)
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << rx.http.port
          << "/v1/batch, timeout: 5s}}\n";
    }
    Segbusd d;
    ASSERT_TRUE(restart(d, cfg, sock, log)) << slurp(log);
    std::vector<pid_t> kids;
    auto t0 = Clock::now();
    ASSERT_TRUE(start_producers(sock, producers, per, kids));
    int failed = 0;
    for (pid_t p : kids) {
        int st = 0;
        waitpid(p, &st, 0);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    EXPECT_EQ(failed, 0) << "producers that could not write or flush (all is durable in the spool)";
    std::this_thread::sleep_until(t0 + std::chrono::seconds(down_s));
    ASSERT_TRUE(rx.start());
    auto up_at = Clock::now();
    double caught_s = -1;
    // Backoff is capped at 60 s: after an outage of T the next attempt comes within ~T.
    if (wait_for([&] { return rx.distinct() >= (size_t)(producers * per); }, (down_s + 20) * 1000))
        caught_s = std::chrono::duration<double>(Clock::now() - up_at).count();
    EXPECT_EQ(d.stop(15), 0) << slurp(log);
    std::lock_guard<std::mutex> g(rx.mu);
    size_t missing = 0, doubled = 0;
    for (int k = 0; k < producers; k++)
        for (int i = 0; i < per; i++) {
            auto it = rx.ids.find("p" + std::to_string(k) + "-" + std::to_string(i));
            if (it == rx.ids.end())
                missing++;
            else if (it->second > 1)
                doubled += (size_t)it->second - 1;
        }
    printf("receiver down %d s: %d events, caught up %.2f s after it came back, %d requests, "
           "%zu missing, %zu extra copies\n",
           down_s, producers * per, caught_s, rx.requests, missing, doubled);
    EXPECT_EQ(missing, 0u) << slurp(log).substr(0, 20000);
    EXPECT_EQ(doubled, 0u);
}

} // namespace
