// segment_https_test.cc: segbusd's Segment output over HTTPS, end to end (producers -> ring ->
// a real segbusd -> TLS -> a Segment-like server with a test CA). The server checks what
// Segment's HTTP API documents (research/segment.md 1.2-1.5): Basic auth with the write key,
// JSON with every event's type and messageId, at most 500 KB per request, 32 KB per event and
// 2,500 events, gzip bodies; and it answers from a script: 200, 400, 408, 410, 429 with
// Retry-After, 460, 5xx, or it hangs. Each retry rule is checked: which statuses are retried,
// X-Retry-Count, Retry-After, the backoff delays, timeouts, certificate and host verification,
// and that nothing is ever lost (dead letters are counted and kept with the response).
#include <gtest/gtest.h>

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../pipeline/event_util.h"
#include "harness.h"

#include <liburing.h>
extern "C" {
#include "config/config.h"
#include "net/http_server.h"
#include "net/loop.h"
#include "segbus/segbus.h"
}

using namespace sbt;

namespace
{

const char *const kWriteKey = "wk_seg";
const char *const kAuth = "Basic d2tfc2VnOg=="; // base64("wk_seg:"): user = key, no password

struct SegmentLike {
    struct Request {
        uint64_t at_ns = 0;
        int status = 0; // 0: left hanging
        std::string retry_count, encoding;
        std::vector<std::string> ids;
    };
    HttpReceiver http;
    std::mutex mu;
    std::vector<Request> requests;
    std::map<std::string, int> accepted; // messageId -> times taken with a 2xx
    std::vector<std::string> problems;   // what Segment would have refused, and why
    // Answers in order ("200", "400", "429:3600" = with Retry-After: 3600, "hang"); then 200.
    std::deque<std::string> script;
    std::vector<sb_http_exchange *> hung;

    bool start(const TestCA &ca, bool wrong_host = false)
    {
        http.tls_cert = wrong_host ? ca.wrong_host_cert : ca.cert;
        http.tls_key = wrong_host ? ca.wrong_host_key : ca.key;
        return http.start(
            [this](sb_http_exchange *ex, const sb_http_message *m) { handle(ex, m); });
    }
    size_t nrequests()
    {
        std::lock_guard<std::mutex> g(mu);
        return requests.size();
    }
    size_t naccepted()
    {
        std::lock_guard<std::mutex> g(mu);
        return accepted.size();
    }

    // Segment's documented checks; "" when the request is one Segment takes.
    static std::string check(const sb_http_message *req, std::vector<std::string> *ids)
    {
        if (std::string(req->method) != "POST" || path(req) != "/v1/batch")
            return "not POST /v1/batch";
        if (header(req, "Authorization") != kAuth)
            return "Authorization is not Basic base64(write key + ':')";
        if (header(req, "Content-Type").rfind("application/json", 0) != 0)
            return "Content-Type is not application/json";
        // The server inflated a gzip body already (zlib), so this is the JSON's own size.
        if (req->body_len > SB_SEGMENT_MAX_BATCH_BYTES)
            return "batch over 500 KB: " + std::to_string(req->body_len);
        simdjson::dom::parser parser;
        simdjson::dom::element root;
        if (parser.parse((const char *)req->body, req->body_len).get(root))
            return "body is not JSON";
        simdjson::dom::array batch;
        if (root["batch"].get_array().get(batch))
            return "no batch array";
        std::string_view sent_at;
        if (root["sentAt"].get_string().get(sent_at) || sent_at.size() < 20)
            return "no sentAt";
        static const std::set<std::string_view> types = {"identify", "track", "page",
                                                         "screen",   "group", "alias"};
        size_t n = 0;
        for (simdjson::dom::element ev : batch) {
            std::string_view type, id;
            if (ev["type"].get_string().get(type) || !types.count(type))
                return "an event without a valid type";
            if (ev["messageId"].get_string().get(id) || id.empty() || id.size() > 100)
                return "an event without a messageId";
            size_t bytes = simdjson::minify(ev).size();
            if (bytes > SB_SEGMENT_MAX_EVENT_BYTES)
                return "event " + std::string(id) + " over 32 KB: " + std::to_string(bytes);
            ids->emplace_back(id);
            n++;
        }
        if (n == 0 || n > SB_SEGMENT_MAX_BATCH_EVENTS)
            return "batch of " + std::to_string(n) + " events";
        return "";
    }

