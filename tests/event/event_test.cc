// event_test.cc: the event encoder: each call type decodes (msgpack-c) to Segment's JSON shape,
// the hand-written bytes equal msgpack-c's packer, ids, timestamps, limits and every error.
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

extern "C" {
#include "event/event.h"
}
#include "../support/seed_order.h"
#include "mp_text.h"

namespace
{

const std::string kLib = std::string("{\"library\":{\"name\":\"segbus\",\"version\":\"") +
                         SEGBUS_VERSION_STRING + "\"}}";

Decoded encode(enum segbus_type t, const segbus_message_t &m, int *rc_out = nullptr,
               const sb_event_cfg *cfg = nullptr, segbus_sent_t *sent = nullptr)
{
    const uint8_t *out = nullptr;
    size_t len = 0;
    int rc = sb_event_encode(cfg, t, &m, &out, &len, sent);
    if (rc_out)
        *rc_out = rc;
    if (rc != 0)
        return Decoded{};
    return mp_decode(out, len);
}

// The seed's "Order Completed" properties through the builder.
void order_completed(segbus_map_t *p)
{
    seed_order_completed(p);
}

// "xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx", lowercase hex (no std::regex: it trips
// -Wmaybe-uninitialized under the sanitizer builds).
bool is_uuid7(const std::string &s)
{
    if (s.size() != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    }
    return s[14] == '7' && strchr("89ab", s[19]) != nullptr;
}

// "YYYY-MM-DDTHH:MM:SS.mmmZ"
bool is_ts_ms(const std::string &s)
{
    const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (s.size() != strlen(pat))
        return false;
    for (size_t i = 0; i < s.size(); i++)
        if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
            return false;
    return true;
}

std::string g17(double d)
{
    char b[64];
    snprintf(b, sizeof b, "%.17g", d);
    return b;
}

TEST(Event, TrackOrderCompletedRoundTrip)
{
    segbus_map_t *p = segbus_map_new();
    order_completed(p);
    ASSERT_EQ(segbus_map_error(p, nullptr), 0);
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "USR-12345";
    m.event = "Order Completed";
    m.properties = p;
    m.message_id = "order-ORD-2024-12345";
    m.timestamp = "2026-11-28T14:13:30.123Z";
    int rc;
    Decoded d = encode(SEGBUS_TRACK, m, &rc);
    ASSERT_EQ(rc, 0) << segbus_last_error();
    ASSERT_TRUE(d.ok);
    EXPECT_EQ(d.nfields, 7u) << d.text;
    EXPECT_EQ(d.fields["type"], "\"track\"");
    EXPECT_EQ(d.fields["userId"], "\"USR-12345\"");
    EXPECT_EQ(d.fields["event"], "\"Order Completed\"");
    EXPECT_EQ(d.fields["messageId"], "\"order-ORD-2024-12345\"");
    EXPECT_EQ(d.fields["timestamp"], "\"2026-11-28T14:13:30.123Z\"");
    EXPECT_EQ(d.fields["context"], kLib);
    std::string prod1 =
        "{\"product_id\":\"SKU-12345\",\"name\":\"Premium Widget\",\"price\":" + g17(49.99) +
        ",\"quantity\":1,\"category\":\"Widgets\",\"brand\":\"Acme\"}";
    std::string prod2 =
        "{\"product_id\":\"SKU-67890\",\"name\":\"Deluxe Gadget\",\"price\":" + g17(79.99) +
        ",\"quantity\":1,\"category\":\"Gadgets\",\"brand\":\"Acme\"}";
    EXPECT_EQ(d.fields["properties"],
              "{\"order_id\":\"ORD-2024-12345\",\"total\":" + g17(129.98) +
                  ",\"subtotal\":" + g17(119.98) + ",\"tax\":" + g17(10.40) +
                  ",\"shipping\":" + g17(5.99) + ",\"discount\":" + g17(6.39) +
                  ",\"coupon\":\"SAVE10\",\"currency\":\"USD\",\"products\":[" + prod1 + "," +
                  prod2 + "]}");
    segbus_map_free(p);
}

TEST(Event, EveryCallTypeHasItsShape)
{
    segbus_map_t *traits = segbus_map_new();
    segbus_map_add_str(traits, "email", "a@example.com");
    segbus_map_begin_map(traits, "company");
    segbus_map_add_str(traits, "name", "Acme");
    segbus_map_add_int(traits, "employee_count", 120);
    segbus_map_end(traits);
    segbus_map_t *integ = segbus_map_new();
    segbus_map_add_bool(integ, "All", 1);
    segbus_map_add_bool(integ, "Mixpanel", 0);
    const char *ts = "2026-01-02T03:04:05.678+01:00";
    struct Case {
        enum segbus_type t;
        segbus_message_t m;
        std::map<std::string, std::string> want;
    };
    std::vector<Case> cases;
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.anonymous_id = "anon-1";
    m.timestamp = ts;
    m.message_id = "mid-1";
    m.integrations = integ;
    std::map<std::string, std::string> common = {
        {"anonymousId", "\"anon-1\""},
        {"timestamp", std::string("\"") + ts + "\""},
        {"messageId", "\"mid-1\""},
        {"integrations", "{\"All\":true,\"Mixpanel\":false}"},
        {"context", kLib}};
    {
        Case c{SEGBUS_IDENTIFY, m, common};
        c.m.user_id = "u1";
        c.m.traits = traits;
        c.want["type"] = "\"identify\"";
        c.want["userId"] = "\"u1\"";
        c.want["traits"] = "{\"email\":\"a@example.com\",\"company\":{\"name\":\"Acme\","
                           "\"employee_count\":120}}";
        cases.push_back(c);
    }
    {
        Case c{SEGBUS_PAGE, m, common};
        c.m.name = "Product Detail";
        c.m.category = "Products";
        c.want["type"] = "\"page\"";
        c.want["name"] = "\"Product Detail\"";
        c.want["category"] = "\"Products\"";
        cases.push_back(c);
    }
    {
        Case c{SEGBUS_SCREEN, m, common};
        c.m.name = "Home";
        c.want["type"] = "\"screen\"";
        c.want["name"] = "\"Home\"";
        cases.push_back(c);
    }
    {
        Case c{SEGBUS_GROUP, m, common};
        c.m.group_id = "g-9";
        c.m.traits = traits;
        c.want["type"] = "\"group\"";
        c.want["groupId"] = "\"g-9\"";
        c.want["traits"] = "{\"email\":\"a@example.com\",\"company\":{\"name\":\"Acme\","
                           "\"employee_count\":120}}";
        cases.push_back(c);
    }
    {
        Case c{SEGBUS_ALIAS, m, common};
        c.m.user_id = "u-new";
        c.m.previous_id = "anon-old";
        c.want["type"] = "\"alias\"";
        c.want["userId"] = "\"u-new\"";
        c.want["previousId"] = "\"anon-old\"";
        cases.push_back(c);
    }
    {
        Case c{SEGBUS_TRACK, m, common};
        c.m.event = "Signed Up";
        c.want["type"] = "\"track\"";
        c.want["event"] = "\"Signed Up\"";
        cases.push_back(c);
    }
    for (auto &c : cases) {
        int rc;
        Decoded d = encode(c.t, c.m, &rc);
        ASSERT_EQ(rc, 0) << segbus_type_name(c.t) << ": " << segbus_last_error();
        EXPECT_EQ(d.fields, c.want) << d.text;
        EXPECT_EQ(d.nfields, c.want.size()) << "duplicate keys in " << d.text;
    }
    segbus_map_free(traits);
    segbus_map_free(integ);
}

TEST(Event, HandWrittenBytesEqualMsgpackC)
{
    // Every value form the builder writes, including the 16-bit container and int forms.
    segbus_map_t *b = segbus_map_new();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const int64_t ints[] = {
        0,         1,  127, 128, 255,  256,  65535,  65536,  4294967295LL, 4294967296LL,
        INT64_MAX, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,    (int64_t)INT32_MIN - 1,
        INT64_MIN};
    const size_t nints = sizeof ints / sizeof ints[0];
    msgpack_pack_map(&pk, 5);
    msgpack_pack_str_with_body(&pk, "ints", 4);
    msgpack_pack_array(&pk, nints);
    segbus_map_begin_array(b, "ints");
    for (int64_t v : ints) {
        msgpack_pack_int64(&pk, v);
        segbus_map_add_int(b, nullptr, v);
    }
    segbus_map_end(b);
    std::string long_str(300, 'x'), mid_str(40, 'y'), huge_str(70000, 'z');
    msgpack_pack_str_with_body(&pk, "strs", 4);
    msgpack_pack_array(&pk, 4);
    segbus_map_begin_array(b, "strs");
    for (const std::string *s : {&mid_str, &long_str}) {
        msgpack_pack_str_with_body(&pk, s->data(), s->size());
        segbus_map_add_strn(b, nullptr, s->data(), s->size());
    }
    msgpack_pack_str_with_body(&pk, "", 0);
    segbus_map_add_str(b, nullptr, "");
    msgpack_pack_uint64(&pk, UINT64_MAX);
    segbus_map_add_uint(b, nullptr, UINT64_MAX);
    segbus_map_end(b);
    msgpack_pack_str_with_body(&pk, "big", 3);
    msgpack_pack_map(&pk, 20);
    segbus_map_begin_map(b, "big");
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        msgpack_pack_str_with_body(&pk, k, strlen(k));
        msgpack_pack_double(&pk, i + 0.5);
        segbus_map_add_double(b, k, i + 0.5);
    }
    segbus_map_end(b);
    msgpack_pack_str_with_body(&pk, "misc", 4);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, 0);
    segbus_map_begin_array(b, "misc");
    segbus_map_add_bool(b, nullptr, 7);
    segbus_map_add_bool(b, nullptr, 0);
    segbus_map_add_null(b, nullptr);
    segbus_map_begin_array(b, nullptr);
    segbus_map_end(b);
    segbus_map_end(b);
    msgpack_pack_str_with_body(&pk, "deep", 4);
    segbus_map_begin_map(b, "deep");
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "a", 1);
    segbus_map_begin_array(b, "a");
    msgpack_pack_array(&pk, 17);
    for (int i = 0; i < 17; i++) {
        msgpack_pack_map(&pk, 0);
        segbus_map_begin_map(b, nullptr);
        segbus_map_end(b);
    }
    segbus_map_end(b);
    segbus_map_end(b);
    ASSERT_EQ(segbus_map_error(b, nullptr), 0);
    sb_map_view v;
    sb_map_get_view(b, &v);
    ASSERT_EQ(v.err, 0);
    ASSERT_EQ(v.count, 5u);
    ASSERT_GE(sb.size, v.len);
    // msgpack-c's bytes = our root header (fixmap 5) + our entries, byte for byte.
    ASSERT_EQ((uint8_t)sb.data[0], 0x85);
    EXPECT_EQ(sb.size - 1, v.len);
    EXPECT_EQ(0, memcmp(sb.data + 1, v.entries, v.len));
    (void)huge_str;
    msgpack_sbuffer_destroy(&sb);
    segbus_map_free(b);
}

