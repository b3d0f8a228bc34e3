// ring_unit_test.cc: the ring protocol on plain memory: layout, wrap, padding, alignment,
// limits, every error code, repair of dead writers, corrupt headers, reader adoption.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "ring/ring.h"
}

namespace
{

constexpr uint64_t kCap = 64 * 1024;
constexpr int64_t kMs = 1000 * 1000;

struct Ring {
    uint8_t *mem = nullptr;
    size_t size = 0;
    sb_ring r{};
    explicit Ring(uint64_t cap = kCap)
    {
        size = sb_ring_map_size(cap);
        mem = static_cast<uint8_t *>(aligned_alloc(4096, size));
        memset(mem, 0, size);
        uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
        EXPECT_EQ(0, sb_ring_format(mem, cap, id, 42, 1));
        EXPECT_EQ(0, sb_ring_attach(&r, mem, size));
    }
    ~Ring()
    {
        free(mem);
    }
    uint64_t *hdr(uint64_t pos)
    {
        return reinterpret_cast<uint64_t *>(mem + (pos & r.mask));
    }
};

struct Reader {
    sb_ring_reader rd{};
    explicit Reader(Ring &ring, sb_ring_reader_opts *o = nullptr)
    {
        EXPECT_EQ(0, sb_ring_reader_init(&rd, &ring.r, o, 7, 0));
    }
    ~Reader()
    {
        sb_ring_reader_free(&rd);
    }
    // Reads everything readable now, releases, returns payloads.
    std::vector<std::string> drain(int64_t now = 0)
    {
        std::vector<std::string> out;
        for (;;) {
            int n = sb_ring_read(&rd, now);
            EXPECT_GE(n, 0);
            for (int i = 0; i < n; i++)
                out.emplace_back(reinterpret_cast<const char *>(rd.recs[i].data), rd.recs[i].len);
            sb_ring_reader_release(&rd);
            if (n == 0)
                return out;
        }
    }
};

int put(Ring &ring, const std::string &s, uint32_t producer = 1, int32_t type = 1)
{
    return sb_ring_write(&ring.r, producer, type, s.data(), s.size());
}

TEST(RingLayout, ControlBlockLinesAndHeader)
{
    EXPECT_EQ(0u, offsetof(sb_ring_ctrl, id));
    EXPECT_EQ(128u, offsetof(sb_ring_ctrl, tail));
    EXPECT_EQ(256u, offsetof(sb_ring_ctrl, head_cache));
    EXPECT_EQ(384u, offsetof(sb_ring_ctrl, rd));
    EXPECT_EQ(512u, offsetof(sb_ring_ctrl, dur));
    EXPECT_EQ(640u, offsetof(sb_ring_ctrl, hb));
    EXPECT_EQ(768u, offsetof(sb_ring_ctrl, futex));
    EXPECT_EQ(896u, offsetof(sb_ring_ctrl, drops));
    EXPECT_EQ(0u, offsetof(sb_ring_ctrl, rcount) % 128);
    EXPECT_LE(sizeof(sb_ring_ctrl), SB_RING_CTRL_SIZE);
    EXPECT_EQ(16u, SB_RING_HDR);
    EXPECT_EQ(kCap + 4096, sb_ring_map_size(kCap));
}

TEST(RingLayout, FormatAndAttachValidate)
{
    Ring ring;
    sb_ring r2{};
    EXPECT_EQ(kCap, ring.r.capacity);
    EXPECT_EQ(kCap - 1, ring.r.mask);
    EXPECT_EQ(kCap / 8 - 16, ring.r.max_payload);
    EXPECT_EQ(SB_RING_MAGIC, ring.r.ctrl->id.magic);
    EXPECT_EQ(42, ring.r.ctrl->id.creator_pid);
    // bad capacities
    std::vector<uint8_t> buf(sb_ring_map_size(1 << 20));
    EXPECT_EQ(-EINVAL, sb_ring_format(buf.data(), 3 * 65536, nullptr, 0, 0));
    EXPECT_EQ(-EINVAL, sb_ring_format(buf.data(), 32 * 1024, nullptr, 0, 0));
    EXPECT_EQ(-EINVAL, sb_ring_format(nullptr, kCap, nullptr, 0, 0));
    // size mismatch, version 0, bad magic, bad capacity field
    EXPECT_EQ(-EPROTO, sb_ring_attach(&r2, ring.mem, ring.size - 8));
    EXPECT_EQ(-EPROTO, sb_ring_attach(&r2, ring.mem, 100));
    ring.r.ctrl->id.version = 0;
    EXPECT_EQ(-EPROTO, sb_ring_attach(&r2, ring.mem, ring.size));
    ring.r.ctrl->id.version = SB_RING_VERSION + 1;
    EXPECT_EQ(-EPROTO, sb_ring_attach(&r2, ring.mem, ring.size));
    ring.r.ctrl->id.version = SB_RING_VERSION;
    ring.r.ctrl->id.magic ^= 1;
    EXPECT_EQ(-EPROTO, sb_ring_attach(&r2, ring.mem, ring.size));
    ring.r.ctrl->id.magic ^= 1;
    ring.r.ctrl->id.capacity = kCap * 2;
    EXPECT_EQ(-EPROTO, sb_ring_attach(&r2, ring.mem, ring.size));
    ring.r.ctrl->id.capacity = kCap;
    EXPECT_EQ(0, sb_ring_attach(&r2, ring.mem, ring.size));
    // the 32 KB event limit caps big rings
    EXPECT_EQ(SEGBUS_RECORD_MAX, sb_ring_max_payload_for(1 << 20));
}

TEST(RingWrite, ErrorsAndLimits)
{
    Ring ring;
    sb_ring_slot c{};
    std::string big(ring.r.max_payload + 1, 'x');
    EXPECT_EQ(-EINVAL, sb_ring_claim(&ring.r, 1, 0, 10, &c));
    EXPECT_EQ(-EINVAL, sb_ring_claim(&ring.r, 1, -1, 10, &c));
    EXPECT_EQ(-EMSGSIZE, put(ring, big));
    EXPECT_EQ(0, put(ring, std::string(ring.r.max_payload, 'y')));
    EXPECT_EQ(0, put(ring, ""));
    Reader rd(ring);
    auto got = rd.drain();
    ASSERT_EQ(2u, got.size());
    EXPECT_EQ(ring.r.max_payload, got[0].size());
    EXPECT_EQ(0u, got[1].size());
}

TEST(RingWrite, FullReturnsEagainAtOnceAndExactly)
{
    Ring ring;
    Reader rd(ring);
    std::string rec(48, 'a'); // 64 bytes with the header
    int n = 0;
    while (put(ring, rec) == 0)
        n++;
    EXPECT_EQ(kCap / 64, (uint64_t)n); // exact free-space check: no overshoot, no waste
    EXPECT_EQ(-EAGAIN, put(ring, rec));
    EXPECT_EQ(-EAGAIN, put(ring, ""));
    EXPECT_EQ(kCap, sb_ring_tail(&ring.r));
    EXPECT_EQ((size_t)n, rd.drain().size());
    EXPECT_EQ(0, put(ring, rec)); // room again after the reader released
}

TEST(RingWrite, AlignmentAndHeaders)
{
    Ring ring;
    for (size_t len = 0; len < 40; len++)
        ASSERT_EQ(0, put(ring, std::string(len, 'a' + (char)len), 9, 5));
    uint64_t pos = 0;
    for (size_t len = 0; len < 40; len++) {
        uint64_t *h = ring.hdr(pos);
        EXPECT_EQ(0u, pos % 8);
        EXPECT_EQ((int32_t)(16 + len), (int32_t)(uint32_t)h[0]);
        EXPECT_EQ(5, (int32_t)(h[0] >> 32));
        EXPECT_EQ(9u, (uint32_t)h[1]);
        EXPECT_EQ(sb_ring_check(ring.r.salt, pos, 9, (int32_t)(16 + len)), (uint32_t)(h[1] >> 32));
        pos += (16 + len + 7) & ~7ull;
    }
    EXPECT_EQ(pos, sb_ring_tail(&ring.r));
    Reader rd(ring);
    auto got = rd.drain();
    ASSERT_EQ(40u, got.size());
    for (size_t len = 0; len < 40; len++)
        EXPECT_EQ(std::string(len, 'a' + (char)len), got[len]);
    // consumed space is zeroed
    for (uint64_t i = 0; i < pos; i++)
        ASSERT_EQ(0, ring.mem[i]);
    EXPECT_EQ(pos, sb_ring_head(&ring.r));
    EXPECT_EQ(pos, sb_ring_durable_head(&ring.r));
}

// Records that do not fit before the end get a padding record and start at 0; every possible
// leftover (8, 16, ... 64 bytes) is tried, several laps into the ring (positions only grow).
TEST(RingWrite, WrapPaddingAllLeftovers)
{
    for (uint64_t left = 8; left <= 64; left += 8) {
        Ring ring;
        uint64_t target = 3 * kCap + kCap - left;
        ring.r.ctrl->tail = target;
        ring.r.ctrl->rd.head = target;
        ring.r.ctrl->rd.release_to = target;
        ring.r.ctrl->head_cache = target;
        Reader rd(ring);
        std::string rec(40, 'w'); // 56 bytes with the header
        ASSERT_EQ(0, put(ring, rec));
        uint64_t tail = sb_ring_tail(&ring.r);
        if (left >= 56)
            EXPECT_EQ(target + 56, tail);
        else
            EXPECT_EQ(4 * kCap + 56, tail) << left; // padded to the end, record at 0
        if (left < 56) {
            uint64_t *pad = ring.hdr(target);
            EXPECT_EQ((int32_t)left, (int32_t)(uint32_t)pad[0]);
            EXPECT_EQ(SB_RING_TYPE_PAD, (int32_t)(pad[0] >> 32));
        }
        auto d = rd.drain();
        ASSERT_EQ(1u, d.size()) << left;
        EXPECT_EQ(rec, d[0]);
        EXPECT_EQ(0u, rd.rd.counters[SB_RING_R_CORRUPT]);
        EXPECT_EQ(tail, sb_ring_head(&ring.r));
    }
}

// The free-space check counts the padding: a record that needs padding to fit must also fit
// before the head at the start.
TEST(RingWrite, WrapNeedsRoomBeforeHead)
{
    Ring ring;
    uint64_t start = kCap - 16;
    ring.r.ctrl->tail = start;
    ring.r.ctrl->rd.head = start;
    ring.r.ctrl->rd.release_to = start;
    ring.r.ctrl->head_cache = start;
    Reader rd(ring);
    // fill so that exactly 16 + 8 bytes remain free: room at the end but not at 0
    ASSERT_EQ(0, put(ring, "")); // 16 bytes at the end
    std::string big(kCap - 16 - 24 - 16, 'f');
    ASSERT_LE(big.size(), ring.r.max_payload * 100); // (several records)
    while (sb_ring_tail(&ring.r) - sb_ring_head(&ring.r) < kCap - 24 - 1024)
        ASSERT_EQ(0, put(ring, std::string(1000, 'f')));
    uint64_t free_bytes = kCap - (sb_ring_tail(&ring.r) - sb_ring_head(&ring.r));
    std::string exact(free_bytes - 16, 'e');
    if (exact.size() <= ring.r.max_payload) {
        ASSERT_EQ(0, put(ring, exact));
        EXPECT_EQ(-EAGAIN, put(ring, ""));
    }
    auto got = rd.drain();
    EXPECT_GT(got.size(), 10u);
    EXPECT_EQ(0u, rd.rd.counters[SB_RING_R_CORRUPT]);
}

TEST(RingClaim, CommitShorterAbortAndErrors)
{
    Ring ring;
    sb_ring_slot c{};
    ASSERT_EQ(0, sb_ring_claim(&ring.r, 3, 2, 100, &c));
    memcpy(c.data, "hello", 5);
    EXPECT_EQ(-EINVAL, sb_ring_commit(&ring.r, &c, 101));
    EXPECT_EQ(0, sb_ring_commit(&ring.r, &c, 5));
    EXPECT_EQ(-EINVAL, sb_ring_commit(&ring.r, &c, 5)); // already finished
    ASSERT_EQ(0, sb_ring_claim(&ring.r, 3, 2, 64, &c));
    EXPECT_EQ(0, sb_ring_abort(&ring.r, &c));
    EXPECT_EQ(-EINVAL, sb_ring_abort(&ring.r, &c));
    ASSERT_EQ(0, put(ring, "after", 3, 2));
    Reader rd(ring);
    auto got = rd.drain();
    ASSERT_EQ(2u, got.size());
    EXPECT_EQ("hello", got[0]);
    EXPECT_EQ("after", got[1]);
    EXPECT_EQ(0u, rd.rd.counters[SB_RING_R_CORRUPT]);
}

TEST(RingClaim, CommitShrinkToEveryLength)
{
    Ring ring;
    Reader rd(ring);
    for (uint32_t used = 0; used <= 40; used++) {
        sb_ring_slot c{};
        ASSERT_EQ(0, sb_ring_claim(&ring.r, 1, 1, 40, &c));
        memset(c.data, 'z', 40);
        ASSERT_EQ(0, sb_ring_commit(&ring.r, &c, used));
        ASSERT_EQ(0, put(ring, "next"));
        auto got = rd.drain();
        ASSERT_EQ(2u, got.size()) << used;
        EXPECT_EQ(std::string(used, 'z'), got[0]);
        EXPECT_EQ("next", got[1]);
    }
    EXPECT_EQ(0u, rd.rd.counters[SB_RING_R_CORRUPT]);
}

// A record left half-written blocks the reader until the writer is known dead (then within a
// check interval) or the long grace passes; the late commit fails with -ESTALE.
TEST(RingRepair, DeadWriterBecomesPaddingAndLateCommitFails)
{
    Ring ring;
    struct Ctx {
        int dead = 0;
        int asked = 0;
        uint32_t who = 0;
    } ctx;
    sb_ring_reader_opts o;
    sb_ring_reader_opts_init(&o);
    o.alive = [](void *p, uint32_t producer, uint64_t) {
        auto *c = static_cast<Ctx *>(p);
        c->asked++;
        c->who = producer;
        return c->dead ? 0 : 1;
    };
    o.alive_ctx = &ctx;
    Reader rd(ring, &o);
    sb_ring_slot stuck{};
    ASSERT_EQ(0, sb_ring_claim(&ring.r, 77, 1, 30, &stuck));
    ASSERT_EQ(0, put(ring, "behind", 2));
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 0));
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 10 * kMs)); // too early to ask
    EXPECT_EQ(0, ctx.asked);
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 60 * kMs)); // asks: alive, keep waiting
    EXPECT_EQ(1, ctx.asked);
    EXPECT_EQ(77u, ctx.who);
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 70 * kMs)); // rate limited
    EXPECT_EQ(1, ctx.asked);
    ctx.dead = 1;
    ASSERT_EQ(1, sb_ring_read(&rd.rd, 120 * kMs));
    EXPECT_EQ("behind", std::string((const char *)rd.rd.recs[0].data, rd.rd.recs[0].len));
    EXPECT_EQ(1u, rd.rd.counters[SB_RING_R_REPAIRED_DEAD]);
    EXPECT_EQ(-ESTALE, sb_ring_commit(&ring.r, &stuck, 30));
    EXPECT_EQ(1u, ring.r.ctrl->drops[SEGBUS_DROP_STALE]);
    sb_ring_reader_release(&rd.rd);
    EXPECT_EQ(1u, ring.r.ctrl->rcount[SB_RING_R_REPAIRED_DEAD]);
}

