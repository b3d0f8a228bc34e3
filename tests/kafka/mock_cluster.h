// mock_cluster.h: librdkafka's built-in mock cluster (3 brokers speaking the Kafka protocol on
// 127.0.0.1, run by threads of the test process) for the kafka tests.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <string>

namespace kmock
{

struct Mock {
    rd_kafka_t *rk = nullptr;
    rd_kafka_mock_cluster_t *mc = nullptr;
    std::string bootstraps;
    // partitions > 0: also create topic segbus.web with that many (replication 3).
    explicit Mock(int partitions = 0)
    {
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        mc = rk ? rd_kafka_mock_cluster_new(rk, 3) : nullptr;
        if (!mc)
            return;
        bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
        if (partitions > 0)
            rd_kafka_mock_topic_create(mc, "segbus.web", partitions, 3);
    }
    void brokers_down(bool down)
    {
        for (int b = 1; b <= 3; b++)
            down ? rd_kafka_mock_broker_set_down(mc, b) : rd_kafka_mock_broker_set_up(mc, b);
    }
    ~Mock()
    {
        if (mc)
            rd_kafka_mock_cluster_destroy(mc);
        if (rk)
            rd_kafka_destroy(rk);
    }
    Mock(const Mock &) = delete;
    Mock &operator=(const Mock &) = delete;
};

} // namespace kmock