    void handle(sb_http_exchange *ex, const sb_http_message *req)
    {
        std::lock_guard<std::mutex> g(mu);
        // Hung requests' clients have given up by now: answering frees what is left of them.
        for (auto *h : hung)
            sb_http_respond(h, 200, nullptr, 0, nullptr, 0);
        hung.clear();
        Request r;
        r.at_ns = sb_now_ns();
        r.retry_count = header(req, "X-Retry-Count");
        r.encoding = header(req, "Content-Encoding");
        std::string why = check(req, &r.ids);
        std::string answer = "200";
        if (!script.empty()) {
            answer = script.front();
            script.pop_front();
        }
        if (!why.empty()) {
            problems.push_back(why);
            r.status = 400;
            requests.push_back(r);
            respond_json(ex, 400, "{\"code\":\"invalid_request\",\"message\":\"" + why + "\"}");
            return;
        }
        if (answer == "hang") {
            hung.push_back(ex);
            requests.push_back(r);
            return;
        }
        size_t colon = answer.find(':');
        r.status = std::stoi(answer.substr(0, colon));
        std::map<std::string, std::string> h;
        if (colon != std::string::npos)
            h["Retry-After"] = answer.substr(colon + 1);
        if (r.status < 300)
            for (auto &id : r.ids)
                accepted[id]++;
        requests.push_back(r);
        respond_json(ex, r.status,
                     r.status < 300 ? "{\"success\":true}"
                                    : "{\"code\":\"scripted_" + std::to_string(r.status) +
                                          "\",\"message\":\"as the script says\"}",
                     h);
    }
};

TestCA &pki()
{
    static TestCA *ca = new TestCA; // one per program: the CLI takes a moment
    return *ca;
}

// A segbusd with one Segment output to the server at `port` (HTTPS, verified against ca_file).
struct Daemon {
    TempDir dir{"segbus-segment"};
    uint16_t mport = free_port();
    std::string sock = dir / "segbusd.sock", log = dir / "segbusd.log", dead = dir / "dead.ndjson";
    Segbusd d;
    void configure(uint16_t port, const std::string &ca_file, const std::string &timeout = "2s",
                   int max_events = 20, const std::string &host = "127.0.0.1")
    {
        write_file(dir / "segbusd.yaml",
                   "log_level: info\nshutdown_timeout: 1s\n"
                   "socket: {path: " +
                       sock +
                       "}\n"
                       "batch: {max_events: " +
                       std::to_string(max_events) +
                       ", flush_interval: 20ms}\n"
                       "spool: {dir: " +
                       dir.path +
                       "/spool, segment_bytes: 1MiB, max_bytes: 16MiB}\n"
                       "metrics: {listen: 127.0.0.1:" +
                       std::to_string(mport) +
                       "}\n"
                       "outputs:\n"
                       "  - type: segment\n"
                       "    name: segment\n"
                       "    settings:\n"
                       "      write_key: " +
                       kWriteKey + "\n      host: https://" + host + ":" + std::to_string(port) +
                       "\n      gzip: true\n      tls_ca_file: " + ca_file +
                       "\n      timeout: " + timeout + "\n      dead_letter: " + dead + "\n");
    }
    bool start()
    {
        return d.start(dir / "segbusd.yaml", log, true) && wait_socket(sock);
    }
    std::string logs()
    {
        return slurp(log);
    }
    std::string metrics()
    {
        return http_get(mport, "/metrics");
    }
};

// Writes events with ids prefix0..prefix(n-1) into the ring; extra: bytes of padding (fill) in
// a property, to make big events.
bool produce(const std::string &sock, const std::string &prefix, int n, size_t extra = 0,
             char fill = 'x')
{
    segbus_producer_options_t o;
    segbus_producer_options_init(&o);
    o.full_policy = SEGBUS_FULL_BLOCK;
    o.block_timeout_ms = 5000;
    segbus_producer_t *h;
    // The socket file appears at bind(), a moment before listen(): a refused connection then
    // means "not yet".
    int rc = segbus_producer_open(&h, sock.c_str(), &o);
    for (int i = 0; i < 100 && rc == -SEGBUS_ENODAEMON; i++) {
        usleep(20000);
        rc = segbus_producer_open(&h, sock.c_str(), &o);
    }
    if (rc != 0) {
        fprintf(stderr, "producer open: %s\n", segbus_strerror(rc));
        return false;
    }
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        std::string id = prefix + std::to_string(i);
        std::string pad(extra, fill);
        std::string e = extra ? pack({{"type", Val::str("track")},
                                      {"userId", Val::str("u1")},
                                      {"event", Val::str("Big")},
                                      {"messageId", Val::str(id)},
                                      {"properties", Val::raw(map_raw({{"pad", Val::str(pad)}}))}})
                              : track(id);
        rc = segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size());
        if (rc != 0) {
            fprintf(stderr, "producer write %s: %s\n", id.c_str(), segbus_strerror(rc));
            ok = false;
        }
    }
    rc = segbus_producer_flush(h, 10000);
    if (rc != 0) {
        fprintf(stderr, "producer flush: %s\n", segbus_strerror(rc));
        ok = false;
    }
    segbus_producer_close(h);
    return ok;
}

