// runner_test.cc: an output runner with the Segment plugin against a Segment-like server on
// the same io_uring loop: Basic auth with the write key, gzip, JSON bodies; a 400 goes to the
// dead-letter file (never retried), a 429 is retried with X-Retry-Count, the rest is sent.
#include <gtest/gtest.h>

#include <liburing.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../pipeline/event_util.h"

extern "C" {
#include "config/config.h"
#include "metrics/metrics.h"
#include "net/http.h"
#include "net/http_server.h"
#include "net/loop.h"
#include "outputs/output.h"
#include "spool/spool.h"
}

using namespace sbt;

namespace
{

struct Seen {
    std::string auth, encoding, type, retry, json;
};

struct Server {
    std::vector<int> script; // statuses to answer, in order; then 200
    std::vector<Seen> seen;
    static void route(void *arg, sb_http_exchange *ex, const sb_http_message *req)
    {
        Server *s = (Server *)arg;
        Seen v;
        auto get = [&](const char *n) {
            const char *x = sb_http_header_get(req, n);
            return std::string(x ? x : "");
        };
        v.auth = get("Authorization");
        v.encoding = get("Content-Encoding");
        v.type = get("Content-Type");
        v.retry = get("X-Retry-Count");
        // The server inflates gzip bodies before the route sees them.
        v.json.assign((const char *)req->body, req->body_len);
        s->seen.push_back(v);
        int status = s->seen.size() <= s->script.size() ? s->script[s->seen.size() - 1] : 200;
        if (status == 429) {
            sb_http_header h = {"Retry-After", "0"};
            sb_http_respond(ex, 429, &h, 1, "slow down", 9);
        } else if (status == 400) {
            const char *b = "{\"code\":\"invalid_json\",\"message\":\"bad \\\"batch\\\"\"}";
            sb_http_respond(ex, 400, nullptr, 0, b, strlen(b));
        } else {
            sb_http_respond(ex, status, nullptr, 0, "{\"success\":true}", 16);
        }
    }
};

std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

TEST(OutputRunner, SegmentAuthGzipDeadLetterAndRetry)
{
    char tmpl[] = "/tmp/segbus-runner-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    sb_loop *loop;
    ASSERT_EQ(sb_loop_new(&loop, 64), 0);

    Server srv;
    srv.script = {400, 429};
    sb_http_server_options so{};
    so.route = Server::route;
    so.arg = &srv;
    sb_http_server *hs;
    char err[256] = "";
    ASSERT_EQ(sb_http_server_new(&hs, loop, &so, err, sizeof err), 0) << err;

    sb_spool_opts sp;
    sb_spool_opts_init(&sp);
    std::string spool_dir = dir + "/spool";
    sp.dir = spool_dir.c_str();
    sp.segment_bytes = 1 << 20;
    sp.max_bytes = 8 << 20;
    struct Ctx {
        sb_output_runner *r = nullptr;
    } ctx;
    sp.on_durable = [](void *arg, uint64_t seq) {
        Ctx *c = (Ctx *)arg;
        if (c->r)
            sb_output_runner_on_durable(c->r, seq);
    };
    sp.arg = &ctx;
    const char *names[] = {"seg"};
    sb_spool *spool;
    ASSERT_EQ(sb_spool_open(&spool, loop, &sp, names, 1), 0);

    sb_config cfg;
    ASSERT_EQ(sb_config_defaults(&cfg), 0);
    sb_output_config oc;
    ASSERT_EQ(sb_output_defaults(&oc, SB_OUTPUT_SEGMENT, &cfg), 0);
    oc.name = strdup("seg");
    oc.write_key = strdup("wk_test");
    oc.batch.max_events = 3;
    std::string url = "http://127.0.0.1:" + std::to_string(sb_http_server_port(hs));
    ASSERT_EQ(sb_parse_endpoint(url.c_str(), "/v1/batch", &oc.endpoint), 0);
    std::string dead = dir + "/dead.ndjson";
    oc.dead_letter = strdup(dead.c_str());

    sb_metrics *m;
    ASSERT_EQ(sb_metrics_new(&m), 0);
    ASSERT_EQ(
        sb_output_runner_new(&ctx.r, &oc, 0, loop, spool, spool_dir.c_str(), m, err, sizeof err), 0)
        << err;
    for (int i = 0; i < 5; i++) {
        std::string e = track("m" + std::to_string(i));
        ASSERT_EQ(sb_output_runner_add(ctx.r, (const uint8_t *)e.data(), e.size(), sb_now_ns()), 0);
    }
    EXPECT_EQ(sb_output_runner_pending(ctx.r), 2u); // 3 closed by count, 2 open
    sb_output_runner_tick(ctx.r, sb_now_ns(), true);
    for (int i = 0; i < 500 && !sb_output_runner_idle(ctx.r); i++) {
        sb_loop_run_once(loop, 10 * 1000000LL);
        sb_output_runner_tick(ctx.r, sb_now_ns(), false);
    }
    ASSERT_TRUE(sb_output_runner_idle(ctx.r));

    ASSERT_EQ(srv.seen.size(), 3u);
    for (auto &v : srv.seen) {
        EXPECT_EQ(v.auth, "Basic d2tfdGVzdDo="); // base64("wk_test:")
        EXPECT_EQ(v.encoding, "gzip");
        EXPECT_EQ(v.type, "application/json");
        EXPECT_EQ(v.json.rfind("{\"batch\":[{\"type\":\"track\"", 0), 0u) << v.json;
        EXPECT_NE(v.json.find("\"sentAt\":\"20"), std::string::npos);
    }
    EXPECT_NE(srv.seen[0].json.find("\"messageId\":\"m2\""), std::string::npos);
    EXPECT_EQ(srv.seen[0].retry, "");
    EXPECT_EQ(srv.seen[1].retry, "");  // the second batch, first attempt (got 429)
    EXPECT_EQ(srv.seen[2].retry, "1"); // its retry
    EXPECT_NE(srv.seen[2].json.find("\"messageId\":\"m4\""), std::string::npos);

    const sb_output_counters *c = sb_output_runner_counters(ctx.r);
    EXPECT_EQ(c->sent, 2u);
    EXPECT_EQ(c->dead_lettered, 3u);
    EXPECT_EQ(c->retried, 1u);
    EXPECT_EQ(c->failed_attempts, 2u);

    // The dead letter: one JSON line with the status, the response and the batch.
    std::string dl = slurp(dead);
    EXPECT_EQ(std::count(dl.begin(), dl.end(), '\n'), 1);
    EXPECT_NE(dl.find("\"status\":400"), std::string::npos) << dl;
    EXPECT_NE(dl.find("\"reason\":\"not retryable\""), std::string::npos) << dl;
    EXPECT_NE(dl.find("invalid_json"), std::string::npos) << dl;
    for (const char *id : {"m0", "m1", "m2"})
        EXPECT_NE(dl.find(std::string("\"messageId\":\"") + id + "\""), std::string::npos) << dl;
    EXPECT_EQ(dl.find("wk_test"), std::string::npos); // never the write key

    sb_output_runner_free(ctx.r);
    ctx.r = nullptr;
    sb_http_server_free(hs);
    EXPECT_EQ(sb_spool_close(spool), 0);
    for (int i = 0; i < 10; i++)
        sb_loop_run_once(loop, 1000000LL);
    sb_loop_free(loop);
    sb_metrics_free(m);
    // oc's strings are freed with a throwaway config.
    cfg.outputs = (sb_output_config *)calloc(1, sizeof oc);
    cfg.outputs[0] = oc;
    cfg.n_outputs = 1;
    sb_config_free(&cfg);
    std::string cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
}

} // namespace

