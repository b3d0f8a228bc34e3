// replay_test.cc: the cover table (src/spool/replay.c): what a batch covers of the rings when it
// closes, the table carried into the spool, and what a restarted daemon skips per output.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

extern "C" {
#include "spool/replay.h"
}

namespace
{

struct Table {
    sb_replay *rp = nullptr;
    explicit Table(unsigned outs)
    {
        EXPECT_EQ(0, sb_replay_new(&rp, outs));
    }
    ~Table()
    {
        sb_replay_free(rp);
    }
    // Output `out` closes a batch now and appends it; returns the record's table bytes.
    std::string close_and_append(unsigned out, bool includes_current)
    {
        sb_buf snap = SB_BUF_INIT, rec = SB_BUF_INIT;
        EXPECT_EQ(0, sb_replay_snap(rp, out, includes_current, &snap));
        EXPECT_EQ(0, sb_replay_encode(rp, out, snap.data, snap.len, &rec));
        sb_replay_appended(rp, out, snap.data, snap.len);
        std::string t((const char *)rec.data, rec.len);
        sb_buf_free(&snap);
        sb_buf_free(&rec);
        return t;
    }
    // Does the next daemon skip ring record `pos` for each output?
    std::string skips(uint64_t pos, unsigned outs)
    {
        std::string s;
        sb_replay_begin(rp, 0, pos);
        for (unsigned o = 0; o < outs; o++)
            s += sb_replay_covered(rp, o) ? 'S' : '-';
        sb_replay_end(rp);
        return s;
    }
};

const uint8_t kRing[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
const uint8_t kOther[16] = {9};

TEST(Replay, NextDaemonSkipsPerOutputExactlyWhatThatOutputSpooled)
{
    std::string table;
    {
        Table a(2);
        ASSERT_EQ(0, sb_replay_ring(a.rp, 0, kRing, 0));
        // Records at 0, 100, 200, 300: output 0 closes a batch while adding 200 (with it),
        // output 1 closes one by time after 300 was handled.
        for (uint64_t pos : {0, 100, 200, 300}) {
            sb_replay_begin(a.rp, 0, pos);
            if (pos == 200)
                table = a.close_and_append(0, true);
            sb_replay_end(a.rp);
        }
        table = a.close_and_append(1, false);
        // Records at 400 and 500 are read but in no batch when the daemon dies.
    }
    Table b(2);
    ASSERT_EQ(0, sb_replay_load(b.rp, (const uint8_t *)table.data(), table.size()));
    ASSERT_EQ(0, sb_replay_ring(b.rp, 0, kRing, 0)); // handed back: read again from 0
    EXPECT_EQ("SS", b.skips(0, 2));
    EXPECT_EQ("SS", b.skips(200, 2));
    EXPECT_EQ("-S", b.skips(300, 2));
    EXPECT_EQ("--", b.skips(400, 2));
    EXPECT_EQ("--", b.skips(500, 2));
    uint64_t *sk = sb_replay_skipped(b.rp, 1);
    ASSERT_NE(nullptr, sk);
    EXPECT_EQ(3u, *sk);
}

TEST(Replay, ABatchClosedBeforeTheEventBeingAddedDoesNotCoverIt)
{
    Table a(1);
    ASSERT_EQ(0, sb_replay_ring(a.rp, 0, kRing, 0));
    sb_replay_begin(a.rp, 0, 0);
    sb_replay_end(a.rp);
    sb_replay_begin(a.rp, 0, 64);
    std::string t = a.close_and_append(0, false); // closed because 64 did not fit
    sb_replay_end(a.rp);
    Table b(1);
    ASSERT_EQ(0, sb_replay_load(b.rp, (const uint8_t *)t.data(), t.size()));
    ASSERT_EQ(0, sb_replay_ring(b.rp, 0, kRing, 0));
    EXPECT_EQ("S", b.skips(0, 1));
    EXPECT_EQ("-", b.skips(64, 1));
}

TEST(Replay, CoversSurviveADaemonThatSpooledNothingNewAndReleasedRingsLeaveTheTable)
{
    std::string t1, t2;
    {
        Table a(2);
        ASSERT_EQ(0, sb_replay_ring(a.rp, 0, kRing, 0));
        sb_replay_begin(a.rp, 0, 0);
        sb_replay_end(a.rp);
        t1 = a.close_and_append(0, false);
    }
    {
        // The next daemon reads a new ring; output 1 appends: output 0's cover of the old ring
        // must stay in the table although this daemon never batched anything for it.
        Table b(2);
        ASSERT_EQ(0, sb_replay_load(b.rp, (const uint8_t *)t1.data(), t1.size()));
        ASSERT_EQ(0, sb_replay_ring(b.rp, 0, kOther, 0));
        sb_replay_begin(b.rp, 0, 0);
        sb_replay_end(b.rp);
        t2 = b.close_and_append(1, false);
        // Released past everything it covers: the new ring is no longer needed in the table.
        sb_replay_released(b.rp, 0, 8);
        std::string t3 = b.close_and_append(1, false);
        EXPECT_LT(t3.size(), t2.size());
    }
    Table c(2);
    ASSERT_EQ(0, sb_replay_load(c.rp, (const uint8_t *)t2.data(), t2.size()));
    ASSERT_EQ(0, sb_replay_ring(c.rp, 0, kRing, 0));
    EXPECT_EQ("S-", c.skips(0, 2));
}

TEST(Replay, BadTablesAreRefusedWhole)
{
    Table a(1);
    const uint8_t wrong_version[8] = {2, 0, 1, 0, 0, 0, 0, 0};
    const uint8_t short_rows[8] = {1, 0, 1, 0, 1, 0, 0, 0}; // says 1 ring, has none
    EXPECT_EQ(-EPROTO, sb_replay_load(a.rp, wrong_version, sizeof wrong_version));
    EXPECT_EQ(-EPROTO, sb_replay_load(a.rp, short_rows, sizeof short_rows));
    EXPECT_EQ(-EPROTO, sb_replay_load(a.rp, short_rows, 3));
    std::string many(8 + 65 * 24, '\0'); // 65 rings of one output: more than a table holds
    many[0] = 1;
    many[2] = 1;
    many[4] = 65;
    EXPECT_EQ(-EPROTO, sb_replay_load(a.rp, (const uint8_t *)many.data(), many.size()));
    ASSERT_EQ(0, sb_replay_ring(a.rp, 0, kRing, 0));
    EXPECT_EQ("-", a.skips(0, 1)) << "nothing loaded: nothing skipped";
}

} // namespace
