// format_test.cc: the spool's on-disk bytes: record framing round trip, every rejection, the
// segment scanner over torn and corrupted files, cursor slots and file names.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "spool/spool_format.h"
}

namespace
{

struct Mem {
    std::vector<uint8_t> b;
};

ssize_t mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    auto *m = static_cast<Mem *>(ctx);
    if (off >= m->b.size())
        return 0;
    size_t n = std::min<size_t>(len, m->b.size() - off);
    memcpy(buf, m->b.data() + off, n);
    return (ssize_t)n;
}

// A segment image: header + records with payload "record <seq>" padded to varying sizes.
Mem make_segment(uint64_t gen, uint64_t first_seq, int n, uint64_t size,
                 std::vector<uint64_t> *offs = nullptr)
{
    Mem m;
    m.b.assign(size, 0);
    sb_spool_seg_hdr h = {SB_SPOOL_VERSION, SB_SPOOL_SEG_HDR_BYTES, gen, first_seq, size, 123};
    sb_spool_seg_hdr_encode(m.b.data(), &h);
    uint64_t off = SB_SPOOL_SEG_HDR_BYTES;
    for (int i = 0; i < n; i++) {
        std::string p = "record " + std::to_string(first_seq + i) + std::string(i * 13 % 300, 'x');
        if (offs)
            offs->push_back(off);
        sb_spool_rec_encode(m.b.data() + off, first_seq + i, gen, p.data(), (uint32_t)p.size());
        off += sb_spool_frame_bytes(p.size());
    }
    return m;
}

sb_spool_scan scan_of(Mem &m, uint64_t gen)
{
    sb_spool_scan s{};
    s.generation = gen;
    s.file_bytes = m.b.size();
    s.max_len = 1 << 20;
    sb_buf scratch = SB_BUF_INIT;
    EXPECT_EQ(0, sb_spool_scan_segment(mem_pread, &m, &s, nullptr, nullptr, &scratch));
    sb_buf_free(&scratch);
    return s;
}

TEST(SpoolFormat, RecordRoundTrip)
{
    for (uint32_t len : {0u, 1u, 7u, 8u, 9u, 100u, 65536u}) {
        std::vector<uint8_t> payload(len);
        for (uint32_t i = 0; i < len; i++)
            payload[i] = (uint8_t)(i * 31 + len);
        std::vector<uint8_t> frame(sb_spool_frame_bytes(len) + 8, 0xEE);
        sb_spool_rec_encode(frame.data(), 42, 7, payload.data(), len);
        EXPECT_EQ(0u, sb_spool_frame_bytes(len) % 8);
        EXPECT_EQ(0xEE, frame[sb_spool_frame_bytes(len)]) << "wrote past the frame";
        sb_spool_rec_expect exp = {7, 42, 1 << 20};
        sb_spool_rec rec;
        size_t need = 0;
        ASSERT_EQ(SB_SPOOL_OK,
                  sb_spool_rec_check(frame.data(), sb_spool_frame_bytes(len), &exp, &rec, &need));
        EXPECT_EQ(42u, rec.seq);
        EXPECT_EQ(7u, rec.generation);
        EXPECT_EQ(len, rec.len);
        if (len) {
            EXPECT_EQ(0, memcmp(rec.payload, payload.data(), len));
        }
        // Any byte flipped in header or payload is caught (padding is not covered).
        for (size_t i = 0; i < SB_SPOOL_REC_HDR_BYTES + len; i += (len > 200 ? 97 : 1)) {
            frame[i] ^= 0x20;
            EXPECT_NE(SB_SPOOL_OK,
                      sb_spool_rec_check(frame.data(), frame.size(), &exp, &rec, &need))
                << "flip at " << i << " len " << len;
            frame[i] ^= 0x20;
        }
    }
}

