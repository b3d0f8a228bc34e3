// JSON <-> msgpack: round trips, every error with its offset, escaping, doubles, limits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "json/json.h"
#include "json/json_internal.h"
#include "mp/mp_reader.h"
#include "segbus/segbus.h"
}

namespace
{

struct packed {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    packed()
    {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    }
    ~packed()
    {
        msgpack_sbuffer_destroy(&sb);
    }
    std::string bytes() const
    {
        return std::string(sb.data, sb.size);
    }
};

// JSON -> msgpack -> JSON; returns the JSON text or "ERR:<rc>@<offset>:<reason>".
std::string through(const std::string &in)
{
    packed p;
    struct sb_json_error err = {};
    int rc = sb_json_to_msgpack(in.data(), in.size(), &p.pk, &err);
    if (rc)
        return "ERR:" + std::to_string(rc) + "@" + std::to_string(err.offset) + ":" +
               (err.reason ? err.reason : "(null)");
    struct sb_buf out = SB_BUF_INIT;
    size_t used = 0;
    rc = sb_msgpack_to_json((const uint8_t *)p.sb.data, p.sb.size, &used, &out);
    EXPECT_EQ(0, rc);
    EXPECT_EQ(p.sb.size, used);
    std::string s((const char *)out.data, out.len);
    sb_buf_free(&out);
    return s;
}

std::string to_json(const std::string &mp, int *rc_out = nullptr)
{
    struct sb_buf out = SB_BUF_INIT;
    size_t used = 0;
    int rc = sb_msgpack_to_json((const uint8_t *)mp.data(), mp.size(), &used, &out);
    if (rc_out)
        *rc_out = rc;
    std::string s = rc ? "" : std::string((const char *)out.data, out.len);
    sb_buf_free(&out);
    return s;
}

} // namespace

TEST(Json, RoundTripsCanonicalText)
{
    const char *cases[] = {
        "null",
        "true",
        "false",
        "0",
        "-1",
        "42",
        "\"\"",
        "\"abc\"",
        "[]",
        "{}",
        "[1,2,3]",
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
        "0.5",
        "-2.25",
        "1e+300",
        "18446744073709551615",
        "-9223372036854775808",
        "9223372036854775807",
        "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"",
        "[[[[[]]]]]",
        "{\"\":\"\"}",
        "1.0",
        "-0.0",
    };
    for (const char *c : cases)
        EXPECT_EQ(c, through(c)) << c;
}

TEST(Json, WhitespaceAndEscapesNormalise)
{
    EXPECT_EQ("{\"a\":[1,2]}", through(" {\n\t\"a\" : [ 1 , 2 ] }\r\n"));
    EXPECT_EQ("\"A\xc3\xa9\xf0\x9f\x98\x80/\"", through("\"\\u0041\\u00e9\\ud83d\\ude00\\/\""));
    EXPECT_EQ("\"\\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f\"",
              through("\"\\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001F\""));
}

TEST(Json, IntegersKeepTheirExactValue)
{
    packed p;
    std::string in = "[18446744073709551615,-9223372036854775808,5,-5]";
    ASSERT_EQ(0, sb_json_to_msgpack(in.data(), in.size(), &p.pk, nullptr));
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ASSERT_EQ(MSGPACK_UNPACK_SUCCESS, msgpack_unpack_next(&u, p.sb.data, p.sb.size, nullptr));
    msgpack_object_array a = u.data.via.array;
    ASSERT_EQ(4u, a.size);
    EXPECT_EQ(MSGPACK_OBJECT_POSITIVE_INTEGER, a.ptr[0].type);
    EXPECT_EQ(UINT64_MAX, a.ptr[0].via.u64);
    EXPECT_EQ(MSGPACK_OBJECT_NEGATIVE_INTEGER, a.ptr[1].type);
    EXPECT_EQ(INT64_MIN, a.ptr[1].via.i64);
    EXPECT_EQ(5u, a.ptr[2].via.u64);
    EXPECT_EQ(-5, a.ptr[3].via.i64);
    msgpack_unpacked_destroy(&u);
    EXPECT_EQ(in, to_json(p.bytes())); // and the writer gives the same digits back
}