TEST(RingRepair, AliveWriterOnlyAfterGrace)
{
    Ring ring;
    sb_ring_reader_opts o;
    sb_ring_reader_opts_init(&o);
    o.grace_ns = 2000 * kMs;
    o.alive = [](void *, uint32_t, uint64_t) { return 1; };
    Reader rd(ring, &o);
    sb_ring_slot stuck{};
    ASSERT_EQ(0, sb_ring_claim(&ring.r, 5, 1, 8, &stuck));
    ASSERT_EQ(0, put(ring, "x"));
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 0));
    for (int64_t t = 100; t < 2000; t += 100)
        ASSERT_EQ(0, sb_ring_read(&rd.rd, t * kMs));
    EXPECT_EQ(1, sb_ring_read(&rd.rd, 2001 * kMs));
    EXPECT_EQ(1u, rd.rd.counters[SB_RING_R_REPAIRED_GRACE]);
    EXPECT_EQ(-ESTALE, sb_ring_abort(&ring.r, &stuck));
}

TEST(RingRepair, CommitRacingRepairStillDelivered)
{
    Ring ring;
    Reader rd(ring);
    sb_ring_slot c{};
    ASSERT_EQ(0, sb_ring_claim(&ring.r, 5, 1, 3, &c));
    memcpy(c.data, "abc", 3);
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 0));
    ASSERT_EQ(0, sb_ring_commit(&ring.r, &c, 3));
    // grace passed, but the record is committed now: delivered, not repaired
    ASSERT_EQ(1, sb_ring_read(&rd.rd, 20000 * kMs));
    EXPECT_EQ(0u, rd.rd.counters[SB_RING_R_REPAIRED_GRACE]);
}

