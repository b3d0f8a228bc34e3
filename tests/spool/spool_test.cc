// spool_test.cc: the spool engine on a real io_uring loop and real files: group commit, reads,
// independent cursors, the bound policies, recovery from torn and corrupted tails, and the
// abandon-and-rewrite path after a failed fsync.
#include "spool_helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

using namespace spooltest;

namespace
{

std::vector<std::string> seg_files(const std::string &dir)
{
    std::vector<std::string> v;
    DIR *d = opendir(dir.c_str());
    while (dirent *e = d ? readdir(d) : nullptr) {
        uint64_t g;
        if (sb_spool_seg_name_parse(e->d_name, &g))
            v.push_back(dir + "/" + e->d_name);
    }
    if (d)
        closedir(d);
    std::sort(v.begin(), v.end());
    return v;
}

struct Offs {
    std::vector<uint64_t> seq, off;
};
int offs_fn(void *arg, const sb_spool_rec *rec, uint64_t off)
{
    auto *o = static_cast<Offs *>(arg);
    o->seq.push_back(rec->seq);
    o->off.push_back(off);
    return 0;
}
ssize_t file_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    ssize_t n = pread(*(int *)ctx, buf, len, (off_t)off);
    return n < 0 ? -errno : n;
}
// The records of a segment file and their offsets.
Offs scan_file(const std::string &path)
{
    Offs o;
    uint64_t gen = 0;
    std::string base = path.substr(path.rfind('/') + 1);
    EXPECT_TRUE(sb_spool_seg_name_parse(base.c_str(), &gen));
    int fd = ::open(path.c_str(), O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    sb_spool_scan s{};
    s.generation = gen;
    s.file_bytes = (uint64_t)st.st_size;
    s.max_len = 1 << 24;
    sb_buf scratch = SB_BUF_INIT;
    EXPECT_EQ(0, sb_spool_scan_segment(file_pread, &fd, &s, offs_fn, &o, &scratch));
    sb_buf_free(&scratch);
    close(fd);
    return o;
}

TEST_F(SpoolTest, GroupCommitManyAppendsFewFsyncsDurableOnlyAfterFsync)
{
    opts.segment_bytes = 1 << 20; // room to queue all 200 without waiting for the disk
    sb_spool *sp = open();
    ASSERT_NE(nullptr, sp);
    uint64_t last = append_n(sp, 200);
    EXPECT_EQ(200u, last);
    // Nothing is durable, readable or reported before the loop has run the fdatasync.
    EXPECT_EQ(0u, sb_spool_durable_seq(sp));
    EXPECT_EQ(0u, dur.calls);
    EXPECT_EQ(0u, read_all(sp, 0).size());
    EXPECT_EQ(-EINVAL, sb_spool_ack(sp, 0, 1));
    ASSERT_TRUE(run_until([&] { return dur.upto == 200; }));
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_EQ(200u, st.durable);
    EXPECT_EQ(200u, st.appended);
    // 200 appends in one loop turn (~110 KB): one commit.
    EXPECT_EQ(st.refused_pending, 0u);
    EXPECT_LE(st.commits, 2u);
    EXPECT_GE(st.commits, 1u);
    EXPECT_LT(st.fsyncs, 20u);
    EXPECT_GE(dur.commits_at_last_call, 1u);
    EXPECT_GE(dur.fsyncs_at_last_call, dur.commits_at_last_call);
    EXPECT_LE(dur.calls, st.commits);
    EXPECT_GT(st.fsync_ns_total, 0u);

    // Appends made while a commit is in flight all go into the next one.
    unsigned before = (unsigned)st.commits;
    append_n(sp, 1);
    sb_loop_run_once(loop, 0); // the kick: commit of record 201 is now in flight
    append_n(sp, 50);
    ASSERT_TRUE(run_until([&] { return dur.upto == 251; }));
    sb_spool_get_stats(sp, &st);
    EXPECT_LE(st.commits - before, 3u);
    expect_seqs(read_all(sp, 0), 1, 251);
    EXPECT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, ReadLimitsRewindAndAckRules)
{
    sb_spool *sp = open({"only"});
    append_n(sp, 30);
    ASSERT_TRUE(run_until([&] { return dur.upto == 30; }));
    std::vector<Rec> v;
    // max_bytes: at least one record, then stop before exceeding it.
    EXPECT_EQ(1, sb_spool_read(sp, 0, 1, collect_fn, &v));
    EXPECT_EQ(1u, v[0].seq);
    int n = sb_spool_read(sp, 0, 2000, collect_fn, &v);
    EXPECT_GT(n, 1);
    size_t bytes = 0;
    for (size_t i = 1; i < v.size(); i++)
        bytes += v[i].data.size();
    EXPECT_LE(bytes, 2000u);
    // A callback that refuses a record leaves it for the next read.
    auto refuse = [](void *, uint64_t, const void *, size_t) { return 1; };
    EXPECT_EQ(0, sb_spool_read(sp, 0, 1 << 20, refuse, nullptr));
    std::vector<Rec> rest = read_all(sp, 0);
    ASSERT_FALSE(rest.empty());
    EXPECT_EQ(v.back().seq + 1, rest[0].seq);
    EXPECT_EQ(30u, rest.back().seq);
    // Ack 10, rewind: reading restarts at 11.
    EXPECT_EQ(0, sb_spool_ack(sp, 0, 10));
    EXPECT_EQ(0, sb_spool_ack(sp, 0, 5)); // lower: no-op
    EXPECT_EQ(0, sb_spool_rewind(sp, 0));
    expect_seqs(read_all(sp, 0), 11, 30);
    EXPECT_EQ(-EINVAL, sb_spool_ack(sp, 0, 31));
    EXPECT_EQ(-EINVAL, sb_spool_ack(sp, 1, 1));
    EXPECT_EQ(-EINVAL, sb_spool_read(sp, 1, 100, collect_fn, &v));
    EXPECT_EQ(0, sb_spool_output_index(sp, "only"));
    EXPECT_EQ(-ENOENT, sb_spool_output_index(sp, "other"));
    // Size limits.
    uint64_t seq;
    EXPECT_EQ(-EMSGSIZE, sb_spool_append(sp, "", 0, &seq));
    std::string big(70 << 10, 'x');
    EXPECT_EQ(-EMSGSIZE, sb_spool_append(sp, big.data(), big.size(), &seq));
    EXPECT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, CursorsAreIndependentAndSegmentsRecycledAfterBoth)
{
    sb_spool *sp = open({"fast", "slow"});
    uint64_t last = append_n(sp, 300, 2000); // ~2.4 KB each: ~25 per 64 KiB segment
    ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
    // fast reads and acks everything; slow does nothing.
    std::vector<Rec> f = read_all(sp, 0);
    expect_seqs(f, 1, last, 2000);
    ASSERT_EQ(0, sb_spool_ack(sp, 0, last));
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_GE(st.segments, 10u) << "segments the slow output needs must be kept";
    EXPECT_EQ(0u, st.segments_recycled);
    // fast goes on unaffected by slow.
    uint64_t last2 = append_n(sp, 20, 2000);
    ASSERT_TRUE(run_until([&] { return dur.upto == last2; }));
    expect_seqs(read_all(sp, 0), last + 1, last2, 2000);
    ASSERT_EQ(0, sb_spool_ack(sp, 0, last2));
    // slow reads everything from the start, then acks half.
    std::vector<Rec> s = read_all(sp, 1, 64 << 10);
    expect_seqs(s, 1, last2, 2000);
    ASSERT_EQ(0, sb_spool_ack(sp, 1, 150));
    sb_spool_stats st2;
    sb_spool_get_stats(sp, &st2);
    EXPECT_LT(st2.segments, st.segments + 1);
    EXPECT_GT(st2.segments, 3u);
    // Restart: each output resumes after its own persisted cursor.
    ASSERT_EQ(0, sb_spool_close(sp));
    sp = open({"fast", "slow"});
    ASSERT_NE(nullptr, sp);
    EXPECT_EQ(last2, sb_spool_durable_seq(sp));
    EXPECT_EQ(0u, read_all(sp, 0).size());
    expect_seqs(read_all(sp, 1), 151, last2, 2000);
    // Both past everything: segments go back for reuse, and new appends reuse them.
    ASSERT_EQ(0, sb_spool_ack(sp, 0, last2));
    ASSERT_EQ(0, sb_spool_ack(sp, 1, last2));
    // Freed once both cursors are on disk (a crash before that must find the records).
    EXPECT_TRUE(run_until([&] {
        sb_spool_get_stats(sp, &st);
        return st.segments <= 1u;
    }));
    EXPECT_LE(st.free_segments, 2u);
    EXPECT_LE(seg_files(dir).size(), 3u);
    uint64_t last3 = append_n(sp, 60, 2000);
    ASSERT_TRUE(run_until([&] { return dur.upto == last3; }));
    sb_spool_get_stats(sp, &st);
    EXPECT_GE(st.segments_recycled, 1u);
    expect_seqs(read_all(sp, 1), last2 + 1, last3, 2000);
    ASSERT_EQ(0, sb_spool_close(sp));
    // A recycled file still holding old records is never mistaken for new ones.
    sp = open({"fast", "slow"});
    expect_seqs(read_all(sp, 1), last2 + 1, last3, 2000);
    ASSERT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, BlockPolicyRefusesAtTheBoundLosesNothing)
{
    opts.max_bytes = 4 * opts.segment_bytes;
    opts.policy = SB_SPOOL_BLOCK;
    sb_spool *sp = open({"a", "b"});
    uint64_t seq = 0;
    int r = 0;
    uint64_t n = 0;
    for (n = 1; n < 1000; n++) {
        std::string p = payload(n, 2000);
        while ((r = sb_spool_append(sp, p.data(), p.size(), &seq)) == -EAGAIN && pending(sp))
            sb_loop_run_once(loop, 10000000);
        if (r)
            break;
    }
    EXPECT_EQ(-EAGAIN, r) << "the bound must refuse appends";
    uint64_t last = n - 1;
    EXPECT_GT(last, 60u);
    ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_GE(st.refused_full, 1u);
    EXPECT_LE(st.bytes_used, opts.max_bytes);
    EXPECT_EQ(0u, st.dropped_oldest);
    // Still full while b has not acked, even though a has.
    expect_seqs(read_all(sp, 0), 1, last, 2000);
    ASSERT_EQ(0, sb_spool_ack(sp, 0, last));
    std::string p = payload(last + 1, 2000);
    EXPECT_EQ(-EAGAIN, sb_spool_append(sp, p.data(), p.size(), &seq));
    // b acks: room again.
    expect_seqs(read_all(sp, 1), 1, last, 2000);
    ASSERT_EQ(0, sb_spool_ack(sp, 1, last - 10));
    // Room once b's cursor is on disk: only then are its segments freed.
    EXPECT_TRUE(run_until([&] { return sb_spool_append(sp, p.data(), p.size(), &seq) == 0; }));
    EXPECT_EQ(last + 1, seq);
    ASSERT_TRUE(run_until([&] { return dur.upto == last + 1; }));
    ASSERT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, DropOldestDropsForTheSlowOutputOnlyAndCounts)
{
    opts.max_bytes = 4 * opts.segment_bytes;
    opts.policy = SB_SPOOL_DROP_OLDEST;
    sb_spool *sp = open({"live", "dead"});
    uint64_t last = 0;
    for (int round = 0; round < 10; round++) {
        last = append_n(sp, 30, 2000);
        ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
        std::vector<Rec> v = read_all(sp, 0);
        ASSERT_FALSE(v.empty());
        ASSERT_EQ(last, v.back().seq);
        ASSERT_EQ(0, sb_spool_ack(sp, 0, last));
    }
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    sb_spool_output_stats live, dead;
    ASSERT_EQ(0, sb_spool_get_output_stats(sp, 0, &live));
    ASSERT_EQ(0, sb_spool_get_output_stats(sp, 1, &dead));
    EXPECT_EQ(0u, live.dropped_oldest);
    EXPECT_GT(dead.dropped_oldest, 100u);
    EXPECT_EQ(st.dropped_oldest, dead.dropped_oldest);
    EXPECT_EQ(0u, st.refused_full);
    EXPECT_LE(st.bytes_used, opts.max_bytes);
    // dead reads what is left: contiguous to the end, starting right after what it lost.
    std::vector<Rec> v = read_all(sp, 1);
    ASSERT_FALSE(v.empty());
    EXPECT_EQ(dead.dropped_oldest + 1, v.front().seq);
    expect_seqs(v, v.front().seq, last, 2000);
    ASSERT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, RecoveryTruncatesTornTailAndKeepsEverythingBefore)
{
    sb_spool *sp = open({"a"});
    uint64_t last = append_n(sp, 60, 300);
    ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
    ASSERT_EQ(0, sb_spool_close(sp));
    std::vector<std::string> files = seg_files(dir);
    ASSERT_GE(files.size(), 1u);
    Offs o = scan_file(files.back());
    ASSERT_GE(o.seq.size(), 10u);
    // Cut the tail inside its 6th-from-last record (a torn write).
    size_t k = o.seq.size() - 6;
    uint64_t torn_seq = o.seq[k];
    ASSERT_EQ(0, truncate(files.back().c_str(), (off_t)(o.off[k] + 17)));
    sp = open({"a"});
    ASSERT_NE(nullptr, sp);
    EXPECT_EQ(torn_seq - 1, sb_spool_durable_seq(sp));
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_GT(st.truncated_bytes, 0u);
    expect_seqs(read_all(sp, 0), 1, torn_seq - 1, 300);
    // Appending goes on from there; the file is back to its full size.
    uint64_t seq = append_n(sp, 1, 300);
    EXPECT_EQ(torn_seq, seq);
    ASSERT_TRUE(run_until([&] { return dur.upto == torn_seq; }));
    sb_spool_stats st2;
    sb_spool_get_stats(sp, &st2);
    EXPECT_EQ(1u, st2.segments) << "the repaired tail takes new records";
    ASSERT_EQ(0, sb_spool_close(sp));
    struct stat fst;
    ASSERT_EQ(0, stat(files.back().c_str(), &fst));
    EXPECT_EQ((off_t)opts.segment_bytes, fst.st_size);
    sp = open({"a"});
    expect_seqs(read_all(sp, 0), 1, torn_seq, 300);
    ASSERT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, RecoveryStopsAtFlippedByteAndNothingEarlierIsLost)
{
    sb_spool *sp = open({"a"});
    uint64_t last = append_n(sp, 40, 300);
    ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
    ASSERT_EQ(0, sb_spool_close(sp));
    std::vector<std::string> files = seg_files(dir);
    Offs o = scan_file(files.back());
    ASSERT_GE(o.seq.size(), 8u);
    size_t k = o.seq.size() - 4;
    uint64_t bad_seq = o.seq[k];
    int fd = ::open(files.back().c_str(), O_RDWR);
    uint8_t b;
    off_t at = (off_t)(o.off[k] + SB_SPOOL_REC_HDR_BYTES + 5);
    ASSERT_EQ(1, pread(fd, &b, 1, at));
    b ^= 0x40;
    ASSERT_EQ(1, pwrite(fd, &b, 1, at));
    close(fd);
    sp = open({"a"});
    EXPECT_EQ(bad_seq - 1, sb_spool_durable_seq(sp));
    expect_seqs(read_all(sp, 0), 1, bad_seq - 1, 300);
    ASSERT_EQ(0, sb_spool_close(sp));
    // Reopening again finds the same, cleanly (the bad bytes were cut off).
    sp = open({"a"});
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_EQ(0u, st.truncated_bytes);
    EXPECT_EQ(bad_seq - 1, sb_spool_durable_seq(sp));
    ASSERT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, FailedFsyncAbandonsSegmentAndRewritesRecordsOnce)
{
    sb_spool *sp = open({"a"});
    uint64_t first = append_n(sp, 5, 300);
    ASSERT_TRUE(run_until([&] { return dur.upto == first; }));
    sb_spool_inject_fsync_error(sp, 1, -EIO);
    uint64_t last = append_n(sp, 10, 300);
    ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_EQ(1u, st.fsync_errors);
    EXPECT_GE(st.segments_created, 2u) << "records must move to a new segment";
    EXPECT_EQ(last, st.durable_seq);
    expect_seqs(read_all(sp, 0), 1, last, 300);
    // More appends continue in the new segment.
    uint64_t last2 = append_n(sp, 5, 300);
    ASSERT_TRUE(run_until([&] { return dur.upto == last2; }));
    ASSERT_EQ(0, sb_spool_close(sp));
    // The abandoned segment still holds copies of 6..15 (written, but their fsync "failed"):
    // recovery must keep exactly one copy of each.
    ASSERT_GE(seg_files(dir).size(), 2u);
    sp = open({"a"});
    sb_spool_rewind(sp, 0);
    sb_spool_output_stats os;
    sb_spool_get_output_stats(sp, 0, &os);
    EXPECT_EQ(0u, os.acked_seq);
    expect_seqs(read_all(sp, 0), 1, last2, 300);
    ASSERT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, OpenRejectsBadOptionsNamesAndASecondOpener)
{
    sb_spool *sp = nullptr;
    const char *bad[] = {"a/b"};
    EXPECT_EQ(-EINVAL, sb_spool_open(&sp, loop, &opts, bad, 1));
    const char *dup[] = {"x", "x"};
    EXPECT_EQ(-EINVAL, sb_spool_open(&sp, loop, &opts, dup, 2));
    sb_spool_opts o = opts;
    o.segment_bytes = 1000;
    const char *ok[] = {"x"};
    EXPECT_EQ(-EINVAL, sb_spool_open(&sp, loop, &o, ok, 1));
    o = opts;
    o.max_bytes = o.segment_bytes;
    EXPECT_EQ(-EINVAL, sb_spool_open(&sp, loop, &o, ok, 1));
    o = opts;
    o.dir = nullptr;
    EXPECT_EQ(-EINVAL, sb_spool_open(&sp, loop, &o, ok, 1));
    sb_spool *first = open({"x"});
    ASSERT_NE(nullptr, first);
    EXPECT_EQ(-EBUSY, sb_spool_open(&sp, loop, &opts, ok, 1));
    EXPECT_EQ(nullptr, sp);
    ASSERT_EQ(0, sb_spool_close(first));
    EXPECT_EQ(0, sb_spool_close(nullptr));
}

TEST_F(SpoolTest, NewOutputStartsAtHeadAndReadOnlyInspection)
{
    sb_spool *sp = open({"a"});
    uint64_t last = append_n(sp, 20);
    ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
    ASSERT_EQ(0, sb_spool_close(sp));
    sp = open({"a", "added"});
    EXPECT_EQ(0u, read_all(sp, 1).size()) << "a new output gets only what comes after it";
    expect_seqs(read_all(sp, 0), 1, last);
    ASSERT_EQ(0, sb_spool_close(sp));
    // Read-only (no loop): reads, but never writes.
    sb_spool *ro = nullptr;
    const char *outs[] = {"a"};
    ASSERT_EQ(0, sb_spool_open(&ro, nullptr, &opts, outs, 1));
    expect_seqs(read_all(ro, 0), 1, last);
    uint64_t seq;
    EXPECT_EQ(-EROFS, sb_spool_append(ro, "x", 1, &seq));
    EXPECT_EQ(-EROFS, sb_spool_ack(ro, 0, 1));
    ASSERT_EQ(0, sb_spool_close(ro));
}

TEST_F(SpoolTest, DamagedCursorFileResendsEverythingSpooled)
{
    sb_spool *sp = open({"a", "b"});
    uint64_t last = append_n(sp, 40);
    ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
    ASSERT_EQ(0, sb_spool_ack(sp, 0, 30));
    ASSERT_EQ(0, sb_spool_ack(sp, 1, 30));
    ASSERT_EQ(0, sb_spool_close(sp));
    // Both slots of b's cursor damaged: b's progress is unknown, so it gets everything again;
    // a is unaffected.
    std::string path = dir + "/b.cursor";
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t junk[16];
    memset(junk, 0x5a, sizeof junk);
    ASSERT_EQ(16, pwrite(fd, junk, 16, 8));
    ASSERT_EQ(16, pwrite(fd, junk, 16, SB_SPOOL_CUR_SLOT_STRIDE + 8));
    close(fd);
    sp = open({"a", "b"});
    expect_seqs(read_all(sp, 0), 31, last);
    expect_seqs(read_all(sp, 1), 1, last);
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_EQ(0u, st.dropped_corrupt);
    ASSERT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, SmallSubmissionQueueKeepsLinkChainsWhole)
{
    // 8 SQEs: a two-segment commit (5 SQEs) plus two cursor writes (2 each) do not fit at
    // once, so the spool must submit between chains, never inside one.
    sb_loop_free(loop);
    ASSERT_EQ(0, sb_loop_new(&loop, 8));
    sb_spool *sp = open({"a", "b"});
    uint64_t last = 0;
    for (int round = 0; round < 15; round++) {
        last = append_n(sp, 20, 2000);
        ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
        ASSERT_EQ(0, sb_spool_ack(sp, 0, last));
        ASSERT_EQ(0, sb_spool_ack(sp, 1, last - 5));
    }
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_GE(st.segments_recycled, 1u);
    EXPECT_GE(st.cursor_writes, 10u);
    EXPECT_EQ(0u, st.cursor_errors);
    ASSERT_EQ(0, sb_spool_close(sp));
    sp = open({"a", "b"});
    EXPECT_EQ(0u, read_all(sp, 0).size());
    expect_seqs(read_all(sp, 1), last - 4, last, 2000);
    ASSERT_EQ(0, sb_spool_close(sp));
}

TEST_F(SpoolTest, CommitDelayGathersAppendsAcrossLoopTurns)
{
    opts.commit_delay_ns = 300000000; // 300 ms: far longer than 5 loop turns, even on a busy box
    sb_spool *sp = open({"a"});
    uint64_t t0 = sb_now_ns();
    for (int i = 0; i < 5; i++) {
        append_n(sp, 1);
        sb_loop_run_once(loop, 0);
    }
    ASSERT_TRUE(run_until([&] { return dur.upto == 5; }));
    EXPECT_GE(sb_now_ns() - t0, 250000000u);
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_EQ(1u, st.commits);
    ASSERT_EQ(0, sb_spool_close(sp));
}

} // namespace

