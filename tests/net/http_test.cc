// http_test.cc: the HTTP message layer without sockets: parser limits and pipelining, header
// lookup, Retry-After forms, Basic auth, gzip round trips and bounded inflation.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "net/http.h"
}

namespace
{

struct Parser {
    sb_http_parser p;
    Parser(sb_http_kind kind, sb_http_limits lim = {0, 0, 0})
    {
        sb_http_parser_init(&p, kind, &lim);
    }
    ~Parser()
    {
        sb_http_parser_free(&p);
    }
    ssize_t feed(const std::string &s)
    {
        return sb_http_parser_feed(&p, reinterpret_cast<const uint8_t *>(s.data()), s.size());
    }
};

TEST(HttpParser, StopsAfterEachPipelinedRequest)
{
    Parser P(SB_HTTP_REQUEST);
    std::string in = "GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Multi: 1\r\n\r\n"
                     "POST /b HTTP/1.1\r\ncontent-length: 3\r\n\r\nxyz";
    ssize_t n = P.feed(in);
    ASSERT_GT(n, 0);
    ASSERT_TRUE(sb_http_parser_done(&P.p));
    const sb_http_message *m = sb_http_parser_msg(&P.p);
    EXPECT_STREQ("GET", m->method);
    EXPECT_STREQ("/a?x=1", m->target);
    EXPECT_STREQ("/a", m->path);
    EXPECT_STREQ("h", sb_http_header_get(m, "HOST"));
    EXPECT_EQ(nullptr, sb_http_header_get(m, "Missing"));
    EXPECT_TRUE(m->keep_alive);
    EXPECT_EQ(0, P.feed(in.substr(static_cast<size_t>(n)))); // paused until next()
    sb_http_parser_next(&P.p);
    ssize_t n2 = P.feed(in.substr(static_cast<size_t>(n)));
    EXPECT_EQ(static_cast<ssize_t>(in.size()) - n, n2);
    ASSERT_TRUE(sb_http_parser_done(&P.p));
    m = sb_http_parser_msg(&P.p);
    EXPECT_STREQ("POST", m->method);
    EXPECT_EQ("xyz", std::string(reinterpret_cast<const char *>(m->body), m->body_len));
}

TEST(HttpParser, LimitsNameTheirStatus)
{
    {
        Parser P(SB_HTTP_REQUEST, {64, 0, 0});
        EXPECT_EQ(-E2BIG, P.feed("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n"));
        EXPECT_EQ(431, P.p.error_status);
        EXPECT_EQ(-E2BIG, P.feed("more")); // stays failed
    }
    {
        Parser P(SB_HTTP_REQUEST, {0, 0, 2});
        EXPECT_EQ(-E2BIG, P.feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"));
        EXPECT_EQ(431, P.p.error_status);
        EXPECT_NE(nullptr, strstr(P.p.error, "2 header fields"));
    }
    {
        Parser P(SB_HTTP_REQUEST, {0, 10, 0});
        EXPECT_EQ(-EFBIG, P.feed("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"));
        EXPECT_EQ(413, P.p.error_status);
    }
    {
        Parser P(SB_HTTP_REQUEST);
        EXPECT_EQ(-EPROTO, P.feed("GET / HTTP/2.0\r\n\r\n"));
        EXPECT_EQ(505, P.p.error_status);
    }
}

TEST(HttpParser, ResponseBodyToEndOfStreamAndHead)
{
    Parser P(SB_HTTP_RESPONSE);
    std::string in = "HTTP/1.0 200 OK\r\n\r\nall of it";
    EXPECT_EQ(static_cast<ssize_t>(in.size()), P.feed(in));
    EXPECT_FALSE(sb_http_parser_done(&P.p));
    EXPECT_EQ(0, sb_http_parser_eof(&P.p));
    ASSERT_TRUE(sb_http_parser_done(&P.p));
    EXPECT_EQ("all of it",
              std::string(reinterpret_cast<const char *>(P.p.msg.body), P.p.msg.body_len));
    Parser H(SB_HTTP_RESPONSE);
    sb_http_parser_expect_head(&H.p, true);
    H.feed("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
    ASSERT_TRUE(sb_http_parser_done(&H.p));
    EXPECT_EQ(0u, H.p.msg.body_len);
    Parser C(SB_HTTP_RESPONSE);
    C.feed("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort");
    EXPECT_EQ(-EPROTO, sb_http_parser_eof(&C.p));
}

TEST(HttpRetryAfter, SecondsDatesAndGarbage)
{
    EXPECT_EQ(-1, sb_http_retry_after(nullptr, 300));
    EXPECT_EQ(0, sb_http_retry_after("0", 300));
    EXPECT_EQ(42, sb_http_retry_after(" 42 ", 300));
    EXPECT_EQ(300, sb_http_retry_after("1000", 300));
    EXPECT_EQ(300, sb_http_retry_after("99999999999999999999999", 300));
    EXPECT_EQ(-1, sb_http_retry_after("42s", 300));
    EXPECT_EQ(-1, sb_http_retry_after("-5", 300));
    EXPECT_EQ(-1, sb_http_retry_after("tomorrow", 300));
    EXPECT_EQ(0, sb_http_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 300)); // past
    EXPECT_EQ(300, sb_http_retry_after("Fri, 31 Dec 2100 23:59:59 GMT", 300));
}

TEST(HttpBasicAuth, EncodesUserAndPassword)
{
    char out[64];
    EXPECT_EQ(18, sb_http_basic_auth(out, sizeof(out), "abc123", ""));
    EXPECT_STREQ("Basic YWJjMTIzOg==", out);
    EXPECT_EQ(-ENOSPC, sb_http_basic_auth(out, 10, "abc123", ""));
    EXPECT_EQ(-EINVAL, sb_http_basic_auth(out, sizeof(out), "a:b", ""));
}

TEST(HttpGzip, RoundTripAndBoundedInflate)
{
    std::string text;
    for (int i = 0; i < 5000; i++)
        text += "{\"event\":\"Order Completed\",\"i\":" + std::to_string(i) + "}";
    sb_buf gz = SB_BUF_INIT, out = SB_BUF_INIT;
    ASSERT_EQ(0, sb_gzip(&gz, text.data(), text.size(), -1));
    EXPECT_LT(gz.len * 5, text.size());
    EXPECT_EQ(0x1f, gz.data[0]); // a gzip member, not a bare zlib stream
    EXPECT_EQ(0x8b, gz.data[1]);
    ASSERT_EQ(0, sb_gunzip(&out, gz.data, gz.len, text.size()));
    EXPECT_EQ(text, std::string(reinterpret_cast<const char *>(out.data), out.len));
    sb_buf_clear(&out);
    EXPECT_EQ(-EFBIG, sb_gunzip(&out, gz.data, gz.len, text.size() - 1));
    EXPECT_EQ(0u, out.len); // nothing half-inflated is left behind
    EXPECT_EQ(-EPROTO, sb_gunzip(&out, gz.data, gz.len / 2, text.size()));
    EXPECT_EQ(-EPROTO, sb_gunzip(&out, "not gzip", 8, 100));
    sb_buf_free(&gz);
    sb_buf_free(&out);
}

} // namespace