TEST(SpoolFormat, RecordRejections)
{
    uint8_t f[64];
    sb_spool_rec_encode(f, 5, 3, "hello", 5);
    sb_spool_rec rec;
    size_t need = 0;
    sb_spool_rec_expect exp = {3, 5, 100};
    EXPECT_EQ(SB_SPOOL_SHORT, sb_spool_rec_check(f, 10, &exp, &rec, &need));
    EXPECT_EQ(SB_SPOOL_REC_HDR_BYTES, need);
    EXPECT_EQ(SB_SPOOL_SHORT, sb_spool_rec_check(f, 41, &exp, &rec, &need));
    EXPECT_EQ(48u, need);
    sb_spool_rec_expect wrong_gen = {4, 5, 100};
    EXPECT_EQ(SB_SPOOL_BAD_GENERATION, sb_spool_rec_check(f, 48, &wrong_gen, &rec, &need));
    sb_spool_rec_expect wrong_seq = {3, 6, 100};
    EXPECT_EQ(SB_SPOOL_BAD_SEQ, sb_spool_rec_check(f, 48, &wrong_seq, &rec, &need));
    sb_spool_rec_expect small = {3, 5, 4};
    EXPECT_EQ(SB_SPOOL_BAD_LENGTH, sb_spool_rec_check(f, 48, &small, &rec, &need));
    uint8_t z[48] = {};
    EXPECT_EQ(SB_SPOOL_END, sb_spool_rec_check(z, 48, &exp, &rec, &need));
    f[0] ^= 1;
    EXPECT_EQ(SB_SPOOL_BAD_MAGIC, sb_spool_rec_check(f, 48, &exp, &rec, &need));
    f[0] ^= 1;
    f[4] = 1; // flags must be zero in version 1
    EXPECT_EQ(SB_SPOOL_BAD_FIELD, sb_spool_rec_check(f, 48, &exp, &rec, &need));
    f[4] = 0;
    sb_spool_rec_regenerate(f, 9);
    sb_spool_rec_expect regen = {9, 5, 100};
    EXPECT_EQ(SB_SPOOL_OK, sb_spool_rec_check(f, 48, &regen, &rec, &need));
    EXPECT_EQ(0, memcmp(rec.payload, "hello", 5));
}

TEST(SpoolFormat, ScanCleanSegment)
{
    Mem m = make_segment(3, 100, 50, 64 << 10);
    sb_spool_scan s = scan_of(m, 3);
    EXPECT_EQ(SB_SPOOL_OK, s.hdr_status);
    EXPECT_EQ(SB_SPOOL_END, s.stop);
    EXPECT_EQ(50u, s.records);
    EXPECT_EQ(100u, s.first_seq);
    EXPECT_EQ(149u, s.last_seq);
    EXPECT_EQ(3u, s.hdr.generation);
    // The wrong generation (a recycled file under a new name) holds no usable segment.
    EXPECT_EQ(SB_SPOOL_BAD_GENERATION, scan_of(m, 4).hdr_status);
}

TEST(SpoolFormat, ScanStopsExactlyAtTornOrFlippedRecord)
{
    std::vector<uint64_t> offs;
    Mem base = make_segment(1, 1, 40, 64 << 10, &offs);
    // Cut the file inside record 21 (index 20): records 1..20 survive.
    for (uint64_t cut : {offs[20] + 1, offs[20] + 39, offs[20] + 41, offs[21] - 1}) {
        Mem m = base;
        m.b.resize(cut);
        sb_spool_scan s = scan_of(m, 1);
        EXPECT_EQ(SB_SPOOL_TRUNCATED, s.stop) << cut;
        EXPECT_EQ(20u, s.last_seq) << cut;
        EXPECT_EQ(offs[20], s.end_offset) << cut;
    }
    // A flipped payload byte in record 31: 1..30 survive, stop is the checksum.
    Mem m = base;
    m.b[offs[30] + SB_SPOOL_REC_HDR_BYTES + 3] ^= 0x01;
    sb_spool_scan s = scan_of(m, 1);
    EXPECT_EQ(SB_SPOOL_BAD_CHECKSUM, s.stop);
    EXPECT_EQ(30u, s.last_seq);
    EXPECT_EQ(offs[30], s.end_offset);
    // Data ends at the first zero magic: bytes further on are never looked at.
    offs.clear();
    Mem g = make_segment(1, 1, 3, 64 << 10, &offs);
    g.b[offs[2] + 400] = 0x53;
    EXPECT_EQ(3u, scan_of(g, 1).records);
    EXPECT_EQ(SB_SPOOL_END, scan_of(g, 1).stop);
    // A non-zero word where the next record would start is a bad record, not a clean end.
    g.b[offs[2] + sb_spool_frame_bytes(8 + 26)] = 0x53;
    EXPECT_EQ(3u, scan_of(g, 1).records);
    EXPECT_EQ(SB_SPOOL_BAD_MAGIC, scan_of(g, 1).stop);
}

TEST(SpoolFormat, ScanOutOfOrderSeqStops)
{
    std::vector<uint64_t> offs;
    Mem m = make_segment(2, 10, 5, 64 << 10, &offs);
    // Re-encode record 13 as seq 99 (valid checksum): the scan must stop before it.
    sb_spool_rec_encode(m.b.data() + offs[3], 99, 2, "record 13", 9);
    sb_spool_scan s = scan_of(m, 2);
    EXPECT_EQ(SB_SPOOL_BAD_SEQ, s.stop);
    EXPECT_EQ(12u, s.last_seq);
}

