// crash_test.cc: segbusd under faults with real processes: SIGKILLed 20 times under load from
// several producer processes and restarted on the same spool and socket (every event arrives
// at the NDJSON file output: ring space is released only once durable, and the next daemon
// re-reads the rest); a hub receiver down for a while (SEGBUS_RECEIVER_DOWN_S, default 3 s):
// nothing lost, it catches up.
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

TEST(DaemonCrash, Sigkill20TimesUnderLoadLosesNothing)
{
    const int kills = getenv("SEGBUS_CRASH_KILLS") ? atoi(getenv("SEGBUS_CRASH_KILLS")) : 20;
    const int producers = 3, per = 5000;
    TempDir tmp("segbus-crash");
    std::string dir = tmp.path, sock = dir + "/segbusd.sock", out = dir + "/events.ndjson",
                log = dir + "/segbusd.log", cfg = dir + "/segbusd.yaml";
    {
        std::ofstream f(cfg);
        f << "log_level: info\nshutdown_timeout: 10s\n"
          << "socket: {path: " << sock << "}\n"
          << "ring: {capacity: 256KiB}\n"
          << "batch: {max_events: 100, flush_interval: 20ms}\n"
          << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 32MiB}\n"
          << "metrics: {listen: \"\"}\n"
          << "outputs:\n"
          << "  - {type: file, name: file, settings: {path: " << out << "}}\n";
    }
    Segbusd d;
    ASSERT_TRUE(restart(d, cfg, sock, log)) << slurp(log);

    std::vector<pid_t> kids;
    for (int k = 0; k < producers; k++) {
        pid_t p = fork();
        if (p == 0)
            producer_main(sock, k, per);
        ASSERT_GT(p, 0);
        kids.push_back(p);
    }
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
    int lines = 0;
    wait_for([&] { return ndjson_message_ids(out).size() >= (size_t)(producers * per); }, 20000);
    EXPECT_EQ(d.stop(15), 0) << slurp(log);
    auto ids = ndjson_message_ids(out, &lines);
    size_t missing = 0, doubled = 0;
    for (int k = 0; k < producers; k++)
        for (int i = 0; i < per; i++) {
            auto it = ids.find("p" + std::to_string(k) + "-" + std::to_string(i));
            if (it == ids.end())
                missing++;
            else if (it->second > 1)
                doubled += (size_t)it->second - 1;
        }
    printf("crash: %d kills in %.1f s, %d events, %d lines, %zu missing, %zu extra copies\n", kills,
           kill_s, producers * per, lines, missing, doubled);
    EXPECT_EQ(missing, 0u) << slurp(log).substr(0, 20000);
    EXPECT_EQ(ids.size(), (size_t)(producers * per));
}

// The hub receiver is down (connection refused) while producers write: the batches wait in the
// spool, the output retries with backoff, and once the receiver is up every event arrives.
TEST(DaemonFault, ReceiverDownNothingLostCatchesUp)
{
    const int down_s =
        getenv("SEGBUS_RECEIVER_DOWN_S") ? atoi(getenv("SEGBUS_RECEIVER_DOWN_S")) : 3;
    const int producers = 2, per = 4000;
    TempDir tmp("segbus-down");
    std::string dir = tmp.path, sock = dir + "/segbusd.sock", log = dir + "/segbusd.log",
                cfg = dir + "/segbusd.yaml";
    HubStandIn rx;
    rx.http.port = free_port();
    {
        std::ofstream f(cfg);
        f << "log_level: info\nshutdown_timeout: 10s\n"
          << "socket: {path: " << sock << "}\n"
          << "ring: {capacity: 256KiB}\n"
          << "batch: {max_events: 100, flush_interval: 20ms}\n"
          << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 32MiB}\n"
          << "metrics: {listen: \"\"}\n"
          << "outputs:\n"
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << rx.http.port
          << "/v1/batch, timeout: 5s}}\n";
    }
    Segbusd d;
    ASSERT_TRUE(restart(d, cfg, sock, log)) << slurp(log);
    std::vector<pid_t> kids;
    auto t0 = Clock::now();
    for (int k = 0; k < producers; k++) {
        pid_t p = fork();
        if (p == 0)
            producer_main(sock, k, per);
        ASSERT_GT(p, 0);
        kids.push_back(p);
    }
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
