/* loop.c: the daemon's one io_uring event loop: setup with fallbacks, CQE dispatch, timers. */
#include "net/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

struct sb_loop {
    struct io_uring ring;
    unsigned setup_flags;
    bool stop;
    struct io_uring_probe *probe;
};

/* CQEs of cancel requests: their result only says whether the target was found, which the
 * target's own CQE tells its owner anyway. */
static void ignore_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)op;
    (void)res;
    (void)flags;
}
static struct sb_op ignore_op = {ignore_cqe};

int sb_loop_new(struct sb_loop **out, unsigned entries)
{
    *out = NULL;
    if (entries == 0 || (entries & (entries - 1)) != 0)
        return -EINVAL;
    struct sb_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    /* Try the best setup first, then drop what older kernels refuse (-EINVAL). The CQ is 4x the
     * SQ because multishot accept/recv post many CQEs per SQE. */
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 4;
        ret = io_uring_queue_init_params(entries, &loop->ring, &p);
        if (ret == 0) {
            loop->setup_flags = tries[i] | IORING_SETUP_CQSIZE;
            break;
        }
        if (ret != -EINVAL)
            break;
    }
    if (ret < 0) {
        free(loop);
        return ret;
    }
    if (!(loop->setup_flags & IORING_SETUP_DEFER_TASKRUN))
        sb_warn("loop", "kernel refused SINGLE_ISSUER|DEFER_TASKRUN; using setup flags 0x%x",
                loop->setup_flags);
    /* Saves an fd lookup per io_uring_enter; failure only costs that. */
    (void)io_uring_register_ring_fd(&loop->ring);
    loop->probe = io_uring_get_probe_ring(&loop->ring);
    *out = loop;
    return 0;
}

void sb_loop_free(struct sb_loop *loop)
{
    if (!loop)
        return;
    if (loop->probe)
        io_uring_free_probe(loop->probe);
    io_uring_queue_exit(&loop->ring);
    free(loop);
}

struct io_uring_sqe *sb_loop_sqe(struct sb_loop *loop, struct sb_op *op, sb_op_fn fn)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    if (!sqe) {
        io_uring_submit(&loop->ring);
        sqe = io_uring_get_sqe(&loop->ring);
        if (!sqe)
            return NULL;
    }
    op->fn = fn;
    io_uring_sqe_set_data(sqe, op);
    return sqe;
}

static int dispatch(struct sb_loop *loop)
{
    int n = 0;
    struct io_uring_cqe *cqe;
    /* Only the CQEs that are ready now. Callbacks post SQEs, and sb_loop_sqe() submits them
     * when the SQ is full, without waiting: ops that complete inline (NOPs, the stream's finish
     * step) then add CQEs while we dispatch. Chasing those could go on forever, and with
     * DEFER_TASKRUN everything that completes through task work (timeouts, cancellations,
     * socket and signalfd reads) is only run when the loop waits in io_uring_enter(GETEVENTS):
     * segbusd once spun here after a 100 k-event hub run and never saw SIGTERM. */
    unsigned budget = io_uring_cq_ready(&loop->ring);
    /* Mark each CQE seen before its callback: a callback may free the op, submit, or run the
     * loop no further; the CQ slot must not be held across it. */
    while (budget-- > 0 && io_uring_peek_cqe(&loop->ring, &cqe) == 0) {
        struct sb_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cqe_seen(&loop->ring, cqe);
        if (op && op->fn)
            op->fn(op, res, flags);
        n++;
    }
    return n;
}

