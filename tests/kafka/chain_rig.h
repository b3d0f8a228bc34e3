// chain_rig.h: the scale-out chain of real segbusd processes around librdkafka's mock cluster
// (3 brokers, the Kafka protocol on 127.0.0.1, kept alive by the test process): a hub (Segment
// HTTP API -> spool -> kafka output) and delivery workers (kafka input -> spool -> SQLite and
// an NDJSON file). Shared by the chain and worker test programs.
#pragma once

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "harness.h"
#include "mock_cluster.h"

namespace chain
{

using namespace sbt;

// "wk-web:" in base64: the hub's write key for source web, as Basic auth.
constexpr const char *kAuth =
    "Authorization: Basic d2std2ViOg==\r\nContent-Type: application/json\r\n";

using kmock::Mock;

struct Rig {
    TempDir tmp{"segbus-kafka-chain"};
    std::unique_ptr<Mock> mock;
    Segbusd hub;
    uint16_t hub_port = 0;

    explicit Rig(int partitions = 6) : mock(new Mock(partitions)) {}

    std::string log(const std::string &name)
    {
        return slurp(tmp / (name + ".log"));
    }

    // The mock cluster, the hub and a worker `name` (in w), the hub listening.
    bool start_chain(Segbusd &w, const std::string &name)
    {
        if (!mock->mc || !start_hub() || !start_worker(w, name))
            return false;
        if (wait_socket(tmp / "hub.sock"))
            return true;
        ADD_FAILURE() << log("hub");
        return false;
    }

    bool start_hub()
    {
        hub_port = free_port();
        std::string cfg = tmp / "hub.yaml";
        std::ofstream f(cfg);
        f << "log_level: info\nshutdown_timeout: 10s\n"
          << "socket: {path: " << tmp / "hub.sock"
          << "}\n"
          << "batch: {max_events: 500, flush_interval: 10ms}\n"
          << "spool: {dir: " << tmp / "hub-spool"
          << ", segment_bytes: 1MiB, max_bytes: 64MiB}\n"
          << "metrics: {listen: null}\n"
          << "http: {enabled: true, listen: 127.0.0.1:" << hub_port << "}\n"
          << "sources:\n  - {name: web, write_keys: [wk-web]}\n"
          << "outputs:\n"
          << "  - type: kafka\n    name: kafka-web\n    sources: [web]\n    settings:\n"
          << "      brokers: " << mock->bootstraps << "\n"
          << "      topic: segbus.{source}\n      value_format: msgpack\n"
          << "      properties: {linger.ms: \"5\", log_level: \"3\"}\n";
        f.close();
        return hub.start(cfg, tmp / "hub.log");
    }

    // A delivery worker `name` (its own spool, SQLite file and NDJSON file) in group "workers".
    bool start_worker(Segbusd &w, const std::string &name, bool append_log = false)
    {
        std::string cfg = tmp / (name + ".yaml");
        std::ofstream f(cfg);
        f << "log_level: info\nshutdown_timeout: 10s\n"
          << "socket: {path: " << tmp / (name + ".sock") << "}\n"
          << "batch: {max_events: 500, flush_interval: 10ms}\n"
          << "spool: {dir: " << tmp / (name + "-spool")
          << ", segment_bytes: 1MiB, max_bytes: 64MiB}\n"
          << "metrics: {listen: null}\n"
          << "kafka_input:\n"
          << "  brokers: " << mock->bootstraps << "\n"
          << "  group: workers\n  topics: [segbus.web]\n  revoke_timeout: 10s\n"
          << "  properties: {session.timeout.ms: \"6000\", heartbeat.interval.ms: \"300\", "
          << (getenv("SEGBUS_KAFKA_DEBUG") ? "debug: cgrp, log_level: \"7\"}\n"
                                           : "log_level: \"3\"}\n")
          << "sources:\n  - {name: web, write_keys: [wk-web]}\n"
          << "outputs:\n"
          << "  - {type: sqlite, name: warehouse, sources: [web], settings: {path: "
          << tmp / (name + ".db") << "}}\n"
          << "  - {type: file, name: file, settings: {path: " << tmp / (name + ".ndjson") << "}}\n";
        f.close();
        return w.start(cfg, tmp / (name + ".log"), append_log);
    }

