/* bench_kafka_input.c: events/s of the Kafka input (consumer group on the io_uring loop,
 * pipeline verify + dedup, output runner, spool fsync) from librdkafka's mock cluster of 3
 * brokers until every event is durable in the worker's spool and its offset committed.
 * Usage: bench_kafka_input json|msgpack EVENTS. Prints one JSON line. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "bench_event.h"
#include "config/config.h"
#include "json/json.h"
#include "kafka_input/kafka_input.h"
#include "metrics/metrics.h"
#include "net/loop.h"
#include "outputs/output.h"
#include "pipeline/dedup.h"
#include "pipeline/stage.h"
#include "pipeline/verify.h"
#include "spool/spool.h"

static struct sb_output_runner *runner;
static struct sb_kafka_input *input;
static struct sb_pipeline *pipeline;

static int submit(void *arg, const uint8_t *ev, size_t len, struct sb_event_meta *meta)
{
    const uint8_t *out;
    size_t n;

    (void)arg;
    meta->now_ns = sb_now_ns();
    if (sb_pipeline_run(pipeline, ev, len, meta, &out, &n) != SB_STAGE_PASS)
        return 0;
    return sb_output_runner_add(runner, out, n, meta->now_ns);
}

static bool busy(void *arg)
{
    (void)arg;
    return sb_output_runner_backlog(runner) > 0;
}

static uint64_t added(void *arg, size_t o)
{
    (void)arg;
    (void)o;
    return sb_output_runner_added(runner);
}

static uint64_t durable(void *arg, size_t o)
{
    (void)arg;
    (void)o;
    return sb_output_runner_durable_events(runner);
}

static void on_durable(void *arg, uint64_t seq)
{
    (void)arg;
    if (runner)
        sb_output_runner_on_durable(runner, seq);
    sb_kafka_input_on_durable(input);
}

/* Produce n events (value as JSON or msgpack, key userId, header source=web); 0 when all are
 * acknowledged. */
