/* uring_ops.h: hand-prepared SQEs for io_uring opcodes that liburing 2.3 has no helpers for.
 *
 * The opcode numbers and flag values are kernel ABI (include/uapi/linux/io_uring.h and
 * linux/futex.h of Linux 6.7+), so they are spelled out here under our own names: they cannot
 * clash with a newer liburing that declares them as enum members. Every helper starts from
 * io_uring_prep_rw(), which zeroes the fields the kernel insists on being zero.
 */
#ifndef SEGBUS_NET_URING_OPS_H
#define SEGBUS_NET_URING_OPS_H

#include <stdint.h>

#include <liburing.h>

enum {
    SB_IORING_OP_FUTEX_WAIT = 51, /* Linux 6.7 */
    SB_IORING_OP_FUTEX_WAKE = 52, /* Linux 6.7 */
};

/* futex2 flags (Debian 12's linux/futex.h predates them). */
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02u
#endif
#ifndef FUTEX2_PRIVATE
#define FUTEX2_PRIVATE 128u
#endif
#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#endif

/* Wait until *uaddr is woken, provided it still holds `expected` when the kernel looks (else the
 * CQE is -EAGAIN at once). flags: FUTEX2_SIZE_U32, without FUTEX2_PRIVATE for a word in memory
 * shared with other processes (a memfd): a private wait is keyed on this process's mm and is
 * never woken from another process. One-shot: re-arm after each CQE. CQE res: 0 woken,
 * -EAGAIN value differed, -ECANCELED cancelled. */
static inline void sb_prep_futex_wait(struct io_uring_sqe *sqe, const uint32_t *uaddr,
                                      uint32_t expected, uint32_t flags)
{
    io_uring_prep_rw(SB_IORING_OP_FUTEX_WAIT, sqe, (int)flags, uaddr, 0, expected);
    sqe->addr3 = FUTEX_BITSET_MATCH_ANY; /* the kernel rejects a zero mask with -EINVAL */
}

/* Wake up to `count` waiters of *uaddr (same flags rule as the wait). CQE res: number woken. */
static inline void sb_prep_futex_wake(struct io_uring_sqe *sqe, const uint32_t *uaddr,
                                      uint32_t count, uint32_t flags)
{
    io_uring_prep_rw(SB_IORING_OP_FUTEX_WAKE, sqe, (int)flags, uaddr, 0, count);
    sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
}

#endif
