/* bench_kafka.c: events/s of the Kafka output (runner, spool, idempotent producer, delivery
 * reports served on the io_uring loop) into librdkafka's mock cluster of 3 brokers.
 * Usage: bench_kafka json|msgpack EVENTS. Prints one JSON line. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "bench_event.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "net/loop.h"
#include "outputs/output.h"
#include "spool/spool.h"

static struct sb_output_runner *runner;

static void on_durable(void *arg, uint64_t seq)
{
    (void)arg;
    if (runner)
        sb_output_runner_on_durable(runner, seq);
}

int main(int argc, char **argv)
{
    const char *format = argc > 1 ? argv[1] : "json";
    long n = argc > 2 ? atol(argv[2]) : 100000;
    char err[512], tmpl[] = "/tmp/segbus-bench-kafka-XXXXXX", spool_dir[300], user[32];
    rd_kafka_conf_t *mconf = rd_kafka_conf_new();
    rd_kafka_conf_set(mconf, "log_level", "3", err, sizeof err); /* the mock's own handle */
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof err);
    rd_kafka_mock_cluster_t *mc = mrk ? rd_kafka_mock_cluster_new(mrk, 3) : NULL;
    struct sb_loop *loop;
    struct sb_spool *spool;
    struct sb_spool_opts sp;
    struct sb_metrics *m;
    struct sb_config cfg;
    struct sb_output_config oc;
    const char *names[] = {"kafka"};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint64_t t0, t1, sent;

    if (!mc || !mkdtemp(tmpl) || sb_loop_new(&loop, 256) || sb_metrics_new(&m)) {
        fprintf(stderr, "bench_kafka: set-up failed\n");
        return 1;
    }
    rd_kafka_mock_topic_create(mc, "segbus.web", 8, 3);
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", tmpl);
    sb_spool_opts_init(&sp);
    sp.dir = spool_dir;
    sp.segment_bytes = 64 << 20;
    sp.max_bytes = 1ull << 30;
    sp.on_durable = on_durable;
    if (sb_spool_open(&spool, loop, &sp, names, 1) || sb_config_defaults(&cfg) ||
        sb_output_defaults(&oc, SB_OUTPUT_KAFKA, &cfg))
        return 1;
    oc.name = strdup("kafka");
    oc.brokers = strdup(rd_kafka_mock_cluster_bootstraps(mc));
    oc.topic = strdup("segbus.web");
    oc.value_format = strdup(format);
    oc.batch.max_events = 2500;
    if (sb_output_runner_new(&runner, &oc, 0, loop, spool, spool_dir, m, err, sizeof err)) {
        fprintf(stderr, "bench_kafka: %s\n", err);
        return 1;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    t0 = sb_now_ns();
    for (long i = 0; i < n; i++) {
        bench_pack_event(&sb, &pk, i, user);
        while (sb_output_runner_backlog(runner)) { /* the spool is full: let it drain */
            sb_loop_run_once(loop, 1000000);
            sb_output_runner_tick(runner, sb_now_ns(), false);
        }
        if (sb_output_runner_add(runner, (const uint8_t *)sb.data, sb.size, sb_now_ns()))
            return 1;
        if (i % 2500 == 0) {
            sb_loop_run_once(loop, 0);
            sb_output_runner_tick(runner, sb_now_ns(), false);
        }
    }
    sb_output_runner_tick(runner, sb_now_ns(), true);
    while (!sb_output_runner_idle(runner) && sb_now_ns() - t0 < 120 * SB_NS_PER_S) {
        sb_loop_run_once(loop, 5000000);
        sb_output_runner_tick(runner, sb_now_ns(), false);
    }
    t1 = sb_now_ns();
    printf("{\"suite\":\"kafka\",\"case\":\"output_mock_%s\",\"unit\":\"events/s\",\"value\":%.0f,"
           "\"events\":%ld,\"sent\":%llu,\"seconds\":%.3f}\n",
           format, (double)sb_output_runner_counters(runner)->sent * 1e9 / (double)(t1 - t0), n,
           (unsigned long long)sb_output_runner_counters(runner)->sent, (double)(t1 - t0) / 1e9);
    sent = sb_output_runner_counters(runner)->sent;
    sb_output_runner_free(runner);
    runner = NULL;
    sb_spool_close(spool);
    for (int i = 0; i < 10; i++)
        sb_loop_run_once(loop, 1000000);
    sb_loop_free(loop);
    sb_metrics_free(m);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    msgpack_sbuffer_destroy(&sb);
    snprintf(err, sizeof err, "rm -rf '%s'", tmpl);
    return system(err) == 0 && sent == (uint64_t)n ? 0 : 1;
}
