// http_server_test.cc: the HTTP/1.1 server with raw blocking sockets and curl-like peers:
// limits answered before parsing more (413/431), slowloris clients closed, pipelined requests
// answered in order even when the first answer comes later, gzip bodies, keep-alive, TLS.
#include "net_helpers.h"

using namespace nt;

namespace
{

struct Later {
    sb_timer t{};
    sb_http_exchange *ex;
    std::string body;
};
void later_fire(sb_timer *t)
{
    auto *l = reinterpret_cast<Later *>(t);
    sb_http_respond(l->ex, 200, nullptr, 0, l->body.data(), l->body.size());
    delete l;
}

// /slow?N answers "N" after 40 ms; /close answers with Connection: close semantics from the
// client; everything else echoes "METHOD target len=<body length> body=<body>".
void route(sb_loop *loop, sb_http_exchange *ex, const sb_http_message *m)
{
    std::string p = m->path;
    if (p == "/slow") {
        auto *l = new Later;
        l->ex = ex;
        l->body = m->target;
        sb_timer_start(loop, &l->t, 40000000, later_fire);
        return;
    }
    if (p == "/bad-header") {
        sb_http_header h{"X-Bad", "a\r\nb"};
        EXPECT_EQ(-EINVAL, sb_http_respond(ex, 200, &h, 1, "x", 1));
        return;
    }
    std::string body = std::string(m->method) + " " + m->target +
                       " len=" + std::to_string(m->body_len) +
                       " body=" + std::string(reinterpret_cast<const char *>(m->body), m->body_len);
    sb_http_header h{"Content-Type", "text/plain"};
    sb_http_respond(ex, 200, &h, 1, body.data(), body.size());
}

struct Srv : ServerThread {
    explicit Srv(void (*tweak)(sb_http_server_options &) = nullptr)
    {
        this->route = ::route;
        opts.max_header_bytes = 2048;
        opts.max_body_bytes = 64 * 1024;
        opts.max_inflated_bytes = 256 * 1024;
        opts.header_timeout_ns = 300000000;
        opts.body_timeout_ns = 300000000;
        opts.idle_timeout_ns = 500000000;
        if (tweak)
            tweak(opts);
        start();
    }
};

TEST(HttpServer, RejectsBadOptionsWithAReason)
{
    sb_loop *loop;
    ASSERT_EQ(0, sb_loop_new(&loop, 8));
    sb_http_server *s = nullptr;
    char err[256];
    sb_http_server_options o{};
    o.route = [](void *, sb_http_exchange *ex, const sb_http_message *) {
        sb_http_respond(ex, 204, nullptr, 0, nullptr, 0);
    };
    o.bind_addr = "localhost";
    EXPECT_EQ(-EINVAL, sb_http_server_new(&s, loop, &o, err, sizeof(err)));
    EXPECT_NE(nullptr, strstr(err, "localhost"));
    o.bind_addr = "127.0.0.1";
    o.tls_cert_file = "/nonexistent.pem";
    EXPECT_EQ(-EINVAL, sb_http_server_new(&s, loop, &o, err, sizeof(err)));
    o.tls_key_file = "/nonexistent.key";
    EXPECT_EQ(-EIO, sb_http_server_new(&s, loop, &o, err, sizeof(err)));
    EXPECT_NE(nullptr, strstr(err, "/nonexistent.pem"));
    o.tls_cert_file = o.tls_key_file = nullptr;
    ASSERT_EQ(0, sb_http_server_new(&s, loop, &o, err, sizeof(err)));
    sb_http_server *s2 = nullptr;
    o.port = sb_http_server_port(s);
    EXPECT_EQ(-EADDRINUSE, sb_http_server_new(&s2, loop, &o, err, sizeof(err)));
    EXPECT_NE(nullptr, strstr(err, "cannot bind"));
    sb_http_server_free(s);
    for (int i = 0; i < 10; i++)
        sb_loop_run_once(loop, 1000000);
    sb_loop_free(loop);
}

TEST(HttpServer, KeepAliveServesManyRequestsOnOneConnection)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_GE(fd, 0);
    bool closed;
    for (int i = 0; i < 3; i++) {
        ASSERT_TRUE(send_all(fd, "POST /v1/track?i=" + std::to_string(i) +
                                     " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
        auto rs = read_responses(fd, 1, 2000, &closed);
        ASSERT_EQ(1u, rs.size());
        EXPECT_EQ(200, rs[0].status);
        EXPECT_EQ("POST /v1/track?i=" + std::to_string(i) + " len=5 body=hello", rs[0].body);
        EXPECT_EQ("keep-alive", rs[0].connection);
    }
    // HTTP/1.0 without keep-alive: answered, then closed
    ASSERT_TRUE(send_all(fd, "GET /old HTTP/1.0\r\n\r\n"));
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ("close", rs[0].connection);
    EXPECT_TRUE(wait_closed(fd, 2000));
    close(fd);
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_GE(fd, 0);
    // The first answer comes 40 ms later from a timer; the others are immediate: order must
    // still be the order of the requests.
    std::string reqs = "GET /slow?1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /echo?2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                       "GET /slow?3 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /echo?4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ASSERT_TRUE(send_all(fd, reqs));
    bool closed;
    auto rs = read_responses(fd, 4, 3000, &closed);
    ASSERT_EQ(4u, rs.size());
    EXPECT_EQ("/slow?1", rs[0].body);
    EXPECT_EQ("POST /echo?2 len=3 body=abc", rs[1].body);
    EXPECT_EQ("/slow?3", rs[2].body);
    EXPECT_EQ("GET /echo?4 len=0 body=", rs[3].body);
    EXPECT_EQ("close", rs[3].connection);
    EXPECT_TRUE(wait_closed(fd, 2000));
    close(fd);
}

TEST(HttpServer, PipelinedRequestsSentByteByByte)
{
    Srv s;
    int fd = raw_connect(s.port);
    std::string reqs = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                       "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    for (char ch : reqs)
        ASSERT_TRUE(send_all(fd, std::string(1, ch)));
    bool closed;
    auto rs = read_responses(fd, 2, 3000, &closed);
    ASSERT_EQ(2u, rs.size());
    EXPECT_EQ("POST /a len=5 body=abcde", rs[0].body);
    EXPECT_EQ("GET /b len=0 body=", rs[1].body);
    close(fd);
}

TEST(HttpServer, ChunkedTrailersDoNotDisturbTheHeaders)
{
    Srv s;
    int fd = raw_connect(s.port);
    std::string req = "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\nbody\r\n0\r\n";
    for (int i = 0; i < 30; i++)
        req += "X-Trailer-" + std::to_string(i) + ": " + std::string(40, 't') + "\r\n";
    req += "\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_TRUE(send_all(fd, req));
    bool closed;
    auto rs = read_responses(fd, 2, 2000, &closed);
    ASSERT_EQ(2u, rs.size());
    EXPECT_EQ("POST /t len=4 body=body", rs[0].body);
    EXPECT_EQ("GET /after len=0 body=", rs[1].body);
    close(fd);
}

TEST(HttpServer, HalfClosedClientStillGetsItsAsyncAnswers)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_TRUE(send_all(fd, "GET /slow?1 HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /slow?2 HTTP/1.1\r\nHost: x\r\n\r\n"));
    shutdown(fd, SHUT_WR); // like `nc -N`: done sending, still reading
    bool closed;
    auto rs = read_responses(fd, 2, 3000, &closed);
    ASSERT_EQ(2u, rs.size());
    EXPECT_EQ("/slow?1", rs[0].body);
    EXPECT_EQ("/slow?2", rs[1].body);
    EXPECT_TRUE(wait_closed(fd, 2000));
    close(fd);
}

TEST(HttpServer, OversizedHeadersGet431AndClose)
{
    Srv s;
    int fd = raw_connect(s.port);
    std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n";
    ASSERT_TRUE(send_all(fd, big));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(431, rs[0].status);
    EXPECT_NE(std::string::npos, rs[0].body.find("2048 bytes"));
    EXPECT_TRUE(wait_closed(fd, 2000));
    close(fd);
}

TEST(HttpServer, HeadersThatNeverEndGet431WithoutBufferingThemAll)
{
    Srv s;
    int fd = raw_connect(s.port);
    // No blank line ever: the limit must trip on the bytes seen, not at the end of headers.
    std::string req = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 200; i++)
        req += "X-H" + std::to_string(i) + ": 0123456789\r\n";
    send_all(fd, req);
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(431, rs[0].status);
    close(fd);
}