// messageId -> lines of the dead-letter file that hold it.
std::map<std::string, int> dead_ids(const std::string &path)
{
    std::map<std::string, int> m;
    std::string text = slurp(path);
    const std::string key = "\"messageId\":\"";
    for (size_t p = text.find(key); p != std::string::npos; p = text.find(key, p)) {
        p += key.size();
        m[text.substr(p, text.find('"', p) - p)]++;
    }
    return m;
}

// The retry delays segbusd logged ("retry N in X s"), in order.
std::vector<double> logged_delays(const std::string &log)
{
    std::vector<double> v;
    for (size_t p = log.find("; retry "); p != std::string::npos; p = log.find("; retry ", p + 1)) {
        size_t in = log.find(" in ", p);
        if (in != std::string::npos && in < log.find('\n', p))
            v.push_back(atof(log.c_str() + in + 4));
    }
    return v;
}

TEST(SegmentHttps, RetriedExactlyOnTheRetryableStatusesAndDeadLetteredOnTheOthers)
{
    ASSERT_TRUE(pki().ok) << pki().error;
    SegmentLike seg;
    // Request 0: the first batch's first attempt, then one retry per retryable status (with
    // Retry-After: 0 to keep the test fast), then success. Then four batches refused for good.
    seg.script = {"408:0", "410:0", "429:0", "460:0", "500:0", "502:0", "503:0",
                  "504:0", "200",   "400",   "501",   "505",   "511"};
    ASSERT_TRUE(seg.start(pki()));
    Daemon dm;
    dm.configure(seg.http.port, pki().ca);
    ASSERT_TRUE(dm.start()) << dm.logs();
    const int n = 200;
    ASSERT_TRUE(produce(dm.sock, "r", n));
    // Every event either accepted or dead-lettered.
    auto settled = [&] { return seg.naccepted() + dead_ids(dm.dead).size() >= (size_t)n; };
    ASSERT_TRUE(wait_for(settled, 30000)) << dm.logs();
    std::string metrics = dm.metrics();
    EXPECT_EQ(dm.d.stop(15), 0) << dm.logs();

    std::lock_guard<std::mutex> g(seg.mu);
    EXPECT_TRUE(seg.problems.empty()) << seg.problems[0];
    ASSERT_GE(seg.requests.size(), 13u);
    // The first batch: sent, then retried once per retryable status with X-Retry-Count 1..8,
    // always the same events.
    EXPECT_EQ(seg.requests[0].retry_count, "");
    for (int i = 1; i <= 8; i++) {
        EXPECT_EQ(seg.requests[i].retry_count, std::to_string(i)) << i;
        EXPECT_EQ(seg.requests[i].ids, seg.requests[0].ids) << i;
    }
    EXPECT_EQ(seg.requests[8].status, 200);
    // 400, 501, 505, 511: each a different batch, first attempt, never retried.
    std::set<std::string> refused;
    for (int i = 9; i <= 12; i++) {
        EXPECT_EQ(seg.requests[i].retry_count, "") << i;
        EXPECT_NE(seg.requests[i].ids, seg.requests[i - 1].ids) << i;
        for (auto &id : seg.requests[i].ids)
            refused.insert(id);
    }
    for (size_t i = 9; i < seg.requests.size(); i++)
        EXPECT_EQ(seg.requests[i].retry_count, "") << i; // nothing after them was retried
    for (auto &r : seg.requests)
        EXPECT_EQ(r.encoding, "gzip");
    // Nothing lost, nothing twice: accepted + dead-lettered = everything.
    auto dead = dead_ids(dm.dead);
    EXPECT_EQ(dead.size(), refused.size());
    for (auto &id : refused)
        EXPECT_EQ(dead[id], 1) << id;
    for (int i = 0; i < n; i++) {
        std::string id = "r" + std::to_string(i);
        EXPECT_EQ(seg.accepted[id] + dead[id], 1) << id;
    }
    // The dead letters keep each status and the server's answer; the key is never written.
    std::string dl = slurp(dm.dead);
    for (const char *st : {"\"status\":400", "\"status\":501", "\"status\":505", "\"status\":511"})
        EXPECT_NE(dl.find(st), std::string::npos) << st;
    EXPECT_NE(dl.find("scripted_400"), std::string::npos) << dl.substr(0, 300);
    EXPECT_EQ(dl.find(kWriteKey), std::string::npos);
    EXPECT_EQ(dm.logs().find(kWriteKey), std::string::npos);
    // Counted.
    EXPECT_NE(metrics.find("segbus_dead_lettered_events_total{output=\"segment\",reason="
                           "\"refused_or_expired\"} " +
                           std::to_string(refused.size())),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("segbus_retried_batches_total{output=\"segment\",reason="
                           "\"retryable_status\"} 8"),
              std::string::npos)
        << metrics;
}