TEST(SpoolFormat, ScanRecordFillingSegmentAndHeaderDamage)
{
    // One record exactly filling the segment, then nothing: a clean end.
    uint64_t size = 64 << 10;
    Mem m;
    m.b.assign(size, 0);
    sb_spool_seg_hdr h = {SB_SPOOL_VERSION, SB_SPOOL_SEG_HDR_BYTES, 5, 1, size, 0};
    sb_spool_seg_hdr_encode(m.b.data(), &h);
    uint32_t len = (uint32_t)(size - SB_SPOOL_SEG_HDR_BYTES - SB_SPOOL_REC_HDR_BYTES);
    std::vector<uint8_t> p(len, 'a');
    sb_spool_rec_encode(m.b.data() + SB_SPOOL_SEG_HDR_BYTES, 1, 5, p.data(), len);
    sb_spool_scan s = scan_of(m, 5);
    EXPECT_EQ(SB_SPOOL_END, s.stop);
    EXPECT_EQ(1u, s.records);
    EXPECT_EQ(size, s.end_offset);
    // A header claiming a bigger length than the segment holds.
    m.b[SB_SPOOL_SEG_HDR_BYTES + 24] = 0xff;
    m.b[SB_SPOOL_SEG_HDR_BYTES + 25] = 0xff;
    m.b[SB_SPOOL_SEG_HDR_BYTES + 26] = 0x0f;
    s = scan_of(m, 5);
    EXPECT_EQ(0u, s.records);
    EXPECT_NE(SB_SPOOL_END, s.stop);
    // Header damage: every byte of the header is covered.
    Mem hm = make_segment(1, 1, 2, 64 << 10);
    for (int i = 0; i < 64; i++) {
        hm.b[i] ^= 4;
        EXPECT_NE(SB_SPOOL_OK, scan_of(hm, 1).hdr_status) << i;
        hm.b[i] ^= 4;
    }
    Mem empty;
    EXPECT_EQ(SB_SPOOL_TRUNCATED, scan_of(empty, 1).hdr_status);
}

TEST(SpoolFormat, CursorSlots)
{
    std::vector<uint8_t> file(SB_SPOOL_CUR_FILE_BYTES, 0);
    sb_spool_cursor_slot c;
    EXPECT_EQ(SB_SPOOL_END, sb_spool_cursor_pick(file.data(), file.size(), &c));
    sb_spool_cursor_slot a = {1, 100}, b = {2, 250};
    sb_spool_cursor_encode(file.data() + SB_SPOOL_CUR_SLOT_STRIDE, &a);
    sb_spool_cursor_encode(file.data(), &b);
    ASSERT_EQ(SB_SPOOL_OK, sb_spool_cursor_pick(file.data(), file.size(), &c));
    EXPECT_EQ(250u, c.acked_seq);
    // Torn newer slot: the older one is used.
    file[20] ^= 0xff;
    ASSERT_EQ(SB_SPOOL_OK, sb_spool_cursor_pick(file.data(), file.size(), &c));
    EXPECT_EQ(100u, c.acked_seq);
    // Both bad: an error that names the problem.
    file[SB_SPOOL_CUR_SLOT_STRIDE + 9] ^= 1;
    EXPECT_EQ(SB_SPOOL_BAD_CHECKSUM, sb_spool_cursor_pick(file.data(), file.size(), &c));
    // Short file: only slot 0 considered.
    sb_spool_cursor_encode(file.data(), &b);
    ASSERT_EQ(SB_SPOOL_OK, sb_spool_cursor_pick(file.data(), 64, &c));
    EXPECT_EQ(250u, c.acked_seq);
}

TEST(SpoolFormat, Names)
{
    char name[SB_SPOOL_SEG_NAME_LEN + 1];
    sb_spool_seg_name(name, 0x1234abcdULL);
    EXPECT_STREQ("000000001234abcd.seg", name);
    uint64_t g = 0;
    EXPECT_TRUE(sb_spool_seg_name_parse(name, &g));
    EXPECT_EQ(0x1234abcdULL, g);
    EXPECT_FALSE(sb_spool_seg_name_parse("000000001234abcd.seg.tmp", &g));
    EXPECT_FALSE(sb_spool_seg_name_parse("000000001234ABCD.seg", &g));
    EXPECT_FALSE(sb_spool_seg_name_parse("0000000000000000.seg", &g));
    EXPECT_TRUE(sb_spool_output_name_ok("segment-us.1_a"));
    EXPECT_FALSE(sb_spool_output_name_ok(""));
    EXPECT_FALSE(sb_spool_output_name_ok(".hidden"));
    EXPECT_FALSE(sb_spool_output_name_ok("a/b"));
    EXPECT_FALSE(sb_spool_output_name_ok(std::string(65, 'a').c_str()));
}

} // namespace