int sb_loop_run_once(struct sb_loop *loop, int64_t timeout_ns)
{
    int ret;
    struct io_uring_cqe *cqe = NULL;
    if (timeout_ns == 0 || io_uring_cq_ready(&loop->ring) > 0) {
        /* With DEFER_TASKRUN completions that go through task work are only posted inside
         * io_uring_enter(GETEVENTS), and liburing's wait calls skip that flag when a CQE is
         * already there: CQEs of ops that complete inline (posted while the last round was
         * dispatched) would then starve every timeout and read, round after round. */
        ret = io_uring_submit_and_get_events(&loop->ring);
    } else if (timeout_ns < 0) {
        ret = io_uring_submit_and_wait(&loop->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                       .tv_nsec = timeout_ns % 1000000000};
        /* liburing 2.3 returns the number submitted even when the wait timed out: the CQ is
         * what tells. */
        ret = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
    }
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN)
        return ret;
    return dispatch(loop);
}

int sb_loop_run(struct sb_loop *loop)
{
    loop->stop = false;
    while (!loop->stop) {
        int ret = sb_loop_run_once(loop, -1);
        if (ret < 0)
            return ret;
    }
    return 0;
}

void sb_loop_stop(struct sb_loop *loop)
{
    loop->stop = true;
}

bool sb_loop_stopping(const struct sb_loop *loop)
{
    return loop->stop;
}

struct io_uring *sb_loop_ring(struct sb_loop *loop)
{
    return &loop->ring;
}

unsigned sb_loop_setup_flags(const struct sb_loop *loop)
{
    return loop->setup_flags;
}

bool sb_loop_supports(const struct sb_loop *loop, unsigned opcode)
{
    return loop->probe && opcode <= 255 && io_uring_opcode_supported(loop->probe, (int)opcode);
}

int sb_loop_cancel(struct sb_loop *loop, struct sb_op *op)
{
    struct io_uring_sqe *sqe = sb_loop_sqe(loop, &ignore_op, ignore_cqe);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_cancel(sqe, op, IORING_ASYNC_CANCEL_ALL);
    return 0;
}

uint64_t sb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A timer fires only on the CQE of its last timeout SQE (pending drops to 0): an expiry that
 * raced with a cancel or a restart belongs to an older SQE and is stale. */
static void timer_cqe(struct sb_op *op, int res, uint32_t flags)
{
    (void)flags;
    struct sb_timer *t = SB_CONTAINER_OF(op, struct sb_timer, op);
    if (t->pending > 0)
        t->pending--;
    if (t->pending != 0)
        return;
    if (res == -ETIME && t->armed) {
        t->armed = false;
        t->fn(t); /* may free t: touch nothing after it */
        return;
    }
    if (!t->armed && t->idle_fn) {
        sb_timer_fn idle = t->idle_fn;
        t->idle_fn = NULL;
        idle(t);
    }
}

static int timer_remove(struct sb_loop *loop, struct sb_timer *t)
{
    struct io_uring_sqe *sqe = sb_loop_sqe(loop, &t->cancel_op, ignore_cqe);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&t->op, 0);
    return 0;
}

int sb_timer_start(struct sb_loop *loop, struct sb_timer *timer, uint64_t after_ns, sb_timer_fn fn)
{
    if (!fn)
        return -EINVAL;
    if (timer->armed) {
        int ret = timer_remove(loop, timer);
        if (ret < 0)
            return ret;
        timer->armed = false;
    }
    struct io_uring_sqe *sqe = sb_loop_sqe(loop, &timer->op, timer_cqe);
    if (!sqe)
        return -EBUSY;
    uint64_t deadline = sb_now_ns() + after_ns;
    /* Absolute deadline: the SQE may be submitted a little later than this call. The kernel
     * copies ts at submission, and ts lives in the timer until then. */
    timer->ts.tv_sec = (long long)(deadline / 1000000000u);
    timer->ts.tv_nsec = (long long)(deadline % 1000000000u);
    io_uring_prep_timeout(sqe, &timer->ts, 0, IORING_TIMEOUT_ABS);
    timer->fn = fn;
    timer->armed = true;
    timer->pending++;
    return 0;
}

int sb_timer_cancel(struct sb_loop *loop, struct sb_timer *timer)
{
    if (!timer->armed)
        return 0;
    timer->armed = false;
    return timer_remove(loop, timer);
}
