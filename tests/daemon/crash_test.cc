// crash_test.cc: segbusd SIGKILLed 20 times under load from several producer processes and
// restarted on the same spool and socket: every event arrives at the NDJSON file output (none
// lost: ring space is released only once durable, and the next daemon re-reads the rest).
#include <gtest/gtest.h>

#include <fcntl.h>
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

#include "../pipeline/event_util.h"

extern "C" {
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

} // namespace