TEST(Event, GeneratedIdsAndTimestamps)
{
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    std::string prev;
    std::set<std::string> seen;
    for (int i = 0; i < 20000; i++) {
        segbus_sent_t s;
        int rc;
        Decoded d = encode(SEGBUS_TRACK, m, &rc, nullptr, &s);
        ASSERT_EQ(rc, 0);
        std::string id = d.fields["messageId"];
        ASSERT_EQ(id.size(), 38u);
        id = id.substr(1, 36);
        ASSERT_TRUE(is_uuid7(id)) << id;
        ASSERT_EQ(id, s.message_id);
        ASSERT_EQ(id, s.generated_id);
        ASSERT_GT(id, prev) << "UUIDv7s of one thread must increase";
        prev = id;
        ASSERT_TRUE(seen.insert(id).second);
        std::string t = d.fields["timestamp"].substr(1, 24);
        ASSERT_TRUE(is_ts_ms(t)) << t;
        ASSERT_EQ(t, s.timestamp);
        if (i == 0) {
            // The id's first 48 bits are the timestamp's milliseconds.
            struct tm tm = {};
            ASSERT_TRUE(strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm));
            int64_t ms = (int64_t)timegm(&tm) * 1000 + atoi(t.c_str() + 20);
            std::string hex = id.substr(0, 8) + id.substr(9, 4);
            EXPECT_EQ((int64_t)strtoull(hex.c_str(), nullptr, 16), ms);
            EXPECT_LT(llabs(ms - (int64_t)time(nullptr) * 1000), 5000);
        }
    }
}