TEST(SegmentHttps, BackoffFromHalfASecondAndRetryAfterHonouredUpTo300s)
{
    ASSERT_TRUE(pki().ok) << pki().error;
    SegmentLike seg;
    // No Retry-After: the backoff (0.5 s, then 1 s, +-10%); then Retry-After: 1 (1 s, and
    // the backoff does not grow); then a Retry-After of an hour, which must wait 300 s.
    seg.script = {"500", "503", "429:1", "200", "429:3600"};
    ASSERT_TRUE(seg.start(pki()));
    Daemon dm;
    dm.configure(seg.http.port, pki().ca, "2s", 5);
    ASSERT_TRUE(dm.start()) << dm.logs();
    ASSERT_TRUE(produce(dm.sock, "a", 5));
    ASSERT_TRUE(wait_for([&] { return seg.naccepted() >= 5; }, 20000)) << dm.logs();
    ASSERT_TRUE(produce(dm.sock, "b", 5)); // the next batch: told to wait an hour
    ASSERT_TRUE(wait_for([&] { return logged_delays(dm.logs()).size() >= 4; }, 10000)) << dm.logs();
    std::string log = dm.logs();
    // SIGTERM: it does not wait 300 s; the batch stays in the spool (exit 1: undelivered).
    EXPECT_EQ(dm.d.stop(15), 1) << log;

    std::vector<double> delays = logged_delays(log);
    ASSERT_EQ(delays.size(), 4u) << log;
    EXPECT_GE(delays[0], 0.45); // 0.5 s +- 10% jitter
    EXPECT_LE(delays[0], 0.55);
    EXPECT_GE(delays[1], 0.9); // doubled
    EXPECT_LE(delays[1], 1.1);
    EXPECT_EQ(delays[2], 1.0);   // Retry-After: 1
    EXPECT_EQ(delays[3], 300.0); // Retry-After: 3600, capped
    {
        std::lock_guard<std::mutex> g(seg.mu);
        ASSERT_EQ(seg.requests.size(), 5u);
        // The waits really happened (a little early is jitter's -10%, never the whole delay).
        for (int i = 1; i <= 3; i++) {
            double gap = (double)(seg.requests[i].at_ns - seg.requests[i - 1].at_ns) / 1e9;
            EXPECT_GE(gap, delays[i - 1] - 0.002) << i;
            EXPECT_LE(gap, delays[i - 1] + 1.0) << i;
            EXPECT_EQ(seg.requests[i].retry_count, std::to_string(i));
        }
        EXPECT_EQ(seg.requests[4].retry_count, ""); // the second batch's first attempt
        EXPECT_TRUE(seg.problems.empty()) << seg.problems[0];
    }
    // Nothing lost: the next start delivers the batch that was told to wait.
    ASSERT_TRUE(dm.start()) << dm.logs();
    ASSERT_TRUE(wait_for([&] { return seg.naccepted() >= 10; }, 20000)) << dm.logs();
    EXPECT_EQ(dm.d.stop(15), 0) << dm.logs();
    std::lock_guard<std::mutex> g(seg.mu);
    for (auto &kv : seg.accepted)
        EXPECT_EQ(kv.second, 1) << kv.first;
}