// Claimed but never written (writer died between its CAS and its first store).
TEST(RingRepair, ZeroGapRepairedWhenAWriterDied)
{
    Ring ring;
    struct Ctx {
        int dead = 0;
    } ctx;
    sb_ring_reader_opts o;
    sb_ring_reader_opts_init(&o);
    o.alive = [](void *p, uint32_t producer, uint64_t) {
        EXPECT_EQ(SB_RING_PRODUCER_UNKNOWN, producer);
        return static_cast<Ctx *>(p)->dead ? 0 : 1;
    };
    o.alive_ctx = &ctx;
    Reader rd(ring, &o);
    ASSERT_EQ(0, put(ring, "one"));
    // simulate a dead claim of 40 bytes: move the tail without writing anything
    __atomic_fetch_add(&ring.r.ctrl->tail, 40, __ATOMIC_SEQ_CST);
    ASSERT_EQ(0, put(ring, "two"));
    EXPECT_EQ(1, sb_ring_read(&rd.rd, 0));
    sb_ring_reader_release(&rd.rd);
    int64_t t = 0;
    for (; t < 1000; t += 10)
        ASSERT_EQ(0, sb_ring_read(&rd.rd, t * kMs)) << t;
    ctx.dead = 1;
    int n = 0;
    for (; t < 2000 && n == 0; t += 10)
        n = sb_ring_read(&rd.rd, t * kMs);
    ASSERT_EQ(1, n);
    EXPECT_LT(t, 1200); // within a few check intervals of learning about the death
    EXPECT_EQ("two", std::string((const char *)rd.rd.recs[0].data, rd.rd.recs[0].len));
    EXPECT_EQ(1u, rd.rd.counters[SB_RING_R_ZERO_GAPS]);
}

