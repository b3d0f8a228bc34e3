// map_msgpack_test.cc: segbus_map_set_msgpack, the entry point of the Python/Ruby converters:
// a map packed by msgpack-c reaches the event unchanged; every rule of the builder is enforced
// on the outside bytes, with a sticky error, and the builder stays reusable.
#include <errno.h>
#include <string.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

extern "C" {
#include "event/event.h"
}
#include "mp_text.h"

namespace
{

struct Packed {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    Packed()
    {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    }
    ~Packed()
    {
        msgpack_sbuffer_destroy(&sb);
    }
    void str(const char *s)
    {
        msgpack_pack_str(&pk, strlen(s));
        msgpack_pack_str_body(&pk, s, strlen(s));
    }
};

std::string properties_of(const segbus_map_t *props)
{
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    m.properties = props;
    const uint8_t *out;
    size_t len;
    int rc = sb_event_encode(nullptr, SEGBUS_TRACK, &m, &out, &len, nullptr);
    EXPECT_EQ(rc, 0) << segbus_last_error();
    if (rc)
        return "";
    Decoded d = mp_decode(out, len);
    return d.fields["properties"];
}

TEST(MapMsgpack, NestedMapReachesTheEventUnchanged)
{
    Packed p;
    msgpack_pack_map(&p.pk, 3);
    p.str("order_id");
    p.str("ORD-1");
    p.str("total");
    msgpack_pack_double(&p.pk, 129.98);
    p.str("products");
    msgpack_pack_array(&p.pk, 2);
    msgpack_pack_map(&p.pk, 1);
    p.str("qty");
    msgpack_pack_int(&p.pk, -1);
    msgpack_pack_nil(&p.pk);
    segbus_map_t *m = segbus_map_new();
    ASSERT_EQ(segbus_map_set_msgpack(m, p.sb.data, p.sb.size), 0);
    EXPECT_EQ(
        properties_of(m),
        "{\"order_id\":\"ORD-1\",\"total\":129.97999999999999,\"products\":[{\"qty\":-1},null]}");
    // Replacing works and an empty map is fine.
    const uint8_t empty[] = {0x80};
    ASSERT_EQ(segbus_map_set_msgpack(m, empty, 1), 0);
    EXPECT_EQ(properties_of(m), "{}");
    segbus_map_free(m);
}

struct Bad {
    std::vector<uint8_t> bytes;
    int err;
    const char *detail;
};

TEST(MapMsgpack, OutsideBytesAreCheckedLikeTheBuilderChecksItsCalls)
{
    std::vector<Bad> cases = {
        {{0x91, 0x01}, -SEGBUS_ENOTOBJECT, "not a map"},
        {{0xa1, 'x'}, -SEGBUS_ENOTOBJECT, "not a map"},
        {{}, -SEGBUS_ENOTOBJECT, "not a map"},
        {{0x81, 0xa1, 'k'}, -EINVAL, "truncated at byte 3"},
        {{0x81, 0x01, 0x02}, -EINVAL, "key at byte 1 is not a string"},
        {{0x81, 0xa1, 'k', 0xa2, 'o', 0xff}, -SEGBUS_EUTF8, "invalid UTF-8 at byte 5"},
        {{0x81, 0xa1, 0xc3, 0x01}, -SEGBUS_EUTF8, "invalid UTF-8"},
        {{0x81, 0xa1, 'k', 0xc4, 0x01, 0x00}, -EINVAL, "bin/ext"},
        {{0x81, 0xa1, 'k', 0xd4, 0x01, 0x00}, -EINVAL, "bin/ext"},
        {{0x80, 0x00}, -EINVAL, "1 bytes after the map"},
        {{0x81, 0xa1, 'k', 0xc1}, -EINVAL, "malformed"},
    };
    segbus_map_t *m = segbus_map_new();
    for (const Bad &c : cases) {
        EXPECT_EQ(segbus_map_set_msgpack(m, c.bytes.data(), c.bytes.size()), c.err);
        const char *detail = nullptr;
        EXPECT_EQ(segbus_map_error(m, &detail), c.err); // sticky: an event call would fail
        EXPECT_NE(strstr(detail, c.detail), nullptr) << detail << " / " << c.detail;
    }
    EXPECT_EQ(segbus_map_set_msgpack(nullptr, "", 0), -EINVAL);
    segbus_map_free(m);
}

TEST(MapMsgpack, DepthAndSizeLimits)
{
    segbus_map_t *m = segbus_map_new();
    // {"k": [[[ ... ]]]}: 30 nested arrays below the root are allowed, 31 are not (an event,
    // whose map holds the properties map, is then at most 32 deep).
    for (int nested : {30, 31}) {
        std::vector<uint8_t> b = {0x81, 0xa1, 'k'};
        for (int i = 0; i < nested - 1; i++)
            b.push_back(0x91);
        b.push_back(0x90);
        int rc = segbus_map_set_msgpack(m, b.data(), b.size());
        EXPECT_EQ(rc, nested == 30 ? 0 : -EINVAL) << nested;
    }
    std::vector<uint8_t> big = {0x81, 0xa1, 'k', 0xdb};
    size_t n = SEGBUS_MAX_EVENT_BYTES;
    for (int s = 24; s >= 0; s -= 8)
        big.push_back((uint8_t)(n >> s));
    big.resize(big.size() + n, 'x');
    EXPECT_EQ(segbus_map_set_msgpack(m, big.data(), big.size()), -EMSGSIZE);
    segbus_map_free(m);
}

TEST(MapMsgpack, TrustedSetterForTheBindingsConverters)
{
    // Same result as the checked setter for well-formed input; only the root and size checked.
    Packed p;
    msgpack_pack_map(&p.pk, 2);
    p.str("a");
    msgpack_pack_int(&p.pk, 1);
    p.str("b");
    msgpack_pack_array(&p.pk, 1);
    p.str("c");
    segbus_map_t *m = segbus_map_new();
    ASSERT_EQ(sb_map_set_msgpack_trusted(m, p.sb.data, p.sb.size), 0);
    std::string trusted = properties_of(m);
    ASSERT_EQ(segbus_map_set_msgpack(m, p.sb.data, p.sb.size), 0);
    EXPECT_EQ(properties_of(m), trusted);
    EXPECT_EQ(trusted, "{\"a\":1,\"b\":[\"c\"]}");
    const uint8_t arr[] = {0x90};
    EXPECT_EQ(sb_map_set_msgpack_trusted(m, arr, 1), -SEGBUS_ENOTOBJECT);
    EXPECT_EQ(sb_map_set_msgpack_trusted(m, arr, 0), -EINVAL);
    std::vector<uint8_t> big(SEGBUS_MAX_EVENT_BYTES + 1, 0xc0);
    big[0] = 0x80;
    EXPECT_EQ(sb_map_set_msgpack_trusted(m, big.data(), big.size()), -EMSGSIZE);
    segbus_map_free(m);
}

} // namespace
