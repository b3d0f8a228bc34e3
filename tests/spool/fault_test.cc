// fault_test.cc: the spool under real faults: a writer process SIGKILLed while appending (then
// recovery: every record whose durable callback fired is there exactly once), and a real full
// file system (a 1 MiB tmpfs): the error is reported, nothing earlier is lost, and appends work
// again once space is freed.
#include "spool_helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace spooltest;

namespace
{

struct ChildState {
    int pipe_fd;
};

void child_durable(void *arg, uint64_t upto)
{
    auto *c = static_cast<ChildState *>(arg);
    // Written only after the fdatasync completed: the parent's lower bound of what is durable.
    if (write(c->pipe_fd, &upto, sizeof upto) != (ssize_t)sizeof upto)
        _exit(3);
}

[[noreturn]] void child_main(const std::string &dir, int pipe_fd, unsigned seed)
{
    sb_loop *loop = nullptr;
    if (sb_loop_new(&loop, 256) < 0)
        _exit(4);
    ChildState cs = {pipe_fd};
    sb_spool_opts o;
    sb_spool_opts_init(&o);
    o.dir = dir.c_str();
    o.segment_bytes = 256 << 10;
    o.max_bytes = 1ull << 30;
    o.on_durable = child_durable;
    o.arg = &cs;
    const char *outs[] = {"o"};
    sb_spool *sp = nullptr;
    if (sb_spool_open(&sp, loop, &o, outs, 1) < 0)
        _exit(5);
    uint64_t start = sb_now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            sb_spool_stats st;
            sb_spool_get_stats(sp, &st);
            seed = seed * 1103515245u + 12345u;
            std::string p = payload(st.next_seq, 50 + (seed >> 16) % 1500);
            uint64_t seq;
            int r = sb_spool_append(sp, p.data(), p.size(), &seq);
            if (r == -EAGAIN)
                break;
            if (r < 0 || seq != st.next_seq)
                _exit(6);
        }
        if (sb_loop_run_once(loop, 1000000) < 0)
            _exit(7);
        if (sb_now_ns() - start > 20000000000ull)
            _exit(8); // the parent should have killed us long ago
    }
}

// Records 1..N, each once, in order, each payload naming its own seq. Returns N.
uint64_t verify_all(sb_spool *sp)
{
    struct V {
        uint64_t expect = 1;
        bool ok = true;
        std::string err;
    } v;
    auto fn = [](void *arg, uint64_t seq, const void *data, size_t len) {
        auto *x = static_cast<V *>(arg);
        std::string want = "seq=" + std::to_string(seq) + ";";
        std::string got((const char *)data, len < want.size() ? len : want.size());
        if (seq != x->expect || got != want) {
            if (x->ok)
                x->err = "at seq " + std::to_string(seq) + " expected " +
                         std::to_string(x->expect) + " payload starts '" + got + "'";
            x->ok = false;
        }
        x->expect = seq + 1;
        return 0;
    };
    while (sb_spool_read(sp, 0, 4 << 20, fn, &v) > 0) {
    }
    EXPECT_TRUE(v.ok) << v.err;
    return v.expect - 1;
}

TEST(SpoolFault, SigkilledWriterLosesNothingDurableAndDuplicatesNothing)
{
    std::string dir = make_tmpdir();
    ASSERT_FALSE(dir.empty());
    uint64_t reported = 0, kept = 0;
    const int rounds = 5;
    for (int round = 0; round < rounds; round++) {
        int p[2];
        ASSERT_EQ(0, pipe(p));
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            close(p[0]);
            child_main(dir, p[1], 1234u + (unsigned)round);
        }
        close(p[1]);
        // Let it run 50..250 ms after its first durable report, reading reports meanwhile.
        uint64_t first_report = 0, deadline_ns = sb_now_ns() + 10000000000ull;
        uint64_t run_ns = 50000000ull + 50000000ull * (uint64_t)round;
        uint64_t round_max = 0;
        for (;;) {
            uint64_t now = sb_now_ns();
            if (first_report && now - first_report > run_ns)
                break;
            ASSERT_LT(now, deadline_ns) << "the writer never reported a durable record";
            pollfd pfd = {p[0], POLLIN, 0};
            if (poll(&pfd, 1, 5) > 0) {
                uint64_t v[64];
                ssize_t n = read(p[0], v, sizeof v);
                ASSERT_GT(n, 0) << "writer died early";
                for (ssize_t i = 0; i < n / 8; i++)
                    round_max = std::max(round_max, v[i]);
                if (!first_report)
                    first_report = sb_now_ns();
            }
        }
        ASSERT_EQ(0, kill(pid, SIGKILL));
        int status = 0;
        ASSERT_EQ(pid, waitpid(pid, &status, 0));
        ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited with " << WEXITSTATUS(status);
        uint64_t v;
        while (read(p[0], &v, sizeof v) == (ssize_t)sizeof v)
            round_max = std::max(round_max, v);
        close(p[0]);
        ASSERT_GE(round_max, reported) << "durable seq went backwards across a restart";
        reported = round_max;

        // Recover (as the next daemon start would) and check every record.
        sb_loop *loop = nullptr;
        ASSERT_EQ(0, sb_loop_new(&loop, 64));
        sb_spool_opts o;
        sb_spool_opts_init(&o);
        o.dir = dir.c_str();
        o.segment_bytes = 256 << 10;
        o.max_bytes = 1ull << 30;
        const char *outs[] = {"o"};
        sb_spool *sp = nullptr;
        ASSERT_EQ(0, sb_spool_open(&sp, loop, &o, outs, 1));
        kept = verify_all(sp);
        EXPECT_GE(kept, reported) << "round " << round << ": a record reported durable is gone";
        EXPECT_EQ(kept, sb_spool_durable_seq(sp));
        ASSERT_EQ(0, sb_spool_close(sp));
        sb_loop_free(loop);
        if (HasFailure())
            break;
    }
    EXPECT_GT(reported, 1000u) << "the writer made too little progress to test anything";
    rm_rf(dir);
}