TEST(RingRepair, ZeroGapAtTheEndOfTheBuffer)
{
    Ring ring;
    sb_ring_reader_opts o;
    sb_ring_reader_opts_init(&o);
    o.alive = [](void *, uint32_t, uint64_t) { return 0; };
    Reader rd(ring, &o);
    // a writer claimed room that needed padding to the end and died before writing anything
    ring.r.ctrl->tail = kCap - 24;
    ring.r.ctrl->rd.head = kCap - 24;
    ring.r.ctrl->head_cache = kCap - 24;
    sb_ring_reader_free(&rd.rd);
    ASSERT_EQ(0, sb_ring_reader_init(&rd.rd, &ring.r, &o, 1, 0));
    __atomic_fetch_add(&ring.r.ctrl->tail, 24 + 64, __ATOMIC_SEQ_CST); // pad 24 + record 64
    ASSERT_EQ(0, put(ring, "later"));
    int n = 0;
    for (int64_t t = 0; t < 2000 && n == 0; t += 10)
        n = sb_ring_read(&rd.rd, t * kMs);
    ASSERT_EQ(1, n);
    EXPECT_EQ("later", std::string((const char *)rd.rd.recs[0].data, rd.rd.recs[0].len));
    EXPECT_EQ(2u, rd.rd.counters[SB_RING_R_ZERO_GAPS]);
}