TEST(Event, TimestampFromMilliseconds)
{
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    m.timestamp_ms = 1700000000123LL;
    Decoded d = encode(SEGBUS_TRACK, m);
    EXPECT_EQ(d.fields["timestamp"], "\"2023-11-14T22:13:20.123Z\"");
    m.timestamp_ms = -1; // 1969-12-31T23:59:59.999Z
    d = encode(SEGBUS_TRACK, m);
    EXPECT_EQ(d.fields["timestamp"], "\"1969-12-31T23:59:59.999Z\"");
}

TEST(Event, UuidsDifferAcrossThreads)
{
    std::vector<std::vector<std::string>> ids(4);
    std::vector<std::thread> th;
    for (int t = 0; t < 4; t++)
        th.emplace_back([&ids, t] {
            for (int i = 0; i < 5000; i++) {
                char b[37];
                int64_t s;
                uint32_t ns;
                sb_clock_now(&s, &ns);
                sb_uuid7(s, ns, b, nullptr);
                ids[t].push_back(b);
            }
        });
    for (auto &x : th)
        x.join();
    std::set<std::string> all;
    for (auto &v : ids)
        for (auto &s : v)
            all.insert(s);
    EXPECT_EQ(all.size(), 20000u);
}

TEST(Event, RandomIsReseededAfterFork)
{
    (void)sb_random_u64();
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        uint64_t v = sb_random_u64();
        ssize_t n = write(fds[1], &v, sizeof v);
        _exit(n == (ssize_t)sizeof v ? 0 : 1);
    }
    uint64_t mine = sb_random_u64(), child = 0;
    ASSERT_EQ(read(fds[0], &child, sizeof child), (ssize_t)sizeof child);
    int st;
    waitpid(pid, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    EXPECT_NE(mine, child) << "parent and child share a keystream after fork";
    close(fds[0]);
    close(fds[1]);
}