TEST(Json, DoublesAreShortestAndExact)
{
    const double vals[] = {0.1,     1e300,   -0.0,   5e-324, 1.7976931348623157e308,
                           123.456, 1.0 / 3, 2.5e-8, 100.0,  1e21,
                           4.35,    0.3};
    for (double d : vals) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_double(&pk, d);
        std::string j = to_json(std::string(sb.data, sb.size));
        msgpack_sbuffer_destroy(&sb);
        // Reads back as the same double, bit for bit, and as a double (not an integer).
        packed back;
        ASSERT_EQ(0, sb_json_to_msgpack(j.data(), j.size(), &back.pk, nullptr)) << j;
        struct sb_mp_reader r;
        struct sb_mp_item it;
        sb_mp_reader_init(&r, back.sb.data, back.sb.size);
        ASSERT_EQ(0, sb_mp_next(&r, &it));
        ASSERT_EQ(SB_MP_FLOAT64, it.type) << j;
        EXPECT_EQ(0, std::memcmp(&d, &it.v.f, sizeof d)) << j;
    }
    char buf[32];
    sb_json_format_double(0.1, buf);
    EXPECT_STREQ("0.1", buf);
    sb_json_format_double(1e300, buf);
    EXPECT_STREQ("1e+300", buf);
    sb_json_format_double(-0.0, buf);
    EXPECT_STREQ("-0.0", buf);
    sb_json_format_double(5e-324, buf);
    EXPECT_STREQ("5e-324", buf);
    sb_json_format_float(0.1f, buf);
    EXPECT_STREQ("0.1", buf);
}

TEST(Json, NanAndInfinityBecomeNull)
{
    const double vals[] = {NAN, INFINITY, -INFINITY};
    for (double d : vals) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_double(&pk, d);
        msgpack_pack_float(&pk, (float)d);
        EXPECT_EQ("[null,null]", to_json(std::string(sb.data, sb.size)));
        msgpack_sbuffer_destroy(&sb);
    }
}

struct bad_case {
    const char *text;
    size_t len; // 0: strlen
    int rc;
    size_t offset;
    const char *reason; // substring
};

