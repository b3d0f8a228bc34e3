// net_helpers.h: shared helpers for the net tests: a server on its own loop thread, the
// harness's test CA, a Python peer process, and blocking raw sockets.
#pragma once

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <liburing.h>

#include "harness.h"

extern "C" {
#include "net/http.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/loop.h"
}

namespace nt
{

inline std::string sh(const std::string &cmd)
{
    std::string out;
    FILE *f = popen(cmd.c_str(), "r");
    if (!f)
        return out;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        out.append(buf, n);
    int st = pclose(f);
    EXPECT_EQ(0, st) << cmd << "\n" << out;
    return out;
}

// The test PKI (CA, server certificate for 127.0.0.1 and localhost, an unrelated CA) is the
// shared harness's.
using TestCA = sbt::TestCA;

// The Python peer (tests/net/peer.py) as a child process; killed in the destructor.
struct PyPeer {
    pid_t pid = -1;
    int port = 0;
    explicit PyPeer(const std::vector<std::string> &extra = {})
    {
        int out[2];
        if (pipe(out) != 0)
            return;
        pid = fork();
        if (pid == 0) {
            dup2(out[1], 1);
            close(out[0]);
            std::vector<std::string> args = {"/usr/bin/python3",
                                             SEGBUS_SOURCE_DIR "/tests/net/peer.py"};
            args.insert(args.end(), extra.begin(), extra.end());
            std::vector<char *> argv;
            for (auto &a : args)
                argv.push_back(const_cast<char *>(a.c_str()));
            argv.push_back(nullptr);
            execv(argv[0], argv.data());
            _exit(127);
        }
        close(out[1]);
        std::string line;
        char c;
        pollfd p{out[0], POLLIN, 0};
        while (poll(&p, 1, 10000) > 0 && read(out[0], &c, 1) == 1 && c != '\n')
            line += c;
        close(out[0]);
        port = atoi(line.c_str());
    }
    ~PyPeer()
    {
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, nullptr, 0);
        }
    }
};

// An HTTP server on its own loop in its own thread (SINGLE_ISSUER: the thread that creates a
// ring is the one that submits to it), so that tests can talk to it with blocking sockets.
struct ServerThread {
    std::thread th;
    std::atomic<bool> stop{false};
    std::atomic<int> port{0};
    std::atomic<int> fail{0};
    std::function<void(sb_loop *, sb_http_exchange *, const sb_http_message *)> route;
    sb_http_server_options opts{};
    sb_http_server_stats stats{};
    sb_loop *loop = nullptr;

    static void route_cb(void *arg, sb_http_exchange *ex, const sb_http_message *m)
    {
        auto *self = static_cast<ServerThread *>(arg);
        self->route(self->loop, ex, m);
    }

    void start()
    {
        th = std::thread([this] {
            if (sb_loop_new(&loop, 256) != 0) {
                fail = 1;
                port = -1;
                return;
            }
            sb_http_server *srv = nullptr;
            opts.route = route_cb;
            opts.arg = this;
            char err[256];
            if (sb_http_server_new(&srv, loop, &opts, err, sizeof(err)) != 0) {
                fprintf(stderr, "server: %s\n", err);
                fail = 2;
                port = -1;
                sb_loop_free(loop);
                return;
            }
            port = sb_http_server_port(srv);
            while (!stop)
                sb_loop_run_once(loop, 5000000);
            sb_http_server_get_stats(srv, &stats);
            sb_http_server_free(srv);
            for (int i = 0; i < 50; i++)
                sb_loop_run_once(loop, 1000000);
            sb_loop_free(loop);
        });
        while (port == 0)
            usleep(1000);
    }
    ~ServerThread()
    {
        stop = true;
        if (th.joinable())
            th.join();
    }
};

// Blocking raw socket to 127.0.0.1:port.
inline int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

inline bool send_all(int fd, const std::string &s)
{
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

struct RawResp {
    int status;
    std::string body;
    std::string connection;
    std::string retry_after;
};

// Read responses until `want` are complete, the peer closes, or timeout_ms passes. closed tells
// whether the peer closed the connection.
inline std::vector<RawResp> read_responses(int fd, size_t want, int timeout_ms, bool *closed)
{
    std::vector<RawResp> out;
    sb_http_parser p;
    sb_http_parser_init(&p, SB_HTTP_RESPONSE, nullptr);
    std::string pending;
    *closed = false;
    uint64_t end = sb_now_ns() + static_cast<uint64_t>(timeout_ms) * 1000000u;
    while (out.size() < want) {
        while (!pending.empty()) {
            ssize_t n = sb_http_parser_feed(&p, reinterpret_cast<const uint8_t *>(pending.data()),
                                            pending.size());
            if (n < 0) {
                ADD_FAILURE() << "bad response: " << p.error;
                sb_http_parser_free(&p);
                return out;
            }
            pending.erase(0, static_cast<size_t>(n));
            if (!sb_http_parser_done(&p))
                break;
            const sb_http_message *m = sb_http_parser_msg(&p);
            const char *c = sb_http_header_get(m, "Connection");
            const char *ra = sb_http_header_get(m, "Retry-After");
            out.push_back({m->status,
                           std::string(reinterpret_cast<const char *>(m->body), m->body_len),
                           c ? c : "", ra ? ra : ""});
            sb_http_parser_next(&p);
        }
        if (out.size() >= want)
            break;
        uint64_t now = sb_now_ns();
        if (now >= end)
            break;
        pollfd pf{fd, POLLIN, 0};
        if (poll(&pf, 1, static_cast<int>((end - now) / 1000000u) + 1) <= 0)
            break;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            *closed = true;
            break;
        }
        pending.append(buf, static_cast<size_t>(n));
    }
    sb_http_parser_free(&p);
    return out;
}

// Wait until the peer closes (recv returns 0 or an error) or timeout_ms passes.
inline bool wait_closed(int fd, int timeout_ms)
{
    uint64_t end = sb_now_ns() + static_cast<uint64_t>(timeout_ms) * 1000000u;
    char buf[4096];
    for (;;) {
        uint64_t now = sb_now_ns();
        if (now >= end)
            return false;
        pollfd pf{fd, POLLIN, 0};
        if (poll(&pf, 1, static_cast<int>((end - now) / 1000000u) + 1) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            return true;
    }
}

} // namespace nt
