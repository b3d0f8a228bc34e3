// e2e_test.cc: producers -> shared ring -> a real segbusd process -> an NDJSON file output and
// a hub output to a small HTTP receiver (which first answers 503 with Retry-After): every
// valid event arrives exactly once at both, duplicates and invalid events are counted in
// /metrics, and SIGTERM ends the daemon cleanly.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../pipeline/event_util.h"

// liburing's header must not be wrapped in extern "C"; included first, its guard keeps the
// net headers below from including it again inside the block.
#include <liburing.h>
extern "C" {
#include "net/http_server.h"
#include "net/loop.h"
#include "segbus/segbus.h"
}

using namespace sbt;
using Clock = std::chrono::steady_clock;

namespace
{

uint16_t free_port()
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

// A hub stand-in: takes msgpack batch envelopes, records every messageId. The first
// `fail_first` requests get 503 with Retry-After: 0 (the output must retry them).
struct Receiver {
    std::thread th;
    std::atomic<bool> stop{false};
    std::atomic<uint16_t> port{0};
    std::mutex mu;
    std::map<std::string, int> ids;
    int requests = 0, fail_first = 1, bad = 0;
    int fail_status = 503;
    const char *fail_retry_after = "0"; // nullptr: no Retry-After (the output backs off)
    std::vector<std::string> retry_counts;

    static void route(void *arg, sb_http_exchange *ex, const sb_http_message *req)
    {
        Receiver *r = (Receiver *)arg;
        std::lock_guard<std::mutex> g(r->mu);
        const char *rc = sb_http_header_get(req, "X-Retry-Count");
        r->retry_counts.push_back(rc ? rc : "");
        if (r->requests++ < r->fail_first) {
            sb_http_header h = {"Retry-After", r->fail_retry_after};
            sb_http_respond(ex, r->fail_status, &h, r->fail_retry_after ? 1 : 0, "busy", 4);
            return;
        }
        const char *ct = sb_http_header_get(req, "Content-Type");
        if (!ct || std::string(ct) != "application/msgpack" ||
            std::string(req->path) != "/v1/batch")
            r->bad++;
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, (const char *)req->body, req->body_len, &off) !=
                MSGPACK_UNPACK_SUCCESS ||
            u.data.type != MSGPACK_OBJECT_MAP) {
            r->bad++;
        } else {
            for (uint32_t i = 0; i < u.data.via.map.size; i++) {
                const msgpack_object_kv &kv = u.data.via.map.ptr[i];
                if (std::string(kv.key.via.str.ptr, kv.key.via.str.size) != "batch")
                    continue;
                for (uint32_t j = 0; j < kv.val.via.array.size; j++) {
                    const msgpack_object &e = kv.val.via.array.ptr[j];
                    for (uint32_t k = 0; k < e.via.map.size; k++)
                        if (std::string(e.via.map.ptr[k].key.via.str.ptr,
                                        e.via.map.ptr[k].key.via.str.size) == "messageId")
                            r->ids[std::string(e.via.map.ptr[k].val.via.str.ptr,
                                               e.via.map.ptr[k].val.via.str.size)]++;
                }
            }
        }
        msgpack_unpacked_destroy(&u);
        sb_http_header h = {"Content-Type", "application/json"};
        sb_http_respond(ex, 200, &h, 1, "{\"success\":true}", 16);
    }

    void start()
    {
        th = std::thread([this] {
            sb_loop *loop;
            if (sb_loop_new(&loop, 64))
                return;
            sb_http_server_options o{};
            o.bind_addr = "127.0.0.1";
            o.route = route;
            o.arg = this;
            o.max_body_bytes = 8 << 20;
            sb_http_server *srv;
            char err[200];
            if (sb_http_server_new(&srv, loop, &o, err, sizeof err) == 0) {
                port = sb_http_server_port(srv);
                while (!stop)
                    sb_loop_run_once(loop, 20 * 1000000LL);
                sb_http_server_free(srv);
                for (int i = 0; i < 10; i++)
                    sb_loop_run_once(loop, 1000000LL);
            }
            sb_loop_free(loop);
        });
        for (int i = 0; i < 500 && !port; i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ~Receiver()
    {
        stop = true;
        if (th.joinable())
            th.join();
    }
};

// GET a path from the daemon's metrics port (blocking, tiny).
std::string http_get(uint16_t port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return "";
    }
    std::string req =
        std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (write(fd, req.data(), req.size()) < 0) {
        close(fd);
        return "";
    }
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        out.append(buf, (size_t)n);
    close(fd);
    return out;
}

std::map<std::string, int> file_ids(const std::string &path, int *lines)
{
    std::map<std::string, int> ids;
    std::ifstream f(path);
    std::string line;
    *lines = 0;
    while (std::getline(f, line)) {
        (*lines)++;
        size_t p = line.find("\"messageId\":\"");
        if (p == std::string::npos)
            continue;
        p += 13;
        ids[line.substr(p, line.find('"', p) - p)]++;
    }
    return ids;
}