TEST(RingCorrupt, BadTypeWithValidCheckCostsOnlyThatRecord)
{
    Ring ring;
    Reader rd(ring);
    ASSERT_EQ(0, put(ring, "good1"));
    uint64_t bad = sb_ring_tail(&ring.r);
    ASSERT_EQ(0, put(ring, "bad"));
    ASSERT_EQ(0, put(ring, "good2"));
    uint64_t *h = ring.hdr(bad);
    h[0] = (h[0] & 0xffffffffull) | ((uint64_t)(uint32_t)-7 << 32); // type -7
    auto got = rd.drain();
    ASSERT_EQ(2u, got.size());
    EXPECT_EQ("good1", got[0]);
    EXPECT_EQ("good2", got[1]);
    EXPECT_EQ(1u, rd.rd.counters[SB_RING_R_CORRUPT]);
}

TEST(RingCorrupt, LengthBeyondTailOrEndIsSkippedToTheBoundary)
{
    Ring ring;
    Reader rd(ring);
    ASSERT_EQ(0, put(ring, "x1"));
    uint64_t bad = sb_ring_tail(&ring.r);
    ASSERT_EQ(0, put(ring, "x2", 4));
    uint64_t *h = ring.hdr(bad);
    int32_t len = 100000;
    h[0] = (uint64_t)(uint32_t)len | (1ull << 32);
    h[1] = 4 | ((uint64_t)sb_ring_check(ring.r.salt, bad, 4, len) << 32);
    auto got = rd.drain();
    ASSERT_EQ(1u, got.size());
    EXPECT_EQ(1u, rd.rd.counters[SB_RING_R_CORRUPT]);
    EXPECT_EQ(sb_ring_tail(&ring.r), sb_ring_head(&ring.r));
    ASSERT_EQ(0, put(ring, "x3"));
    got = rd.drain();
    ASSERT_EQ(1u, got.size());
    EXPECT_EQ("x3", got[0]);
}