TEST(Json, EveryErrorHasItsOffsetAndReason)
{
    const bad_case cases[] = {
        {"", 0, -SEGBUS_EJSON, 0, "empty"},
        {"   ", 0, -SEGBUS_EJSON, 3, "white space"},
        {"[1,2", 0, -SEGBUS_EJSON, 4, "end of input"},
        {"[1,]", 0, -SEGBUS_EJSON, 3, "unexpected character"},
        {"[1 2]", 0, -SEGBUS_EJSON, 3, "',' or ']'"},
        {"{\"a\" 1}", 0, -SEGBUS_EJSON, 5, "':' expected"},
        {"{\"a\":1,}", 0, -SEGBUS_EJSON, 7, "key"},
        {"{1:2}", 0, -SEGBUS_EJSON, 1, "key"},
        {"{\"a\":1 \"b\":2}", 0, -SEGBUS_EJSON, 7, "',' or '}'"},
        {"{\"a\":1}x", 0, -SEGBUS_EJSON, 7, "trailing"},
        {"1 2", 0, -SEGBUS_EJSON, 2, "trailing"},
        {"nul", 0, -SEGBUS_EJSON, 3, "end of input"},
        {"truex", 0, -SEGBUS_EJSON, 4, "trailing"},
        {"tru3", 0, -SEGBUS_EJSON, 3, "unexpected character"},
        {"-", 0, -SEGBUS_EJSON, 1, "invalid number"},
        {"01", 0, -SEGBUS_EJSON, 1, "leading zero"},
        {"[2.]", 0, -SEGBUS_EJSON, 3, "after '.'"},
        {"1.5e", 0, -SEGBUS_EJSON, 4, "exponent"},
        {".5", 0, -SEGBUS_EJSON, 0, "unexpected character"},
        {"[18446744073709551616]", 0, -SEGBUS_EJSON, 1, "out of range"},
        {"-9223372036854775809", 0, -SEGBUS_EJSON, 0, "out of range"},
        {"[0, 1e400]", 0, -SEGBUS_EJSON, 4, "out of range"},
        {"\"abc", 0, -SEGBUS_EJSON, 4, "unterminated"},
        {"\"a\tb\"", 0, -SEGBUS_EJSON, 2, "control character"},
        {"\"\\x\"", 0, -SEGBUS_EJSON, 1, "invalid escape"},
        {"\"\\u12\"", 0, -SEGBUS_EJSON, 1, "\\u escape"},
        {"[\"ok\",\"\\ud800\"]", 0, -SEGBUS_EJSON, 7, "surrogate"},
        {"\"\\udc00\"", 0, -SEGBUS_EJSON, 1, "surrogate"},
        {"\"\\ud800\\u0041\"", 0, -SEGBUS_EJSON, 1, "surrogate"},
        {"\"ab\xff\"", 0, -SEGBUS_EUTF8, 3, "UTF-8"},
        {"{\"k\":\"\xc0\x80\"}", 0, -SEGBUS_EUTF8, 6, "UTF-8"},
        {"\"\xed\xa0\x80\"", 0, -SEGBUS_EUTF8, 1, "UTF-8"},
        {"\"\xf4\x90\x80\x80\"", 0, -SEGBUS_EUTF8, 1, "UTF-8"},
        {"\"\xe2\x82\"", 0, -SEGBUS_EUTF8, 1, "UTF-8"},
        {"[1]\xff", 0, -SEGBUS_EUTF8, 3, "UTF-8"},
        {"\"a\0b\"", 5, -SEGBUS_EJSON, 2, "control character"},
        {"[1]\0", 4, -SEGBUS_EJSON, 3, "trailing"},
        // The first error wins even when a later one is of another kind.
        {"[1,,\"\xff\"]", 0, -SEGBUS_EJSON, 3, "unexpected character"},
    };
    for (const bad_case &c : cases) {
        size_t len = c.len ? c.len : std::strlen(c.text);
        packed p;
        struct sb_json_error err = {};
        int rc = sb_json_to_msgpack(c.text, len, &p.pk, &err);
        EXPECT_EQ(c.rc, rc) << c.text;
        EXPECT_EQ(c.offset, err.offset) << c.text << " (" << (err.reason ? err.reason : "") << ")";
        ASSERT_NE(nullptr, err.reason) << c.text;
        EXPECT_NE(nullptr, std::strstr(err.reason, c.reason)) << c.text << ": " << err.reason;
        // The checker alone agrees with what the public function says.
        struct sb_json_error e2 = {};
        EXPECT_EQ(rc, sb_json_locate(c.text, len, &e2));
        EXPECT_EQ(err.offset, e2.offset);
    }
}

TEST(Json, NestingDeeperThan64IsRefused)
{
    std::string ok = std::string(64, '[') + std::string(64, ']');
    EXPECT_EQ(ok, through(ok));
    std::string deep = std::string(65, '[') + std::string(65, ']');
    EXPECT_EQ("ERR:" + std::to_string(-SEGBUS_EJSON) + "@64:nesting too deep", through(deep));
    std::string objs;
    for (int i = 0; i < 65; i++)
        objs += "{\"k\":";
    objs += "1" + std::string(65, '}');
    EXPECT_EQ("ERR:" + std::to_string(-SEGBUS_EJSON) + "@" + std::to_string(64 * 5) +
                  ":nesting too deep",
              through(objs));
    // Far deeper than simdjson's own limit: still our reason and offset.
    std::string huge = std::string(5000, '[') + std::string(5000, ']');
    EXPECT_EQ("ERR:" + std::to_string(-SEGBUS_EJSON) + "@64:nesting too deep", through(huge));
    // The writer refuses msgpack nested deeper than 64 too.
    std::string mp(65, '\x91');
    mp += '\xc0';
    int rc = 0;
    to_json(mp, &rc);
    EXPECT_EQ(-EINVAL, rc);
    mp = std::string(64, '\x91') + '\xc0';
    EXPECT_EQ(std::string(64, '[') + "null" + std::string(64, ']'), to_json(mp, &rc));
}

