// The msgpack cursor agrees with msgpack-c's unpacker on generated, truncated and mutated inputs.
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <msgpack.h>

extern "C" {
#include "mp/mp_reader.h"
}

namespace
{

struct packer {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    packer()
    {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    }
    ~packer()
    {
        msgpack_sbuffer_destroy(&sb);
    }
    std::string bytes() const
    {
        return std::string(sb.data, sb.size);
    }
};

// Packs a random value using every encoding msgpack has (fixed-width ones too).
void gen(std::mt19937_64 &rng, msgpack_packer *pk, int depth)
{
    static const char text[] = "the quick brown fox jumps over the lazy dog";
    int kind = (int)(rng() % (depth >= 6 ? 14 : 17));
    uint64_t r = rng();
    switch (kind) {
    case 0:
        msgpack_pack_nil(pk);
        break;
    case 1:
        (r & 1) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    case 2:
        msgpack_pack_uint64(pk, r >> (rng() % 64));
        break;
    case 3:
        msgpack_pack_int64(pk, (int64_t)r >> (rng() % 64));
        break;
    case 4:
        switch (r % 8) {
        case 0:
            msgpack_pack_fix_int8(pk, (int8_t)rng());
            break;
        case 1:
            msgpack_pack_fix_int16(pk, (int16_t)rng());
            break;
        case 2:
            msgpack_pack_fix_int32(pk, (int32_t)rng());
            break;
        case 3:
            msgpack_pack_fix_int64(pk, (int64_t)rng());
            break;
        case 4:
            msgpack_pack_fix_uint8(pk, (uint8_t)rng());
            break;
        case 5:
            msgpack_pack_fix_uint16(pk, (uint16_t)rng());
            break;
        case 6:
            msgpack_pack_fix_uint32(pk, (uint32_t)rng());
            break;
        default:
            msgpack_pack_fix_uint64(pk, rng());
        }
        break;
    case 5: {
        float f;
        uint32_t bits = (uint32_t)r;
        std::memcpy(&f, &bits, 4);
        msgpack_pack_float(pk, f);
        break;
    }
    case 6: {
        double d;
        std::memcpy(&d, &r, 8);
        msgpack_pack_double(pk, d);
        break;
    }
    case 7:
    case 8: {
        uint64_t pick = rng() % 30; // str8/str16 often, str32 (over 64 KiB) now and then
        size_t n = pick == 0 ? 65536 + rng() % 100 : pick < 10 ? 32 + rng() % 700 : rng() % 32;
        std::string s;
        while (s.size() < n)
            s += text;
        s.resize(n);
        msgpack_pack_str_with_body(pk, s.data(), n);
        break;
    }
    case 9: {
        uint64_t pick = rng() % 30;
        size_t n = pick == 0 ? 65536 + rng() % 100 : pick < 10 ? 256 + rng() % 700 : rng() % 20;
        std::string s(n, 'b');
        msgpack_pack_bin_with_body(pk, s.data(), n);
        break;
    }
    case 10: {
        static const size_t sizes[] = {1, 2, 4, 8, 16, 0, 3, 17, 300, 1000, 1, 2, 4, 8, 16, 70000};
        size_t n = sizes[rng() % 16];
        std::string s(n, 'e');
        msgpack_pack_ext_with_body(pk, s.data(), n, (int8_t)rng());
        break;
    }
    case 11: {
        // Hand-encoded str8 of a short string (msgpack-c would pick fixstr) and such.
        uint8_t raw[] = {0xd9, 0x02, 'h', 'i'};
        pk->callback(pk->data, (const char *)raw, sizeof raw);
        break;
    }
    case 12: {
        uint8_t raw[] = {0xdc, 0x00, 0x01, 0xc0}; // array16 of one nil
        pk->callback(pk->data, (const char *)raw, sizeof raw);
        break;
    }
    case 13: {
        uint8_t raw[] = {0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k', 0x01}; // map32 {k:1}
        pk->callback(pk->data, (const char *)raw, sizeof raw);
        break;
    }
    case 14:
    case 15: {
        size_t n = rng() % 3 == 0 ? 16 + rng() % 30 : rng() % 5;
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
            gen(rng, pk, depth + 1);
        break;
    }
    default: {
        size_t n = rng() % 3 == 0 ? 16 + rng() % 20 : rng() % 5;
        msgpack_pack_map(pk, n);
        for (size_t i = 0; i < n; i++) {
            if (rng() % 4)
                msgpack_pack_str_with_body(pk, "key", 1 + rng() % 3);
            else
                gen(rng, pk, depth + 1);
            gen(rng, pk, depth + 1);
        }
    }
    }
}

// Does the cursor read exactly what msgpack-c unpacked? Consumes one value from r.
::testing::AssertionResult same(struct sb_mp_reader *r, const msgpack_object &o)
{
    struct sb_mp_item it;
    if (sb_mp_next(r, &it) != 0)
        return ::testing::AssertionFailure() << "cursor refused a value msgpack-c read";
    auto fail = [&](const char *what) {
        return ::testing::AssertionFailure() << what << " (msgpack-c type " << o.type << ")";
    };
    switch (o.type) {
    case MSGPACK_OBJECT_NIL:
        return it.type == SB_MP_NIL ? ::testing::AssertionSuccess() : fail("nil");
    case MSGPACK_OBJECT_BOOLEAN:
        return it.type == SB_MP_BOOL && it.v.b == o.via.boolean ? ::testing::AssertionSuccess()
                                                                : fail("bool");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return it.type == SB_MP_UINT && it.v.u == o.via.u64 ? ::testing::AssertionSuccess()
                                                            : fail("uint");
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return it.type == SB_MP_INT && it.v.i == o.via.i64 ? ::testing::AssertionSuccess()
                                                           : fail("int");
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (it.type != (o.type == MSGPACK_OBJECT_FLOAT32 ? SB_MP_FLOAT32 : SB_MP_FLOAT64))
            return fail("float type");
        if (std::isnan(o.via.f64) ? !std::isnan(it.v.f)
                                  : std::memcmp(&o.via.f64, &it.v.f, sizeof(double)) != 0)
            return fail("float value");
        return ::testing::AssertionSuccess();
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        if (it.type != (o.type == MSGPACK_OBJECT_STR ? SB_MP_STR : SB_MP_BIN) ||
            it.v.str.len != o.via.str.size ||
            (o.via.str.size && std::memcmp(it.v.str.ptr, o.via.str.ptr, o.via.str.size)))
            return fail("str/bin");
        return ::testing::AssertionSuccess();
    case MSGPACK_OBJECT_EXT:
        if (it.type != SB_MP_EXT || it.v.ext.type != o.via.ext.type ||
            it.v.ext.len != o.via.ext.size ||
            (o.via.ext.size && std::memcmp(it.v.ext.ptr, o.via.ext.ptr, o.via.ext.size)))
            return fail("ext");
        return ::testing::AssertionSuccess();
    case MSGPACK_OBJECT_ARRAY:
        if (it.type != SB_MP_ARRAY || it.v.count != o.via.array.size)
            return fail("array");
        for (uint32_t i = 0; i < o.via.array.size; i++) {
            auto res = same(r, o.via.array.ptr[i]);
            if (!res)
                return res << " in array[" << i << "]";
        }
        return ::testing::AssertionSuccess();
    case MSGPACK_OBJECT_MAP:
        if (it.type != SB_MP_MAP || it.v.count != o.via.map.size)
            return fail("map");
        for (uint32_t i = 0; i < o.via.map.size; i++) {
            auto res = same(r, o.via.map.ptr[i].key);
            if (!res)
                return res << " in key " << i;
            res = same(r, o.via.map.ptr[i].val);
            if (!res)
                return res << " in value " << i;
        }
        return ::testing::AssertionSuccess();
    }
    return fail("unknown");
}

// msgpack-c nests at most 32 deep; inputs deeper than that are not comparable.
unsigned depth_of(const std::string &b)
{
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, b.data(), b.size());
    unsigned depth = 0, max = 0;
    std::vector<uint64_t> left{1};
    while (!left.empty()) {
        if (left.back() == 0) {
            left.pop_back();
            depth = (unsigned)left.size();
            continue;
        }
        struct sb_mp_item it;
        if (sb_mp_next(&r, &it))
            break;
        left.back()--;
        if (it.type == SB_MP_ARRAY || it.type == SB_MP_MAP) {
            left.push_back(it.type == SB_MP_MAP ? 2ull * it.v.count : it.v.count);
            max = std::max(max, (unsigned)left.size());
        }
    }
    (void)depth;
    return max;
}

// msgpack-c allocates count * sizeof(msgpack_object) up front for a container and keeps parsing
// inside containers whose count is a lie, so an input with an array32/map32 header claiming a
// huge count anywhere can make it ask for gigabytes. Inputs the cursor refuses that hold such a
// header are only checked against the cursor (inputs it accepts never reach one).
bool lying_count(const std::string &b)
{
    for (size_t i = 0; i + 4 < b.size(); i++) {
        uint8_t c = (uint8_t)b[i];
        if (c != 0xdd && c != 0xdf)
            continue;
        uint64_t n = (uint64_t)(uint8_t)b[i + 1] << 24 | (uint8_t)b[i + 2] << 16 |
                     (uint8_t)b[i + 3] << 8 | (uint8_t)b[i + 4];
        if (n > 65536)
            return true;
    }
    return false;
}

// Compare cursor and msgpack-c on one input (well-formed or not).
void agree(const std::string &b)
{
    if (lying_count(b)) {
        struct sb_mp_reader r;
        sb_mp_reader_init(&r, b.data(), b.size());
        if (sb_mp_skip(&r) != 0)
            return;
    }
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack(b.data(), b.size(), &off, &zone, &obj);
    struct sb_mp_reader r;
    sb_mp_reader_init(&r, b.data(), b.size());
    int rc = sb_mp_skip(&r);
    if (ur == MSGPACK_UNPACK_SUCCESS || ur == MSGPACK_UNPACK_EXTRA_BYTES) {
        ASSERT_EQ(0, rc);
        ASSERT_EQ(off, sb_mp_reader_offset(&r));
        sb_mp_reader_init(&r, b.data(), b.size());
        ASSERT_TRUE(same(&r, obj));
        ASSERT_EQ(off, sb_mp_reader_offset(&r));
        EXPECT_EQ(off == b.size() ? 0 : -EINVAL, sb_mp_check(b.data(), b.size(), 64));
        EXPECT_EQ(0, sb_mp_check(b.data(), off, 64));
    } else if (depth_of(b) < 30) {
        // Truncated, malformed, or counts no input could hold: the cursor refuses too.
        ASSERT_EQ(-EINVAL, rc) << "msgpack-c said " << ur << " on " << b.size() << " bytes";
        EXPECT_EQ(0u, sb_mp_reader_offset(&r)); // unmoved
        EXPECT_EQ(-EINVAL, sb_mp_check(b.data(), b.size(), 64));
    }
    msgpack_zone_destroy(&zone);
}

} // namespace

