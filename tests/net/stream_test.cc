// stream_test.cc: closing streams on the io_uring loop: many streams closed at once from inside a
// callback all finish, and the loop keeps serving completions that arrive through deferred task
// work (timeouts, signalfd reads) meanwhile: the shutdown hang seen after a 100 k hub run.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include <liburing.h>

extern "C" {
#include "net/loop.h"
#include "net/stream.h"
}

namespace
{

// Run fn in a child process and give it max_ms to exit: a loop that livelocks never returns to
// the test, so only a separate process can be watched and killed. Returns the exit status, or
// -1 if it had to be killed.
template <class F> int in_child(F fn, int max_ms)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    for (int i = 0; i < max_ms; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
}

struct Many {
    sb_loop *loop = nullptr;
    std::vector<sb_stream> s;
    std::vector<int> peers;
    int closed = 0, deadlines = 0;
    sb_timer trigger{}, probe{};
    bool probe_fired = false;
};

Many *g_many;

void on_read(sb_stream *) {}
void on_close(sb_stream *, int)
{
    g_many->closed++;
}
const sb_stream_cbs cbs = {on_read, nullptr, nullptr, on_close};
void deadline(sb_stream *)
{
    g_many->deadlines++;
}

// SQ of 16 entries (CQ of 64), 24 streams, each with a far deadline (its timer is in the
// kernel), all closed from one timer callback: each close queues a timeout removal and a NOP,
// more than the SQ holds (but not enough to overflow the CQ, which would make liburing enter
// the kernel to flush it), so SQEs are submitted from inside the dispatch of completions. The
// removals' completions come back as deferred task work, which the kernel runs only when the loop
// waits for completions. A loop that keeps dispatching the NOPs it posts itself never waits: no
// stream finishes, and neither a later timer nor a signal is ever seen.
int close_many_from_a_callback()
{
    Many m;
    g_many = &m;
    if (sb_loop_new(&m.loop, 16) != 0)
        return 10;
    const int n = 24;
    m.s.resize(n);
    for (int i = 0; i < n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            return 11;
        m.peers.push_back(sv[1]);
        if (sb_stream_init(&m.s[i], m.loop, sv[0], &cbs, &m) != 0)
            return 12;
        if (sb_stream_deadline(&m.s[i], 60ull * 1000000000ull, deadline) != 0)
            return 13;
    }
    sb_timer_start(m.loop, &m.trigger, 20000000ull, [](sb_timer *) {
        for (auto &st : g_many->s)
            sb_stream_close(&st, 0);
    });
    sb_timer_start(m.loop, &m.probe, 100000000ull, [](sb_timer *) { g_many->probe_fired = true; });
    uint64_t end = sb_now_ns() + 3000000000ull;
    while ((m.closed < n || !m.probe_fired) && sb_now_ns() < end)
        sb_loop_run_once(m.loop, 10000000);
    for (int fd : m.peers)
        close(fd);
    int rc = m.closed == n && m.probe_fired && m.deadlines == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "closed %d of %d, probe %d, deadlines %d\n", m.closed, n, m.probe_fired,
                m.deadlines);
    for (int i = 0; i < 20; i++)
        sb_loop_run_once(m.loop, 1000000);
    sb_loop_free(m.loop);
    return rc;
}

TEST(StreamClose, ManyClosedFromACallbackAllFinishAndTheLoopStaysResponsive)
{
    EXPECT_EQ(0, in_child(close_many_from_a_callback, 10000))
        << "-1: the loop livelocked dispatching its own completions";
}

// The same through the daemon's signal path: SIGTERM read from a signalfd on the loop while 24
// streams are closing must be seen within the second.
int sigterm_while_closing()
{
    Many m;
    g_many = &m;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0 || sb_loop_new(&m.loop, 16) != 0)
        return 10;
    const int n = 24;
    m.s.resize(n);
    for (int i = 0; i < n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
            return 11;
        m.peers.push_back(sv[1]);
        if (sb_stream_init(&m.s[i], m.loop, sv[0], &cbs, &m) != 0 ||
            sb_stream_deadline(&m.s[i], 60ull * 1000000000ull, deadline) != 0)
            return 12;
    }
    struct Sig {
        sb_op op;
        signalfd_siginfo si;
        bool seen = false;
    } sig{};
    io_uring_sqe *sqe = sb_loop_sqe(m.loop, &sig.op, [](sb_op *op, int res, uint32_t) {
        Sig *x = SB_CONTAINER_OF(op, Sig, op);
        x->seen = res == (int)sizeof x->si && x->si.ssi_signo == SIGTERM;
    });
    io_uring_prep_read(sqe, sfd, &sig.si, sizeof sig.si, 0);
    sb_timer_start(m.loop, &m.trigger, 20000000ull, [](sb_timer *) {
        for (auto &st : g_many->s)
            sb_stream_close(&st, 0);
        kill(getpid(), SIGTERM);
    });
    uint64_t end = sb_now_ns() + 1000000000ull;
    while (!sig.seen && sb_now_ns() < end)
        sb_loop_run_once(m.loop, 10000000);
    for (int i = 0; i < 20 && m.closed < n; i++)
        sb_loop_run_once(m.loop, 10000000);
    for (int fd : m.peers)
        close(fd);
    sb_loop_free(m.loop);
    close(sfd);
    return sig.seen && m.closed == n ? 0 : 1;
}

TEST(StreamClose, SigtermIsSeenWhileManyStreamsClose)
{
    EXPECT_EQ(0, in_child(sigterm_while_closing, 5000))
        << "-1: the loop livelocked dispatching its own completions";
}

} // namespace
