// http_client_test.cc: the HTTP/1.1 client against our own server and against Python's
// http.server / ssl (an independent peer): keep-alive reuse, chunked bodies, Retry-After,
// gzip bodies, timeouts, and TLS verification with a CA made at test time.
#include "net_helpers.h"

#include <netinet/in.h>

using namespace nt;

namespace
{

struct Result {
    bool done = false;
    int err = 1;
    int status = 0;
    int64_t retry_after = -2;
    std::string body, why, content_type;
};

void on_resp(void *arg, int err, const sb_http_response *r, const char *why)
{
    auto *res = static_cast<Result *>(arg);
    res->done = true;
    res->err = err;
    res->why = why ? why : "";
    if (r) {
        res->status = r->status;
        res->retry_after = r->retry_after_s;
        res->body.assign(reinterpret_cast<const char *>(r->msg->body), r->msg->body_len);
        const char *ct = sb_http_header_get(r->msg, "Content-Type");
        res->content_type = ct ? ct : "";
    }
}

struct Client {
    sb_loop *loop = nullptr;
    sb_http_client *c = nullptr;
    std::string err;
    Client(const std::string &url, sb_http_client_options o = {})
    {
        EXPECT_EQ(0, sb_loop_new(&loop, 64));
        o.url = url.c_str();
        char e[256] = "";
        int ret = sb_http_client_new(&c, loop, &o, e, sizeof(e));
        err = e;
        EXPECT_EQ(0, ret) << e;
    }
    ~Client()
    {
        sb_http_client_free(c);
        for (int i = 0; i < 50; i++)
            sb_loop_run_once(loop, 1000000);
        sb_loop_free(loop);
    }
    Result run(const char *method, const char *path, std::string body = "",
               std::vector<sb_http_header> h = {}, uint64_t max_ns = 5000000000ull)
    {
        Result r;
        sb_http_request req{method, path, h.data(), h.size(), body.data(), body.size()};
        EXPECT_EQ(0, sb_http_client_request(c, &req, on_resp, &r));
        uint64_t end = sb_now_ns() + max_ns;
        while (!r.done && sb_now_ns() < end)
            sb_loop_run_once(loop, 10000000);
        EXPECT_TRUE(r.done) << method << " " << path;
        return r;
    }
    sb_http_client_stats stats()
    {
        sb_http_client_stats st;
        sb_http_client_get_stats(c, &st);
        return st;
    }
};

std::string url(int port, const char *scheme = "http", const char *host = "127.0.0.1")
{
    return std::string(scheme) + "://" + host + ":" + std::to_string(port);
}

// Routes: /echo answers method, path, selected headers and body; /later answers after 30 ms
// from a timer (asynchronously); /retry answers 429 with Retry-After; /hang never answers.
struct Later {
    sb_timer t{};
    sb_http_exchange *ex;
};
void later_fire(sb_timer *t)
{
    auto *l = reinterpret_cast<Later *>(t);
    sb_http_header h{"Content-Type", "text/plain"};
    sb_http_respond(l->ex, 200, &h, 1, "later", 5);
    delete l;
}
std::vector<sb_http_exchange *> hung;

void test_route(sb_loop *loop, sb_http_exchange *ex, const sb_http_message *m)
{
    std::string p = m->path;
    if (p == "/later") {
        auto *l = new Later;
        l->ex = ex;
        sb_timer_start(loop, &l->t, 30000000, later_fire);
        return;
    }
    if (p == "/retry") {
        sb_http_header h{"Retry-After", "7"};
        sb_http_respond(ex, 429, &h, 1, "", 0);
        return;
    }
    if (p == "/hang") {
        hung.push_back(ex);
        return;
    }
    std::string body = std::string(m->method) + " " + m->target;
    for (const char *name : {"Authorization", "X-Retry-Count", "Content-Type", "Host"}) {
        const char *v = sb_http_header_get(m, name);
        if (v)
            body += std::string(" ") + name + "=" + v;
    }
    body += " body=" + std::string(reinterpret_cast<const char *>(m->body), m->body_len);
    sb_http_header h{"Content-Type", "text/plain"};
    sb_http_respond(ex, 200, &h, 1, body.data(), body.size());
}

struct OwnServer : ServerThread {
    OwnServer(const char *cert = nullptr, const char *key = nullptr)
    {
        route = test_route;
        opts.tls_cert_file = cert;
        opts.tls_key_file = key;
        start();
    }
    ~OwnServer()
    {
        stop = true;
        if (th.joinable())
            th.join();
        for (auto *ex : hung)
            sb_http_respond(ex, 200, nullptr, 0, nullptr, 0);
        hung.clear();
    }
};

TEST(HttpClient, RejectsBadUrlsWithAReason)
{
    sb_loop *loop;
    ASSERT_EQ(0, sb_loop_new(&loop, 8));
    sb_http_client *c = nullptr;
    char err[256];
    sb_http_client_options o{};
    o.url = "ftp://x";
    EXPECT_EQ(-EINVAL, sb_http_client_new(&c, loop, &o, err, sizeof(err)));
    EXPECT_NE(nullptr, strstr(err, "http://"));
    o.url = "http://127.0.0.1:99999";
    EXPECT_EQ(-EINVAL, sb_http_client_new(&c, loop, &o, err, sizeof(err)));
    EXPECT_NE(nullptr, strstr(err, "port"));
    o.url = "http://no-such-host.invalid";
    EXPECT_EQ(-ENOENT, sb_http_client_new(&c, loop, &o, err, sizeof(err)));
    EXPECT_NE(nullptr, strstr(err, "no-such-host.invalid"));
    o.url = "https://127.0.0.1";
    o.ca_file = "/nonexistent/ca.pem";
    EXPECT_EQ(-EIO, sb_http_client_new(&c, loop, &o, err, sizeof(err)));
    EXPECT_NE(nullptr, strstr(err, "/nonexistent/ca.pem"));
    EXPECT_EQ(nullptr, c);
    sb_loop_free(loop);
}

TEST(HttpClient, PostWithHeadersAndBodyToOwnServer)
{
    OwnServer s;
    Client c(url(s.port) + "/prefix/");
    std::vector<sb_http_header> h = {{"Authorization", "Basic d2s6"},
                                     {"X-Retry-Count", "2"},
                                     {"Content-Type", "application/json"}};
    Result r = c.run("POST", "/v1/batch", "{\"batch\":[]}", h);
    ASSERT_EQ(0, r.err) << r.why;
    EXPECT_EQ(200, r.status);
    EXPECT_EQ(-1, r.retry_after);
    EXPECT_EQ("text/plain", r.content_type);
    EXPECT_EQ("POST /prefix/v1/batch Authorization=Basic d2s6 X-Retry-Count=2 "
              "Content-Type=application/json Host=127.0.0.1:" +
                  std::to_string(s.port) + " body={\"batch\":[]}",
              r.body);
}

TEST(HttpClient, RefusesHeaderInjection)
{
    OwnServer s;
    Client c(url(s.port));
    sb_http_header h{"X-Evil", "a\r\nInjected: yes"};
    sb_http_request req{"GET", "/", &h, 1, nullptr, 0};
    Result r;
    EXPECT_EQ(-EINVAL, sb_http_client_request(c.c, &req, on_resp, &r));
}

TEST(HttpClient, KeepAliveReusesOneConnection)
{
    OwnServer s;
    Client c(url(s.port));
    for (int i = 0; i < 5; i++) {
        Result r = c.run("GET", ("/echo?i=" + std::to_string(i)).c_str());
        ASSERT_EQ(0, r.err) << r.why;
        EXPECT_EQ("GET /echo?i=" + std::to_string(i) + " Host=127.0.0.1:" + std::to_string(s.port) +
                      " body=",
                  r.body);
    }
    auto st = c.stats();
    EXPECT_EQ(1u, st.connects);
    EXPECT_EQ(4u, st.reused);
    EXPECT_EQ(5u, st.requests);
}

TEST(HttpClient, ConcurrentRequestsUseThePoolAndAllComplete)
{
    OwnServer s;
    sb_http_client_options o{};
    o.max_connections = 3;
    Client c(url(s.port), o);
    std::vector<Result> rs(12);
    for (auto &r : rs) {
        sb_http_request req{"GET", "/later", nullptr, 0, nullptr, 0};
        ASSERT_EQ(0, sb_http_client_request(c.c, &req, on_resp, &r));
    }
    EXPECT_EQ(12u, c.stats().queued + 0u); // nothing sent before the loop runs
    uint64_t end = sb_now_ns() + 5000000000ull;
    auto all = [&] {
        for (auto &r : rs)
            if (!r.done)
                return false;
        return true;
    };
    while (!all() && sb_now_ns() < end)
        sb_loop_run_once(c.loop, 10000000);
    ASSERT_TRUE(all());
    for (auto &r : rs) {
        EXPECT_EQ(0, r.err) << r.why;
        EXPECT_EQ("later", r.body);
    }
    EXPECT_EQ(3u, c.stats().connects);
}

TEST(HttpClient, RetryAfterFromOwnServer)
{
    OwnServer s;
    Client c(url(s.port));
    Result r = c.run("GET", "/retry");
    ASSERT_EQ(0, r.err);
    EXPECT_EQ(429, r.status);
    EXPECT_EQ(7, r.retry_after);
}

TEST(HttpClient, ResponseTimeout)
{
    OwnServer s;
    sb_http_client_options o{};
    o.response_timeout_ns = 100000000;
    Client c(url(s.port), o);
    uint64_t t0 = sb_now_ns();
    Result r = c.run("GET", "/hang");
    EXPECT_EQ(-ETIMEDOUT, r.err);
    EXPECT_NE(std::string::npos, r.why.find("response timed out"));
    EXPECT_GE(sb_now_ns() - t0, 100000000u);
    EXPECT_LT(sb_now_ns() - t0, 2000000000u);
}

TEST(HttpClient, ConnectRefused)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)));
    socklen_t l = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &l);
    int port = ntohs(a.sin_port);
    close(fd); // nothing listens there now
    Client c(url(port));
    Result r = c.run("GET", "/");
    EXPECT_EQ(-ECONNREFUSED, r.err);
    EXPECT_NE(std::string::npos, r.why.find("connect"));
}