TEST(HttpServer, OversizedBodyGets413BeforeItIsSent)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_TRUE(
        send_all(fd, "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(413, rs[0].status);
    EXPECT_NE(std::string::npos, rs[0].body.find("10000000"));
    close(fd);
}

TEST(HttpServer, UploadStillInFlightReadsIts413InsteadOfAReset)
{
    Srv s; // body limit 64 KiB
    int fd = raw_connect(s.port);
    std::string body(1 << 20, 'b');
    ASSERT_TRUE(send_all(fd, "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n"));
    // keep uploading as a real client does before it looks for an answer
    send_all(fd, body);
    bool closed;
    auto rs = read_responses(fd, 1, 3000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(413, rs[0].status);
    EXPECT_EQ("close", rs[0].connection);
    close(fd);
}

TEST(HttpServer, ContentLengthWithChunkedIsRefused)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_TRUE(
        send_all(fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"));
    bool closed;
    auto rs = read_responses(fd, 2, 2000, &closed);
    ASSERT_GE(rs.size(), 1u);
    EXPECT_EQ(400, rs[0].status);
    EXPECT_EQ(1u, rs.size()); // the smuggled request is never answered
    close(fd);
}

TEST(HttpServer, ServesIpv6Loopback)
{
    struct V6 : ServerThread {
        V6()
        {
            route = ::route;
            opts.bind_addr = "::1";
            start();
        }
    } s;
    ASSERT_GT(s.port, 0);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(s.port));
    a.sin6_addr = in6addr_loopback;
    ASSERT_EQ(0, connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)));
    ASSERT_TRUE(send_all(fd, "GET /six HTTP/1.1\r\nHost: x\r\n\r\n"));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ("GET /six len=0 body=", rs[0].body);
    close(fd);
}

