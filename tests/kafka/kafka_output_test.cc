// kafka_output_test.cc: the Kafka output through the output runner (spool, batches, retries)
// against librdkafka's mock cluster: every event comes back once with key = userId, the value
// (JSON or msgpack) and the type/messageId headers, in order per user; a broker taken down and
// brought back mid-stream loses nothing.
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <liburing.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "../pipeline/event_util.h"
#include "mock_cluster.h"

extern "C" {
#include "config/config.h"
#include "metrics/metrics.h"
#include "net/loop.h"
#include "outputs/output.h"
#include "spool/spool.h"
}

using namespace sbt;

namespace
{

using kmock::Mock;

struct Got {
    std::string key, value, type, mid;
    int partition;
    int64_t offset;
};

std::string header(rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *h = nullptr;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &n))
        return "<none>";
    return std::string((const char *)v, n);
}

// Read every message of topic (partitions 0..parts-1) from the start until want distinct
// messageIds arrived or 15 s passed.
std::vector<Got> consume_all(const std::string &bootstraps, const std::string &topic, int parts,
                             size_t want)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "verify", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    std::vector<Got> got;
    std::set<std::string> ids; // duplicates (a retried batch) do not count towards want
    if (!c)
        return got;
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(tp, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    uint64_t until = sb_now_ns() + 15 * SB_NS_PER_S;
    while (ids.size() < want && sb_now_ns() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (!m->err) {
            Got g;
            g.key.assign((const char *)m->key, m->key_len);
            g.value.assign((const char *)m->payload, m->len);
            g.type = header(m, "type");
            g.mid = header(m, "messageId");
            g.partition = m->partition;
            g.offset = m->offset;
            ids.insert(g.mid);
            got.push_back(g);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return got;
}

struct Rig {
    std::string dir, spool_dir;
    sb_loop *loop = nullptr;
    sb_spool *spool = nullptr;
    sb_metrics *m = nullptr;
    sb_config cfg{};
    sb_output_config oc{};
    struct Ctx {
        sb_output_runner *r = nullptr;
    } ctx;

    void start(const std::string &brokers, const char *format)
    {
        char tmpl[] = "/tmp/segbus-kafka-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        spool_dir = dir + "/spool";
        ASSERT_EQ(sb_loop_new(&loop, 64), 0);
        sb_spool_opts sp;
        sb_spool_opts_init(&sp);
        sp.dir = spool_dir.c_str();
        sp.segment_bytes = 4 << 20;
        sp.max_bytes = 64 << 20;
        sp.on_durable = [](void *arg, uint64_t seq) {
            Ctx *c = (Ctx *)arg;
            if (c->r)
                sb_output_runner_on_durable(c->r, seq);
        };
        sp.arg = &ctx;
        const char *names[] = {"kafka"};
        ASSERT_EQ(sb_spool_open(&spool, loop, &sp, names, 1), 0);
        ASSERT_EQ(sb_config_defaults(&cfg), 0);
        ASSERT_EQ(sb_output_defaults(&oc, SB_OUTPUT_KAFKA, &cfg), 0);
        oc.name = strdup("kafka");
        oc.brokers = strdup(brokers.c_str());
        oc.topic = strdup("segbus.{source}");
        oc.value_format = strdup(format);
        oc.sources.items = (char **)calloc(1, sizeof(char *));
        oc.sources.items[0] = strdup("web");
        oc.sources.n = 1;
        oc.batch.max_events = 50;
        // Short enough that a long outage fails the attempt and the runner retries it.
        oc.kafka.items = (sb_kv *)calloc(3, sizeof(sb_kv));
        oc.kafka.items[0] = {strdup("message.timeout.ms"), strdup("5000"), 0};
        oc.kafka.items[1] = {strdup("log_level"), strdup("2"), 0};
        oc.kafka.items[2] = {strdup("reconnect.backoff.max.ms"), strdup("500"), 0};
        oc.kafka.n = 3;
        ASSERT_EQ(sb_metrics_new(&m), 0);
        char err[256] = "";
        ASSERT_EQ(sb_output_runner_new(&ctx.r, &oc, 0, loop, spool, spool_dir.c_str(), m, err,
                                       sizeof err),
                  0)
            << err;
    }
    void add(int from, int to)
    {
        for (int i = from; i < to; i++) {
            std::string e = track("m" + std::to_string(i), "u" + std::to_string(i % 7));
            ASSERT_EQ(sb_output_runner_add(ctx.r, (const uint8_t *)e.data(), e.size(), sb_now_ns()),
                      0);
        }
    }
    // Run the loop for up to ms (or until idle if until_idle).
    void run(int ms, bool until_idle)
    {
        uint64_t until = sb_now_ns() + (uint64_t)ms * SB_NS_PER_MS;
        sb_output_runner_tick(ctx.r, sb_now_ns(), true);
        while (sb_now_ns() < until && !(until_idle && sb_output_runner_idle(ctx.r))) {
            sb_loop_run_once(loop, 10 * 1000000LL);
            sb_output_runner_tick(ctx.r, sb_now_ns(), false);
        }
    }
    void stop()
    {
        sb_output_runner_free(ctx.r);
        ctx.r = nullptr;
        EXPECT_EQ(sb_spool_close(spool), 0);
        for (int i = 0; i < 10; i++)
            sb_loop_run_once(loop, 1000000LL);
        sb_loop_free(loop);
        sb_metrics_free(m);
        cfg.outputs = (sb_output_config *)calloc(1, sizeof oc);
        cfg.outputs[0] = oc;
        cfg.n_outputs = 1;
        sb_config_free(&cfg);
        std::string cmd = "rm -rf '" + dir + "'";
        EXPECT_EQ(system(cmd.c_str()), 0);
    }
};

// Every event once, keyed by user, with its headers; per user in produce order.
void check(const std::vector<Got> &got, int n, bool json, size_t *dups)
{
    std::map<std::string, int> seen;
    std::map<int, std::map<std::string, int>> last; // partition -> key -> last id
    for (auto &g : got) {
        ASSERT_EQ(g.mid.rfind("m", 0), 0u) << g.mid;
        int id = std::stoi(g.mid.substr(1));
        seen[g.mid]++;
        EXPECT_EQ(g.key, "u" + std::to_string(id % 7)) << g.mid;
        EXPECT_EQ(g.type, "track");
        if (json) {
            EXPECT_EQ(g.value.rfind("{\"type\":\"track\",\"userId\":\"" + g.key + "\"", 0), 0u)
                << g.value;
            EXPECT_NE(g.value.find("\"messageId\":\"" + g.mid + "\""), std::string::npos);
        } else {
            EXPECT_EQ(g.value, track(g.mid, g.key));
        }
        auto &l = last[g.partition];
        // A retried batch may repeat ids already seen, never go back before them otherwise.
        if (l.count(g.key) && seen[g.mid] == 1) {
            EXPECT_GT(id, l[g.key]) << "user " << g.key << " out of order";
        }
        l[g.key] = std::max(l.count(g.key) ? l[g.key] : -1, id);
    }
    for (int i = 0; i < n; i++)
        EXPECT_EQ(seen.count("m" + std::to_string(i)), 1u) << "lost m" << i;
    *dups = got.size() - seen.size();
}

TEST(KafkaOutput, EveryEventWithKeyValueHeadersJson)
{
    Mock mk;
    ASSERT_NE(mk.mc, nullptr);
    ASSERT_EQ(rd_kafka_mock_topic_create(mk.mc, "segbus.web", 4, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
    Rig rig;
    rig.start(mk.bootstraps, "json");
    const int n = 2000;
    rig.add(0, n);
    rig.run(20000, true);
    ASSERT_TRUE(sb_output_runner_idle(rig.ctx.r));
    EXPECT_EQ(sb_output_runner_counters(rig.ctx.r)->sent, (uint64_t)n);
    EXPECT_EQ(sb_output_runner_counters(rig.ctx.r)->failed_attempts, 0u);
    rig.stop();
    auto got = consume_all(mk.bootstraps, "segbus.web", 4, n);
    size_t dups = 0;
    check(got, n, true, &dups);
    EXPECT_EQ(dups, 0u); // idempotent producer, no failed attempt: exactly once
    std::set<int> parts;
    for (auto &g : got)
        parts.insert(g.partition);
    EXPECT_GT(parts.size(), 1u); // 7 users spread over the partitions
}

TEST(KafkaOutput, BrokerDownMidStreamLosesNothingMsgpack)
{
    Mock mk;
    ASSERT_NE(mk.mc, nullptr);
    ASSERT_EQ(rd_kafka_mock_topic_create(mk.mc, "segbus.web", 4, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
    Rig rig;
    rig.start(mk.bootstraps, "msgpack");
    const int n = 3000;
    rig.add(0, n / 3);
    rig.run(300, false);
    // Every partition leader goes down for 2 s while events keep coming.
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_down(mk.mc, b);
    rig.add(n / 3, 2 * n / 3);
    rig.run(2000, false);
    EXPECT_FALSE(sb_output_runner_idle(rig.ctx.r)); // nothing can have gone out
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_up(mk.mc, b);
    rig.add(2 * n / 3, n);
    rig.run(25000, true);
    ASSERT_TRUE(sb_output_runner_idle(rig.ctx.r));
    EXPECT_EQ(sb_output_runner_counters(rig.ctx.r)->sent, (uint64_t)n);
    rig.stop();
    auto got = consume_all(mk.bootstraps, "segbus.web", 4, n);
    size_t dups = 0;
    check(got, n, false, &dups);
    RecordProperty("duplicates", (int)dups);
}

TEST(KafkaOutput, BadSettingsNamed)
{
    sb_config cfg;
    ASSERT_EQ(sb_config_defaults(&cfg), 0);
    sb_output_config oc;
    ASSERT_EQ(sb_output_defaults(&oc, SB_OUTPUT_KAFKA, &cfg), 0);
    oc.name = strdup("k");
    oc.brokers = strdup("127.0.0.1:1");
    oc.topic = strdup("segbus.{source}");
    sb_loop *loop;
    ASSERT_EQ(sb_loop_new(&loop, 8), 0);
    void *st = nullptr;
    char err[512] = "";
    EXPECT_EQ(sb_output_kafka.init(&st, &oc, loop, err, sizeof err), -EINVAL);
    EXPECT_NE(strstr(err, "{source}"), nullptr) << err;
    free(oc.topic);
    oc.topic = strdup("t");
    oc.kafka.items = (sb_kv *)calloc(1, sizeof(sb_kv));
    oc.kafka.items[0] = {strdup("no.such.property"), strdup("1"), 12};
    oc.kafka.n = 1;
    err[0] = 0;
    EXPECT_EQ(sb_output_kafka.init(&st, &oc, loop, err, sizeof err), -EINVAL);
    EXPECT_NE(strstr(err, "no.such.property (line 12)"), nullptr) << err;
    sb_loop_free(loop);
    cfg.outputs = (sb_output_config *)calloc(1, sizeof oc);
    cfg.outputs[0] = oc;
    cfg.n_outputs = 1;
    sb_config_free(&cfg);
}

} // namespace
