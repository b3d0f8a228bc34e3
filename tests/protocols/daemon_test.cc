// daemon_test.cc: a real segbusd with a source plan (invalid: omit, unplanned events: block,
// violations forwarded to an output) and the seed's PII transform: the file output gets the
// cleaned events, the blocked one is in the violations log, the email never reaches the spool
// on disk, `Violation Generated` events reach the chosen output only, /metrics counts the
// violations by event, type and field, and /tail shows them.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "harness.h"

extern "C" {
#include "json/json.h"
#include "segbus/segbus.h"
}

using sbt::slurp;

namespace
{

// Every byte of every file under dir (the spool), to look for what must not be there.
std::string slurp_tree(const std::string &dir)
{
    std::string all;
    DIR *d = opendir(dir.c_str());
    if (!d)
        return all;
    while (dirent *e = readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..")
            continue;
        struct stat st;
        std::string p = dir + "/" + n;
        if (stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
            all += slurp_tree(p);
        else
            all += slurp(p);
    }
    closedir(d);
    return all;
}

const char plan[] = R"({"events": [{"name": "Order Completed", "rules": {"properties": {
 "type": "object", "required": ["order_id", "total", "currency", "products"],
 "properties": {"order_id": {"type": "string"}, "total": {"type": "number", "minimum": 0},
  "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
  "products": {"type": "array", "items": {"type": "object", "required": ["product_id", "price"],
   "properties": {"product_id": {"type": "string"}, "price": {"type": "number"}}}}}}}}]})";

int buf_write(void *data, const char *b, size_t len)
{
    return sb_buf_append(static_cast<sb_buf *>(data), b, len) ? -1 : 0;
}

// The seed's Order Completed event (with an email the transform must strip), as msgpack.
std::string order(const std::string &id, const std::string &name, const std::string &price)
{
    std::string json = R"({"type":"track","event":")" + name +
                       R"(","userId":"USR-12345","messageId":")" + id +
                       R"(","properties":{"order_id":"ORD-1","total":129.98,"currency":"USD",)"
                       R"("email":"ada@example.com","products":[{"product_id":"SKU-1","price":)" +
                       price + "}]}}";
    sb_buf b = SB_BUF_INIT;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_write);
    EXPECT_EQ(0, sb_json_to_msgpack(json.data(), json.size(), &pk, nullptr));
    std::string s(reinterpret_cast<char *>(b.data), b.len);
    sb_buf_free(&b);
    return s;
}

} // namespace