TEST(HttpClient, ConnectTimeoutAgainstAFullBacklog)
{
    // A listener that never accepts, with its backlog filled: SYNs go unanswered.
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof(a)));
    ASSERT_EQ(0, listen(lfd, 0));
    socklen_t l = sizeof(a);
    getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &l);
    std::vector<int> fillers;
    for (int i = 0; i < 4; i++) {
        int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(f, reinterpret_cast<sockaddr *>(&a), sizeof(a));
        fillers.push_back(f);
    }
    usleep(20000);
    sb_http_client_options o{};
    o.connect_timeout_ns = 150000000;
    Client c(url(ntohs(a.sin_port)), o);
    Result r = c.run("GET", "/");
    EXPECT_EQ(-ETIMEDOUT, r.err) << r.why;
    for (int f : fillers)
        close(f);
    close(lfd);
}

TEST(HttpClient, GzipBodyIsInflatedByOwnServer)
{
    OwnServer s;
    Client c(url(s.port));
    std::string body(50000, 'x');
    sb_buf gz = SB_BUF_INIT;
    ASSERT_EQ(0, sb_gzip(&gz, body.data(), body.size(), -1));
    EXPECT_LT(gz.len, 1000u);
    std::vector<sb_http_header> h = {{"Content-Encoding", "gzip"}};
    Result r =
        c.run("POST", "/echo", std::string(reinterpret_cast<const char *>(gz.data), gz.len), h);
    sb_buf_free(&gz);
    ASSERT_EQ(0, r.err) << r.why;
    EXPECT_EQ(200, r.status);
    EXPECT_NE(std::string::npos, r.body.find("body=" + body));
}

