/* kafka_waker.h: a librdkafka queue served from the io_uring loop, without blocking it and
 * without a polling timer.
 *
 * rd_kafka_queue_io_event_enable() makes librdkafka write to an eventfd when an element is
 * enqueued on the queue while it was empty; an io_uring read on that eventfd wakes the loop,
 * which calls fn(arg) (serve the queue with a zero timeout) and re-arms the read. librdkafka
 * writes again only after the queue was empty, so fn must either empty the queue or make sure
 * something (the daemon's tick) comes back for the rest.
 *
 * Shared by the kafka output (its main queue: delivery reports) and the kafka input (its
 * consumer queue: messages, rebalances, commit results), with the log callback both use. */
#ifndef SEGBUS_KAFKA_INPUT_KAFKA_WAKER_H
#define SEGBUS_KAFKA_INPUT_KAFKA_WAKER_H

#include <librdkafka/rdkafka.h>

#include "net/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_kafka_waker;

/* Wake fn(arg) on loop whenever q becomes non-empty. Takes q (a handle from
 * rd_kafka_queue_get_*) whatever the outcome. 0, or -errno (eventfd, no SQE). */
int sb_kafka_waker_new(struct sb_kafka_waker **out, struct sb_loop *loop, rd_kafka_queue_t *q,
                       void (*fn)(void *arg), void *arg);
/* librdkafka's log lines (from its own threads) as segbusd log lines, module "rdkafka":
 * rd_kafka_conf_set_log_cb(conf, sb_kafka_log). Levels are syslog's: up to 4 become warnings
 * (the error callbacks report what matters as errors), 5-6 info, 7 debug. */
void sb_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
/* Stop the events (call before rd_kafka_destroy of the queue's handle) and release the queue.
 * An eventfd read still in flight is cancelled; the waker frees itself when it completes.
 * NULL is a no-op. */
void sb_kafka_waker_free(struct sb_kafka_waker *w);

#ifdef __cplusplus
}
#endif
#endif
