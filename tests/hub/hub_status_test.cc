// hub_status_test.cc: delivery status when a destination refuses events: webhooks answering 400
// (never retried) put their batches in the dead-letter file (mode 0600, without the secret), and
// segbus tail, segbus stat and /metrics say so per destination while the file output delivers.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <liburing.h> // before the C headers that include it: its C++ templates

#include "harness.h"

extern "C" {
#include "net/http.h"
#include "net/http_server.h"
}

using namespace sbt;

namespace
{

const char *kAuth = "Authorization: Basic d2tfd2ViOg==\r\n"; // wk_web:

TEST(HubStatus, RefusedWebhookEventsAreDeadLetteredAndShownPerDestination)
{
    TempDir tmp("segbus-hubstatus");
    HttpReceiver rx;
    std::mutex mu;
    std::vector<std::string> each_ids; // event mode: what was posted, in order
    int batch_posts = 0;
    ASSERT_TRUE(rx.start([&](sb_http_exchange *ex, const sb_http_message *req) {
        std::lock_guard<std::mutex> g(mu);
        std::string b = body(req);
        if (path(req) == "/batch") { // refuses every batch
            batch_posts++;
            respond_json(ex, 400, "{\"error\":\"schema mismatch\"}");
            return;
        }
        auto ids = json_message_ids(b);
        each_ids.insert(each_ids.end(), ids.begin(), ids.end());
        bool bad = ids.size() == 1 && ids[0] == "bad-2";
        respond_json(ex, bad ? 422 : 200, bad ? "{\"error\":\"bad event\"}" : "{}");
    }));
    uint16_t port = free_port(), mport = free_port();
    std::string cfg = tmp / "segbusd.yaml", log = tmp / "segbusd.log";
    std::string url = "http://127.0.0.1:" + std::to_string(rx.port);
    write_file(cfg, daemon_config(tmp.path, port, mport, 100) +
                        "sources: [{name: web, write_keys: [wk_web]}]\n"
                        "outputs:\n"
                        "  - {type: webhook, name: strict, settings: {url: " +
                        url +
                        "/batch, secret: dl-s3cret}}\n"
                        "  - {type: webhook, name: each, settings: {url: " +
                        url +
                        "/each, mode: event}}\n"
                        "  - {type: file, name: file, settings: {path: " +
                        tmp / "events.ndjson" + "}}\n");
    Segbusd d;
    ASSERT_TRUE(d.start(cfg, log));
    ASSERT_TRUE(
        wait_for([&] { return http_request(port, "OPTIONS", "/v1/batch").status == 204; }, 5000))
        << slurp(log);
    http_get(mport, "/tail?wait_ms=0"); // record events for the tail from now on

    std::string b = "{\"batch\":[";
    const char *ids[] = {"ok-0", "ok-1", "bad-2", "ok-3", "ok-4"};
    for (int i = 0; i < 5; i++)
        b += std::string(i ? "," : "") + "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\"," +
             "\"messageId\":\"" + ids[i] + "\"}";
    Reply r = http_request(port, "POST", "/v1/batch", kAuth, b + "]}");
    ASSERT_EQ(r.status, 200) << r.body;

    std::string addr = "127.0.0.1:" + std::to_string(mport);
    // Settled: every output has a final status for each event.
    RunResult tail = run_program(segbus_cli(), {"tail", "--metrics", addr, "--last", "100",
                                                "--settled", "--count", "5", "--json"});
    ASSERT_EQ(tail.code, 0) << tail.err;
    std::map<std::string, std::string> line_of;
    for (size_t p = 0, e; p < tail.out.size(); p = e + 1) {
        e = tail.out.find('\n', p);
        if (e == std::string::npos)
            e = tail.out.size();
        std::string l = tail.out.substr(p, e - p);
        for (auto &id : json_message_ids(l))
            line_of[id] = l;
    }
    for (int i = 0; i < 5; i++) {
        const std::string &l = line_of[ids[i]];
        SCOPED_TRACE(ids[i]);
        EXPECT_NE(l.find("\"strict\":\"dead_lettered\""), std::string::npos) << tail.out;
        EXPECT_NE(l.find("\"file\":\"delivered\""), std::string::npos) << l;
        // Event mode: the two before the refused event were delivered, the rest were not.
        EXPECT_NE(l.find(i < 2 ? "\"each\":\"delivered\"" : "\"each\":\"dead_lettered\""),
                  std::string::npos)
            << l;
    }
    RunResult stat_run = run_program(segbus_cli(), {"stat", "--json", "--metrics", addr});
    ASSERT_EQ(stat_run.code, 0) << stat_run.err;
    EXPECT_NE(stat_run.out.find("\"last_error\":\"HTTP 400\""), std::string::npos) << stat_run.out;
    EXPECT_NE(stat_run.out.find("\"last_error\":\"HTTP 422\""), std::string::npos) << stat_run.out;
    std::string metrics = http_get(mport, "/metrics");
    EXPECT_EQ(d.stop(15), 0) << slurp(log);

    {
        std::lock_guard<std::mutex> g(mu);
        EXPECT_EQ(batch_posts, 1) << "a 400 is never retried";
        // Event mode stops at the refused event: the ones after it are in the dead-letter line.
        EXPECT_EQ(each_ids, (std::vector<std::string>{"ok-0", "ok-1", "bad-2"}));
    }
    EXPECT_NE(metrics.find("segbus_dead_lettered_events_total{output=\"strict\","
                           "reason=\"refused_or_expired\"} 5"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_output_last_error_status{output=\"strict\"} 400"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_sent_events_total{output=\"file\"} 5"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_sent_events_total{output=\"each\"} 2"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_dead_lettered_events_total{output=\"each\","
                           "reason=\"refused_or_expired\"} 3"),
              std::string::npos)
        << metrics;

    std::string dl = slurp(tmp / "spool/strict.dead.ndjson");
    EXPECT_NE(dl.find("\"status\":400"), std::string::npos) << dl;
    EXPECT_NE(dl.find("schema mismatch"), std::string::npos) << dl;
    EXPECT_EQ(json_message_ids(dl).size(), 5u) << dl;
    EXPECT_EQ(dl.find("dl-s3cret"), std::string::npos);
    struct stat st;
    ASSERT_EQ(stat((tmp / "spool/strict.dead.ndjson").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    std::string dle = slurp(tmp / "spool/each.dead.ndjson");
    EXPECT_NE(dle.find("event 3 of 5 (the earlier ones were delivered)"), std::string::npos) << dle;
    EXPECT_EQ(slurp(log).find("dl-s3cret"), std::string::npos);
}

} // namespace