TEST(HttpClient, Ipv6LoopbackLiteral)
{
    struct V6 : ServerThread {
        V6()
        {
            route = test_route;
            opts.bind_addr = "::1";
            start();
        }
    } s;
    ASSERT_GT(s.port, 0);
    Client c("http://[::1]:" + std::to_string(s.port));
    Result r = c.run("GET", "/v6");
    ASSERT_EQ(0, r.err) << r.why;
    EXPECT_EQ("GET /v6 Host=[::1]:" + std::to_string(s.port) + " body=", r.body);
}

TEST(HttpClient, MalformedResponseFailsWithEproto)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof(a)));
    ASSERT_EQ(0, listen(lfd, 4));
    socklen_t l = sizeof(a);
    getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &l);
    std::thread srv([&] {
        char buf[4096];
        int c1 = accept(lfd, nullptr, nullptr);
        (void)!recv(c1, buf, sizeof(buf), 0);
        send_all(c1, "HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n");
        usleep(100000);
        close(c1);
        int c2 = accept(lfd, nullptr, nullptr);
        (void)!recv(c2, buf, sizeof(buf), 0);
        send_all(c2, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        close(c2); // cut short
    });
    {
        Client c(url(ntohs(a.sin_port)));
        Result r = c.run("GET", "/");
        EXPECT_EQ(-EPROTO, r.err);
        EXPECT_NE(std::string::npos, r.why.find("malformed HTTP response")) << r.why;
        Result r2 = c.run("GET", "/");
        EXPECT_EQ(-ECONNRESET, r2.err);
        EXPECT_NE(std::string::npos, r2.why.find("closed before the end of the body")) << r2.why;
    }
    srv.join();
    close(lfd);
}