TEST(Event, ChaCha20MatchesRfc8439)
{
    // RFC 8439 section 2.3.2.
    uint32_t in[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, 0x03020100, 0x07060504,
                       0x0b0a0908, 0x0f0e0d0c, 0x13121110, 0x17161514, 0x1b1a1918, 0x1f1e1d1c,
                       0x00000001, 0x09000000, 0x4a000000, 0x00000000};
    const uint32_t want[16] = {0xe4e7f110, 0x15593bd1, 0x1fdd0f50, 0xc47120a3,
                               0xc7f4d1c7, 0x0368c033, 0x9aaa2204, 0x4e6cd4c3,
                               0x466482d2, 0x09aa9f07, 0x05d7c214, 0xa2028bd9,
                               0xd19c12b5, 0xb94e16de, 0xe883d0cb, 0x4e3c50a2};
    uint32_t out[16];
    sb_chacha20_block(in, out);
    for (int i = 0; i < 16; i++)
        EXPECT_EQ(out[i], want[i]) << i;
}

TEST(Event, Rfc3339)
{
    for (const char *ok :
         {"2026-11-28T14:13:30Z", "2026-11-28T14:13:30.1Z", "2024-02-29T23:59:60.123456+05:30",
          "2026-11-28t14:13:30z", "2026-11-28T14:13:30.123-00:00"})
        EXPECT_TRUE(sb_rfc3339_valid(ok, strlen(ok))) << ok;
    for (const char *bad :
         {"", "2026-11-28", "2026-11-28 14:13:30Z", "2026-13-28T14:13:30Z", "2025-02-29T14:13:30Z",
          "2026-11-28T24:13:30Z", "2026-11-28T14:13:30", "2026-11-28T14:13:30.Z",
          "2026-11-28T14:13:30+0100", "2026-11-28T14:13:30Zjunk", "1700000000"})
        EXPECT_FALSE(sb_rfc3339_valid(bad, strlen(bad))) << bad;
}

TEST(Event, Utf8Validator)
{
    size_t bad = 99;
    EXPECT_TRUE(sb_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15, &bad));
    struct {
        const char *s;
        size_t off;
    } cases[] = {{"abc\xff", 3},      {"abcdefghij\xc0\xaf", 10},
                 {"\xed\xa0\x80", 0}, {"ab\xf4\x90\x80\x80", 2},
                 {"\xe2\x82", 0},     {"x\xc3", 1},
                 {"12345678\x80", 8}};
    for (auto &c : cases) {
        EXPECT_FALSE(sb_utf8_valid(c.s, strlen(c.s), &bad)) << c.s;
        EXPECT_EQ(bad, c.off) << c.s;
    }
}

struct ErrCase {
    const char *what;
    enum segbus_type t;
    segbus_message_t m;
    int want;
    const char *detail; // substring of segbus_last_error()
};

