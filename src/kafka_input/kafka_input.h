/* kafka_input.h: the Kafka input of a delivery worker: a consumer group on the configured
 * topics whose messages enter the daemon's pipeline like the hub's requests do, with offsets
 * committed only once the events they carried are durable in the worker's spool.
 *
 * - One librdkafka consumer (its own broker threads); its consumer queue (messages, rebalance
 *   events, commit results) is served on the daemon's io_uring loop through an eventfd
 *   (kafka_waker.h) and on every tick, always with a zero timeout: the loop never blocks.
 * - Each message's value (msgpack or JSON, as configured or detected) goes through the sink,
 *   which runs the pipeline and hands the event to every output's batcher. Its header
 *   "source" (written by the kafka output) gives the event its source.
 * - Offsets: after each round of messages the input notes, per output, how many events had
 *   been handed to it (sink->added); once every output has that many durable (sink->durable),
 *   the round's highest offset per partition is committed (asynchronous, explicit per
 *   partition; auto commit is forced off). A worker killed before that re-reads the messages.
 * - Rebalances: on a revoke the input stops taking the revoked partitions' messages (the next
 *   owner reads them from the last commit), waits up to kafka_input.revoke_timeout for what it
 *   already took from them to become durable, commits it, waits for the commit's answer, and
 *   only then gives the partitions up (rd_kafka_assign / incremental_unassign called from the
 *   loop, after the callback). So the next owner starts exactly where this one's durable
 *   events end: nothing lost, nothing repeated (past the timeout, repeats are possible and the
 *   dedup window or an idempotent destination absorbs them).
 * - Backpressure: while the sink is busy (outputs backlogged, shutting down) nothing is
 *   consumed; librdkafka stops fetching once its local queue is full.
 */
#ifndef SEGBUS_KAFKA_INPUT_KAFKA_INPUT_H
#define SEGBUS_KAFKA_INPUT_KAFKA_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "config/config.h"
#include "hub/hub.h" /* struct sb_hub_sink: how an input hands events to the daemon */
#include "net/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sb_metrics;
struct sb_kafka_input;

struct sb_kafka_input_stats {
    uint64_t messages;        /* consumed and handed to the sink */
    uint64_t undecodable;     /* values neither msgpack nor JSON maps: skipped, committed past */
    uint64_t skipped_revoked; /* messages of partitions being revoked: left to the next owner */
    uint64_t rebalances;      /* assignments and revocations */
    uint64_t commits;         /* offset commits answered without error */
    uint64_t commit_failures; /* answered with an error (committed again later) */
    uint64_t revoke_timeouts; /* revokes that gave partitions up before all was durable */
    uint32_t assigned;        /* partitions assigned now */
};

enum sb_kafka_value_format {
    SB_KAFKA_VALUE_AUTO,    /* a JSON object or a msgpack map, told apart by the first byte */
    SB_KAFKA_VALUE_JSON,    /* JSON text */
    SB_KAFKA_VALUE_MSGPACK, /* msgpack as the kafka output writes it */
};

/* A message value (outside bytes) as an event's msgpack map: value itself (msgpack) or
 * scratch's bytes (JSON converted; scratch is cleared first). NULL when the value is not a
 * JSON object or a msgpack map (the map's content is the pipeline's verify's business). */
const uint8_t *sb_kafka_value_decode(enum sb_kafka_value_format fmt, const void *value, size_t len,
                                     msgpack_sbuffer *scratch, size_t *out_len);

/* Check cfg->kafka_input's librdkafka properties without connecting (segbusd --check-config).
 * 0 (also when there is no kafka input), or -EINVAL with err naming the property and line. */
int sb_kafka_input_check(const struct sb_config *cfg, char *err, size_t errlen);
/* Start the consumer of cfg->kafka_input (brokers must be set) on loop; events go to sink (on
 * the loop thread). metrics may be NULL. cfg and sink must outlive the input. 0, or -errno
 * with err naming what is wrong (a bad librdkafka property names its line). */
int sb_kafka_input_new(struct sb_kafka_input **out, struct sb_loop *loop,
                       const struct sb_config *cfg, const struct sb_hub_sink *sink,
                       struct sb_metrics *metrics, char *err, size_t errlen);
/* Periodic (the daemon's tick): consume what is queued (unless the sink is busy),
 * commit what became durable, finish pending revokes. Never blocks. */
void sb_kafka_input_poll(struct sb_kafka_input *in);
/* The spool made records durable: commit what that covers (consumes nothing). */
void sb_kafka_input_on_durable(struct sb_kafka_input *in);
void sb_kafka_input_get_stats(const struct sb_kafka_input *in, struct sb_kafka_input_stats *st);
/* Commit what is durable, leave the group (this blocks for the group's answer, bounded by
 * librdkafka's timeouts) and free. Call before the outputs go (it asks the sink what is
 * durable). NULL is a no-op. */
void sb_kafka_input_free(struct sb_kafka_input *in);

#ifdef __cplusplus
}
#endif
#endif