// ---- against Python's http.server ----

TEST(HttpClientPython, ChunkedResponse)
{
    PyPeer py;
    ASSERT_GT(py.port, 0);
    Client c(url(py.port));
    Result r = c.run("GET", "/chunked");
    ASSERT_EQ(0, r.err) << r.why;
    EXPECT_EQ(200, r.status);
    std::string want = "hello chunked ";
    for (int i = 0; i < 1000; i++)
        want += "world";
    EXPECT_EQ(want, r.body);
}

TEST(HttpClientPython, ResponseOverTheLimitFailsWithEfbig)
{
    PyPeer py;
    ASSERT_GT(py.port, 0);
    sb_http_client_options o{};
    o.max_response_bytes = 1000;
    Client c(url(py.port), o);
    Result r = c.run("GET", "/chunked"); // about 5 KB of chunks
    EXPECT_EQ(-EFBIG, r.err);
    EXPECT_NE(std::string::npos, r.why.find("1000 bytes")) << r.why;
    Result ok = c.run("GET", "/small"); // a fresh connection still works
    EXPECT_EQ(0, ok.err) << ok.why;
}

TEST(HttpClientPython, KeepAliveAndRetryAfter)
{
    PyPeer py;
    ASSERT_GT(py.port, 0);
    Client c(url(py.port, "http", "localhost")); // a name: getaddrinfo at setup
    Result a = c.run("GET", "/a");
    Result b = c.run("GET", "/b");
    ASSERT_EQ(0, a.err) << a.why;
    ASSERT_EQ(0, b.err) << b.why;
    // the same server-side socket answered both
    EXPECT_EQ(a.body.substr(a.body.find("conn=")), b.body.substr(b.body.find("conn=")));
    Result r = c.run("GET", "/retry");
    EXPECT_EQ(503, r.status);
    EXPECT_EQ(120, r.retry_after);
    Result d = c.run("GET", "/retry-date"); // a date in the past: retry now
    EXPECT_EQ(429, d.status);
    EXPECT_EQ(0, d.retry_after);
    EXPECT_EQ(1u, c.stats().connects);
}

TEST(HttpClientPython, GzipPostWithBasicAuth)
{
    PyPeer py;
    ASSERT_GT(py.port, 0);
    Client c(url(py.port));
    std::string body = "{\"batch\":[{\"type\":\"track\"}]}";
    sb_buf gz = SB_BUF_INIT;
    ASSERT_EQ(0, sb_gzip(&gz, body.data(), body.size(), 6));
    std::vector<sb_http_header> h = {{"Authorization", "Basic a2V5Og=="},
                                     {"Content-Encoding", "gzip"}};
    Result r =
        c.run("POST", "/v1/batch", std::string(reinterpret_cast<const char *>(gz.data), gz.len), h);
    sb_buf_free(&gz);
    ASSERT_EQ(0, r.err) << r.why;
    EXPECT_EQ("auth=Basic a2V5Og== body=" + body, r.body);
}