// A committed-looking header whose check word is not for this position (stale bytes of an
// earlier lap, or garbage) is given stale_ns, then skipped; a writer overwriting it in time
// wins.
TEST(RingCorrupt, StaleHeaderWaitsThenSkips)
{
    Ring ring;
    Reader rd(ring);
    ASSERT_EQ(0, put(ring, "a"));
    uint64_t at = sb_ring_tail(&ring.r);
    ASSERT_EQ(0, put(ring, "b"));
    uint64_t *h = ring.hdr(at);
    h[1] ^= 0x100000000ull; // break the check
    EXPECT_EQ(1, sb_ring_read(&rd.rd, 0));
    sb_ring_reader_release(&rd.rd);
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 100 * kMs));
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 200 * kMs));
    h[1] ^= 0x100000000ull; // the writer fixes it: delivered
    EXPECT_EQ(1, sb_ring_read(&rd.rd, 210 * kMs));
    sb_ring_reader_release(&rd.rd);
    ASSERT_EQ(0, put(ring, "c"));
    ring.hdr(sb_ring_head(&ring.r))[1] ^= 0x100000000ull;
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 300 * kMs));
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 600 * kMs));
    EXPECT_EQ(1u, rd.rd.counters[SB_RING_R_CORRUPT]);
    EXPECT_EQ(sb_ring_tail(&ring.r), rd.rd.read_pos);
}

TEST(RingCorrupt, GarbageTailIsBounded)
{
    Ring ring;
    Reader rd(ring);
    ASSERT_EQ(0, put(ring, "a"));
    uint64_t real = ring.r.ctrl->tail;
    ring.r.ctrl->tail = real + 10 * kCap + 3; // beyond one lap and misaligned
    EXPECT_EQ(1, sb_ring_read(&rd.rd, 0));
    EXPECT_GE(rd.rd.counters[SB_RING_R_BAD_TAIL], 1u);
    ring.r.ctrl->tail = 0; // behind the reader
    EXPECT_EQ(0, sb_ring_read(&rd.rd, 0));
    ring.r.ctrl->tail = real;
}

TEST(RingReader, BatchLimitsAndNoConsumeBeforeRelease)
{
    Ring ring;
    sb_ring_reader_opts o;
    sb_ring_reader_opts_init(&o);
    o.batch_records = 3;
    Reader rd(ring, &o);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(0, put(ring, std::to_string(i)));
    EXPECT_EQ(3, sb_ring_read(&rd.rd, 0));
    EXPECT_EQ(0u, sb_ring_head(&ring.r)); // not consumed until released
    EXPECT_EQ(3, sb_ring_read(&rd.rd, 0));
    sb_ring_reader_release(&rd.rd);
    EXPECT_EQ(rd.rd.read_pos, sb_ring_head(&ring.r));
    EXPECT_EQ(3, sb_ring_read(&rd.rd, 0));
    EXPECT_EQ("6", std::string((const char *)rd.rd.recs[0].data, rd.rd.recs[0].len));
}