TEST(Event, EveryRuleBrokenGivesItsError)
{
    segbus_map_t *bad_builder = segbus_map_new();
    segbus_map_begin_array(bad_builder, "products");
    segbus_map_begin_map(bad_builder, nullptr);
    segbus_map_add_str(bad_builder, "name", "ok");
    segbus_map_end(bad_builder);
    segbus_map_begin_map(bad_builder, nullptr);
    EXPECT_EQ(segbus_map_add_str(bad_builder, "name", "bad\xff"), -SEGBUS_EUTF8);
    EXPECT_EQ(segbus_map_add_str(bad_builder, "after", "x"), -SEGBUS_EUTF8) << "sticky";
    segbus_map_t *open_builder = segbus_map_new();
    segbus_map_begin_map(open_builder, "x");
    std::string id101(101, 'a'), big(SEGBUS_MAX_EVENT_BYTES, 'b');
    segbus_map_t *huge = segbus_map_new();
    segbus_map_add_strn(huge, "a", big.data(), 20000);
    segbus_map_add_strn(huge, "b", big.data(), 13000);

    segbus_message_t base = SEGBUS_MESSAGE_INIT;
    base.user_id = "u";
    std::vector<ErrCase> cs;
    auto add = [&](const char *what, enum segbus_type t, int want, const char *detail,
                   auto &&mutate) {
        ErrCase c{what, t, base, want, detail};
        mutate(c.m);
        cs.push_back(c);
    };
    add("no identity", SEGBUS_TRACK, -SEGBUS_ENOIDENTITY, "userId or anonymousId",
        [](segbus_message_t &m) {
            m.user_id = nullptr;
            m.event = "E";
        });
    add("empty identity", SEGBUS_IDENTIFY, -SEGBUS_ENOIDENTITY, "identify needs",
        [](segbus_message_t &m) {
            m.user_id = "";
            m.anonymous_id = "";
        });
    add("no event", SEGBUS_TRACK, -SEGBUS_ENOEVENT, "event", [](segbus_message_t &) {});
    add("empty event", SEGBUS_TRACK, -SEGBUS_ENOEVENT, "event",
        [](segbus_message_t &m) { m.event = ""; });
    add("no groupId", SEGBUS_GROUP, -SEGBUS_ENOGROUPID, "groupId", [](segbus_message_t &) {});
    add("no previousId", SEGBUS_ALIAS, -SEGBUS_ENOPREVIOUS, "previousId",
        [](segbus_message_t &) {});
    add("alias anonymous only", SEGBUS_ALIAS, -SEGBUS_ENOUSERID, "userId", [](segbus_message_t &m) {
        m.user_id = nullptr;
        m.anonymous_id = "a";
        m.previous_id = "p";
    });
    add("messageId empty", SEGBUS_TRACK, -SEGBUS_EMESSAGEID, "messageId", [](segbus_message_t &m) {
        m.event = "E";
        m.message_id = "";
    });
    add("messageId 101", SEGBUS_TRACK, -SEGBUS_EMESSAGEID, "101 characters",
        [&](segbus_message_t &m) {
            m.event = "E";
            m.message_id = id101.c_str();
        });
    add("bad timestamp", SEGBUS_TRACK, -SEGBUS_ETIMESTAMP, "not RFC 3339", [](segbus_message_t &m) {
        m.event = "E";
        m.timestamp = "yesterday";
    });
    add("utf8 userId", SEGBUS_TRACK, -SEGBUS_EUTF8, "userId: invalid UTF-8 at byte 2",
        [](segbus_message_t &m) {
            m.event = "E";
            m.user_id = "ab\xc3";
        });
    add("utf8 event", SEGBUS_TRACK, -SEGBUS_EUTF8, "event: invalid UTF-8 at byte 0",
        [](segbus_message_t &m) { m.event = "\xff"; });
    add("utf8 name", SEGBUS_PAGE, -SEGBUS_EUTF8, "name: invalid UTF-8 at byte 1",
        [](segbus_message_t &m) { m.name = "a\xe0\x80\x80"; });
    add("builder error", SEGBUS_TRACK, -SEGBUS_EUTF8,
        "properties.products[1].name: invalid UTF-8 at byte 3", [&](segbus_message_t &m) {
            m.event = "E";
            m.properties = bad_builder;
        });
    add("builder open", SEGBUS_IDENTIFY, -EINVAL, "traits",
        [&](segbus_message_t &m) { m.traits = open_builder; });
    add("both json and builder", SEGBUS_TRACK, -EINVAL, "not both", [&](segbus_message_t &m) {
        m.event = "E";
        m.properties = open_builder;
        m.properties_json = "{}";
    });
    add("field not taken", SEGBUS_IDENTIFY, -EINVAL, "identify does not take event",
        [](segbus_message_t &m) { m.event = "E"; });
    add("properties on group", SEGBUS_GROUP, -EINVAL, "group does not take properties",
        [](segbus_message_t &m) {
            m.group_id = "g";
            m.properties_json = "{}";
        });
    add("over 32 KB", SEGBUS_TRACK, -EMSGSIZE, "32 KB", [&](segbus_message_t &m) {
        m.event = "E";
        m.properties = huge;
    });
    add("unknown type", (enum segbus_type)7, -EINVAL, "unknown event type",
        [](segbus_message_t &) {});
    for (auto &c : cs) {
        const uint8_t *out = nullptr;
        size_t len = 12345;
        int rc = sb_event_encode(nullptr, c.t, &c.m, &out, &len, nullptr);
        EXPECT_EQ(rc, c.want) << c.what << ": " << segbus_last_error();
        EXPECT_EQ(out, nullptr) << c.what;
        EXPECT_EQ(len, 12345u) << c.what;
        EXPECT_NE(std::string(segbus_last_error()).find(c.detail), std::string::npos)
            << c.what << ": \"" << segbus_last_error() << "\" lacks \"" << c.detail << "\"";
    }
    segbus_map_free(bad_builder);
    segbus_map_free(open_builder);
    segbus_map_free(huge);
}

