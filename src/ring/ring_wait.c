/* ring_wait.c: the syscall half of the ring's wake-up protocol: FUTEX_WAKE by a producer,
 * spin-then-FUTEX_WAIT by a simple reader (the daemon uses IORING_OP_FUTEX_WAIT instead). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring/ring.h"

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ volatile("" ::: "memory");
#endif
}

int64_t sb_ring_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sb_ring_wake(struct sb_ring *r)
{
    /* Shared (no FUTEX_PRIVATE_FLAG): the reader waits from another process, and the kernel
     * keys shared futexes by the memfd page, not by our address. */
    syscall(SYS_futex, sb_ring_futex_word(r), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int sb_ring_reader_wait(struct sb_ring_reader *rd, int64_t spin_ns, int64_t timeout_ns)
{
    int64_t start = sb_ring_now_ns(), now = start;
    struct timespec ts;

    /* Poll with a pause between looks: the word we poll is the header the next producer
     * writes, and every look takes its cache line away from that producer. */
    while (now - start < spin_ns) {
        if (sb_ring_reader_ready(rd))
            return 1;
        for (int i = 0; i < 32; i++)
            cpu_relax();
        now = sb_ring_now_ns();
    }
    if (!sb_ring_reader_prepare_wait(rd))
        return 1;
    timeout_ns -= now - start;
    if (timeout_ns < 0)
        timeout_ns = 0;
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    syscall(SYS_futex, sb_ring_futex_word(&rd->ring), FUTEX_WAIT, SB_RING_FUTEX_WAITING, &ts, NULL,
            0);
    sb_ring_reader_finish_wait(rd);
    return sb_ring_reader_ready(rd);
}
