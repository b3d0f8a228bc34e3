// hub_chain_test.cc: the whole chain with real processes on loopback.
//  - producers -> a sidecar segbusd's ring -> its hub output (msgpack) -> a hub segbusd with
//    SQLite, webhook and NDJSON file destinations, the webhook receiver down for a while: SQLite
//    and the file keep flowing, the webhook is shown failing (/metrics, segbus stat, segbus
//    tail) and catches up; every event exactly once in each, every signature verified.
//  - @segment/analytics-node sending while the hub restarts (SIGTERM, then SIGKILL): nothing
//    lost, nothing duplicated in SQLite.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <liburing.h> // before the C headers that include it: its C++ templates

#include "../pipeline/event_util.h"
#include "harness.h"

extern "C" {
#include "net/http.h"
#include "net/http_server.h"
#include "segbus/segbus.h"
}

using namespace sbt;

namespace
{

// A webhook receiver that checks signatures and can be taken down: first it refuses (503) for a
// moment so that no request is half-recorded, then its listener goes away (connection refused).
struct Webhook {
    HttpReceiver http;
    std::mutex mu;
    std::map<std::string, int> ids;
    int requests = 0, bad_signatures = 0, refused = 0;
    bool refusing = false;
    std::string secret;
    bool start()
    {
        {
            std::lock_guard<std::mutex> g(mu);
            refusing = false;
        }
        return http.start([this](sb_http_exchange *ex, const sb_http_message *req) {
            std::lock_guard<std::mutex> g(mu);
            requests++;
            if (refusing) {
                refused++;
                respond_json(ex, 503, "{\"error\":\"down\"}", {{"Retry-After", "1"}});
                return;
            }
            std::string b = body(req), sig = header(req, "X-Signature");
            if (!signature_ok(sig, secret, b)) {
                bad_signatures++;
                respond_json(ex, 401, "{\"error\":\"bad signature\"}");
                return;
            }
            for (auto &id : json_message_ids(b))
                ids[id]++;
            respond_json(ex, 200, "{\"ok\":true}");
        });
    }
    void take_down()
    {
        {
            std::lock_guard<std::mutex> g(mu);
            refusing = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300)); // answers in flight go out
        http.stop();
    }
    size_t distinct()
    {
        std::lock_guard<std::mutex> g(mu);
        return ids.size();
    }
};

// Rows and distinct ids in a warehouse table (0, 0 while it does not exist yet).
std::pair<long, long> table_rows(const std::string &db, const char *table)
{
    sqlite3 *h = nullptr;
    std::pair<long, long> r{0, 0};
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 2000);
        std::string q = std::string("SELECT count(*), count(DISTINCT id) FROM ") + table;
        sqlite3_stmt *st = nullptr;
        if (sqlite3_prepare_v2(h, q.c_str(), -1, &st, nullptr) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            r = {sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1)};
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return r;
}

// A number after `series ` in Prometheus text; -1 if absent.
double metric(const std::string &text, const std::string &series)
{
    size_t p = text.find("\n" + series + " ");
    return p == std::string::npos ? -1 : atof(text.c_str() + p + series.size() + 2);
}

// Writes n track events "<prefix>-<i>" into the sidecar's ring from `producers` threads and
// waits until the sidecar has them durable.
void produce(const std::string &sock, const std::string &prefix, int producers, int n)
{
    std::vector<std::thread> ths;
    std::atomic<int> errors{0};
    for (int p = 0; p < producers; p++)
        ths.emplace_back([&, p] {
            segbus_producer_options_t o;
            segbus_producer_options_init(&o);
            o.full_policy = SEGBUS_FULL_BLOCK;
            o.block_timeout_ms = 5000;
            segbus_producer_t *h;
            if (segbus_producer_open(&h, sock.c_str(), &o) != 0) {
                errors++;
                return;
            }
            for (int i = p; i < n; i += producers) {
                std::string e = track(prefix + "-" + std::to_string(i), "u" + std::to_string(i));
                if (segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()) != 0)
                    errors++;
            }
            if (segbus_producer_flush(h, 15000) != 0)
                errors++;
            segbus_producer_close(h);
        });
    for (auto &t : ths)
        t.join();
    EXPECT_EQ(errors.load(), 0);
}

