// daemon_test.cc: a real segbusd with a source plan (invalid: omit, unplanned events: block)
// and the seed's PII transform: the file output gets the cleaned events, the blocked one is in
// the violations log, and the email never reaches the spool on disk.
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

extern "C" {
#include "json/json.h"
#include "segbus/segbus.h"
}

namespace
{

std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

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

uint16_t free_port()
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

// Kills the daemon if the test ends early (a failed ASSERT), so no process is left behind.
struct reaper {
    pid_t pid;
    ~reaper()
    {
        if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
};

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
    char tmpl[] = "/tmp/segbus-protd-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, sock = dir + "/segbusd.sock", out = dir + "/events.ndjson",
                vlog = dir + "/violations.ndjson", cfg = dir + "/segbusd.yaml";
    std::ofstream(dir + "/plan.json") << plan;
    std::ofstream(cfg) << "socket: {path: " << sock << "}\n"
                       << "ring: {capacity: 1MiB, source: app}\n"
                       << "batch: {max_events: 10, flush_interval: 20ms}\n"
                       << "spool: {dir: " << dir << "/spool, segment_bytes: 1MiB, max_bytes: 16MiB}\n"
                       << "metrics: {listen: 127.0.0.1:" << free_port() << "}\n"
                       << "sources:\n"
                       << "  - name: app\n"
                       << "    plan: " << dir << "/plan.json\n"
                       << "    violations: {unplanned_events: block, invalid: omit, log: " << vlog
                       << "}\n"
                       << "    transforms:\n"
                       << "      - {type: track, drop: [properties.email]}\n"
                       << "outputs:\n"
                       << "  - {type: file, name: file, settings: {path: " << out << "}}\n";
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open((dir + "/segbusd.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        std::string bin = std::string(SEGBUS_BINARY_DIR) + "/src/daemon/segbusd";
        execl(bin.c_str(), "segbusd", "--config", cfg.c_str(), (char *)nullptr);
        _exit(127);
    }
    ASSERT_GT(pid, 0);
    reaper guard{pid};
    struct stat st;
    for (int i = 0; i < 500 && stat(sock.c_str(), &st) != 0; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(stat(sock.c_str(), &st), 0) << slurp(dir + "/segbusd.log");

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

    std::string got;
    for (int i = 0; i < 1000; i++) {
        got = slurp(out);
        if (got.find("price-str") != std::string::npos && got.find("ok-1") != std::string::npos &&
            slurp(vlog).find("typo") != std::string::npos)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::string spool = slurp_tree(dir + "/spool");
    kill(pid, SIGTERM);
    int status = -1;
    for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) != pid; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    guard.pid = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir + "/segbusd.log");

    EXPECT_NE(std::string::npos, got.find("ok-1")) << got << slurp(dir + "/segbusd.log");
    EXPECT_EQ(std::string::npos, got.find("typo")) << got;
    EXPECT_EQ(std::string::npos, got.find("ada@example.com")) << got;
    EXPECT_EQ(std::string::npos, got.find("49.99\"")) << got;  // the string price was omitted
    EXPECT_NE(std::string::npos,
              got.find(R"("violations":[{"type":"Type","field":"properties.products.0.price")"))
        << got;
    std::string v = slurp(vlog);
    EXPECT_NE(std::string::npos, v.find(R"("event":"Order Complted","violations":[{"type":"Unplanned event")"))
        << v;
    EXPECT_FALSE(spool.empty());
    EXPECT_EQ(std::string::npos, spool.find("ada@example.com")); // PII never reached disk
    std::string rm = "rm -rf '" + dir + "'";
    EXPECT_EQ(0, system(rm.c_str()));
}
