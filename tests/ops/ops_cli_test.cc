// ops_cli_test.cc: `segbus stat` and `segbus tail` against a real segbusd process: counters per
// stage and per output with reasons (a hub output whose receiver is down), --watch rates,
// --json, exit codes; GET /tail recording only while someone tails, filters, drop reasons,
// delivery status, long-poll wake-up, bad parameters.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
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

RunResult segbus(const std::vector<std::string> &args, int seconds = 20)
{
    return run_program(segbus_cli(), args, seconds, {{"SEGBUS_METRICS", nullptr}});
}

// A segbusd with a file output and a hub output to a port nobody listens on.
class Ops : public ::testing::Test
{
  protected:
    std::string dir, sock, out, cfg, addr;
    uint16_t mport = 0;
    TempDir tmp{"segbus-ops"};
    Segbusd daemon;
    segbus_producer_t *prod = nullptr;

    void SetUp() override
    {
        dir = tmp.path;
        sock = dir + "/s.sock";
        out = dir + "/events.ndjson";
        cfg = dir + "/segbusd.yaml";
        mport = free_port();
        addr = "127.0.0.1:" + std::to_string(mport);
        {
            std::ofstream f(cfg);
            f << "shutdown_timeout: 1s\nsocket: {path: " << sock << "}\n"
              << "ring: {capacity: 1MiB}\nbatch: {max_events: 50, flush_interval: 10ms}\n"
              << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 16MiB}\n"
              << "metrics: {listen: " << addr << "}\noutputs:\n"
              << "  - {type: file, name: file, settings: {path: " << out << "}}\n"
              << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << free_port()
              << "/v1/batch, timeout: 1s}}\n";
        }
        ASSERT_TRUE(daemon.start(cfg, dir + "/segbusd.log"));
        wait_for([&] { return !http_get(mport, "/health").empty(); }, 5000);
        ASSERT_FALSE(http_get(mport, "/health").empty()) << slurp(dir + "/segbusd.log");
        segbus_producer_options_t o;
        segbus_producer_options_init(&o);
        ASSERT_EQ(segbus_producer_open(&prod, sock.c_str(), &o), 0);
    }
    void TearDown() override
    {
        if (prod)
            segbus_producer_close(prod);
        // 1: the hub output's receiver is down by design, its batches stay in the spool.
        int rc = daemon.stop(10);
        std::string log = slurp(dir + "/segbusd.log");
        EXPECT_TRUE(rc == 0 || rc == 1) << rc << "\n" << log;
        EXPECT_EQ(log.find("Sanitizer"), std::string::npos) << log; // no leak in sanitizer builds
    }
    void write(const std::string &ev)
    {
        ASSERT_EQ(segbus_producer_write(prod, SEGBUS_RECORD_TYPE_EVENT, ev.data(), ev.size()), 0);
    }
    // Wait until the file output has n lines.
    void wait_file(size_t n)
    {
        size_t lines = 0;
        if (wait_for(
                [&] {
                    std::string s = slurp(out);
                    lines = (size_t)std::count(s.begin(), s.end(), '\n');
                    return lines >= n;
                },
                10000))
            return;
        FAIL() << "file output has " << lines << " lines, want " << n;
    }
};

json_t *parse(const std::string &s)
{
    json_error_t e;
    json_t *j = json_loads(s.c_str(), 0, &e);
    EXPECT_NE(j, nullptr) << e.text << " in: " << s;
    return j;
}

double num_at(json_t *j, std::initializer_list<const char *> path)
{
    for (const char *k : path)
        j = json_object_get(j, k);
    return json_is_number(j) ? json_number_value(j) : -1;
}

