// cli_test.cc: the built `segbus` binary: help, dry runs, exit codes and messages for bad input,
// no daemon, and a real send into a registry-drained ring.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../event/mp_text.h"
#include "../ring/daemon_fixture.h"
#include "harness.h"

namespace
{

// The segbus binary with args; SEGBUS_SOCKET set to env_socket, or unset.
sbt::RunResult segbus(std::vector<std::string> args, const char *env_socket = nullptr)
{
    return sbt::run_program(sbt::segbus_cli(), args, 60, {{"SEGBUS_SOCKET", env_socket}});
}

bool has(const std::string &s, const std::string &sub)
{
    return s.find(sub) != std::string::npos;
}

TEST(Cli, HelpForEverySubcommand)
{
    sbt::RunResult r = segbus({"--help"});
    EXPECT_EQ(r.code, 0);
    for (const char *c : {"track", "identify", "page", "screen", "group", "alias"}) {
        EXPECT_TRUE(has(r.out, c)) << r.out;
        sbt::RunResult h = segbus({c, "--help"});
        EXPECT_EQ(h.code, 0) << c;
        EXPECT_TRUE(has(h.out, std::string("usage: segbus ") + c)) << h.out;
        EXPECT_TRUE(has(h.out, "--userId")) << h.out;
        EXPECT_TRUE(has(h.out, "--messageId")) << h.out;
    }
    EXPECT_TRUE(has(segbus({"track", "--help"}).out, "--event"));
    EXPECT_FALSE(has(segbus({"identify", "--help"}).out, "--event"));
    EXPECT_TRUE(has(segbus({"alias", "--help"}).out, "--previousId"));
    EXPECT_EQ(segbus({}).code, 2);
    sbt::RunResult u = segbus({"frobnicate"});
    EXPECT_EQ(u.code, 2);
    EXPECT_TRUE(has(u.err, "unknown command \"frobnicate\"")) << u.err;
}

TEST(Cli, DryRunPrintsTheEventAsJson)
{
    sbt::RunResult r =
        segbus({"track", "--userId", "USR-1", "--event", "Order Completed", "--properties",
                "{\"order_id\": \"ORD-1\", \"total\": 129.98}", "--messageId", "m-1", "--timestamp",
                "2026-11-28T14:13:30.123Z", "--writeKey", "wk", "--context",
                "{\"ip\": \"10.0.0.1\"}", "--integrations", "{\"All\": false}", "--dry-run"});
    ASSERT_EQ(r.code, 0) << r.err;
    std::string lib = std::string("\"library\":{\"name\":\"segbus\",\"version\":\"") +
                      SEGBUS_VERSION_STRING + "\"}";
    EXPECT_EQ(r.out, "{\"type\":\"track\",\"messageId\":\"m-1\",\"timestamp\":\"2026-11-28T14:13:"
                     "30.123Z\",\"userId\":\"USR-1\",\"event\":\"Order Completed\",\"properties\":"
                     "{\"order_id\":\"ORD-1\",\"total\":129.98},\"context\":{" +
                         lib +
                         ",\"ip\":\"10.0.0.1\"},\"integrations\":{\"All\":false},"
                         "\"writeKey\":\"wk\"}\n");
    sbt::RunResult g = segbus({"group", "--userId", "u", "--groupId", "ACME", "--traits",
                               "{\"name\": \"Acme\"}", "--dry-run"});
    EXPECT_EQ(g.code, 0) << g.err;
    EXPECT_TRUE(has(g.out, "\"groupId\":\"ACME\",\"traits\":{\"name\":\"Acme\"}")) << g.out;
}

TEST(Cli, BadInputSaysWhatAndExitsWithItsCode)
{
    struct {
        std::vector<std::string> args;
        int code;
        const char *msg;
    } cases[] = {
        {{"track", "--userId", "u", "--event", "E", "--properties", "{\"a\": 1,}"},
         65,
         "properties: invalid JSON at byte"},
        {{"track", "--userId", "u", "--event", "E", "--properties", "[1]"},
         65,
         "properties: must be a JSON object"},
        {{"track", "--userId", "u", "--event", "E", "--timestamp", "now"}, 65, "not RFC 3339"},
        {{"track", "--userId", "u", "--event", "E", "--messageId", std::string(101, 'm')},
         65,
         "messageId"},
        {{"track", "--userId", "u\xff", "--event", "E"}, 65, "userId: invalid UTF-8 at byte 1"},
        {{"track", "--userId", "u"}, 2, "track needs a non-empty event"},
        {{"track", "--event", "E"}, 2, "userId or anonymousId"},
        {{"alias", "--previousId", "p", "--anonymousId", "a"}, 2, "alias needs userId"},
        {{"group", "--userId", "u"}, 2, "group needs groupId"},
        {{"identify", "--userId", "u", "--event", "E"}, 2, "--event is not a flag of identify"},
        {{"track", "--userId", "u", "--bogus", "x"}, 2, "unknown flag --bogus"},
        {{"track", "--userId"}, 2, "--userId needs a value"},
        {{"track", "--userId", "u", "--event", "E", "stray"}, 2, "unexpected argument \"stray\""},
    };
    for (auto &c : cases) {
        sbt::RunResult r = segbus(c.args);
        EXPECT_EQ(r.code, c.code) << c.args[1] << " " << r.err;
        EXPECT_TRUE(has(r.err, c.msg)) << "stderr \"" << r.err << "\" lacks \"" << c.msg << "\"";
        EXPECT_EQ(r.out, "");
    }
}

TEST(Cli, NoDaemonIsExit69)
{
    std::string path = temp_socket_path("cli-none");
    sbt::RunResult r = segbus({"track", "--userId", "u", "--event", "E", "--socket", path});
    EXPECT_EQ(r.code, 69) << r.err;
    EXPECT_TRUE(has(r.err, path)) << r.err;
    r = segbus({"track", "--userId", "u", "--event", "E"}, path.c_str());
    EXPECT_EQ(r.code, 69) << r.err;
    EXPECT_TRUE(has(r.err, path)) << "SEGBUS_SOCKET is used: " << r.err;
}

TEST(Cli, SendsThroughTheDaemon)
{
    std::string path = temp_socket_path("cli-send");
    Daemon d(path);
    sbt::RunResult r = segbus({"identify", "--userId", "USR-12345", "--traits",
                               "{\"email\": \"a@example.com\", \"plan\": \"pro\"}", "--writeKey",
                               "wk_cli", "--socket", path});
    ASSERT_EQ(r.code, 0) << r.err;
    ASSERT_EQ(r.out.size(), 37u) << r.out; // the UUIDv7 and a newline
    ASSERT_TRUE(d.wait_count(1, 5000));
    auto got = d.take();
    ASSERT_EQ(got.size(), 1u);
    Decoded e = mp_decode(got[0].data.data(), got[0].data.size());
    EXPECT_EQ(e.fields["type"], "\"identify\"");
    EXPECT_EQ(e.fields["messageId"], "\"" + r.out.substr(0, 36) + "\"");
    EXPECT_EQ(e.fields["traits"], "{\"email\":\"a@example.com\",\"plan\":\"pro\"}");
    EXPECT_EQ(e.fields["writeKey"], "\"wk_cli\"");
}

} // namespace