// An output's own position rides with its cursor; after a restart it is what the cursor on disk
// said, and only while every record after that cursor is still there.
TEST_F(SpoolTest, AckAtSavesThePositionWithTheCursorAndResumeGivesItBack)
{
    sb_spool *sp = open({"file", "other"});
    uint64_t last = append_n(sp, 10);
    ASSERT_TRUE(run_until([&] { return dur.upto == last; }));
    uint64_t acked, pos, id;
    EXPECT_EQ(0, sb_spool_output_resume(sp, 0, &acked, &pos, &id)) << "no position yet";
    ASSERT_EQ(0, sb_spool_ack_at(sp, 0, 4, 4000, 77));
    ASSERT_EQ(0, sb_spool_ack_at(sp, 0, 4, 4100, 77)) << "same seq, new position";
    ASSERT_EQ(0, sb_spool_ack(sp, 0, 6)) << "a plain ack keeps the position";
    ASSERT_EQ(-EINVAL, sb_spool_ack_at(sp, 0, last + 1, 1, 1));
    ASSERT_EQ(0, sb_spool_close(sp));
    sp = open({"file", "other"});
    ASSERT_EQ(1, sb_spool_output_resume(sp, 0, &acked, &pos, &id));
    EXPECT_EQ(6u, acked);
    EXPECT_EQ(4100u, pos);
    EXPECT_EQ(77u, id);
    EXPECT_EQ(0, sb_spool_output_resume(sp, 1, &acked, &pos, &id)) << "other never used ack_at";
    expect_seqs(read_all(sp, 0), 7, last);
    // The newest record is what a restarted daemon reads first.
    std::vector<Rec> v;
    EXPECT_EQ(1, sb_spool_visit(sp, sb_spool_durable_seq(sp), collect_fn, &v));
    ASSERT_EQ(1u, v.size());
    EXPECT_EQ(last, v[0].seq);
    EXPECT_EQ(payload(last), v[0].data);
    v.clear();
    EXPECT_EQ((int)last, sb_spool_visit(sp, 1, collect_fn, &v));
    ASSERT_EQ(0, sb_spool_close(sp));
}