TEST(Event, LimitsAtTheEdge)
{
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    std::string id100(100, 'a');
    m.message_id = id100.c_str();
    int rc;
    encode(SEGBUS_TRACK, m, &rc);
    EXPECT_EQ(rc, 0) << segbus_last_error();
    // 100 characters of 3 bytes each (300 bytes) is still 100 characters.
    std::string euro;
    for (int i = 0; i < 100; i++)
        euro += "\xe2\x82\xac";
    m.message_id = euro.c_str();
    encode(SEGBUS_TRACK, m, &rc);
    EXPECT_EQ(rc, 0) << segbus_last_error();
    m.message_id = nullptr;
    // Grow one string property until the event is exactly at the limit, then one byte more.
    segbus_map_t *p = segbus_map_new();
    std::string s(32000, 'x');
    segbus_map_add_str(p, "s", s.c_str());
    m.properties = p;
    segbus_sent_t sent;
    encode(SEGBUS_TRACK, m, &rc, nullptr, &sent);
    ASSERT_EQ(rc, 0);
    size_t room = SEGBUS_MAX_EVENT_BYTES - sent.bytes;
    s.append(room, 'x');
    segbus_map_reset(p);
    segbus_map_add_str(p, "s", s.c_str());
    encode(SEGBUS_TRACK, m, &rc, nullptr, &sent);
    EXPECT_EQ(rc, 0) << segbus_last_error();
    EXPECT_EQ(sent.bytes, (size_t)SEGBUS_MAX_EVENT_BYTES);
    s += 'x';
    segbus_map_reset(p);
    segbus_map_add_str(p, "s", s.c_str());
    encode(SEGBUS_TRACK, m, &rc, nullptr, &sent);
    EXPECT_EQ(rc, -EMSGSIZE);
    segbus_map_free(p);
}

TEST(Event, ContextMergesDefaultsCallAndLibrary)
{
    segbus_map_t *def = segbus_map_new();
    segbus_map_add_str(def, "ip", "10.0.0.1");
    segbus_map_add_str(def, "locale", "en-US");
    segbus_map_begin_map(def, "library"); // ignored: library is always segbus's
    segbus_map_add_str(def, "name", "fake");
    segbus_map_end(def);
    sb_map_view v;
    sb_map_get_view(def, &v);
    std::vector<uint8_t> mapval;
    mapval.push_back((uint8_t)(0x80 | v.count));
    mapval.insert(mapval.end(), v.entries, v.entries + v.len);
    sb_event_cfg cfg = {};
    uint8_t *storage = nullptr;
    ASSERT_EQ(sb_event_cfg_context(&cfg, mapval.data(), mapval.size(), &storage), 0);
    cfg.write_key = "wk_123";
    cfg.write_key_len = 6;

    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    Decoded d = encode(SEGBUS_TRACK, m, nullptr, &cfg);
    EXPECT_EQ(d.fields["context"],
              kLib.substr(0, kLib.size() - 1) + ",\"ip\":\"10.0.0.1\",\"locale\":\"en-US\"}");
    EXPECT_EQ(d.fields["writeKey"], "\"wk_123\"");

    segbus_map_t *call = segbus_map_new();
    segbus_map_add_str(call, "locale", "fr-FR");
    segbus_map_add_str(call, "library", "nope");
    segbus_map_begin_map(call, "app");
    segbus_map_add_str(call, "name", "shop");
    segbus_map_end(call);
    m.context = call;
    d = encode(SEGBUS_TRACK, m, nullptr, &cfg);
    EXPECT_EQ(d.fields["context"], kLib.substr(0, kLib.size() - 1) +
                                       ",\"ip\":\"10.0.0.1\",\"locale\":\"fr-FR\",\"app\":{"
                                       "\"name\":\"shop\"}}");
    free(storage);
    segbus_map_free(def);
    segbus_map_free(call);
}