TEST(HubChain, SidecarToHubWebhookDownOthersFlowThenCatchesUp)
{
    TempDir tmp("segbus-chain");
    Webhook wh;
    wh.secret = "chain-s3cret";
    ASSERT_TRUE(wh.start());
    uint16_t hport = free_port(), hmport = free_port();
    // Two daemons: each its own directory (socket, spool).
    std::string hub_dir = tmp / "hub", side_dir = tmp / "side";
    mkdir(hub_dir.c_str(), 0700);
    mkdir(side_dir.c_str(), 0700);
    std::string sock = side_dir + "/segbusd.sock", db = tmp / "warehouse.db",
                out = tmp / "events.ndjson";
    std::string hub_cfg = tmp / "hub.yaml", side_cfg = tmp / "sidecar.yaml";
    std::string hub_log = tmp / "hub.log", side_log = tmp / "sidecar.log";
    write_file(hub_cfg, daemon_config(hub_dir, hport, hmport, 250) +
                            "sources: [{name: sidecars, write_keys: [wk_sidecar]}]\n"
                            "outputs:\n"
                            "  - {type: sqlite, name: warehouse, settings: {path: " +
                            db +
                            "}}\n"
                            "  - {type: webhook, name: webhook, settings: {url: http://127.0.0.1:" +
                            std::to_string(wh.http.port) +
                            // 2 s: see the report on requests after a server went away
                            "/hook, secret: chain-s3cret, timeout: 2s}}\n"
                            "  - {type: file, name: file, settings: {path: " +
                            out + "}}\n");
    write_file(side_cfg, daemon_config(side_dir, 0, 0) + "ring: {capacity: 1MiB}\n" +
                             "outputs:\n"
                             "  - {type: hub, name: hub, settings: {url: http://127.0.0.1:" +
                             std::to_string(hport) + "/v1/batch, write_key: wk_sidecar}}\n");
    Segbusd hub, side;
    ASSERT_TRUE(hub.start(hub_cfg, hub_log));
    ASSERT_TRUE(
        wait_for([&] { return http_request(hport, "OPTIONS", "/v1/batch").status == 204; }, 5000))
        << slurp(hub_log);
    ASSERT_TRUE(side.start(side_cfg, side_log));
    ASSERT_TRUE(wait_socket(sock)) << slurp(side_log);
    auto file_ids = [&] { return ndjson_message_ids(out).size(); };
    auto sql_ids = [&] { return (size_t)table_rows(db, "tracks").second; };
    const size_t per = 2000;

    // 1. Everything up.
    produce(sock, "up", 2, per);
    ASSERT_TRUE(wait_for([&] { return wh.distinct() >= per && sql_ids() >= per; }, 20000))
        << slurp(hub_log);

    // 2. The webhook receiver goes down; SQLite and the file keep up without it.
    wh.take_down();
    http_get(hmport, "/tail?wait_ms=0"); // start recording events for the tail
    produce(sock, "down", 2, per);
    ASSERT_TRUE(wait_for([&] { return sql_ids() >= 2 * per && file_ids() >= 2 * per; }, 20000))
        << slurp(hub_log);
    EXPECT_EQ(wh.distinct(), per) << "nothing reached the webhook while it was down";
    // The failure is visible: metrics, segbus stat, and each event's status in segbus tail.
    ASSERT_TRUE(wait_for(
        [&] {
            return metric(http_get(hmport, "/metrics"),
                          "segbus_output_consecutive_failures{output=\"webhook\"}") > 0;
        },
        10000))
        << http_get(hmport, "/metrics") << slurp(hub_log);
    std::string addr = "127.0.0.1:" + std::to_string(hmport);
    std::string stat = run_program(segbus_cli(), {"stat", "--metrics", addr}).out;
    EXPECT_NE(stat.find("webhook    FAILING"), std::string::npos) << stat;
    std::string stat_json = run_program(segbus_cli(), {"stat", "--json", "--metrics", addr}).out;
    size_t wj = stat_json.find("\"webhook\":{");
    // The webhook's row (outputs are in config order: the file's row follows it).
    std::string wrow =
        wj == std::string::npos ? "" : stat_json.substr(wj, stat_json.find("\"file\":{", wj) - wj);
    EXPECT_NE(wrow.find("\"last_error\":\""), std::string::npos) << stat_json; // e.g. refused
    EXPECT_EQ(wrow.find("\"consecutive_failures\":0"), std::string::npos) << wrow;
    EXPECT_NE(wrow.find("\"retrying_events\":250"), std::string::npos) << wrow; // one hub batch
    std::string tail =
        run_program(segbus_cli(), {"tail", "--metrics", addr, "--last", "4096", "--count", "100"})
            .out;
    EXPECT_NE(tail.find("webhook=retrying"), std::string::npos) << tail;
    EXPECT_NE(tail.find("warehouse=delivered"), std::string::npos) << tail;
    EXPECT_EQ(tail.find("webhook=delivered"), std::string::npos) << tail;

    // 3. It comes back (same port) and catches up; more events flow meanwhile.
    ASSERT_TRUE(wh.start());
    produce(sock, "back", 2, per);
    ASSERT_TRUE(wait_for(
        [&] { return wh.distinct() >= 3 * per && sql_ids() >= 3 * per && file_ids() >= 3 * per; },
        40000))
        << slurp(hub_log);
    std::string metrics = http_get(hmport, "/metrics");
    EXPECT_EQ(side.stop(15), 0) << slurp(side_log);
    EXPECT_EQ(hub.stop(15), 0) << slurp(hub_log);

    // Exactly once in each destination.
    auto rows = table_rows(db, "tracks");
    EXPECT_EQ(rows.first, (long)(3 * per));
    EXPECT_EQ(rows.second, (long)(3 * per));
    int lines = 0;
    auto f = ndjson_message_ids(out, &lines);
    EXPECT_EQ(f.size(), 3 * per);
    EXPECT_EQ((size_t)lines, 3 * per);
    {
        std::lock_guard<std::mutex> g(wh.mu);
        EXPECT_EQ(wh.ids.size(), 3 * per);
        for (auto &kv : wh.ids)
            ASSERT_EQ(kv.second, 1) << kv.first;
        EXPECT_EQ(wh.bad_signatures, 0);
    }
    for (const char *phase : {"up", "down", "back"})
        for (size_t i = 0; i < per; i++) {
            std::string id = std::string(phase) + "-" + std::to_string(i);
            ASSERT_EQ(f[id], 1) << id;
        }
    EXPECT_EQ(metric(metrics, "segbus_output_consecutive_failures{output=\"webhook\"}"), 0)
        << metrics;
    EXPECT_EQ(metric(metrics, "segbus_sent_events_total{output=\"webhook\"}"), 3.0 * per)
        << metrics;
    EXPECT_EQ(slurp(hub_log).find("chain-s3cret"), std::string::npos);
    EXPECT_EQ(metrics.find("chain-s3cret"), std::string::npos);
}