namespace
{

// The sqlite output through the runner: a batch lands in Segment's warehouse tables, and a
// batch delivered twice (as after a crash before the ack) adds no rows.
TEST(OutputRunner, SqliteWarehouseIdempotent)
{
    char tmpl[] = "/tmp/segbus-sqlite-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, db = dir + "/w.db", spool_dir = dir + "/spool";
    sb_loop *loop;
    ASSERT_EQ(sb_loop_new(&loop, 64), 0);
    sb_spool_opts sp;
    sb_spool_opts_init(&sp);
    sp.dir = spool_dir.c_str();
    sp.segment_bytes = 1 << 20;
    sp.max_bytes = 8 << 20;
    const char *names[] = {"wh"};
    sb_spool *spool;
    ASSERT_EQ(sb_spool_open(&spool, loop, &sp, names, 1), 0);
    sb_config cfg;
    ASSERT_EQ(sb_config_defaults(&cfg), 0);
    cfg.outputs = (sb_output_config *)calloc(1, sizeof(sb_output_config));
    cfg.n_outputs = 1;
    sb_output_config &oc = cfg.outputs[0];
    ASSERT_EQ(sb_output_defaults(&oc, SB_OUTPUT_SQLITE, &cfg), 0);
    oc.name = strdup("wh");
    oc.path = strdup(db.c_str());
    char err[256] = "";
    for (int round = 0; round < 2; round++) {
        sb_output_runner *r;
        ASSERT_EQ(sb_output_runner_new(&r, &oc, 0, loop, spool, spool_dir.c_str(), nullptr, err,
                                       sizeof err),
                  0)
            << err;
        for (int i = 0; i < 10; i++) {
            std::string e = track("id-" + std::to_string(i), "u" + std::to_string(i));
            ASSERT_EQ(sb_output_runner_add(r, (const uint8_t *)e.data(), e.size(), sb_now_ns()), 0);
        }
        sb_output_runner_tick(r, sb_now_ns(), true);
        for (int i = 0; i < 500 && !sb_output_runner_idle(r); i++) {
            sb_loop_run_once(loop, 10 * 1000000LL);
            sb_output_runner_tick(r, sb_now_ns(), false);
        }
        EXPECT_TRUE(sb_output_runner_idle(r));
        EXPECT_EQ(sb_output_runner_counters(r)->sent, 10u);
        sb_output_runner_free(r);
    }
    std::string cmd = "sqlite3 '" + db + "' 'select count(*) from tracks' > '" + dir + "/n'";
    ASSERT_EQ(system(cmd.c_str()), 0);
    EXPECT_EQ(slurp(dir + "/n"), "10\n");
    EXPECT_EQ(sb_spool_close(spool), 0);
    sb_loop_free(loop);
    sb_config_free(&cfg);
    cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
}

} // namespace