TEST(Event, BuilderMisuse)
{
    segbus_map_t *b = segbus_map_new();
    EXPECT_EQ(segbus_map_add_str(b, nullptr, "x"), -EINVAL);
    const char *detail;
    EXPECT_EQ(segbus_map_error(b, &detail), -EINVAL);
    EXPECT_NE(std::string(detail).find("needs a key"), std::string::npos) << detail;
    segbus_map_reset(b);
    EXPECT_EQ(segbus_map_error(b, nullptr), 0);
    segbus_map_begin_array(b, "a");
    EXPECT_EQ(segbus_map_add_int(b, "k", 1), -EINVAL);
    segbus_map_reset(b);
    EXPECT_EQ(segbus_map_end(b), -EINVAL);
    segbus_map_reset(b);
    for (int i = 0; i < 30; i++)
        ASSERT_EQ(segbus_map_begin_map(b, "d"), 0) << i;
    EXPECT_EQ(segbus_map_begin_map(b, "d"), -EINVAL);
    segbus_map_reset(b);
    EXPECT_EQ(segbus_map_add_str(b, "k\xff", "v"), -SEGBUS_EUTF8);
    segbus_map_free(b);
    segbus_map_free(nullptr);
}

} // namespace

namespace
{

TEST(EventJson, JsonTextGivesTheSameBytesAsTheBuilder)
{
    const char *json = "{\"order_id\":\"ORD-2024-12345\",\"total\":129.98,\"subtotal\":119.98,"
                       "\"tax\":10.40,\"shipping\":5.99,\"discount\":6.39,\"coupon\":\"SAVE10\","
                       "\"currency\":\"USD\",\"products\":[{\"product_id\":\"SKU-12345\","
                       "\"name\":\"Premium Widget\",\"price\":49.99,\"quantity\":1,"
                       "\"category\":\"Widgets\",\"brand\":\"Acme\"},{\"product_id\":"
                       "\"SKU-67890\",\"name\":\"Deluxe Gadget\",\"price\":79.99,\"quantity\":1,"
                       "\"category\":\"Gadgets\",\"brand\":\"Acme\"}]}";
    segbus_map_t *p = segbus_map_new();
    order_completed(p);
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "USR-12345";
    m.event = "Order Completed";
    m.message_id = "m1";
    m.timestamp = "2026-11-28T14:13:30.123Z";
    m.properties = p;
    const uint8_t *out;
    size_t len;
    ASSERT_EQ(sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr), 0);
    std::vector<uint8_t> a(out, out + len);
    m.properties = nullptr;
    m.properties_json = json;
    ASSERT_EQ(sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr), 0)
        << segbus_last_error();
    std::vector<uint8_t> b(out, out + len);
    EXPECT_EQ(a, b);
    segbus_map_free(p);
}

TEST(EventJson, JsonErrorsSayWhere)
{
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    struct {
        const char *json;
        int want;
        const char *detail;
    } cases[] = {
        {"{\"a\": 1, \"b\": tru}", -SEGBUS_EJSON, "properties: invalid JSON at byte "},
        {"{\"a\": 1", -SEGBUS_EJSON, "properties: invalid JSON at byte"},
        {"[1, 2]", -SEGBUS_ENOTOBJECT, "properties: must be a JSON object"},
        {"\"str\"", -SEGBUS_ENOTOBJECT, "properties: must be a JSON object"},
        {"{\"a\": \"x\xff\"}", -SEGBUS_EUTF8, "properties: invalid UTF-8 at byte"},
        {"", -SEGBUS_EJSON, "properties: invalid JSON"},
    };
    for (auto &c : cases) {
        m.properties_json = c.json;
        const uint8_t *out = nullptr;
        size_t len = 0;
        EXPECT_EQ(sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr), c.want)
            << c.json << ": " << segbus_last_error();
        EXPECT_EQ(out, nullptr);
        EXPECT_EQ(std::string(segbus_last_error()).rfind(c.detail, 0), 0u)
            << c.json << " -> " << segbus_last_error();
    }
    // The offset is the first bad byte.
    m.properties_json = "{\"a\": 1, \"b\": @}";
    const uint8_t *out;
    size_t len;
    EXPECT_EQ(sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr), -SEGBUS_EJSON);
    EXPECT_NE(std::string(segbus_last_error()).find("at byte 14"), std::string::npos)
        << segbus_last_error();
    // Context and integrations name themselves.
    m.properties_json = nullptr;
    m.context_json = "{\"ip\": }";
    EXPECT_EQ(sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr), -SEGBUS_EJSON);
    EXPECT_EQ(std::string(segbus_last_error()).rfind("context: invalid JSON at byte 7", 0), 0u)
        << segbus_last_error();
    m.context_json = nullptr;
    m.integrations_json = "{\"All\": false";
    EXPECT_EQ(sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr), -SEGBUS_EJSON);
    EXPECT_EQ(std::string(segbus_last_error()).rfind("integrations: invalid JSON", 0), 0u)
        << segbus_last_error();
}

