// loop_test.cc: the io_uring loop: setup flags, op dispatch, timers, and futex waits woken from
// another process through a shared memfd.
#include <gtest/gtest.h>

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include <liburing.h>

extern "C" {
#include "net/loop.h"
#include "net/uring_ops.h"
}

namespace
{

struct Loop {
    sb_loop *loop = nullptr;
    Loop()
    {
        EXPECT_EQ(0, sb_loop_new(&loop, 64));
    }
    ~Loop()
    {
        sb_loop_free(loop);
    }
    // Run until pred() or the deadline; returns pred().
    template <class F> bool run_until(F pred, uint64_t max_ns = 2000000000ull)
    {
        uint64_t end = sb_now_ns() + max_ns;
        while (!pred() && sb_now_ns() < end)
            sb_loop_run_once(loop, 10000000);
        return pred();
    }
};

TEST(Loop, RejectsBadEntries)
{
    sb_loop *l = reinterpret_cast<sb_loop *>(1);
    EXPECT_EQ(-EINVAL, sb_loop_new(&l, 3));
    EXPECT_EQ(nullptr, l);
    sb_loop_free(nullptr);
}

TEST(Loop, UsesSingleIssuerDeferTaskrunOnThisKernel)
{
    Loop L;
    unsigned f = sb_loop_setup_flags(L.loop);
    EXPECT_TRUE(f & IORING_SETUP_SINGLE_ISSUER);
    EXPECT_TRUE(f & IORING_SETUP_DEFER_TASKRUN);
    EXPECT_TRUE(sb_loop_supports(L.loop, SB_IORING_OP_FUTEX_WAIT));
    EXPECT_TRUE(sb_loop_supports(L.loop, IORING_OP_NOP));
}

struct Rec {
    sb_op op;
    std::vector<int> *log;
    int id;
    int res = 1;
};

static void rec_cb(sb_op *op, int res, uint32_t)
{
    Rec *r = SB_CONTAINER_OF(op, Rec, op);
    r->res = res;
    r->log->push_back(r->id);
}

TEST(Loop, DispatchesEachOpToItsCallback)
{
    Loop L;
    std::vector<int> log;
    Rec a{{}, &log, 1}, b{{}, &log, 2};
    io_uring_prep_nop(sb_loop_sqe(L.loop, &a.op, rec_cb));
    io_uring_prep_nop(sb_loop_sqe(L.loop, &b.op, rec_cb));
    ASSERT_TRUE(L.run_until([&] { return log.size() == 2; }));
    EXPECT_EQ(0, a.res);
    EXPECT_EQ(0, b.res);
}

TEST(Loop, SqeSubmitsWhenTheQueueIsFull)
{
    Loop L;
    std::vector<int> log;
    std::vector<Rec> recs(200);
    for (int i = 0; i < 200; i++) {
        recs[i] = Rec{{}, &log, i};
        io_uring_sqe *sqe = sb_loop_sqe(L.loop, &recs[i].op, rec_cb);
        ASSERT_NE(nullptr, sqe);
        io_uring_prep_nop(sqe);
    }
    ASSERT_TRUE(L.run_until([&] { return log.size() == 200; }));
}

TEST(Loop, RunOnceTimesOutWhenIdle)
{
    Loop L;
    uint64_t t0 = sb_now_ns();
    EXPECT_EQ(0, sb_loop_run_once(L.loop, 30000000));
    uint64_t dt = sb_now_ns() - t0;
    EXPECT_GE(dt, 25000000u);
    EXPECT_LT(dt, 1000000000u);
    EXPECT_EQ(0, sb_loop_run_once(L.loop, 0));
}

struct T {
    sb_timer t{};
    std::vector<int> *log;
    int id;
    uint64_t fired_at = 0;
};

static void t_cb(sb_timer *t)
{
    T *x = reinterpret_cast<T *>(t); // sb_timer is the first member
    x->fired_at = sb_now_ns();
    x->log->push_back(x->id);
}

TEST(Timer, FireInDeadlineOrderNotStartOrder)
{
    Loop L;
    std::vector<int> log;
    T a{{}, &log, 30}, b{{}, &log, 10}, c{{}, &log, 20};
    uint64_t t0 = sb_now_ns();
    ASSERT_EQ(0, sb_timer_start(L.loop, &a.t, 30000000, t_cb));
    ASSERT_EQ(0, sb_timer_start(L.loop, &b.t, 10000000, t_cb));
    ASSERT_EQ(0, sb_timer_start(L.loop, &c.t, 20000000, t_cb));
    ASSERT_TRUE(L.run_until([&] { return log.size() == 3; }));
    EXPECT_EQ((std::vector<int>{10, 20, 30}), log);
    EXPECT_GE(b.fired_at - t0, 10000000u);
    EXPECT_GE(a.fired_at - t0, 30000000u);
    EXPECT_TRUE(sb_timer_idle(&a.t));
}

TEST(Timer, CancelledTimerNeverFires)
{
    Loop L;
    std::vector<int> log;
    T a{{}, &log, 1}, b{{}, &log, 2};
    ASSERT_EQ(0, sb_timer_start(L.loop, &a.t, 20000000, t_cb));
    ASSERT_EQ(0, sb_timer_start(L.loop, &b.t, 60000000, t_cb));
    ASSERT_EQ(0, sb_timer_cancel(L.loop, &a.t));
    ASSERT_TRUE(L.run_until([&] { return log.size() == 1; }));
    EXPECT_EQ((std::vector<int>{2}), log);
    EXPECT_TRUE(L.run_until([&] { return sb_timer_idle(&a.t); }));
    EXPECT_EQ(0, sb_timer_cancel(L.loop, &a.t)); // not armed: no-op
}

static int idle_calls;
static void idle_cb(sb_timer *)
{
    idle_calls++;
}

// A cancelled far timer says when its last SQE is back (what a closing stream waits for),
// once, and its own callback never runs.
TEST(Timer, IdleCallbackAfterCancelComesOnceWithoutTheExpiry)
{
    Loop L;
    std::vector<int> log;
    T a{{}, &log, 1};
    idle_calls = 0;
    ASSERT_EQ(0, sb_timer_start(L.loop, &a.t, 60000000000ull, t_cb));
    sb_loop_run_once(L.loop, 0); // in the kernel now
    ASSERT_EQ(0, sb_timer_cancel(L.loop, &a.t));
    EXPECT_FALSE(sb_timer_idle(&a.t));
    a.t.idle_fn = idle_cb;
    ASSERT_TRUE(L.run_until([&] { return idle_calls > 0; }, 1000000000ull));
    EXPECT_TRUE(sb_timer_idle(&a.t));
    EXPECT_EQ(nullptr, a.t.idle_fn);
    sb_loop_run_once(L.loop, 20000000);
    EXPECT_EQ(1, idle_calls);
    EXPECT_TRUE(log.empty());
}

TEST(Timer, RestartMovesTheDeadlineAndFiresOnce)
{
    Loop L;
    std::vector<int> log;
    T a{{}, &log, 1};
    uint64_t t0 = sb_now_ns();
    ASSERT_EQ(0, sb_timer_start(L.loop, &a.t, 10000000, t_cb));
    ASSERT_EQ(0, sb_timer_start(L.loop, &a.t, 80000000, t_cb));
    ASSERT_TRUE(L.run_until([&] { return log.size() == 1; }));
    EXPECT_GE(a.fired_at - t0, 80000000u);
    sb_loop_run_once(L.loop, 50000000);
    EXPECT_EQ(1u, log.size());
}

TEST(Timer, StaleExpiryAfterCancelAndRestartIsIgnored)
{
    Loop L;
    std::vector<int> log;
    T a{{}, &log, 1};
    ASSERT_EQ(0, sb_timer_start(L.loop, &a.t, 1000, t_cb));
    usleep(5000); // the 1 us timeout has expired in the kernel before we cancel it
    ASSERT_EQ(0, sb_timer_cancel(L.loop, &a.t));
    uint64_t t0 = sb_now_ns();
    ASSERT_EQ(0, sb_timer_start(L.loop, &a.t, 50000000, t_cb));
    ASSERT_TRUE(L.run_until([&] { return log.size() == 1; }));
    EXPECT_GE(a.fired_at - t0, 50000000u);
}

static void periodic_cb(sb_timer *t);
struct P {
    sb_timer t{};
    sb_loop *loop;
    int n = 0;
};
static void periodic_cb(sb_timer *t)
{
    P *p = reinterpret_cast<P *>(t);
    if (++p->n < 5)
        sb_timer_start(p->loop, &p->t, 2000000, periodic_cb);
    else
        sb_loop_stop(p->loop);
}

TEST(Timer, RearmFromCallbackAndStopTheLoop)
{
    Loop L;
    P p;
    p.loop = L.loop;
    ASSERT_EQ(0, sb_timer_start(L.loop, &p.t, 2000000, periodic_cb));
    ASSERT_EQ(0, sb_loop_run(L.loop));
    EXPECT_EQ(5, p.n);
    EXPECT_TRUE(sb_loop_stopping(L.loop));
}

// ---- futex ops ----

struct Shm {
    int fd = -1;
    uint32_t *word = nullptr;
    Shm()
    {
        fd = memfd_create("segbus-futex-test", MFD_CLOEXEC);
        EXPECT_GE(fd, 0);
        EXPECT_EQ(0, ftruncate(fd, 4096));
        word =
            static_cast<uint32_t *>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        EXPECT_NE(MAP_FAILED, word);
    }
    ~Shm()
    {
        munmap(word, 4096);
        close(fd);
    }
};

TEST(Futex, WaitOnTheLoopIsWokenByFutexWakeFromAnotherProcess)
{
    Loop L;
    Shm shm;
    *shm.word = 7;
    std::vector<int> log;
    Rec w{{}, &log, 1};
    sb_prep_futex_wait(sb_loop_sqe(L.loop, &w.op, rec_cb), shm.word, 7, FUTEX2_SIZE_U32);
    ASSERT_EQ(0, sb_loop_run_once(L.loop, 0)); // submitted and armed, nothing completed
    int go[2];
    ASSERT_EQ(0, pipe(go));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // The child maps the memfd afresh (another virtual address) and wakes through futex(2).
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(100);
        auto *w2 = static_cast<uint32_t *>(
            mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, shm.fd, 0));
        if (w2 == MAP_FAILED)
            _exit(101);
        __atomic_store_n(w2, 8, __ATOMIC_SEQ_CST);
        long n = syscall(SYS_futex, w2, FUTEX_WAKE, 1, nullptr, nullptr, 0);
        _exit(n < 0 ? 102 : static_cast<int>(n));
    }
    sb_loop_run_once(L.loop, 20000000);
    EXPECT_TRUE(log.empty()); // still waiting
    ASSERT_EQ(1, write(go[1], "x", 1));
    ASSERT_TRUE(L.run_until([&] { return log.size() == 1; }));
    EXPECT_EQ(0, w.res);
    int st = 0;
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(1, WEXITSTATUS(st)); // the child's wake found exactly our waiter
    EXPECT_EQ(8u, *shm.word);
    close(go[0]);
    close(go[1]);
}