TEST(ProtocolsDaemon, PlanAndPiiTransformBeforeSpool)
{
    sbt::TempDir tmp("segbus-protd");
    std::string dir = tmp.path, sock = tmp / "segbusd.sock", out = tmp / "events.ndjson",
                vout = tmp / "generated.ndjson", vlog = tmp / "violations.ndjson",
                cfg = tmp / "segbusd.yaml";
    uint16_t mport = sbt::free_port();
    sbt::write_file(tmp / "plan.json", plan);
    std::ofstream(cfg) << "socket: {path: " << sock << "}\n"
                       << "ring: {capacity: 1MiB, source: app}\n"
                       << "batch: {max_events: 10, flush_interval: 20ms}\n"
                       << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 16MiB}\n"
                       << "metrics: {listen: 127.0.0.1:" << mport << "}\n"
                       << "sources:\n"
                       << "  - name: app\n"
                       << "    plan: " << dir << "/plan.json\n"
                       << "    violations: {unplanned_events: block, invalid: omit, log: " << vlog
                       << ", forward_to: generated}\n"
                       << "    transforms:\n"
                       << "      - {type: track, drop: [properties.email]}\n"
                       << "outputs:\n"
                       << "  - {type: file, name: file, settings: {path: " << out << "}}\n"
                       // takes no ordinary event: only what is forwarded to it by name
                       << "  - {type: file, name: generated, events: {allow: [Nothing Else]}, settings: {path: "
                       << vout << "}}\n";
    sbt::Segbusd d;
    ASSERT_TRUE(d.start(cfg, tmp / "segbusd.log"));
    ASSERT_TRUE(sbt::wait_socket(sock)) << slurp(tmp / "segbusd.log");
    // someone tails: the daemon records events from now on
    ASSERT_EQ(200, sbt::http_request(mport, "GET", "/tail?wait_ms=0").status);

    segbus_producer_options_t o;
    segbus_producer_options_init(&o);
    segbus_producer_t *h;
    ASSERT_EQ(0, segbus_producer_open(&h, sock.c_str(), &o));
    std::string evs[] = {order("ok-1", "Order Completed", "49.99"),
                         order("price-str", "Order Completed", "\"49.99\""),
                         order("typo", "Order Complted", "49.99")};
    for (auto &e : evs)
        EXPECT_EQ(0, segbus_producer_write(h, SEGBUS_RECORD_TYPE_EVENT, e.data(), e.size()));
    EXPECT_EQ(0, segbus_producer_flush(h, 10000));
    segbus_producer_close(h);

    EXPECT_TRUE(sbt::wait_for(
        [&] {
            std::string got = slurp(out), gen = slurp(vout);
            return got.find("price-str") != std::string::npos &&
                   got.find("ok-1") != std::string::npos &&
                   slurp(vlog).find("typo") != std::string::npos &&
                   gen.find("\"eventMessageID\":\"typo\"") != std::string::npos &&
                   gen.find("\"eventMessageID\":\"price-str\"") != std::string::npos;
        },
        10000))
        << slurp(out) << slurp(vout) << slurp(tmp / "segbusd.log");
    std::string spool = slurp_tree(dir + "/spool");
    std::string metrics = sbt::http_get(mport, "/metrics");
    sbt::Reply tail = sbt::http_request(mport, "GET", "/tail?last=10&wait_ms=0");
    EXPECT_EQ(0, d.stop(10)) << slurp(tmp / "segbusd.log");

    std::string got = slurp(out);
    EXPECT_NE(std::string::npos, got.find("ok-1")) << got << slurp(tmp / "segbusd.log");
    EXPECT_EQ(std::string::npos, got.find("typo")) << got;
    EXPECT_EQ(std::string::npos, got.find("ada@example.com")) << got;
    EXPECT_EQ(std::string::npos, got.find("49.99\"")) << got;  // the string price was omitted
    EXPECT_NE(std::string::npos,
              got.find(R"("violations":[{"type":"Type","field":"properties.products.0.price")"))
        << got;
    EXPECT_EQ(std::string::npos, got.find("Violation Generated")) << got; // only where chosen
    std::string v = slurp(vlog);
    EXPECT_NE(std::string::npos, v.find(R"("event":"Order Complted","violations":[{"type":"Unplanned event")"))
        << v;
    EXPECT_FALSE(spool.empty());
    EXPECT_EQ(std::string::npos, spool.find("ada@example.com")); // PII never reached disk

    // one Violation Generated per violation, with Segment's properties
    int lines = 0;
    auto ids = sbt::ndjson_message_ids(vout, &lines);
    EXPECT_EQ(2, lines) << slurp(vout);
    EXPECT_EQ(2u, ids.size()); // each has a messageId of its own
    std::string gen = slurp(vout);
    EXPECT_NE(std::string::npos,
              gen.find(R"("violationType":"Type","violationField":"properties.products.0.price")"))
        << gen;
    EXPECT_NE(std::string::npos,
              gen.find(R"("violationType":"Unplanned event","violationField":"event")"))
        << gen;
    EXPECT_EQ(std::string::npos, gen.find("ok-1")) << gen;

    // counted by event, type and field
    EXPECT_NE(std::string::npos,
              metrics.find(R"(segbus_plan_violations_total{source="app",event="Order Completed",type="Type",field="properties.products.0.price"} 1)"))
        << metrics;
    EXPECT_NE(std::string::npos,
              metrics.find(R"(segbus_plan_violations_total{source="app",event="Order Complted",type="Unplanned event",field="event"} 1)"))
        << metrics;

    // shown in the tail: the omitted one as a violation, the typo as blocked, with reasons
    ASSERT_EQ(200, tail.status) << tail.head;
    EXPECT_NE(std::string::npos,
              tail.body.find(R"("status":"violation","violations":[{"type":"Type","field":"properties.products.0.price","reason":)"))
        << tail.body;
    EXPECT_NE(std::string::npos,
              tail.body.find(R"("status":"blocked","stage":"plan","reason":"blocked","violations":[{"type":"Unplanned event","field":"event","reason":"event 'Order Complted' is not in the tracking plan"}])"))
        << tail.body;
    EXPECT_NE(std::string::npos, tail.body.find(R"("event":"Order Completed","userId":"USR-12345","status":"passed")"))
        << tail.body;
}