    // POST events [from, to) to the hub in batches of `per`; true when every batch got 200.
    bool post(int from, int to, int per = 100)
    {
        for (int i = from; i < to; i += per) {
            std::string body = "{\"batch\":[";
            for (int k = i; k < to && k < i + per; k++) {
                if (k > i)
                    body += ",";
                body += "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u" +
                        std::to_string(k % 37) + "\",\"messageId\":\"m" + std::to_string(k) +
                        "\",\"properties\":{\"n\":" + std::to_string(k) + "}}";
            }
            body += "]}";
            Reply r = http_request(hub_port, "POST", "/v1/batch", kAuth, body, 20);
            if (r.status != 200) {
                ADD_FAILURE() << "POST events from " << i << ": " << r.status << " " << r.body;
                return false;
            }
        }
        return true;
    }

    // Distinct ids in the worker's SQLite tracks table (0 while it does not exist yet).
    size_t sqlite_ids(const std::string &name)
    {
        sqlite3 *db = nullptr;
        size_t n = 0;
        std::string path = tmp / (name + ".db");
        if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
            sqlite3_stmt *st = nullptr;
            sqlite3_busy_timeout(db, 2000);
            if (sqlite3_prepare_v2(db, "SELECT count(DISTINCT id) FROM tracks", -1, &st, nullptr) ==
                    SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW)
                n = (size_t)sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
        sqlite3_close(db);
        return n;
    }

    // Waits (up to ms) until worker `name` has all n events in SQLite, then stops it and the
    // hub (SIGTERM: both must exit 0) and checks the table holds exactly n ids.
    void finish(Segbusd &w, const std::string &name, int n, int ms)
    {
        EXPECT_TRUE(wait_for([&] { return sqlite_ids(name) >= (size_t)n; }, ms))
            << sqlite_ids(name) << "\n"
            << log(name);
        EXPECT_EQ(w.stop(15), 0) << log(name);
        EXPECT_EQ(hub.stop(15), 0) << log("hub");
        EXPECT_EQ(sqlite_ids(name), (size_t)n);
    }

    // Adds the ids of the worker's SQLite tracks table to ids.
    void sqlite_id_set(const std::string &name, std::map<std::string, int> &ids)
    {
        sqlite3 *db = nullptr;
        std::string path = tmp / (name + ".db");
        if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
            sqlite3_stmt *st = nullptr;
            if (sqlite3_prepare_v2(db, "SELECT id FROM tracks", -1, &st, nullptr) == SQLITE_OK)
                while (sqlite3_step(st) == SQLITE_ROW)
                    ids[(const char *)sqlite3_column_text(st, 0)]++;
            sqlite3_finalize(st);
        }
        sqlite3_close(db);
    }

    // Did the worker have an offset commit refused (or its assignment declared lost)? Only
    // then may a rebalance make another worker read again what this one delivered.
    bool commit_refused(const std::string &name)
    {
        std::string l = log(name);
        return l.find("offset commit failed") != std::string::npos ||
               l.find("(lost)") != std::string::npos ||
               l.find("revoke: events still not durable") != std::string::npos;
    }

    std::map<std::string, int> file_ids(const std::string &name, int *lines = nullptr)
    {
        return ndjson_message_ids(tmp / (name + ".ndjson"), lines);
    }
};

// Every id m0..m(n-1) is in ids; how many are missing (the first few named in the failure).
inline int missing(const std::map<std::string, int> &ids, int n)
{
    int miss = 0;
    for (int i = 0; i < n; i++)
        if (!ids.count("m" + std::to_string(i)) && ++miss <= 5)
            ADD_FAILURE() << "m" << i << " never arrived";
    return miss;
}

// Ids that arrived more than once.
inline int repeated(const std::map<std::string, int> &ids)
{
    int rep = 0;
    for (auto &kv : ids)
        if (kv.second > 1)
            rep++;
    return rep;
}

} // namespace chain