TEST(SegmentHttps, HangingServerHitsTheTimeoutAndIsRetried)
{
    ASSERT_TRUE(pki().ok) << pki().error;
    SegmentLike seg;
    seg.script = {"hang"};
    ASSERT_TRUE(seg.start(pki()));
    Daemon dm;
    dm.configure(seg.http.port, pki().ca, "300ms");
    ASSERT_TRUE(dm.start()) << dm.logs();
    ASSERT_TRUE(produce(dm.sock, "h", 10));
    ASSERT_TRUE(wait_for([&] { return seg.naccepted() >= 10; }, 20000)) << dm.logs();
    std::string log = dm.logs();
    EXPECT_EQ(dm.d.stop(15), 0) << log;
    EXPECT_NE(log.find("response timed out"), std::string::npos) << log;
    std::lock_guard<std::mutex> g(seg.mu);
    ASSERT_GE(seg.requests.size(), 2u);
    EXPECT_EQ(seg.requests[0].status, 0); // never answered
    EXPECT_EQ(seg.requests[1].retry_count, "1");
    EXPECT_EQ(seg.requests[1].ids, seg.requests[0].ids);
    double gap = (double)(seg.requests[1].at_ns - seg.requests[0].at_ns) / 1e9;
    // The timeout, then the first backoff; the timeout started when the daemon sent, which
    // the server may have seen a little later (a busy machine): only the backoff is a bound.
    EXPECT_GE(gap, 0.45);
    for (auto &kv : seg.accepted)
        EXPECT_EQ(kv.second, 1) << kv.first;
}

TEST(SegmentHttps, WrongCaAndWrongHostFailClearlyAndLoseNothing)
{
    ASSERT_TRUE(pki().ok) << pki().error;
    SegmentLike seg;
    ASSERT_TRUE(seg.start(pki()));
    uint16_t port = seg.http.port;
    Daemon dm;
    // 1. A CA that did not sign the server's certificate.
    dm.configure(port, pki().other_ca);
    ASSERT_TRUE(dm.start()) << dm.logs();
    ASSERT_TRUE(produce(dm.sock, "w", 30));
    EXPECT_TRUE(wait_for(
        [&] { return dm.logs().find("certificate verify failed") != std::string::npos; }, 10000))
        << dm.logs();
    EXPECT_NE(dm.logs().find("unable to get local issuer certificate"), std::string::npos)
        << dm.logs();
    EXPECT_EQ(dm.d.stop(15), 1) << dm.logs(); // undelivered: kept in the spool
    EXPECT_EQ(seg.nrequests(), 0u);           // no request left the daemon
    // 2. The right CA, but the server's certificate is for another name.
    seg.http.stop();
    ASSERT_TRUE(seg.start(pki(), true));
    dm.configure(port, pki().ca);
    size_t before = dm.logs().size();
    ASSERT_TRUE(dm.start()) << dm.logs();
    EXPECT_TRUE(wait_for(
        [&] { return dm.logs().find("IP address mismatch", before) != std::string::npos; }, 10000))
        << dm.logs();
    EXPECT_EQ(dm.d.stop(15), 1) << dm.logs();
    EXPECT_EQ(seg.nrequests(), 0u);
    // 2b. The same by name, as for api.segment.io: SNI and a host-name check.
    dm.configure(port, pki().ca, "2s", 20, "localhost");
    before = dm.logs().size();
    ASSERT_TRUE(dm.start()) << dm.logs();
    EXPECT_TRUE(wait_for(
        [&] { return dm.logs().find("hostname mismatch", before) != std::string::npos; }, 10000))
        << dm.logs();
    EXPECT_EQ(dm.d.stop(15), 1) << dm.logs();
    EXPECT_EQ(seg.nrequests(), 0u);
    // 3. All well (by name): every event arrives, once.
    seg.http.stop();
    ASSERT_TRUE(seg.start(pki()));
    ASSERT_TRUE(dm.start()) << dm.logs();
    ASSERT_TRUE(wait_for([&] { return seg.naccepted() >= 30; }, 20000)) << dm.logs();
    EXPECT_EQ(dm.d.stop(15), 0) << dm.logs();
    std::lock_guard<std::mutex> g(seg.mu);
    EXPECT_EQ(seg.accepted.size(), 30u);
    for (auto &kv : seg.accepted)
        EXPECT_EQ(kv.second, 1) << kv.first;
    EXPECT_TRUE(seg.problems.empty()) << seg.problems[0];
}