TEST(HttpClient, KeptAliveConnectionClosedBeforeAnsweringIsRetriedOnce)
{
    // A raw server: on its first connection it answers one request (keep-alive), reads the
    // second and closes without answering; on its second connection it answers normally.
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof(a)));
    ASSERT_EQ(0, listen(lfd, 4));
    socklen_t l = sizeof(a);
    getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &l);
    std::atomic<int> conns{0};
    std::thread srv([&] {
        char buf[4096];
        int c1 = accept(lfd, nullptr, nullptr);
        conns++;
        (void)!recv(c1, buf, sizeof(buf), 0);
        send_all(c1, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
        (void)!recv(c1, buf, sizeof(buf), 0);
        close(c1);
        int c2 = accept(lfd, nullptr, nullptr);
        conns++;
        (void)!recv(c2, buf, sizeof(buf), 0);
        send_all(c2, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
        usleep(100000);
        close(c2);
    });
    {
        Client c(url(ntohs(a.sin_port)));
        Result r1 = c.run("POST", "/v1/batch", "1");
        Result r2 = c.run("POST", "/v1/batch", "2");
        EXPECT_EQ(0, r1.err) << r1.why;
        EXPECT_EQ("first", r1.body);
        EXPECT_EQ(0, r2.err) << r2.why;
        EXPECT_EQ("second", r2.body);
        EXPECT_EQ(2u, c.stats().connects);
    }
    srv.join();
    close(lfd);
    EXPECT_EQ(2, conns.load());
}

TEST(HttpClient, IdleConnectionTheServerClosedIsNotReused)
{
    // A raw server that answers one request (keep-alive) and then closes the idle connection,
    // as a destination that restarts: the client must notice the close while idle and send the
    // next request on a new connection, not wait out its response timeout on the dead one.
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof(a)));
    ASSERT_EQ(0, listen(lfd, 4));
    socklen_t l = sizeof(a);
    getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &l);
    timeval tv{5, 0}; // accept gives up: the test fails instead of hanging
    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::thread srv([&] {
        char buf[4096];
        for (const char *answer : {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
                                   "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"}) {
            int c = accept(lfd, nullptr, nullptr);
            if (c < 0)
                return;
            (void)!recv(c, buf, sizeof(buf), 0);
            send_all(c, answer);
            close(c); // idle: the client has nothing more in flight on it
        }
    });
    {
        sb_http_client_options o{};
        o.response_timeout_ns = 3000000000ull;
        Client c(url(ntohs(a.sin_port)), o);
        Result r1 = c.run("POST", "/v1/batch", "1");
        EXPECT_EQ(0, r1.err) << r1.why;
        for (int i = 0; i < 20; i++) // idle: the server's close arrives
            sb_loop_run_once(c.loop, 10000000);
        uint64_t t0 = sb_now_ns();
        Result r2 = c.run("POST", "/v1/batch", "2");
        EXPECT_EQ(0, r2.err) << r2.why;
        EXPECT_EQ("second", r2.body);
        EXPECT_LT(sb_now_ns() - t0, 1000000000ull) << "waited on the closed connection";
        EXPECT_EQ(2u, c.stats().connects);
    }
    srv.join();
    close(lfd);
}

// ---- TLS ----

TestCA &ca()
{
    static TestCA *c = new TestCA;
    return *c;
}

TEST(HttpClientTls, VerifiesOwnServerByIpAndByName)
{
    OwnServer s(ca().cert.c_str(), ca().key.c_str());
    ASSERT_GT(s.port, 0);
    sb_http_client_options o{};
    o.ca_file = ca().ca.c_str();
    {
        Client c(url(s.port, "https"), o);
        Result r = c.run("POST", "/echo", "secret", {{"Authorization", "Basic eDo="}});
        ASSERT_EQ(0, r.err) << r.why;
        EXPECT_EQ(200, r.status);
        EXPECT_NE(std::string::npos, r.body.find("body=secret"));
        Result r2 = c.run("GET", "/again");
        ASSERT_EQ(0, r2.err) << r2.why;
        EXPECT_EQ(1u, c.stats().connects);
    }
    {
        Client c(url(s.port, "https", "localhost"), o);
        Result r = c.run("GET", "/x");
        ASSERT_EQ(0, r.err) << r.why;
    }
}