namespace
{

// A batch within Segment's 500 KB as msgpack but over it as JSON (control characters become
// six-byte escapes) is never sent whole: the runner splits it and every event arrives.
TEST(OutputRunner, SegmentSplitsBatchesTooLargeAsJson)
{
    char tmpl[] = "/tmp/segbus-split-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, spool_dir = dir + "/spool";
    sb_loop *loop;
    ASSERT_EQ(sb_loop_new(&loop, 64), 0);
    Server srv;
    sb_http_server_options so{};
    so.route = Server::route;
    so.arg = &srv;
    so.max_body_bytes = 2 << 20;
    so.max_inflated_bytes = 4 << 20;
    sb_http_server *hs;
    char err[256] = "";
    ASSERT_EQ(sb_http_server_new(&hs, loop, &so, err, sizeof err), 0) << err;
    sb_spool_opts sp;
    sb_spool_opts_init(&sp);
    sp.dir = spool_dir.c_str();
    sp.segment_bytes = 1 << 20;
    sp.max_bytes = 8 << 20;
    const char *names[] = {"seg"};
    sb_spool *spool;
    ASSERT_EQ(sb_spool_open(&spool, loop, &sp, names, 1), 0);
    sb_config cfg;
    ASSERT_EQ(sb_config_defaults(&cfg), 0);
    cfg.outputs = (sb_output_config *)calloc(1, sizeof(sb_output_config));
    cfg.n_outputs = 1;
    sb_output_config &oc = cfg.outputs[0];
    ASSERT_EQ(sb_output_defaults(&oc, SB_OUTPUT_SEGMENT, &cfg), 0);
    oc.name = strdup("seg");
    oc.write_key = strdup("k");
    oc.gzip = false;
    oc.batch.max_events = 20;
    std::string url = "http://127.0.0.1:" + std::to_string(sb_http_server_port(hs));
    ASSERT_EQ(sb_parse_endpoint(url.c_str(), "/v1/batch", &oc.endpoint), 0);
    sb_output_runner *r;
    ASSERT_EQ(
        sb_output_runner_new(&r, &oc, 0, loop, spool, spool_dir.c_str(), nullptr, err, sizeof err),
        0)
        << err;
    // 5 KB of control characters: 30 KB each as JSON (under Segment's 32 KB per event), so 20
    // of them fit the batcher's 500 KB msgpack bound but make 600 KB of JSON.
    for (int i = 0; i < 20; i++) {
        std::string e = pack({{"type", Val::str("track")},
                              {"userId", Val::str("u")},
                              {"event", Val::str("E")},
                              {"messageId", Val::str("big" + std::to_string(i))},
                              {"blob", Val::str(std::string(5000, '\x01'))}});
        ASSERT_EQ(sb_output_runner_add(r, (const uint8_t *)e.data(), e.size(), sb_now_ns()), 0);
    }
    for (int i = 0; i < 500 && !sb_output_runner_idle(r); i++) {
        sb_loop_run_once(loop, 10 * 1000000LL);
        sb_output_runner_tick(r, sb_now_ns(), false);
    }
    EXPECT_TRUE(sb_output_runner_idle(r));
    const sb_output_counters *c = sb_output_runner_counters(r);
    EXPECT_EQ(c->split, 1u);
    EXPECT_EQ(c->sent, 20u);
    EXPECT_EQ(c->dead_lettered, 0u);
    ASSERT_EQ(srv.seen.size(), 2u);
    for (auto &v : srv.seen)
        EXPECT_LE(v.json.size(), 500000u);
    std::string all = srv.seen[0].json + srv.seen[1].json;
    for (int i = 0; i < 20; i++)
        EXPECT_NE(all.find("\"messageId\":\"big" + std::to_string(i) + "\""), std::string::npos);
    sb_output_runner_free(r);
    sb_http_server_free(hs);
    EXPECT_EQ(sb_spool_close(spool), 0);
    for (int i = 0; i < 10; i++)
        sb_loop_run_once(loop, 1000000LL);
    sb_loop_free(loop);
    sb_config_free(&cfg);
    std::string cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
}

} // namespace