// A tmpfs of 1 MiB mounted for the test and always unmounted. It is mounted in a private mount
// namespace of this test process, so even an abort (a sanitizer report) leaves no mount behind.
struct Tmpfs {
    std::string dir;
    bool mounted = false;
    int mount_1m()
    {
        static bool private_ns = false;
        if (!private_ns) {
            if (unshare(CLONE_NEWNS) < 0 ||
                mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
                return -errno;
            private_ns = true;
        }
        if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m,mode=0700") < 0)
            return -errno;
        mounted = true;
        return 0;
    }
    ~Tmpfs()
    {
        if (mounted)
            umount2(dir.c_str(), MNT_DETACH);
        if (!dir.empty())
            rmdir(dir.c_str());
    }
};

TEST(SpoolFault, FullFileSystemIsReportedSurvivedAndRecovered)
{
    Tmpfs fs;
    fs.dir = make_tmpdir();
    ASSERT_FALSE(fs.dir.empty());
    // Root is needed; without it this test fails (a skip would hide an untested disk-full path).
    int mr = fs.mount_1m();
    ASSERT_EQ(0, mr) << "mount tmpfs: " << strerror(-mr);
    std::string ballast = fs.dir + "/ballast";
    {
        int fd = ::open(ballast.c_str(), O_WRONLY | O_CREAT, 0600);
        ASSERT_GE(fd, 0);
        std::string chunk(64 << 10, 'b');
        for (int i = 0; i < 4; i++)
            ASSERT_EQ((ssize_t)chunk.size(), write(fd, chunk.data(), chunk.size()));
        close(fd);
    }
    sb_loop *loop = nullptr;
    ASSERT_EQ(0, sb_loop_new(&loop, 64));
    Durable dur;
    sb_spool_opts o;
    sb_spool_opts_init(&o);
    std::string dir = fs.dir + "/spool";
    o.dir = dir.c_str();
    o.segment_bytes = 64 << 10;
    o.max_bytes = 64 << 20; // far above the disk: the file system is the limit here
    o.on_durable = Durable::fn;
    o.arg = &dur;
    const char *outs[] = {"a"};
    sb_spool *sp = nullptr;
    ASSERT_EQ(0, sb_spool_open(&sp, loop, &o, outs, 1));
    auto run_until = [&](const std::function<bool()> &pred) {
        uint64_t end = sb_now_ns() + 10000000000ull;
        while (!pred() && sb_now_ns() < end)
            sb_loop_run_once(loop, 20000000);
        return pred();
    };
    auto fill = [&](uint64_t *last) {
        int r = 0;
        for (int i = 0; i < 5000; i++) {
            sb_spool_stats st;
            sb_spool_get_stats(sp, &st);
            std::string p = payload(st.next_seq, 1500);
            uint64_t seq;
            r = sb_spool_append(sp, p.data(), p.size(), &seq);
            if (r == -EAGAIN) {
                sb_loop_run_once(loop, 10000000);
                continue;
            }
            if (r < 0)
                break;
            *last = seq;
        }
        return r;
    };
    uint64_t last = 0;
    int r = fill(&last);
    ASSERT_EQ(-ENOSPC, r) << "expected the file system to fill up, got " << strerror(-r);
    ASSERT_GT(last, 100u);
    ASSERT_TRUE(run_until([&] { return dur.upto == last; })) << "earlier records must still commit";
    sb_spool_stats st;
    sb_spool_get_stats(sp, &st);
    EXPECT_GE(st.refused_nospace, 1u);
    EXPECT_EQ(0u, st.write_errors);
    EXPECT_EQ(0u, st.fsync_errors);
    uint64_t seq;
    std::string p = payload(last + 1, 1500);
    // Still full: a clean refusal each time, nothing queued.
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(-ENOSPC, sb_spool_append(sp, p.data(), p.size(), &seq));
    std::vector<Rec> v = read_all(sp, 0);
    expect_seqs(v, 1, last, 1500);

    // Space comes back: appends work again, numbering continues.
    ASSERT_EQ(0, unlink(ballast.c_str()));
    uint64_t last2 = last;
    r = fill(&last2);
    EXPECT_EQ(-ENOSPC, r) << "fills up again";
    EXPECT_GT(last2, last + 50);
    ASSERT_TRUE(run_until([&] { return dur.upto == last2; }));
    ASSERT_EQ(0, sb_spool_close(sp));

    // After a restart every record is there once.
    sp = nullptr;
    ASSERT_EQ(0, sb_spool_open(&sp, loop, &o, outs, 1));
    expect_seqs(read_all(sp, 0), 1, last2, 1500);
    // Acknowledging frees space for new segments.
    ASSERT_EQ(0, sb_spool_ack(sp, 0, last2));
    // Segments are freed once the cursor is on disk.
    ASSERT_TRUE(run_until([&] {
        sb_spool_output_stats os;
        sb_spool_get_output_stats(sp, 0, &os);
        return os.persisted_seq == last2;
    }));
    uint64_t last3 = last2;
    fill(&last3);
    EXPECT_GT(last3, last2 + 100);
    ASSERT_TRUE(run_until([&] { return dur.upto == last3; }));
    ASSERT_EQ(0, sb_spool_close(sp));
    sb_loop_free(loop);
}

TEST(SpoolFault, FailedFsyncOnFullDiskStallsThenRewritesWhenSpaceReturns)
{
    Tmpfs fs;
    fs.dir = make_tmpdir();
    ASSERT_FALSE(fs.dir.empty());
    int mr = fs.mount_1m();
    ASSERT_EQ(0, mr) << "mount tmpfs: " << strerror(-mr);
    sb_loop *loop = nullptr;
    ASSERT_EQ(0, sb_loop_new(&loop, 64));
    Durable dur;
    sb_spool_opts o;
    sb_spool_opts_init(&o);
    std::string dir = fs.dir + "/spool";
    o.dir = dir.c_str();
    o.segment_bytes = 64 << 10;
    o.retry_ns = 20000000; // 20 ms
    o.on_durable = Durable::fn;
    o.arg = &dur;
    const char *outs[] = {"a"};
    sb_spool *sp = nullptr;
    ASSERT_EQ(0, sb_spool_open(&sp, loop, &o, outs, 1));
    auto run_until = [&](const std::function<bool()> &pred) {
        uint64_t end = sb_now_ns() + 10000000000ull;
        while (!pred() && sb_now_ns() < end)
            sb_loop_run_once(loop, 10000000);
        return pred();
    };
    uint64_t seq = 0;
    for (uint64_t i = 1; i <= 10; i++) {
        std::string p = payload(i, 500);
        ASSERT_EQ(0, sb_spool_append(sp, p.data(), p.size(), &seq));
    }
    ASSERT_TRUE(run_until([&] { return dur.upto == 10; }));
    // Fill every remaining byte of the file system.
    std::string ballast = fs.dir + "/ballast";
    int fd = ::open(ballast.c_str(), O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    std::string chunk(4096, 'b');
    while (write(fd, chunk.data(), chunk.size()) == (ssize_t)chunk.size()) {
    }
    close(fd);
    // The next commit's fdatasync "fails": the records must go to a new segment, which the
    // full disk refuses: the spool stalls and says so.
    sb_spool_inject_fsync_error(sp, 1, -EIO);
    std::string p11 = payload(11, 500);
    ASSERT_EQ(0, sb_spool_append(sp, p11.data(), p11.size(), &seq));
    sb_spool_stats st;
    ASSERT_TRUE(run_until([&] {
        sb_spool_get_stats(sp, &st);
        return st.fsync_errors == 1;
    }));
    std::string p12 = payload(12, 500);
    EXPECT_EQ(-ENOSPC, sb_spool_append(sp, p12.data(), p12.size(), &seq));
    for (int i = 0; i < 5; i++)
        sb_loop_run_once(loop, 30000000); // retries happen, and fail
    EXPECT_EQ(10u, dur.upto) << "record 11 cannot be durable while the disk is full";
    EXPECT_EQ(-ENOSPC, sb_spool_append(sp, p12.data(), p12.size(), &seq));
    // Space returns: the retry timer rewrites record 11 and commits it.
    ASSERT_EQ(0, unlink(ballast.c_str()));
    ASSERT_TRUE(run_until([&] { return dur.upto == 11; }));
    ASSERT_EQ(0, sb_spool_append(sp, p12.data(), p12.size(), &seq));
    EXPECT_EQ(12u, seq);
    ASSERT_TRUE(run_until([&] { return dur.upto == 12; }));
    expect_seqs(read_all(sp, 0), 1, 12, 500);
    ASSERT_EQ(0, sb_spool_close(sp));
    sp = nullptr;
    ASSERT_EQ(0, sb_spool_open(&sp, loop, &o, outs, 1));
    expect_seqs(read_all(sp, 0), 1, 12, 500);
    ASSERT_EQ(0, sb_spool_close(sp));
    sb_loop_free(loop);
}

} // namespace