TEST(Futex, PrivateWakeDoesNotWakeASharedWait)
{
    Loop L;
    Shm shm;
    *shm.word = 0;
    std::vector<int> log;
    Rec w{{}, &log, 1};
    sb_prep_futex_wait(sb_loop_sqe(L.loop, &w.op, rec_cb), shm.word, 0, FUTEX2_SIZE_U32);
    sb_loop_run_once(L.loop, 0);
    long n = syscall(SYS_futex, shm.word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    EXPECT_EQ(0, n);
    sb_loop_run_once(L.loop, 20000000);
    EXPECT_TRUE(log.empty());
    ASSERT_EQ(0, sb_loop_cancel(L.loop, &w.op));
    ASSERT_TRUE(L.run_until([&] { return log.size() == 1; }));
    EXPECT_EQ(-ECANCELED, w.res);
}

TEST(Futex, ValueMismatchFailsAtOnceWithEagain)
{
    Loop L;
    Shm shm;
    *shm.word = 5;
    std::vector<int> log;
    Rec w{{}, &log, 1};
    sb_prep_futex_wait(sb_loop_sqe(L.loop, &w.op, rec_cb), shm.word, 4, FUTEX2_SIZE_U32);
    ASSERT_TRUE(L.run_until([&] { return log.size() == 1; }));
    EXPECT_EQ(-EAGAIN, w.res);
}

TEST(Futex, WakeOpOnTheLoopWakesAWaiterOnTheLoop)
{
    Loop L;
    Shm shm;
    *shm.word = 0;
    std::vector<int> log;
    Rec w{{}, &log, 1}, k{{}, &log, 2};
    sb_prep_futex_wait(sb_loop_sqe(L.loop, &w.op, rec_cb), shm.word, 0, FUTEX2_SIZE_U32);
    sb_loop_run_once(L.loop, 0);
    sb_prep_futex_wake(sb_loop_sqe(L.loop, &k.op, rec_cb), shm.word, 1, FUTEX2_SIZE_U32);
    ASSERT_TRUE(L.run_until([&] { return log.size() == 2; }));
    EXPECT_EQ(0, w.res);
    EXPECT_EQ(1, k.res);
}

} // namespace