// A new reader adopts the ring: what the dead reader handed out but never released is read
// again (at-least-once), a release it left half done is finished.
TEST(RingReader, AdoptionAfterReaderDeath)
{
    Ring ring;
    for (int i = 0; i < 6; i++)
        ASSERT_EQ(0, put(ring, std::to_string(i)));
    {
        Reader old(ring);
        ASSERT_EQ(6, sb_ring_read(&old.rd, 0));
        // dies before releasing
    }
    {
        Reader again(ring);
        auto got = again.drain();
        ASSERT_EQ(6u, got.size());
    }
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, put(ring, "r" + std::to_string(i)));
    {
        Reader old(ring);
        ASSERT_EQ(4, sb_ring_read(&old.rd, 0));
        uint64_t to = old.rd.read_pos;
        // died after starting to zero, before publishing head
        ring.r.ctrl->rd.release_to = to;
        memset(ring.mem + (old.rd.head & ring.r.mask), 0, 16);
    }
    Reader adopt(ring);
    EXPECT_EQ(adopt.rd.head, sb_ring_tail(&ring.r));
    EXPECT_TRUE(adopt.drain().empty());
    EXPECT_EQ(0u, adopt.rd.counters[SB_RING_R_CORRUPT]);
    // garbage head: restart at the tail, counted
    ring.r.ctrl->rd.head = 13;
    Reader bad(ring);
    EXPECT_EQ(sb_ring_tail(&ring.r), bad.rd.head);
    EXPECT_EQ(1u, bad.rd.counters[SB_RING_R_CORRUPT]);
}

TEST(RingWake, FlagDekkerAndSingleWaker)
{
    Ring ring;
    Reader rd(ring);
    EXPECT_EQ(0, put(ring, "a"));                      // nobody sleeps: no wake
    EXPECT_EQ(0, sb_ring_reader_prepare_wait(&rd.rd)); // a record is ready: do not sleep
    EXPECT_EQ(0u, *sb_ring_futex_word(&ring.r));
    rd.drain();
    EXPECT_EQ(1, sb_ring_reader_prepare_wait(&rd.rd));
    EXPECT_EQ(SB_RING_FUTEX_WAITING, *sb_ring_futex_word(&ring.r));
    EXPECT_EQ(1, put(ring, "b")); // this producer must wake
    EXPECT_EQ(0u, *sb_ring_futex_word(&ring.r));
    EXPECT_EQ(0, put(ring, "c")); // the next one does not pay
    sb_ring_reader_finish_wait(&rd.rd);
    EXPECT_EQ(1, sb_ring_reader_ready(&rd.rd));
}

TEST(RingDurable, TrackedSeparatelyWhenSpooling)
{
    Ring ring;
    sb_ring_reader_opts o;
    sb_ring_reader_opts_init(&o);
    o.track_durable = 1;
    Reader rd(ring, &o);
    ASSERT_EQ(0, put(ring, "a"));
    rd.drain();
    uint64_t head = sb_ring_head(&ring.r);
    EXPECT_GT(head, 0u);
    EXPECT_EQ(0u, sb_ring_durable_head(&ring.r));
    sb_ring_reader_set_durable(&rd.rd, head + 8); // beyond head: ignored
    EXPECT_EQ(0u, sb_ring_durable_head(&ring.r));
    sb_ring_reader_set_durable(&rd.rd, head);
    EXPECT_EQ(head, sb_ring_durable_head(&ring.r));
}

TEST(RingDrops, CountedByReason)
{
    Ring ring;
    sb_ring_count_drop(&ring.r, SEGBUS_DROP_FULL_DROP);
    sb_ring_count_drop(&ring.r, SEGBUS_DROP_FULL_DROP);
    sb_ring_count_drop(&ring.r, 99); // ignored
    EXPECT_EQ(2u, ring.r.ctrl->drops[SEGBUS_DROP_FULL_DROP]);
}

} // namespace