TEST(Json, WriterEscapesAndRepairs)
{
    std::string s = "a\"b\\c\x01\x1f\x7f/\n";
    std::string mp = "\xd9";
    mp += (char)s.size();
    mp += s;
    EXPECT_EQ("\"a\\\"b\\\\c\\u0001\\u001f\x7f/\\n\"", to_json(mp));
    // Invalid UTF-8: one U+FFFD per maximal ill-formed subpart.
    const struct {
        std::string in, out;
    } bad[] = {
        {"\xff", "\xef\xbf\xbd"},
        {"a\xc3", "a\xef\xbf\xbd"},
        {"\xe2\x82z", "\xef\xbf\xbdz"},
        {"\xf0\x9f\x98", "\xef\xbf\xbd"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"ok\xe2\x82\xac", "ok\xe2\x82\xac"},
    };
    for (const auto &b : bad) {
        std::string m = "\xd9";
        m += (char)b.in.size();
        m += b.in;
        EXPECT_EQ("\"" + b.out + "\"", to_json(m)) << b.in;
    }
}

TEST(Json, WriterHandlesBinExtAndOddKeys)
{
    // {1: bin "foo", [1]: ext, "k": fixext}
    static const char raw[] = "\x83\x01\xc4\x03"
                              "foo"
                              "\x91\x01\xc7\x01\x05"
                              "z\xa1"
                              "k\xd4\x01\x00";
    std::string mp(raw, sizeof raw - 1);
    EXPECT_EQ("{\"1\":\"Zm9v\",\"[1]\":null,\"k\":null}", to_json(mp));
    EXPECT_EQ("\"\"", to_json(std::string("\xc4\x00", 2)));
    EXPECT_EQ("\"YQ==\"", to_json("\xc4\x01"
                                  "a"));
    EXPECT_EQ("\"YWI=\"", to_json("\xc4\x02"
                                  "ab"));
    // A key that is itself a string needing escapes, inside a non-string key.
    EXPECT_EQ("{\"[\\\"a\\\"]\":1}", to_json("\x81\x91\xa1"
                                             "a\x01"));
}

TEST(Json, KeysInsideKeysStayLinear)
{
    // 60 levels of maps whose key is the next map: quoting every level would double the
    // backslashes each time (2^60 bytes).
    std::string mp = std::string(60, '\x81') + std::string(61, '\xc0');
    int rc = -1;
    std::string j = to_json(mp, &rc);
    ASSERT_EQ(0, rc);
    EXPECT_LT(j.size(), 2000u);
    EXPECT_EQ(0, sb_json_locate(j.data(), j.size(), nullptr)) << j;
    EXPECT_EQ("{\"{{null:null}:null}\":null}", to_json("\x81\x81\x81\xc0\xc0\xc0\xc0"));
}

TEST(Json, WriterRefusesMalformedAndKeepsOutputClean)
{
    const std::string bad[] = {
        std::string(),
        std::string("\xc1"),
        std::string("\x92\x01"),
        std::string("\xa5"
                    "ab"),
        std::string("\x81\xa1"
                    "k"),
        std::string("\xdd\xff\xff\xff\xff"),
        std::string("\xcb\x00\x00", 3),
    };
    for (const std::string &b : bad) {
        struct sb_buf out = SB_BUF_INIT;
        sb_buf_append(&out, "keep", 4);
        size_t used = 99;
        EXPECT_EQ(-EINVAL, sb_msgpack_to_json((const uint8_t *)b.data(), b.size(), &used, &out));
        EXPECT_EQ("keep", std::string((const char *)out.data, out.len));
        sb_buf_free(&out);
    }
    // Two values back to back: the first is written, consumed says where it ended.
    struct sb_buf out = SB_BUF_INIT;
    size_t used = 0;
    EXPECT_EQ(0, sb_msgpack_to_json((const uint8_t *)"\x01\x02", 2, &used, &out));
    EXPECT_EQ(1u, used);
    EXPECT_EQ("1", std::string((const char *)out.data, out.len));
    sb_buf_free(&out);
}