TEST(MpReader, AgreesWithMsgpackCOnGeneratedValues)
{
    std::mt19937_64 rng(1234);
    for (int i = 0; i < 400; i++) {
        packer p;
        gen(rng, &p.pk, 0);
        std::string b = p.bytes();
        SCOPED_TRACE(i);
        agree(b);
        // Every truncation of a small value is refused by both.
        if (b.size() < 400)
            for (size_t cut = 0; cut < b.size(); cut++)
                agree(b.substr(0, cut));
        // Mutations: the two must still agree.
        for (int m = 0; m < 20 && !b.empty(); m++) {
            std::string x = b;
            x[rng() % x.size()] = (char)rng();
            agree(x);
        }
    }
}

TEST(MpReader, EveryFirstByte)
{
    // Each possible first byte followed by plenty of zero bytes, and by nothing.
    for (int c = 0; c < 256; c++) {
        std::string b(1, (char)c);
        agree(b);
        agree(b + std::string(40, '\0'));
        agree(b + std::string(40, '\x01'));
    }
}

TEST(MpReader, ScalarsAndPointers)
{
    packer p;
    msgpack_pack_map(&p.pk, 3);
    msgpack_pack_str_with_body(&p.pk, "event", 5);
    msgpack_pack_str_with_body(&p.pk, "Order Completed", 15);
    msgpack_pack_str_with_body(&p.pk, "n", 1);
    msgpack_pack_int64(&p.pk, -7);
    msgpack_pack_str_with_body(&p.pk, "properties", 10);
    msgpack_pack_map(&p.pk, 1);
    msgpack_pack_str_with_body(&p.pk, "total", 5);
    msgpack_pack_double(&p.pk, 129.98);
    std::string b = p.bytes();

    struct sb_mp_reader r, v;
    struct sb_mp_item it;
    sb_mp_reader_init(&r, b.data(), b.size());
    ASSERT_EQ(0, sb_mp_next(&r, &it));
    ASSERT_EQ(SB_MP_MAP, it.type);
    EXPECT_EQ(3u, it.v.count);
    EXPECT_EQ(1, sb_mp_map_find(&r, 3, "n", 1));
    int64_t n = 0;
    EXPECT_EQ(0, sb_mp_read_int(&r, &n));
    EXPECT_EQ(-7, n);

    ASSERT_EQ(1, sb_mp_lookup(b.data(), b.size(), "event", &v));
    const char *s;
    size_t len;
    ASSERT_EQ(0, sb_mp_read_str(&v, &s, &len));
    EXPECT_EQ("Order Completed", std::string(s, len));
    EXPECT_EQ(b.data() + 8, s); // zero-copy: points into the input
    EXPECT_EQ(0u, sb_mp_reader_left(&v));

    ASSERT_EQ(1, sb_mp_lookup(b.data(), b.size(), "properties", &v));
    ASSERT_EQ(0, sb_mp_next(&v, &it));
    ASSERT_EQ(SB_MP_MAP, it.type);
    EXPECT_EQ(1, sb_mp_map_find(&v, it.v.count, "total", 5));
    ASSERT_EQ(0, sb_mp_next(&v, &it));
    EXPECT_EQ(SB_MP_FLOAT64, it.type);
    EXPECT_EQ(129.98, it.v.f);

    EXPECT_EQ(0, sb_mp_lookup(b.data(), b.size(), "missing", &v));
    EXPECT_EQ(0, sb_mp_lookup("\x01", 1, "x", &v)); // not a map
    // Wrong type: -EPROTO and the cursor stays.
    sb_mp_reader_init(&r, "\x01", 1);
    EXPECT_EQ(-EPROTO, sb_mp_read_str(&r, &s, &len));
    EXPECT_EQ(0u, sb_mp_reader_offset(&r));
    EXPECT_EQ(0, sb_mp_read_int(&r, &n));
    EXPECT_EQ(1, n);
    sb_mp_reader_init(&r, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    EXPECT_EQ(-EPROTO, sb_mp_read_int(&r, &n)); // > INT64_MAX
}

TEST(MpReader, MapFindSkipsContainerKeysAndStopsAtTruncation)
{
    // {[1,2]: "x", {"a":1}: 2, "k": 3}
    static const char raw[] = "\x83\x92\x01\x02\xa1x\x81\xa1"
                              "a\x01\x02\xa1k\x03";
    std::string b(raw, sizeof raw - 1);
    struct sb_mp_reader v;
    ASSERT_EQ(1, sb_mp_lookup(b.data(), b.size(), "k", &v));
    struct sb_mp_item it;
    ASSERT_EQ(0, sb_mp_next(&v, &it));
    EXPECT_EQ(3u, it.v.u);
    EXPECT_EQ(0, sb_mp_lookup(b.data(), b.size(), "a", &v)); // nested key is not a top key
    for (size_t cut = 1; cut < b.size() - 1; cut++)
        EXPECT_EQ(-EINVAL, sb_mp_lookup(b.data(), cut, "k", &v)) << cut;
}

TEST(MpReader, HugeCountsAreRefusedWithoutWork)
{
    // An array32 claiming 4 billion elements in 10 bytes; a map16 claiming more than fits.
    static const char a[] = "\xdd\xff\xff\xff\xff\x01\x01\x01\x01\x01";
    struct sb_mp_reader r;
    struct sb_mp_item it;
    sb_mp_reader_init(&r, a, sizeof a - 1);
    EXPECT_EQ(-EINVAL, sb_mp_next(&r, &it));
    EXPECT_EQ(-EINVAL, sb_mp_skip(&r));
    static const char m[] = "\xde\x00\x03\x01\x01\x01\x01\x01"; // 3 pairs need 6 bytes, 5 left
    sb_mp_reader_init(&r, m, sizeof m - 1);
    EXPECT_EQ(-EINVAL, sb_mp_next(&r, &it));
    // Deep nesting is skipped without recursion and checked against a limit.
    std::string deep(100000, '\x91');
    deep += '\xc0';
    sb_mp_reader_init(&r, deep.data(), deep.size());
    EXPECT_EQ(0, sb_mp_skip(&r));
    EXPECT_EQ(deep.size(), sb_mp_reader_offset(&r));
    EXPECT_EQ(-EINVAL, sb_mp_check(deep.data(), deep.size(), 64));
    EXPECT_EQ(0, sb_mp_check(deep.data() + deep.size() - 65, 65, 64));
    EXPECT_EQ(-EINVAL, sb_mp_check(deep.data() + deep.size() - 66, 66, 64));
}

// sb_mp_skip_bounded: one pass that skips a value, checks it and bounds its nesting; the cursor
// stays put on any error; sb_mp_check is it plus "nothing after".
TEST(MpReader, SkipBoundedChecksDepthAndBytes)
{
    for (unsigned depth = 0; depth < 70; depth++) {
        std::string v(depth, '\x91'); // depth nested one-element arrays around a fixstr
        v += "\xa2hi";
        for (unsigned max : {0u, 1u, 63u, 64u}) {
            sb_mp_reader r;
            sb_mp_reader_init(&r, v.data(), v.size());
            int rc = sb_mp_skip_bounded(&r, max);
            if (depth <= max) {
                EXPECT_EQ(0, rc) << depth << " " << max;
                EXPECT_EQ(v.size(), sb_mp_reader_offset(&r));
            } else {
                EXPECT_EQ(-EINVAL, rc) << depth << " " << max;
                EXPECT_EQ(0u, sb_mp_reader_offset(&r));
            }
            EXPECT_EQ(depth <= max ? 0 : -EINVAL, sb_mp_check(v.data(), v.size(), max));
        }
        // Cut anywhere: refused without moving (the fixstr fast path included).
        for (size_t cut = 0; cut < v.size(); cut++) {
            sb_mp_reader r;
            sb_mp_reader_init(&r, v.data(), cut);
            EXPECT_EQ(-EINVAL, sb_mp_skip_bounded(&r, 1024)) << depth << " " << cut;
            EXPECT_EQ(0u, sb_mp_reader_offset(&r));
        }
    }
    // Only one value is skipped: what follows is left for the caller (and fails sb_mp_check).
    const char two[] = "\x92\x01\xa1x\x05";
    sb_mp_reader r;
    sb_mp_reader_init(&r, two, 5);
    EXPECT_EQ(0, sb_mp_skip_bounded(&r, 4));
    EXPECT_EQ(4u, sb_mp_reader_offset(&r));
    EXPECT_EQ(-EINVAL, sb_mp_check(two, 5, 4));
}

// sb_mp_next's short-string fast path reads exactly what decode would, and refuses a fixstr
// longer than the bytes left.
TEST(MpReader, NextShortStringFastPath)
{
    const char s[] = "\xa3"
                     "abc"
                     "\xa5"
                     "ab";
    sb_mp_reader r;
    sb_mp_item it;
    sb_mp_reader_init(&r, s, sizeof s - 1);
    ASSERT_EQ(0, sb_mp_next(&r, &it));
    EXPECT_EQ(SB_MP_STR, it.type);
    EXPECT_EQ(3u, it.v.str.len);
    EXPECT_EQ(0, memcmp(it.v.str.ptr, "abc", 3));
    EXPECT_EQ(-EINVAL, sb_mp_next(&r, &it));
    EXPECT_EQ(4u, sb_mp_reader_offset(&r));
}