static int produce(const char *bootstraps, bool json, long n)
{
    char err[256], user[32];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct sb_buf js = SB_BUF_INIT;
    rd_kafka_t *p;
    int rc = 0;

    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    if (!(p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err)))
        return -1;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (long i = 0; i < n && !rc; i++) {
        const void *v;
        size_t vlen, used;
        rd_kafka_resp_err_t e;
        bench_pack_event(&sb, &pk, i, user);
        v = sb.data;
        vlen = sb.size;
        if (json) {
            sb_buf_clear(&js);
            if (sb_msgpack_to_json((const uint8_t *)sb.data, sb.size, &used, &js))
                rc = -1;
            v = js.data;
            vlen = js.len;
        }
        do {
            e = rd_kafka_producev(
                p, RD_KAFKA_V_TOPIC("segbus.web"), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_VALUE((void *)v, vlen), RD_KAFKA_V_KEY(user, strlen(user)),
                RD_KAFKA_V_HEADER("source", "web", 3), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(p, 10);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (e)
            rc = -1;
    }
    if (rd_kafka_flush(p, 60000))
        rc = -1;
    rd_kafka_destroy(p);
    msgpack_sbuffer_destroy(&sb);
    sb_buf_free(&js);
    return rc;
}

int main(int argc, char **argv)
{
    const char *format = argc > 1 ? argv[1] : "msgpack";
    long n = argc > 2 ? atol(argv[2]) : 100000;
    char err[512], tmpl[] = "/tmp/segbus-bench-kafka-in-XXXXXX", yaml[2048];
    rd_kafka_conf_t *mconf = rd_kafka_conf_new();
    rd_kafka_conf_set(mconf, "log_level", "3", err, sizeof err); /* the mock's own handle */
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, err, sizeof err);
    rd_kafka_mock_cluster_t *mc = mrk ? rd_kafka_mock_cluster_new(mrk, 3) : NULL;
    struct sb_loop *loop;
    struct sb_spool *spool;
    struct sb_spool_opts sp;
    struct sb_metrics *m;
    struct sb_config cfg;
    struct sb_config_error cerr;
    struct sb_hub_sink sink = {NULL, 1, submit, busy, added, durable};
    struct sb_kafka_input_stats st;
    struct sb_dedup *dd;
    const char *names[] = {"file"};
    uint64_t t0 = 0, t1 = 0, deadline;
    bool ok;

    if (!mc || !mkdtemp(tmpl) || sb_loop_new(&loop, 256) || sb_metrics_new(&m)) {
        fprintf(stderr, "bench_kafka_input: set-up failed\n");
        return 1;
    }
    rd_kafka_mock_topic_create(mc, "segbus.web", 8, 3);
    if (produce(rd_kafka_mock_cluster_bootstraps(mc), !strcmp(format, "json"), n)) {
        fprintf(stderr, "bench_kafka_input: producing the events failed\n");
        return 1;
    }
    snprintf(yaml, sizeof yaml,
             "spool: {dir: %s/spool, segment_bytes: 64MiB, max_bytes: 1GiB}\n"
             "kafka_input:\n  brokers: %s\n  group: bench\n  topics: [segbus.web]\n"
             "  value_format: %s\n  properties: {log_level: \"3\"}\n"
             "sources:\n  - {name: web}\n"
             "outputs:\n  - {type: file, name: file, settings: {path: %s/out.ndjson}}\n",
             tmpl, rd_kafka_mock_cluster_bootstraps(mc), format, tmpl);
    if (sb_config_load_string(&cfg, yaml, strlen(yaml), "bench", &cerr)) {
        fprintf(stderr, "bench_kafka_input: %s\n", cerr.msg);
        return 1;
    }
    sb_spool_opts_init(&sp);
    sp.dir = cfg.spool.dir;
    sp.segment_bytes = cfg.spool.segment_bytes;
    sp.max_bytes = cfg.spool.max_bytes;
    sp.on_durable = on_durable;
    if (sb_spool_open(&spool, loop, &sp, names, 1) || sb_pipeline_new(&pipeline) ||
        sb_pipeline_add(pipeline, sb_verify_stage_new()) ||
        sb_dedup_new(&dd, cfg.dedup.window_count, cfg.dedup.window_ns) ||
        sb_pipeline_add(pipeline, sb_dedup_stage_new(dd)) ||
        sb_output_runner_new(&runner, &cfg.outputs[0], 0, loop, spool, cfg.spool.dir, m, err,
                             sizeof err) ||
        sb_kafka_input_new(&input, loop, &cfg, &sink, m, err, sizeof err)) {
        fprintf(stderr, "bench_kafka_input: %s\n", err);
        return 1;
    }
    /* The clock starts at the first message (the group's first join takes the mock ~3 s) and
     * stops when every event is durable and its offset committed. */
    deadline = sb_now_ns() + 180 * SB_NS_PER_S;
    do {
        sb_loop_run_once(loop, SB_NS_PER_MS);
        sb_output_runner_tick(runner, sb_now_ns(), false);
        sb_kafka_input_poll(input);
        sb_kafka_input_get_stats(input, &st);
        if (!t0 && st.messages)
            t0 = sb_now_ns();
        ok = sb_output_runner_durable_events(runner) >= (uint64_t)n;
        if (ok && !t1)
            t1 = sb_now_ns();
    } while ((!ok || st.commits == 0) && sb_now_ns() < deadline);
    printf("{\"suite\":\"kafka\",\"case\":\"input_mock_%s\",\"unit\":\"events/s\",\"value\":%.0f,"
           "\"events\":%ld,\"durable\":%llu,\"seconds\":%.3f,\"what\":\"consumed to durable "
           "in the spool\"}\n",
           format, ok && t1 > t0 ? (double)n * 1e9 / (double)(t1 - t0) : 0.0, n,
           (unsigned long long)sb_output_runner_durable_events(runner), (double)(t1 - t0) / 1e9);
    sb_kafka_input_free(input);
    sb_output_runner_free(runner);
    sb_spool_close(spool);
    for (int i = 0; i < 10; i++)
        sb_loop_run_once(loop, SB_NS_PER_MS);
    sb_loop_free(loop);
    sb_pipeline_free(pipeline);
    sb_metrics_free(m);
    sb_config_free(&cfg);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    snprintf(err, sizeof err, "rm -rf '%s'", tmpl);
    return system(err) == 0 && ok ? 0 : 1;
}
