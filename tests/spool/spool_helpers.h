// spool_helpers.h: shared fixture bits for the spool tests: a real io_uring loop, a temp
// directory, and helpers to run the loop until a condition holds and to read records back.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ftw.h>
#include <functional>
#include <string>
#include <vector>

#include <liburing.h> // C++-aware on its own: outside extern "C"

extern "C" {
#include "net/loop.h"
#include "spool/spool.h"
#include "spool/spool_format.h"
}

namespace spooltest
{

inline int rm_entry(const char *path, const struct stat *, int, struct FTW *)
{
    return remove(path);
}

inline void rm_rf(const std::string &dir)
{
    nftw(dir.c_str(), rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

inline std::string make_tmpdir(const char *base = "/tmp")
{
    std::string t = std::string(base) + "/spooltest.XXXXXX";
    std::vector<char> b(t.begin(), t.end());
    b.push_back(0);
    if (!mkdtemp(b.data()))
        return "";
    return b.data();
}

struct Rec {
    uint64_t seq;
    std::string data;
};

inline int collect_fn(void *arg, uint64_t seq, const void *data, size_t len)
{
    static_cast<std::vector<Rec> *>(arg)->push_back({seq, std::string((const char *)data, len)});
    return 0;
}

// Everything the output can read now, in chunks of max_bytes.
inline std::vector<Rec> read_all(sb_spool *sp, unsigned out, size_t max_bytes = 1 << 20)
{
    std::vector<Rec> v;
    for (;;) {
        int n = sb_spool_read(sp, out, max_bytes, collect_fn, &v);
        EXPECT_GE(n, 0);
        if (n <= 0)
            break;
    }
    return v;
}

// A payload that names its seq and has a length that varies with it.
inline std::string payload(uint64_t seq, size_t base = 100)
{
    std::string s = "seq=" + std::to_string(seq) + ";";
    s.append(base + seq * 37 % 700, (char)('a' + seq % 26));
    return s;
}

struct Durable {
    uint64_t upto = 0;
    unsigned calls = 0;
    sb_spool *sp = nullptr;
    uint64_t commits_at_last_call = 0;
    uint64_t fsyncs_at_last_call = 0;
    static void fn(void *arg, uint64_t upto)
    {
        auto *d = static_cast<Durable *>(arg);
        EXPECT_GT(upto, d->upto) << "durable seq must only grow";
        d->upto = upto;
        d->calls++;
        if (d->sp) {
            sb_spool_stats st;
            sb_spool_get_stats(d->sp, &st);
            d->commits_at_last_call = st.commits;
            d->fsyncs_at_last_call = st.fsyncs;
        }
    }
};

class SpoolTest : public ::testing::Test
{
  protected:
    sb_loop *loop = nullptr;
    std::string dir;
    Durable dur;
    sb_spool_opts opts;

    void SetUp() override
    {
        ASSERT_EQ(0, sb_loop_new(&loop, 256));
        dir = make_tmpdir();
        ASSERT_FALSE(dir.empty());
        sb_spool_opts_init(&opts);
        opts.dir = dir.c_str();
        opts.segment_bytes = 64 << 10;
        opts.max_bytes = 64 << 20;
        opts.on_durable = Durable::fn;
        opts.arg = &dur;
    }
    void TearDown() override
    {
        sb_loop_free(loop);
        if (!dir.empty())
            rm_rf(dir);
    }

    sb_spool *open(std::vector<const char *> outs = {"a", "b"})
    {
        sb_spool *sp = nullptr;
        int r = sb_spool_open(&sp, loop, &opts, outs.data(), (unsigned)outs.size());
        EXPECT_EQ(0, r) << strerror(-r);
        dur.sp = sp;
        dur.upto = sp ? sb_spool_durable_seq(sp) : 0;
        return sp;
    }

    // Run the loop until pred() holds or 10 s pass.
    bool run_until(const std::function<bool()> &pred, int64_t limit_ns = 10000000000LL)
    {
        uint64_t end = sb_now_ns() + (uint64_t)limit_ns;
        while (!pred()) {
            if (sb_now_ns() > end)
                return false;
            int r = sb_loop_run_once(loop, 50000000);
            if (r < 0 && r != -ETIME && r != -EINTR) {
                ADD_FAILURE() << "loop: " << strerror(-r);
                return false;
            }
        }
        return true;
    }

    // Append records with payload(seq); returns the last seq.
    uint64_t append_n(sb_spool *sp, int n, size_t base = 100)
    {
        uint64_t seq = 0;
        for (int i = 0; i < n; i++) {
            uint64_t next = sb_spool_get_next(sp);
            std::string p = payload(next, base);
            int r;
            while ((r = sb_spool_append(sp, p.data(), p.size(), &seq)) == -EAGAIN && pending(sp))
                sb_loop_run_once(loop, 10000000); // let a commit finish
            EXPECT_EQ(0, r) << strerror(-r);
            EXPECT_EQ(next, seq);
        }
        return seq;
    }

    static bool pending(sb_spool *sp)
    {
        sb_spool_stats st;
        sb_spool_get_stats(sp, &st);
        return st.next_seq - 1 > st.durable_seq;
    }

    static uint64_t sb_spool_get_next(sb_spool *sp)
    {
        sb_spool_stats st;
        sb_spool_get_stats(sp, &st);
        return st.next_seq;
    }
};

// Every record from `from` to `to` exactly once, in order, with its own payload.
inline void expect_seqs(const std::vector<Rec> &v, uint64_t from, uint64_t to, size_t base = 100)
{
    ASSERT_EQ(to >= from ? to - from + 1 : 0, v.size());
    for (size_t i = 0; i < v.size(); i++) {
        ASSERT_EQ(from + i, v[i].seq);
        ASSERT_EQ(payload(from + i, base), v[i].data) << "seq " << v[i].seq;
    }
}

} // namespace spooltest
