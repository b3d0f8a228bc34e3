/* kafka_waker.c: a librdkafka queue's io event on an eventfd, read on the io_uring loop; its
 * log lines in segbusd's log. */
#include "kafka_input/kafka_waker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

struct sb_kafka_waker {
    struct sb_op op;
    uint64_t value;
    int fd;
    bool armed;
    bool dead; /* freed by its owner while the read was in flight */
    struct sb_loop *loop;
    rd_kafka_queue_t *q;
    void (*fn)(void *arg);
    void *arg;
};

static int waker_arm(struct sb_kafka_waker *w);

static void waker_done(struct sb_op *op, int res, uint32_t flags)
{
    struct sb_kafka_waker *w = SB_CONTAINER_OF(op, struct sb_kafka_waker, op);

    (void)flags;
    w->armed = false;
    if (w->dead) {
        close(w->fd);
        free(w);
        return;
    }
    if (res < 0 && res != -EAGAIN && res != -EINTR && res != -ECANCELED)
        sb_error("kafka", "eventfd read: %s", strerror(-res));
    w->fn(w->arg); /* may free nothing of ours: owners free the waker only outside fn */
    if (waker_arm(w) != 0)
        sb_error("kafka", "cannot re-arm the eventfd read: the daemon's tick serves the queue");
}

static int waker_arm(struct sb_kafka_waker *w)
{
    struct io_uring_sqe *sqe;

    if (w->armed)
        return 0;
    sqe = sb_loop_sqe(w->loop, &w->op, waker_done);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_read(sqe, w->fd, &w->value, sizeof w->value, 0);
    w->armed = true;
    return 0;
}

int sb_kafka_waker_new(struct sb_kafka_waker **out, struct sb_loop *loop, rd_kafka_queue_t *q,
                       void (*fn)(void *arg), void *arg)
{
    static const uint64_t one = 1; /* what an eventfd write must be: 8 bytes */
    struct sb_kafka_waker *w = calloc(1, sizeof *w);
    int rc;

    *out = NULL;
    if (!w) {
        rd_kafka_queue_destroy(q);
        return -ENOMEM;
    }
    w->loop = loop;
    w->q = q;
    w->fn = fn;
    w->arg = arg;
    w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->fd < 0) {
        rc = -errno;
        rd_kafka_queue_destroy(q);
        free(w);
        return rc;
    }
    rd_kafka_queue_io_event_enable(q, w->fd, &one, sizeof one);
    if ((rc = waker_arm(w)) != 0) {
        sb_kafka_waker_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void sb_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    enum sb_log_level l = level <= 4 ? SB_LOG_WARN : level <= 6 ? SB_LOG_INFO : SB_LOG_DEBUG;

    sb_log(l, "rdkafka", "%s: %s: %s", rk ? rd_kafka_name(rk) : "-", fac, buf);
}

void sb_kafka_waker_free(struct sb_kafka_waker *w)
{
    if (!w)
        return;
    /* librdkafka must not write to the fd once it is closed (or reused by another file). */
    rd_kafka_queue_io_event_enable(w->q, -1, NULL, 0);
    rd_kafka_queue_destroy(w->q);
    w->q = NULL;
    if (w->armed) {
        w->dead = true;
        (void)sb_loop_cancel(w->loop, &w->op);
        return;
    }
    close(w->fd);
    free(w);
}