// @segment/analytics-node sends while the hub is restarted with `sig`; every event is in SQLite
// exactly once afterwards.
void restart_mid_stream(bool sigkill)
{
    std::string nodedir = std::string(SEGBUS_SOURCE_DIR) + "/tests/node";
    struct stat st;
    ASSERT_EQ(stat((nodedir + "/node_modules/@segment/analytics-node").c_str(), &st), 0)
        << "run scripts/install-deps (or npm install in tests/node) first";
    TempDir tmp("segbus-restart");
    uint16_t port = free_port(), mport = free_port();
    std::string cfg = tmp / "hub.yaml", db = tmp / "warehouse.db";
    write_file(cfg, daemon_config(tmp.path, port, mport) +
                        "sources: [{name: web, write_keys: [wk_e2e]}]\n"
                        "outputs:\n"
                        "  - {type: sqlite, name: warehouse, settings: {path: " +
                        db + "}}\n");
    Segbusd hub;
    ASSERT_TRUE(hub.start(cfg, tmp / "hub1.log"));
    ASSERT_TRUE(
        wait_for([&] { return http_request(port, "OPTIONS", "/v1/batch").status == 204; }, 5000))
        << slurp(tmp / "hub1.log");

    const int n = 12000;
    // Retries up to ~30 s (the client's backoff is capped at 1 s): enough to outlast a restart.
    Child client;
    ASSERT_TRUE(
        client.start("/bin/sh",
                     {"-c", "cd " + nodedir + " && exec node send_hub.js " + std::to_string(port) +
                                " wk_e2e " + std::to_string(n) + " rs"},
                     {{"SEGBUS_NODE_MAX_RETRIES", "40"}}));
    // Mid-stream: once a fifth of the events have reached the hub.
    bool mid = wait_for(
        [&] {
            return metric(http_get(mport, "/metrics"),
                          "segbus_received_events_total{input=\"ring\"}") >= n / 5;
        },
        30000);
    if (sigkill)
        hub.kill9();
    else
        EXPECT_EQ(hub.stop(15), 0) << slurp(tmp / "hub1.log");
    Segbusd hub2;
    ASSERT_TRUE(hub2.start(cfg, tmp / "hub2.log"));
    RunResult node = client.wait(60);
    std::string node_out = node.out + node.err;
    ASSERT_TRUE(mid) << "the hub never saw a fifth of the events: " << slurp(tmp / "hub1.log");
    ASSERT_EQ(node.code, 0) << node_out << slurp(tmp / "hub2.log");
    printf("analytics-node: %s", node_out.c_str());
    // The client saw the restart: refused connections or 503s, and retried them.
    EXPECT_TRUE(node_out.find("\"neterrors\":0") == std::string::npos ||
                node_out.find("\"503\":") != std::string::npos)
        << node_out;

    static const char *tables[] = {"tracks", "identifies", "pages", "screens", "groups", "aliases"};
    auto total = [&] {
        long t = 0;
        for (const char *tb : tables)
            t += table_rows(db, tb).second;
        return t;
    };
    EXPECT_TRUE(wait_for([&] { return total() >= n; }, 30000)) << total();
    EXPECT_EQ(hub2.stop(15), 0) << slurp(tmp / "hub2.log");
    for (const char *tb : tables) {
        auto r = table_rows(db, tb);
        EXPECT_EQ(r.first, n / 6) << tb << ": rows";
        EXPECT_EQ(r.second, n / 6) << tb << ": distinct ids";
    }
}

TEST(HubChain, AnalyticsNodeThroughHubSigtermRestartExactlyOnceInSqlite)
{
    restart_mid_stream(false);
}

TEST(HubChain, AnalyticsNodeThroughHubSigkillRestartExactlyOnceInSqlite)
{
    restart_mid_stream(true);
}

} // namespace