// Random JSON documents survive JSON -> msgpack -> JSON -> msgpack with identical msgpack.
TEST(Json, RandomDocumentsRoundTrip)
{
    std::mt19937_64 rng(7);
    std::function<std::string(int)> gen = [&](int depth) -> std::string {
        switch (rng() % (depth > 5 ? 5 : 7)) {
        case 0:
            return "null";
        case 1:
            return std::to_string((int64_t)rng());
        case 2: {
            double d;
            uint64_t bits = rng();
            std::memcpy(&d, &bits, sizeof d);
            if (!std::isfinite(d))
                d = 1.5;
            char b[32];
            sb_json_format_double(d, b);
            return b;
        }
        case 3: {
            std::string s = "\"";
            int n = rng() % 8;
            for (int i = 0; i < n; i++) {
                int c = rng() % 5;
                s += c == 0   ? "\\n"
                     : c == 1 ? "\xc3\xa9"
                     : c == 2 ? "\\u0001"
                     : c == 3 ? "\\\""
                              : "x";
            }
            return s + "\"";
        }
        case 4:
            return rng() % 2 ? "true" : "false";
        case 5: {
            std::string s = "[";
            int n = rng() % 5;
            for (int i = 0; i < n; i++)
                s += (i ? "," : "") + gen(depth + 1);
            return s + "]";
        }
        default: {
            std::string s = "{";
            int n = rng() % 5;
            for (int i = 0; i < n; i++)
                s += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + gen(depth + 1);
            return s + "}";
        }
        }
    };
    for (int i = 0; i < 500; i++) {
        std::string doc = gen(0);
        packed a, b;
        ASSERT_EQ(0, sb_json_to_msgpack(doc.data(), doc.size(), &a.pk, nullptr)) << doc;
        std::string j = to_json(a.bytes());
        ASSERT_EQ(0, sb_json_to_msgpack(j.data(), j.size(), &b.pk, nullptr)) << j;
        EXPECT_EQ(a.bytes(), b.bytes()) << doc << "\n" << j;
    }
}

// The shim writes msgpack itself (one write to the caller's packer): its bytes must be what
// msgpack-c makes of the same values, at every boundary of every encoding.
TEST(Json, PackedBytesAreMsgpackCs)
{
    std::vector<std::string> docs = {"null", "true", "false", "[]", "{}", "1.5", "-0.0", "1e300"};
    for (long long v : {0LL,
                        1LL,
                        127LL,
                        128LL,
                        255LL,
                        256LL,
                        65535LL,
                        65536LL,
                        4294967295LL,
                        4294967296LL,
                        9223372036854775807LL,
                        -1LL,
                        -32LL,
                        -33LL,
                        -128LL,
                        -129LL,
                        -32768LL,
                        -32769LL,
                        -2147483648LL,
                        -2147483649LL})
        docs.push_back(std::to_string(v));
    docs.push_back("-9223372036854775808");
    docs.push_back("18446744073709551615");
    for (size_t n : {0, 31, 32, 255, 256, 65535, 65536})
        docs.push_back("\"" + std::string(n, 's') + "\"");
    for (size_t n : {15, 16, 65535, 65536}) {
        std::string a = "[", o = "{";
        for (size_t i = 0; i < n; i++) {
            a += i ? ",1" : "1";
            o += (i ? ",\"" : "\"") + std::to_string(i) + "\":null";
        }
        docs.push_back(a + "]");
        docs.push_back(o + "}");
    }
    docs.push_back("{\"type\":\"track\",\"properties\":{\"a\":[1,-2,3.25,\"x\",{\"b\":null}]}}");
    for (const std::string &doc : docs) {
        packed ours;
        ASSERT_EQ(0, sb_json_to_msgpack(doc.data(), doc.size(), &ours.pk, nullptr)) << doc;
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        ASSERT_EQ(MSGPACK_UNPACK_SUCCESS, msgpack_unpack_next(&u, ours.sb.data, ours.sb.size, &off))
            << doc.substr(0, 40);
        EXPECT_EQ(ours.sb.size, off);
        packed ref;
        ASSERT_EQ(0, msgpack_pack_object(&ref.pk, u.data));
        msgpack_unpacked_destroy(&u);
        EXPECT_EQ(ref.bytes(), ours.bytes()) << doc.substr(0, 40);
    }
}