TEST(HttpServer, ChunkedBodyOverTheLimitGets413)
{
    Srv s;
    int fd = raw_connect(s.port);
    std::string req = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::string chunk(8192, 'z');
    for (int i = 0; i < 10; i++)
        req += "2000\r\n" + chunk + "\r\n";
    send_all(fd, req);
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(413, rs[0].status);
    close(fd);
}

TEST(HttpServer, MalformedRequestGets400WithAReason)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_TRUE(send_all(fd, "GET / HTTP/1.1\r\nHost x\r\n\r\n"));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(400, rs[0].status);
    EXPECT_NE(std::string::npos, rs[0].body.find("malformed HTTP request"));
    close(fd);
    fd = raw_connect(s.port);
    ASSERT_TRUE(send_all(fd, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_TRUE(rs[0].status == 400 || rs[0].status == 505) << rs[0].status;
    close(fd);
}

TEST(HttpServer, GzipBodiesAreInflatedWithinTheLimit)
{
    Srv s;
    int fd = raw_connect(s.port);
    std::string body = "{\"batch\":[" + std::string(100000, ' ') + "]}";
    sb_buf gz = SB_BUF_INIT;
    ASSERT_EQ(0, sb_gzip(&gz, body.data(), body.size(), -1));
    std::string g(reinterpret_cast<const char *>(gz.data), gz.len);
    ASSERT_TRUE(send_all(fd, "POST /gz HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                             "Content-Length: " +
                                 std::to_string(g.size()) + "\r\n\r\n" + g));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(200, rs[0].status);
    EXPECT_EQ("POST /gz len=" + std::to_string(body.size()) + " body=" + body, rs[0].body);

    // A gzip bomb: 100 KB compressed to a few hundred bytes, 1 MB inflated, over the 256 KB limit.
    sb_buf_clear(&gz);
    std::string bomb(1 << 20, 'A');
    ASSERT_EQ(0, sb_gzip(&gz, bomb.data(), bomb.size(), 9));
    g.assign(reinterpret_cast<const char *>(gz.data), gz.len);
    ASSERT_TRUE(send_all(fd, "POST /gz HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                             "Content-Length: " +
                                 std::to_string(g.size()) + "\r\n\r\n" + g));
    rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(413, rs[0].status);
    EXPECT_NE(std::string::npos, rs[0].body.find("inflated"));
    close(fd);

    fd = raw_connect(s.port);
    ASSERT_TRUE(send_all(fd, "POST /gz HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                             "Content-Length: 5\r\n\r\nnotgz"));
    rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(400, rs[0].status);
    EXPECT_NE(std::string::npos, rs[0].body.find("gzip"));
    close(fd);

    fd = raw_connect(s.port);
    ASSERT_TRUE(send_all(fd, "POST /br HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\n"
                             "Content-Length: 1\r\n\r\nx"));
    rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(415, rs[0].status);
    close(fd);
    sb_buf_free(&gz);
}

TEST(HttpServer, SlowlorisHeadersAreCutOffAt408)
{
    Srv s; // header timeout 300 ms
    int fd = raw_connect(s.port);
    uint64_t t0 = sb_now_ns();
    ASSERT_TRUE(send_all(fd, "GET / HTTP/1.1\r\n"));
    // one header byte every 50 ms: each arrival must not extend the deadline
    bool cut = false;
    for (int i = 0; i < 40 && !cut; i++) {
        usleep(50000);
        cut = !send_all(fd, "X");
        pollfd pf{fd, POLLIN, 0};
        if (poll(&pf, 1, 0) > 0)
            break;
    }
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    uint64_t dt = sb_now_ns() - t0;
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(408, rs[0].status);
    EXPECT_TRUE(wait_closed(fd, 2000));
    EXPECT_GE(dt, 300000000u);
    EXPECT_LT(dt, 1500000000u);
    close(fd);
}

TEST(HttpServer, SlowBodyIsCutOffAt408)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_TRUE(send_all(fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(408, rs[0].status);
    EXPECT_NE(std::string::npos, rs[0].body.find("body"));
    close(fd);
}

TEST(HttpServer, SilentAndIdleConnectionsAreClosed)
{
    Srv s; // header timeout 300 ms, idle 500 ms
    int silent = raw_connect(s.port);
    uint64_t t0 = sb_now_ns();
    bool closed;
    auto rs = read_responses(silent, 1, 2000, &closed);
    // a connection that never sent a byte gets a 408 or a plain close, within the header timeout
    EXPECT_TRUE(closed || (rs.size() == 1 && rs[0].status == 408));
    EXPECT_TRUE(wait_closed(silent, 2000));
    EXPECT_LT(sb_now_ns() - t0, 1500000000u);
    close(silent);

    int idle = raw_connect(s.port);
    ASSERT_TRUE(send_all(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    rs = read_responses(idle, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    t0 = sb_now_ns();
    EXPECT_TRUE(wait_closed(idle, 3000));
    uint64_t dt = sb_now_ns() - t0;
    EXPECT_GE(dt, 400000000u);
    EXPECT_LT(dt, 2000000000u);
    close(idle);
}

TEST(HttpServer, ExpectContinueGets100ThenTheAnswer)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_TRUE(send_all(fd, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                             "Content-Length: 4\r\n\r\n"));
    char buf[256];
    pollfd pf{fd, POLLIN, 0};
    ASSERT_GT(poll(&pf, 1, 2000), 0);
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ("HTTP/1.1 100 Continue\r\n\r\n", std::string(buf, static_cast<size_t>(n)));
    ASSERT_TRUE(send_all(fd, "data"));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ("POST /e len=4 body=data", rs[0].body);
    close(fd);
}

TEST(HttpServer, RouteHeaderInjectionBecomes500)
{
    Srv s;
    int fd = raw_connect(s.port);
    ASSERT_TRUE(send_all(fd, "GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n"));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(500, rs[0].status);
    close(fd);
}

TEST(HttpServer, ClientGoneBeforeTheAsyncAnswerIsHarmless)
{
    Srv s;
    for (int i = 0; i < 5; i++) {
        int fd = raw_connect(s.port);
        ASSERT_TRUE(send_all(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
        close(fd); // gone before the 40 ms answer
    }
    usleep(150000);
    int fd = raw_connect(s.port); // the server is still fine
    ASSERT_TRUE(send_all(fd, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"));
    bool closed;
    auto rs = read_responses(fd, 1, 2000, &closed);
    ASSERT_EQ(1u, rs.size());
    EXPECT_EQ(200, rs[0].status);
    close(fd);
}

TEST(HttpServer, CurlAgainstTheServerWithTls)
{
    TestCA ca;
    struct Tls : ServerThread {
        Tls(TestCA &c)
        {
            route = ::route;
            opts.tls_cert_file = c.cert.c_str();
            opts.tls_key_file = c.key.c_str();
            start();
        }
    } s(ca);
    ASSERT_GT(s.port, 0);
    std::string out = sh("curl -sS --cacert " + ca.ca +
                         " --data-binary hello https://localhost:" + std::to_string(s.port) +
                         "/v1/batch https://127.0.0.1:" + std::to_string(s.port) + "/two 2>&1");
    EXPECT_EQ("POST /v1/batch len=5 body=helloPOST /two len=5 body=hello", out);
}

TEST(HttpServer, StatsCountWhatHappened)
{
    Srv *s = new Srv;
    int fd = raw_connect(s->port);
    send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    bool closed;
    read_responses(fd, 1, 2000, &closed);
    close(fd);
    fd = raw_connect(s->port);
    send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(3000, 'x') + "\r\n\r\n");
    read_responses(fd, 1, 2000, &closed);
    close(fd);
    s->stop = true;
    s->th.join();
    EXPECT_EQ(2u, s->stats.accepted);
    EXPECT_EQ(1u, s->stats.requests);
    EXPECT_EQ(1u, s->stats.rejected_limits);
    delete s;
}

} // namespace