TEST_F(Ops, StatShowsStagesOutputsAndReasons)
{
    for (int i = 0; i < 20; i++)
        write(track("m" + std::to_string(i), "u" + std::to_string(i)));
    write(track("m3", "u3")); // a duplicate
    write(pack({{"type", Val::str("track")},
                {"event", Val::str("X")}, // no identity
                {"messageId", Val::str("bad1")}}));
    wait_file(20);
    // The hub output's receiver is down: wait for a failed request to be counted.
    RunResult r;
    for (int i = 0; i < 100; i++) {
        r = segbus({"stat", "--metrics", addr});
        if (r.out.find("connect") != std::string::npos ||
            r.out.find("failed_requests") != std::string::npos)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("segbusd at " + addr), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("received_events input=ring"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("invalid_events reason=no_identity"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("deduplicated_events"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  file "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  hub "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("failed_requests output=hub reason="), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("spool "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ring fill "), std::string::npos) << r.out;

    // The same through --config and --json, checked as numbers.
    r = segbus({"stat", "--config", cfg, "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    json_t *j = parse(r.out);
    EXPECT_EQ(num_at(j, {"stages", "received_events"}), 22);
    EXPECT_EQ(num_at(j, {"stages", "deduplicated_events"}), 1);
    EXPECT_EQ(num_at(j, {"stages", "invalid_events"}), 1);
    EXPECT_EQ(num_at(j, {"outputs", "file", "sent"}), 20);
    EXPECT_EQ(num_at(j, {"outputs", "hub", "sent"}), 0);
    EXPECT_EQ(num_at(j, {"outputs", "hub", "batched"}), 20);
    EXPECT_GE(num_at(j, {"outputs", "hub", "failed"}), 1);
    EXPECT_GT(num_at(j, {"spool_bytes"}), 0);
    EXPECT_GE(num_at(j, {"ring_fill"}), 0);
    json_decref(j);
}

TEST_F(Ops, StatWatchGivesRatesPerSecond)
{
    std::atomic<bool> stop{false};
    std::thread t([&] {
        for (int i = 0; !stop && i < 2000; i++) {
            std::string e = track("w" + std::to_string(i));
            segbus_producer_write(prod, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size());
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    RunResult r = segbus({"stat", "--metrics", addr, "--watch", "0.5", "--count", "3", "--json"});
    stop = true;
    t.join();
    ASSERT_EQ(r.code, 0) << r.err;
    std::vector<std::string> lines;
    std::stringstream ss(r.out);
    for (std::string l; std::getline(ss, l);)
        lines.push_back(l);
    ASSERT_EQ(lines.size(), 3u) << r.out;
    json_t *first = parse(lines[0]), *last = parse(lines[2]);
    EXPECT_TRUE(json_is_null(json_object_get(first, "interval_s"))); // no rate without history
    double iv = num_at(last, {"interval_s"});
    EXPECT_GT(iv, 0.3);
    EXPECT_LT(iv, 3.0);
    // About 1/2 ms minus overheads: between 50/s and 1000/s (a rate, not a total).
    double rate = num_at(last, {"outputs", "file", "rates", "sent"});
    EXPECT_GT(rate, 50) << lines[2];
    EXPECT_LT(rate, 1000) << lines[2];
    json_decref(first);
    json_decref(last);

    // The human view: a rates row under each output.
    r = segbus({"stat", "--metrics", addr, "--watch", "0.2", "--count", "2"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("    /s"), std::string::npos) << r.out;
}

TEST(OpsNoDaemon, ExitCodesAndMessages)
{
    uint16_t p = free_port();
    std::string a = "127.0.0.1:" + std::to_string(p);
    RunResult r = segbus({"stat", "--metrics", a});
    EXPECT_EQ(r.code, 69);
    EXPECT_NE(r.err.find(a), std::string::npos) << r.err;
    r = segbus({"tail", "--metrics", a});
    EXPECT_EQ(r.code, 69);
    EXPECT_NE(r.err.find(a), std::string::npos) << r.err;
    r = segbus({"stat", "--bogus"});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--bogus"), std::string::npos) << r.err;
    r = segbus({"stat", "--watch", "0"});
    EXPECT_EQ(r.code, 2);
    r = segbus({"tail", "--type", "trak"});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("trak"), std::string::npos) << r.err;
    r = segbus({"stat", "--config", "/nonexistent/segbusd.yaml"});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("/nonexistent/segbusd.yaml"), std::string::npos) << r.err;
}

TEST_F(Ops, TailRecordsOnlyWhileSomeoneTails)
{
    write(track("before", "u1"));
    wait_file(1);
    // Nobody tailed: nothing was recorded.
    std::string a = http_get(mport, "/tail?last=100");
    EXPECT_NE(a.find("\"events\":[]"), std::string::npos) << a;
    // That request started recording.
    write(track("after", "u1"));
    wait_file(2);
    a = http_get(mport, "/tail?last=100");
    EXPECT_EQ(a.find("\"before\""), std::string::npos) << a;
    EXPECT_NE(a.find("\"messageId\":\"after\""), std::string::npos) << a;
    // Bad parameters are named.
    a = http_get(mport, "/tail?wait_ms=abc");
    EXPECT_NE(a.find("400"), std::string::npos) << a;
    EXPECT_NE(a.find("wait_ms"), std::string::npos) << a;
    a = http_get(mport, "/tail?colour=red");
    EXPECT_NE(a.find("unknown parameter colour"), std::string::npos) << a;
}

TEST_F(Ops, TailFiltersStatusesAndDropReasons)
{
    http_get(mport, "/tail?wait_ms=0"); // start recording
    write(track("a1", "alice", "Order Completed"));
    write(track("b1", "bob", "Order Completed"));
    write(track("a2", "alice", "Product Viewed"));
    write(track("a1", "alice", "Order Completed")); // duplicate
    write(pack({{"type", Val::str("identify")},
                {"userId", Val::str("alice")},
                {"messageId", Val::str("a3")}}));
    wait_file(4);

    RunResult r = segbus({"tail", "--metrics", addr, "--last", "100", "--userId", "alice", "--json",
                          "--count", "4"});
    ASSERT_EQ(r.code, 0) << r.err;
    std::vector<json_t *> evs;
    std::stringstream ss(r.out);
    for (std::string l; std::getline(ss, l);)
        evs.push_back(parse(l));
    ASSERT_EQ(evs.size(), 4u) << r.out;
    auto s = [](json_t *e, const char *k) {
        json_t *v = json_object_get(e, k);
        return std::string(json_is_string(v) ? json_string_value(v) : "");
    };
    EXPECT_EQ(s(json_object_get(evs[0], "message"), "messageId"), "a1");
    EXPECT_EQ(s(evs[0], "status"), "passed");
    EXPECT_EQ(s(json_object_get(evs[0], "outputs"), "file"), "delivered");
    // The hub's receiver is down: never delivered.
    std::string hub = s(json_object_get(evs[0], "outputs"), "hub");
    EXPECT_TRUE(hub == "batched" || hub == "spooled" || hub == "retrying") << hub;
    EXPECT_EQ(s(evs[1], "event"), "Product Viewed");
    EXPECT_EQ(s(evs[2], "status"), "dropped");
    EXPECT_EQ(s(evs[2], "stage"), "dedup");
    EXPECT_EQ(s(evs[2], "reason"), "duplicate");
    EXPECT_EQ(s(evs[3], "type"), "identify");
    for (auto *e : evs)
        json_decref(e);

    r = segbus({"tail", "--metrics", addr, "--last", "100", "--event", "Order Completed", "--type",
                "track", "--count", "3"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("userId=alice"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("userId=bob"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("DROPPED by dedup: duplicate"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("Product Viewed"), std::string::npos) << r.out;
}

TEST_F(Ops, TailWakesOnNewEvents)
{
    Child c;
    c.start(segbus_cli(),
            {"tail", "--metrics", addr, "--userId", "carol", "--count", "2", "--json"},
            {{"SEGBUS_METRICS", nullptr}});
    // Wait for its first long-poll to arrive (recording starts with it).
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto t0 = std::chrono::steady_clock::now();
    write(track("d1", "dave"));
    write(track("c1", "carol"));
    write(track("c2", "carol"));
    RunResult r = c.wait(10);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("\"messageId\":\"c1\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"messageId\":\"c2\""), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\"messageId\":\"d1\""), std::string::npos) << r.out;
    EXPECT_LT(secs, 3.0); // woken by the events, not by the 5 s poll timeout
}

} // namespace