TEST(SegmentHttps, BatchesAndEventsStayWithinSegmentsSizeLimits)
{
    ASSERT_TRUE(pki().ok) << pki().error;
    SegmentLike seg;
    ASSERT_TRUE(seg.start(pki()));
    Daemon dm;
    dm.configure(seg.http.port, pki().ca, "5s", 2500);
    ASSERT_TRUE(dm.start()) << dm.logs();
    // ~30 KB events (near the 32 KB limit) fill batches by bytes, not by count; small ones fill
    // them by count. An event of 40 KB is refused by the producer already. One of 30 KB of
    // control characters passes every msgpack bound but is 180 KB as JSON: Segment would
    // answer 400 to its whole batch, so it alone must end in the dead-letter file.
    ASSERT_TRUE(produce(dm.sock, "big", 40, 30000));
    ASSERT_TRUE(produce(dm.sock, "small", 3000));
    EXPECT_FALSE(produce(dm.sock, "huge", 1, 40000));
    ASSERT_TRUE(produce(dm.sock, "esc", 1, 30000, '\x01'));
    ASSERT_TRUE(produce(dm.sock, "after", 10));
    ASSERT_TRUE(
        wait_for([&] { return seg.naccepted() >= 3050 && dead_ids(dm.dead).size() >= 1; }, 30000))
        << dm.logs();
    std::string metrics = dm.metrics();
    EXPECT_EQ(dm.d.stop(15), 0) << dm.logs();
    std::lock_guard<std::mutex> g(seg.mu);
    EXPECT_TRUE(seg.problems.empty()) << seg.problems[0];
    EXPECT_EQ(seg.accepted.size(), 3050u);
    for (auto &kv : seg.accepted)
        EXPECT_EQ(kv.second, 1) << kv.first;
    EXPECT_EQ(seg.accepted.count("huge0"), 0u);
    EXPECT_EQ(seg.accepted.count("esc0"), 0u);
    auto dead = dead_ids(dm.dead);
    EXPECT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead["esc0"], 1);
    EXPECT_NE(slurp(dm.dead).find("too large for the destination"), std::string::npos);
    EXPECT_NE(metrics.find("segbus_dead_lettered_events_total{output=\"segment\",reason="
                           "\"refused_or_expired\"} 1"),
              std::string::npos)
        << metrics;
    size_t most = 0;
    for (auto &r : seg.requests)
        most = std::max(most, r.ids.size());
    EXPECT_LE(most, 2500u); // Segment's per-batch count
}

// US and EU by name: the config turns them into Segment's documented endpoints.
TEST(SegmentHosts, UsAndEuByNameAreTheDocumentedUrls)
{
    struct Case {
        const char *host, *want_host;
    } cases[] = {{"us", "api.segment.io"},
                 {"api.segment.io", "api.segment.io"},
                 {"eu", "events.eu1.segmentapis.com"},
                 {"events.eu1.segmentapis.com", "events.eu1.segmentapis.com"}};
    for (auto &c : cases) {
        std::string yaml = std::string("outputs:\n  - type: segment\n    name: s\n    settings: "
                                       "{write_key: k, host: ") +
                           c.host + "}\n";
        sb_config cfg;
        sb_config_error err{};
        ASSERT_EQ(sb_config_load_string(&cfg, yaml.data(), yaml.size(), "t.yaml", &err), 0)
            << c.host << ": " << err.msg;
        const sb_output_config *o = sb_config_output(&cfg, "s");
        ASSERT_NE(o, nullptr);
        std::string url = std::string(o->endpoint.tls ? "https://" : "http://") + o->endpoint.host +
                          ":" + std::to_string(o->endpoint.port) + o->endpoint.path;
        EXPECT_EQ(url, std::string("https://") + c.want_host + ":443/v1/batch") << c.host;
        sb_config_free(&cfg);
    }
    std::string bad = "outputs:\n  - type: segment\n    name: s\n    settings: {write_key: k, "
                      "host: mars}\n";
    sb_config cfg;
    sb_config_error err{};
    EXPECT_NE(sb_config_load_string(&cfg, bad.data(), bad.size(), "t.yaml", &err), 0);
    EXPECT_NE(std::string(err.msg).find("mars"), std::string::npos) << err.msg;
    EXPECT_NE(std::string(err.msg).find("us, eu"), std::string::npos) << err.msg;
}

} // namespace