struct Daemon {
    pid_t pid = -1;
    int start(const std::string &config, const std::string &log)
    {
        std::string bin = std::string(SEGBUS_BINARY_DIR) + "/src/daemon/segbusd";
        pid = fork();
        if (pid == 0) {
            int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 2);
            execl(bin.c_str(), "segbusd", "--config", config.c_str(), (char *)nullptr);
            _exit(127);
        }
        return pid > 0 ? 0 : -1;
    }
    // SIGTERM and wait up to `seconds`; returns the exit status or -1.
    int stop(int seconds)
    {
        if (pid <= 0)
            return -1;
        kill(pid, SIGTERM);
        for (int i = 0; i < seconds * 100; i++) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                pid = -1;
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return -1;
    }
    ~Daemon()
    {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
};

std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

TEST(E2E, ProducersToFileAndHubExactlyOnce)
{
    char tmpl[] = "/tmp/segbus-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, sock = dir + "/segbusd.sock", out = dir + "/events.ndjson";
    Receiver rx;
    rx.start();
    ASSERT_NE(rx.port.load(), 0);
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
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << rx.port
          << "/v1/batch, timeout: 5s}}\n";
    }
    Daemon d;
    ASSERT_EQ(d.start(cfg, dir + "/segbusd.log"), 0);
    struct stat st;
    for (int i = 0; i < 500 && stat(sock.c_str(), &st) != 0; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(stat(sock.c_str(), &st), 0) << slurp(dir + "/segbusd.log");

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
    auto deadline = Clock::now() + std::chrono::seconds(30);
    size_t got_rx = 0, got_file = 0;
    int lines = 0;
    while (Clock::now() < deadline) {
        {
            std::lock_guard<std::mutex> g(rx.mu);
            got_rx = rx.ids.size();
        }
        got_file = file_ids(out, &lines).size();
        if (got_rx >= want && got_file >= want)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string metrics = http_get(mport, "/metrics");
    std::string health = http_get(mport, "/health");
    EXPECT_EQ(d.stop(15), 0) << slurp(dir + "/segbusd.log");
    if (getenv("SEGBUS_E2E_VERBOSE"))
        printf("%s\n%s\n", metrics.c_str(), slurp(dir + "/segbusd.log").c_str());

    // Exactly once, at both outputs.
    auto fids = file_ids(out, &lines);
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
    std::string cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
}

// Events made durable while the destination fails are delivered by the next daemon after a
// SIGKILL: the spool is recovered, the output's cursor resumes, nothing is lost or doubled.
TEST(E2E, SigkillWithUndeliveredSpoolRecovers)
{
    char tmpl[] = "/tmp/segbus-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, sock = dir + "/segbusd.sock";
    Receiver rx;
    rx.fail_first = 1 << 30;
    rx.fail_status = 500;
    rx.fail_retry_after = nullptr;
    rx.start();
    ASSERT_NE(rx.port.load(), 0);
    std::string cfg = dir + "/segbusd.yaml";
    {
        std::ofstream f(cfg);
        f << "socket: {path: " << sock << "}\n"
          << "batch: {max_events: 50, flush_interval: 10ms}\n"
          << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 16MiB}\n"
          << "metrics: {listen: \"\"}\n"
          << "outputs:\n"
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << rx.port
          << "/v1/batch, timeout: 5s}}\n";
    }
    const int N = 1000;
    {
        Daemon d;
        ASSERT_EQ(d.start(cfg, dir + "/first.log"), 0);
        struct stat st;
        for (int i = 0; i < 500 && stat(sock.c_str(), &st) != 0; i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        segbus_producer_t *h;
        ASSERT_EQ(segbus_producer_open(&h, sock.c_str(), nullptr), 0);
        for (int i = 0; i < N; i++) {
            std::string e = track("k" + std::to_string(i));
            ASSERT_EQ(segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()), 0);
        }
        // Returns once every event is in an fsynced spool record.
        ASSERT_EQ(segbus_producer_flush(h, 10000), 0) << slurp(dir + "/first.log");
        segbus_producer_close(h);
        for (int i = 0; i < 500; i++) {
            {
                std::lock_guard<std::mutex> g(rx.mu);
                if (rx.requests > 0)
                    break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        kill(d.pid, SIGKILL);
        waitpid(d.pid, nullptr, 0);
        d.pid = -1;
    }
    {
        std::lock_guard<std::mutex> g(rx.mu);
        EXPECT_GE(rx.requests, 1);
        EXPECT_TRUE(rx.ids.empty()); // nothing was accepted before the crash
        rx.fail_first = 0;
    }
    Daemon d2;
    ASSERT_EQ(d2.start(cfg, dir + "/second.log"), 0);
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
        {
            std::lock_guard<std::mutex> g(rx.mu);
            if (rx.ids.size() >= (size_t)N)
                break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(d2.stop(15), 0) << slurp(dir + "/second.log");
    {
        std::lock_guard<std::mutex> g(rx.mu);
        EXPECT_EQ(rx.ids.size(), (size_t)N) << slurp(dir + "/second.log");
        for (auto &kv : rx.ids)
            ASSERT_EQ(kv.second, 1) << kv.first;
    }
    std::string cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
}

} // namespace