// The writer copies plain ASCII 8 bytes at a time: every byte that needs attention must be
// seen wherever it sits in a word.
TEST(Json, WriterFindsEscapesAtEveryOffset)
{
    const std::vector<std::pair<std::string, std::string>> specials = {
        {"\"", "\\\""},           {"\\", "\\\\"},           {"\n", "\\n"},
        {"\x01", "\\u0001"},      {"\x1f", "\\u001f"},      {"\x7f", "\x7f"},
        {"\xc3\xa9", "\xc3\xa9"}, {"\xff", "\xef\xbf\xbd"}, {" ", " "}};
    for (size_t len : {7, 8, 9, 16, 23, 40})
        for (size_t at = 0; at < len; at++)
            for (const auto &sp : specials) {
                std::string in(len, 'a'), want(len, 'a');
                in.replace(at, 1, sp.first);
                want.replace(at, 1, sp.second);
                packed p;
                msgpack_pack_str_with_body(&p.pk, in.data(), in.size());
                EXPECT_EQ("\"" + want + "\"", to_json(p.bytes())) << len << " " << at;
            }
}

TEST(Json, ThreadLocalParserIsReusedAcrossSizes)
{
    std::string big = "[";
    for (int i = 0; i < 20000; i++)
        big += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
    big += "]";
    for (int round = 0; round < 3; round++) {
        EXPECT_EQ("[1]", through("[1]"));
        EXPECT_EQ(big, through(big));
    }
}

// The writer copies 8 plain bytes at a time: every byte value at every position of a string
// longer than a word must still be escaped (or replaced) exactly as byte by byte.
TEST(Json, WriterEscapesEveryByteAtEveryPosition)
{
    auto expect_one = [](unsigned c) -> std::string {
        static const char hex[] = "0123456789abcdef";
        switch (c) {
        case '"':
            return "\\\"";
        case '\\':
            return "\\\\";
        case '\b':
            return "\\b";
        case '\f':
            return "\\f";
        case '\n':
            return "\\n";
        case '\r':
            return "\\r";
        case '\t':
            return "\\t";
        }
        if (c < 0x20)
            return std::string("\\u00") + hex[c >> 4] + hex[c & 15];
        if (c >= 0x80)
            return "\xef\xbf\xbd"; // a lone byte >= 0x80 is never valid UTF-8
        return std::string(1, (char)c);
    };
    for (unsigned c = 0; c < 256; c++) {
        for (size_t len = 1; len <= 20; len++) {
            for (size_t pos = 0; pos < len; pos++) {
                std::string s(len, 'a');
                s[pos] = (char)c;
                std::string mp = "\xd9";
                mp += (char)s.size();
                mp += s;
                std::string want = "\"" + std::string(pos, 'a') + expect_one(c) +
                                   std::string(len - 1 - pos, 'a') + "\"";
                ASSERT_EQ(want, to_json(mp)) << "byte " << c << " at " << pos << " of " << len;
            }
        }
    }
}