TEST(EventJson, ContextJsonMergesAndBuilderAddJson)
{
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.anonymous_id = "a";
    m.name = "Home";
    m.context_json = "{\"page\": {\"path\": \"/\"}, \"library\": {\"name\": \"x\"}}";
    m.integrations_json = "{\"All\": true, \"Salesforce\": false}";
    Decoded d = encode(SEGBUS_PAGE, m);
    EXPECT_EQ(d.fields["context"], kLib.substr(0, kLib.size() - 1) + ",\"page\":{\"path\":\"/\"}}");
    EXPECT_EQ(d.fields["integrations"], "{\"All\":true,\"Salesforce\":false}");

    segbus_map_t *b = segbus_map_new();
    EXPECT_EQ(segbus_map_add_json(b, "tags", "[\"a\", 2, null, {\"x\": -1.5}]", SIZE_MAX), 0);
    EXPECT_EQ(segbus_map_add_json(b, "bad", "[1,", SIZE_MAX), -SEGBUS_EJSON);
    const char *detail;
    segbus_map_error(b, &detail);
    EXPECT_EQ(std::string(detail).rfind("bad: invalid JSON at byte 3", 0), 0u) << detail;
    segbus_map_reset(b);
    EXPECT_EQ(segbus_map_add_json(b, "tags", "[\"a\", 2, null, {\"x\": -1.5}]", SIZE_MAX), 0);
    m.properties = b;
    d = encode(SEGBUS_PAGE, m);
    EXPECT_EQ(d.fields["properties"], "{\"tags\":[\"a\",2,null,{\"x\":-1.5}]}");
    segbus_map_free(b);
}

} // namespace

namespace
{

TEST(EventMsgpack, SetFromForeignMsgpack)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "plan", 4);
    msgpack_pack_str_with_body(&pk, "pro", 3);
    msgpack_pack_str_with_body(&pk, "tags", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_nil(&pk);
    segbus_map_t *b = segbus_map_new();
    ASSERT_EQ(segbus_map_set_msgpack(b, sb.data, sb.size), 0);
    segbus_map_add_bool(b, "more", 1); // adds continue after it
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.traits = b;
    Decoded d = encode(SEGBUS_IDENTIFY, m);
    EXPECT_EQ(d.fields["traits"], "{\"plan\":\"pro\",\"tags\":[1,null],\"more\":true}");
    EXPECT_EQ(segbus_map_set_msgpack(b, sb.data, sb.size - 1), -EINVAL) << "truncated";
    const char arr[] = "\x92\x01\x02";
    EXPECT_EQ(segbus_map_set_msgpack(b, arr, 3), -SEGBUS_ENOTOBJECT);
    const char bad[] = "\x81\xa1k\xa2x\xff";
    EXPECT_EQ(segbus_map_set_msgpack(b, bad, 6), -SEGBUS_EUTF8);
    const char *detail;
    EXPECT_EQ(segbus_map_error(b, &detail), -SEGBUS_EUTF8);
    EXPECT_NE(std::string(detail).find("UTF-8"), std::string::npos) << detail;
    msgpack_sbuffer_destroy(&sb);
    segbus_map_free(b);
}

} // namespace

namespace
{

// Every event a producer accepts decodes with msgpack-c's default unpacker (32 levels), the
// reference for the bytes: payload nesting is capped so the whole event stays within it.
TEST(EventDepth, AcceptedEventsFitMsgpackCsDefaultDepth)
{
    auto nested = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    for (int n : {29, 30, 31, 40, 63}) {
        std::string json = "{\"k\": " + nested(n) + "}";
        m.properties_json = json.c_str();
        const uint8_t *out = nullptr;
        size_t len = 0;
        int rc = sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr);
        if (n <= 30) {
            ASSERT_EQ(rc, 0) << n << ": " << segbus_last_error();
            EXPECT_TRUE(mp_decode(out, len).ok) << n;
        } else {
            EXPECT_EQ(rc, -SEGBUS_EJSON) << n;
            EXPECT_NE(std::string(segbus_last_error()).find("nested more than 31"),
                      std::string::npos)
                << segbus_last_error();
        }
        // Brackets inside strings are not nesting.
        std::string in_str = "{\"k\": \"" + nested(n) + "\", \"{\": [\"[{\"]}";
        m.properties_json = in_str.c_str();
        EXPECT_EQ(sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr), 0)
            << n << ": " << segbus_last_error();
        // The same through the builder's add_json, one level in.
        segbus_map_t *b = segbus_map_new();
        segbus_map_begin_map(b, "one");
        int brc = segbus_map_add_json(b, "k", nested(n).c_str(), SIZE_MAX);
        EXPECT_EQ(brc, n <= 29 ? 0 : -SEGBUS_EJSON) << n;
        segbus_map_free(b);
    }
}

} // namespace
