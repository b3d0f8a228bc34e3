// crash_test.cc: segbusd under faults with real processes: SIGKILLed 20 times under load from
// several producer processes and restarted on the same spool and socket (every event arrives
// at the NDJSON file output: ring space is released only once durable, and the next daemon
// re-reads the rest); a hub receiver down for a while (SEGBUS_RECEIVER_DOWN_S, default 3 s):
// nothing lost, it catches up.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <msgpack.h>

#include <atomic>
#include <mutex>

#include "../pipeline/event_util.h"

// liburing's header must not be wrapped in extern "C" (see e2e_test.cc).
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

std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::map<std::string, int> file_ids(const std::string &path, size_t *lines)
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

// A hub stand-in on a fixed port: takes msgpack batch envelopes, counts every messageId.
struct Receiver {
    std::thread th;
    std::atomic<bool> stop{false}, up{false};
    uint16_t port;
    std::mutex mu;
    std::map<std::string, int> ids;
    int requests = 0;

    static void route(void *arg, sb_http_exchange *ex, const sb_http_message *req)
    {
        Receiver *r = (Receiver *)arg;
        std::lock_guard<std::mutex> g(r->mu);
        r->requests++;
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, (const char *)req->body, req->body_len, &off) ==
                MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_MAP) {
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
            o.port = port;
            o.route = route;
            o.arg = this;
            o.max_body_bytes = 8 << 20;
            sb_http_server *srv;
            char err[200];
            if (sb_http_server_new(&srv, loop, &o, err, sizeof err) == 0) {
                up = true;
                while (!stop)
                    sb_loop_run_once(loop, 20 * 1000000LL);
                sb_http_server_free(srv);
                for (int i = 0; i < 10; i++)
                    sb_loop_run_once(loop, 1000000LL);
            }
            sb_loop_free(loop);
        });
        for (int i = 0; i < 500 && !up; i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ~Receiver()
    {
        stop = true;
        if (th.joinable())
            th.join();
    }
};

pid_t start_daemon(const std::string &config, const std::string &log)
{
    std::string bin = std::string(SEGBUS_BINARY_DIR) + "/src/daemon/segbusd";
    pid_t pid;
    // The socket file a killed daemon leaves behind: gone, so that wait_socket() sees the
    // new daemon's.
    unlink((config.substr(0, config.rfind('/')) + "/segbusd.sock").c_str());
    pid = fork();
    if (pid == 0) {
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        execl(bin.c_str(), "segbusd", "--config", config.c_str(), (char *)nullptr);
        _exit(127);
    }
    return pid;
}

bool wait_socket(const std::string &sock)
{
    struct stat st;
    for (int i = 0; i < 500; i++) {
        if (stat(sock.c_str(), &st) == 0)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
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
    char tmpl[] = "/tmp/segbus-crash-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, sock = dir + "/segbusd.sock", out = dir + "/events.ndjson",
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
    pid_t d = start_daemon(cfg, log);
    ASSERT_GT(d, 0);
    ASSERT_TRUE(wait_socket(sock)) << slurp(log);

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
        kill(d, SIGKILL);
        waitpid(d, nullptr, 0);
        d = start_daemon(cfg, log);
        ASSERT_GT(d, 0);
        ASSERT_TRUE(wait_socket(sock)) << slurp(log);
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
    size_t lines = 0;
    std::map<std::string, int> ids;
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
        ids = file_ids(out, &lines);
        if (ids.size() >= (size_t)(producers * per))
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(d, SIGTERM);
    int st = 0;
    waitpid(d, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slurp(log);
    ids = file_ids(out, &lines);
    size_t missing = 0, doubled = 0;
    for (int k = 0; k < producers; k++)
        for (int i = 0; i < per; i++) {
            auto it = ids.find("p" + std::to_string(k) + "-" + std::to_string(i));
            if (it == ids.end())
                missing++;
            else if (it->second > 1)
                doubled += (size_t)it->second - 1;
        }
    printf("crash: %d kills in %.1f s, %d events, %zu lines, %zu missing, %zu extra copies\n",
           kills, kill_s, producers * per, lines, missing, doubled);
    EXPECT_EQ(missing, 0u) << slurp(log).substr(0, 20000);
    EXPECT_EQ(ids.size(), (size_t)(producers * per));
    std::string cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
}

// The hub receiver is down (connection refused) while producers write: the batches wait in the
// spool, the output retries with backoff, and once the receiver is up every event arrives.
TEST(DaemonFault, ReceiverDownNothingLostCatchesUp)
{
    const int down_s =
        getenv("SEGBUS_RECEIVER_DOWN_S") ? atoi(getenv("SEGBUS_RECEIVER_DOWN_S")) : 3;
    const int producers = 2, per = 4000;
    char tmpl[] = "/tmp/segbus-down-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, sock = dir + "/segbusd.sock", log = dir + "/segbusd.log",
                cfg = dir + "/segbusd.yaml";
    Receiver rx;
    rx.port = free_port();
    {
        std::ofstream f(cfg);
        f << "log_level: info\nshutdown_timeout: 10s\n"
          << "socket: {path: " << sock << "}\n"
          << "ring: {capacity: 256KiB}\n"
          << "batch: {max_events: 100, flush_interval: 20ms}\n"
          << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 32MiB}\n"
          << "metrics: {listen: \"\"}\n"
          << "outputs:\n"
          << "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" << rx.port
          << "/v1/batch, timeout: 5s}}\n";
    }
    pid_t d = start_daemon(cfg, log);
    ASSERT_GT(d, 0);
    ASSERT_TRUE(wait_socket(sock)) << slurp(log);
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
    rx.start();
    ASSERT_TRUE(rx.up.load());
    auto up_at = Clock::now();
    double caught_s = -1;
    // Backoff is capped at 60 s: after an outage of T the next attempt comes within ~T.
    auto deadline = up_at + std::chrono::seconds(down_s + 20);
    while (Clock::now() < deadline) {
        {
            std::lock_guard<std::mutex> g(rx.mu);
            if (rx.ids.size() >= (size_t)(producers * per)) {
                caught_s = std::chrono::duration<double>(Clock::now() - up_at).count();
                break;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(d, SIGTERM);
    int st = 0;
    waitpid(d, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slurp(log);
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
    std::string cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
}

} // namespace