TEST(HttpClientTls, ReconnectResumesTheSession)
{
    OwnServer s(ca().cert.c_str(), ca().key.c_str());
    sb_http_client_options o{};
    o.ca_file = ca().ca.c_str();
    o.idle_timeout_ns = 50000000; // idle connections close quickly: the next request reconnects
    Client c(url(s.port, "https", "localhost"), o);
    ASSERT_EQ(0, c.run("GET", "/one").err);
    uint64_t end = sb_now_ns() + 2000000000ull;
    while (c.stats().open > 0 && sb_now_ns() < end)
        sb_loop_run_once(c.loop, 10000000);
    EXPECT_EQ(0u, c.stats().open);
    Result r = c.run("GET", "/two");
    ASSERT_EQ(0, r.err) << r.why;
    auto st = c.stats();
    EXPECT_EQ(2u, st.connects);
    EXPECT_EQ(1u, st.tls_resumed);
}

TEST(HttpClientTls, LargeBodiesBothWays)
{
    OwnServer s(ca().cert.c_str(), ca().key.c_str());
    sb_http_client_options o{};
    o.ca_file = ca().ca.c_str();
    Client c(url(s.port, "https"), o);
    std::string body(600 * 1024, '\0');
    for (size_t i = 0; i < body.size(); i++)
        body[i] = static_cast<char>('a' + (i * 7919) % 26);
    Result r = c.run("POST", "/big", body);
    ASSERT_EQ(0, r.err) << r.why;
    EXPECT_EQ(200, r.status);
    EXPECT_EQ("POST /big Host=127.0.0.1:" + std::to_string(s.port) + " body=" + body, r.body);
}

TEST(HttpClientTls, WrongHostFailsVerification)
{
    OwnServer s(ca().cert.c_str(), ca().key.c_str());
    sb_http_client_options o{};
    o.ca_file = ca().ca.c_str();
    o.tls_host = "api.segment.io";
    Client c(url(s.port, "https"), o);
    Result r = c.run("GET", "/");
    EXPECT_EQ(-ECONNABORTED, r.err);
    EXPECT_NE(std::string::npos, r.why.find("hostname mismatch")) << r.why;
}

TEST(HttpClientTls, UntrustedCaFailsVerification)
{
    OwnServer s(ca().cert.c_str(), ca().key.c_str());
    sb_http_client_options o{};
    o.ca_file = ca().other_ca.c_str();
    Client c(url(s.port, "https"), o);
    Result r = c.run("GET", "/");
    EXPECT_EQ(-ECONNABORTED, r.err);
    EXPECT_NE(std::string::npos, r.why.find("certificate verify failed")) << r.why;
}

TEST(HttpClientTls, SystemStoreDoesNotTrustTheTestCa)
{
    OwnServer s(ca().cert.c_str(), ca().key.c_str());
    Client c(url(s.port, "https"));
    Result r = c.run("GET", "/");
    EXPECT_EQ(-ECONNABORTED, r.err);
}

TEST(HttpClientTls, PythonSslPeer)
{
    PyPeer py({ca().cert, ca().key});
    ASSERT_GT(py.port, 0);
    sb_http_client_options o{};
    o.ca_file = ca().ca.c_str();
    Client c(url(py.port, "https", "localhost"), o);
    Result r = c.run("GET", "/chunked");
    ASSERT_EQ(0, r.err) << r.why;
    EXPECT_EQ(200, r.status);
    EXPECT_EQ(0u, r.body.find("hello chunked world"));
    Result p = c.run("POST", "/v1/batch", "{}", {{"Authorization", "Basic a2V5Og=="}});
    ASSERT_EQ(0, p.err) << p.why;
    EXPECT_EQ("auth=Basic a2V5Og== body={}", p.body);
    EXPECT_EQ(1u, c.stats().connects);
}

} // namespace
