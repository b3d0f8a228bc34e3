/* loop.h: the daemon's one io_uring event loop (SINGLE_ISSUER | DEFER_TASKRUN).
 *
 * Everything the daemon waits on completes through it: the shared ring's futex, the
 * registration socket, timers, network and spool I/O. A caller embeds a struct sb_op in its
 * own state, asks for an SQE bound to it, fills the SQE with io_uring_prep_*() and gets its
 * callback with the CQE's result. Single-threaded: call everything from the loop's thread.
 */
#ifndef SEGBUS_NET_LOOP_H
#define SEGBUS_NET_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

struct sb_loop;
struct sb_op;

/* Called once per CQE of the op: res is the CQE's res (-errno on failure), flags its flags
 * (IORING_CQE_F_MORE for multishot ops: more CQEs follow). */
typedef void (*sb_op_fn)(struct sb_op *op, int res, uint32_t flags);

/* One in-flight operation. Embed it and recover the owner with SB_CONTAINER_OF. It must stay
 * valid until its last CQE has been delivered. */
struct sb_op {
    sb_op_fn fn;
};

/* via void *: the member's address came from a real `type`, so its alignment is fine */
#define SB_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Create a loop with an SQ of `entries` (a power of two). 0 or -errno. */
int sb_loop_new(struct sb_loop **out, unsigned entries);
/* Free a loop. In-flight ops are abandoned (their callbacks are not called). NULL is a no-op. */
void sb_loop_free(struct sb_loop *loop);

/* An SQE bound to op (user_data = op, op->fn set to fn). Submits pending SQEs to make room when
 * the SQ is full; NULL only if the kernel refuses even then. The caller fills it with
 * io_uring_prep_*() before the next call into the loop. */
struct io_uring_sqe *sb_loop_sqe(struct sb_loop *loop, struct sb_op *op, sb_op_fn fn);

/* Submit what is queued, wait until at least one CQE arrives or timeout_ns passes (negative:
 * no limit, 0: do not wait), and dispatch every CQE that is ready. Returns the number of CQEs
 * dispatched, or -errno. */
int sb_loop_run_once(struct sb_loop *loop, int64_t timeout_ns);

/* Run until sb_loop_stop(). 0, or -errno on a loop failure. */
int sb_loop_run(struct sb_loop *loop);
void sb_loop_stop(struct sb_loop *loop);
bool sb_loop_stopping(const struct sb_loop *loop);

/* The raw ring, for ops that need io_uring_register_*(). */
struct io_uring *sb_loop_ring(struct sb_loop *loop);

/* The IORING_SETUP_* flags the ring was created with (the loop falls back from
 * SINGLE_ISSUER | DEFER_TASKRUN on kernels older than 6.1). */
unsigned sb_loop_setup_flags(const struct sb_loop *loop);
/* Whether the kernel supports an opcode (io_uring_get_probe at creation). */
bool sb_loop_supports(const struct sb_loop *loop, unsigned opcode);

/* Ask the kernel to cancel every in-flight SQE bound to op (IORING_OP_ASYNC_CANCEL). The op's
 * callback still gets its CQE(s) (usually -ECANCELED, or the result if it finished first): the
 * op must stay valid until then. 0 or -errno (no SQE). */
int sb_loop_cancel(struct sb_loop *loop, struct sb_op *op);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sb_now_ns(void);

/* A one-shot timer on the loop (IORING_OP_TIMEOUT, absolute CLOCK_MONOTONIC deadline). Re-arm
 * from the callback for periodic work. Starting an armed timer moves its deadline. Cancelling a
 * timer that is not armed is a no-op; once cancelled, its callback is not called. The struct
 * must stay valid until the kernel has returned every timeout SQE (sb_timer_idle()); zero it
 * before first use. */
struct sb_timer;
typedef void (*sb_timer_fn)(struct sb_timer *timer);
struct sb_timer {
    struct sb_op op;
    struct sb_op cancel_op;
    struct __kernel_timespec ts;
    sb_timer_fn fn;
    /* Optional: called once, when the last SQE of the timer completes while it is not armed
     * (cleared before the call). Set it after a cancel to learn when the memory may go,
     * instead of polling sb_timer_idle(). */
    sb_timer_fn idle_fn;
    bool armed;
    unsigned pending; /* timeout SQEs the kernel has not completed yet */
};
int sb_timer_start(struct sb_loop *loop, struct sb_timer *timer, uint64_t after_ns, sb_timer_fn fn);
int sb_timer_cancel(struct sb_loop *loop, struct sb_timer *timer);
/* True when no SQE of the timer is in flight: its memory may be freed. */
static inline bool sb_timer_idle(const struct sb_timer *timer)
{
    return timer->pending == 0;
}

#endif
