// metrics_test.cc: the registry and the exact Prometheus text and JSON snapshot it renders.
#include <gtest/gtest.h>

#include <msgpack.h>

#include <cmath>
#include <string>

extern "C" {
#include "json/json.h"
#include "metrics/metrics.h"
}

namespace
{

std::string prom(const sb_metrics *m)
{
    sb_buf b = SB_BUF_INIT;
    EXPECT_EQ(sb_metrics_render_prometheus(m, &b), 0);
    std::string s((const char *)b.data, b.len);
    sb_buf_free(&b);
    return s;
}

std::string json(const sb_metrics *m)
{
    sb_buf b = SB_BUF_INIT;
    EXPECT_EQ(sb_metrics_render_json(m, 1234, &b), 0);
    std::string s((const char *)b.data, b.len);
    sb_buf_free(&b);
    return s;
}

double gauge_fn(void *arg)
{
    return *(double *)arg * 2;
}

TEST(Metrics, CountersGaugesExposition)
{
    sb_metrics *m;
    ASSERT_EQ(sb_metrics_new(&m), 0);
    const char *const verify_bad[] = {"reason", "malformed", nullptr};
    const char *const verify_big[] = {"reason", "too_large", nullptr};
    uint64_t *bad = sb_metrics_counter(m, SB_M_INVALID, "Events dropped by verify.", verify_bad);
    uint64_t *big = sb_metrics_counter(m, SB_M_INVALID, "Events dropped by verify.", verify_big);
    ASSERT_NE(bad, nullptr);
    ASSERT_NE(big, nullptr);
    EXPECT_EQ(sb_metrics_counter(m, SB_M_INVALID, "x", verify_bad), bad); // same series
    *bad += 3;
    (*big)++;
    uint64_t external = 7;
    const char *const out_lbl[] = {"output", "seg\"ment\\x\ny", nullptr};
    ASSERT_EQ(sb_metrics_counter_ref(m, SB_M_SENT, "Events delivered.", out_lbl, &external), 0);
    double *spool = sb_metrics_gauge(m, SB_M_SPOOL_BYTES, "Bytes in the spool.", nullptr);
    *spool = 4096;
    double fill = 0.125;
    const char *const prod[] = {"producer", "42", nullptr};
    ASSERT_EQ(sb_metrics_gauge_fn(m, SB_M_RING_FILL, "Ring fill.", prod, gauge_fn, &fill), 0);
    external = 9;

    EXPECT_EQ(prom(m), "# HELP segbus_invalid_events_total Events dropped by verify.\n"
                       "# TYPE segbus_invalid_events_total counter\n"
                       "segbus_invalid_events_total{reason=\"malformed\"} 3\n"
                       "segbus_invalid_events_total{reason=\"too_large\"} 1\n"
                       "# HELP segbus_sent_events_total Events delivered.\n"
                       "# TYPE segbus_sent_events_total counter\n"
                       "segbus_sent_events_total{output=\"seg\\\"ment\\\\x\\ny\"} 9\n"
                       "# HELP segbus_spool_bytes Bytes in the spool.\n"
                       "# TYPE segbus_spool_bytes gauge\n"
                       "segbus_spool_bytes 4096\n"
                       "# HELP segbus_ring_fill_ratio Ring fill.\n"
                       "# TYPE segbus_ring_fill_ratio gauge\n"
                       "segbus_ring_fill_ratio{producer=\"42\"} 0.25\n");
    double v;
    ASSERT_EQ(sb_metrics_get(m, SB_M_INVALID, verify_bad, &v), 0);
    EXPECT_EQ(v, 3);
    EXPECT_EQ(sb_metrics_get(m, SB_M_INVALID, nullptr, &v), -ENOENT);

    // A producer leaves: its series go.
    sb_metrics_forget(m, "producer", "42");
    EXPECT_EQ(prom(m).find("ring_fill_ratio{"), std::string::npos);
    sb_metrics_free(m);
}

TEST(Metrics, BadNamesAndTypeClashesAreRefused)
{
    sb_metrics *m;
    ASSERT_EQ(sb_metrics_new(&m), 0);
    EXPECT_EQ(sb_metrics_counter(m, "9bad", "", nullptr), nullptr);
    EXPECT_EQ(sb_metrics_counter(m, "has space", "", nullptr), nullptr);
    const char *const bad_label[] = {"__reserved", "x", nullptr};
    EXPECT_EQ(sb_metrics_counter(m, "ok_total", "", bad_label), nullptr);
    ASSERT_NE(sb_metrics_counter(m, "ok_total", "", nullptr), nullptr);
    EXPECT_EQ(sb_metrics_gauge(m, "ok_total", "", nullptr), nullptr); // counter, not gauge
    sb_metrics_free(m);
}

TEST(Metrics, Histogram)
{
    sb_metrics *m;
    ASSERT_EQ(sb_metrics_new(&m), 0);
    const double bounds[] = {0.01, 0.1, 1};
    const char *const lbl[] = {"output", "hub", nullptr};
    sb_histogram *h = sb_metrics_histogram(m, SB_M_LATENCY, "Enqueue to ack.", lbl, bounds, 3);
    ASSERT_NE(h, nullptr);
    for (double v : {0.0078125, 0.01, 0.0625, 0.5, 2.0, 2.5})
        sb_histogram_observe(h, v);
    EXPECT_EQ(prom(m), "# HELP segbus_delivery_latency_seconds Enqueue to ack.\n"
                       "# TYPE segbus_delivery_latency_seconds histogram\n"
                       "segbus_delivery_latency_seconds_bucket{output=\"hub\",le=\"0.01\"} 2\n"
                       "segbus_delivery_latency_seconds_bucket{output=\"hub\",le=\"0.1\"} 3\n"
                       "segbus_delivery_latency_seconds_bucket{output=\"hub\",le=\"1\"} 4\n"
                       "segbus_delivery_latency_seconds_bucket{output=\"hub\",le=\"+Inf\"} 6\n"
                       "segbus_delivery_latency_seconds_sum{output=\"hub\"} 5.0803125\n"
                       "segbus_delivery_latency_seconds_count{output=\"hub\"} 6\n");
    const double unsorted[] = {1, 0.5};
    EXPECT_EQ(sb_metrics_histogram(m, "other", "", nullptr, unsorted, 2), nullptr);
    sb_metrics_free(m);
}

TEST(Metrics, JsonSnapshotIsValidJson)
{
    sb_metrics *m;
    ASSERT_EQ(sb_metrics_new(&m), 0);
    const char *const lbl[] = {"output", "a\"b\x01", nullptr};
    *sb_metrics_counter(m, SB_M_SENT, "", lbl) = 5;
    *sb_metrics_gauge(m, SB_M_SPOOL_BYTES, "", nullptr) = NAN;
    const double bounds[] = {1};
    sb_histogram_observe(sb_metrics_histogram(m, SB_M_LATENCY, "", nullptr, bounds, 1), 0.5);
    std::string j = json(m);
    EXPECT_EQ(j, "{\"time_ms\":1234,\"metrics\":["
                 "{\"name\":\"segbus_sent_events_total\",\"type\":\"counter\",\"labels\":"
                 "{\"output\":\"a\\\"b\\u0001\"},\"value\":5},"
                 "{\"name\":\"segbus_spool_bytes\",\"type\":\"gauge\",\"labels\":{},"
                 "\"value\":null},"
                 "{\"name\":\"segbus_delivery_latency_seconds\",\"type\":\"histogram\","
                 "\"labels\":{},\"count\":1,\"sum\":0.5,\"buckets\":[[1,1],[null,1]]}]}\n");
    // And a real JSON parser accepts it.
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sb_json_error err{};
    EXPECT_EQ(sb_json_to_msgpack(j.data(), j.size(), &pk, &err), 0) << err.reason;
    msgpack_sbuffer_destroy(&sb);
    sb_metrics_free(m);
}

} // namespace
