// client_test.cc: the client end to end into a real ring drained by the real registry: each call
// type arrives with Segment's shape, errors write nothing, flush, full-ring policies, sockets.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../event/mp_text.h"
#include "../ring/daemon_fixture.h"

extern "C" {
#include "segbus/segbus.h"
}

namespace
{

struct Client {
    segbus_client_t *c = nullptr;
    int rc = 0;
    Client(const std::string &path, int policy = SEGBUS_FULL_ERROR, int64_t block_ms = 0,
           const char *write_key = nullptr, const char *ctx_json = nullptr)
    {
        segbus_options_t *o = segbus_options_new();
        EXPECT_EQ(segbus_options_set_socket(o, path.c_str()), 0);
        EXPECT_EQ(segbus_options_set_standalone(o, 0), 0);
        EXPECT_EQ(segbus_options_set_full_policy(o, (enum segbus_full_policy)policy, block_ms), 0);
        if (write_key) {
            EXPECT_EQ(segbus_options_set_write_key(o, write_key), 0);
        }
        if (ctx_json) {
            EXPECT_EQ(segbus_options_set_context_json(o, ctx_json, SIZE_MAX), 0)
                << segbus_last_error();
        }
        rc = segbus_client_open(&c, o);
        EXPECT_EQ(rc, 0) << segbus_last_error();
        segbus_options_free(o);
    }
    ~Client()
    {
        segbus_client_close(c);
    }
};

const std::string kLibInner =
    std::string("\"library\":{\"name\":\"segbus\",\"version\":\"") + SEGBUS_VERSION_STRING + "\"}";

TEST(Client, EveryCallArrivesWithItsShape)
{
    std::string path = temp_socket_path("client-shape");
    Daemon d(path);
    Client cl(path, SEGBUS_FULL_ERROR, 0, "wk_test", "{\"app\": {\"name\": \"shop\"}}");
    ASSERT_EQ(cl.rc, 0);
    segbus_map_t *props = segbus_map_new();
    segbus_map_add_str(props, "plan_type", "pro");
    segbus_map_add_double(props, "revenue", 99.0);
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "USR-12345";
    m.event = "Subscription Renewed";
    m.properties = props;
    m.integrations_json = "{\"All\": true}";
    ASSERT_EQ(segbus_track(cl.c, &m), 0) << segbus_last_error();
    segbus_message_t i = SEGBUS_MESSAGE_INIT;
    i.user_id = "USR-12345";
    i.traits_json = "{\"email\": \"a@example.com\"}";
    ASSERT_EQ(segbus_identify(cl.c, &i), 0) << segbus_last_error();
    segbus_message_t p = SEGBUS_MESSAGE_INIT;
    p.anonymous_id = "anon";
    p.name = "Home";
    p.category = "Docs";
    ASSERT_EQ(segbus_page(cl.c, &p), 0);
    segbus_message_t s = SEGBUS_MESSAGE_INIT;
    s.anonymous_id = "anon";
    s.name = "Settings";
    ASSERT_EQ(segbus_screen(cl.c, &s), 0);
    segbus_message_t g = SEGBUS_MESSAGE_INIT;
    g.user_id = "USR-12345";
    g.group_id = "ACME";
    g.traits_json = "{\"employee_count\": 120}";
    ASSERT_EQ(segbus_group(cl.c, &g), 0);
    segbus_message_t a = SEGBUS_MESSAGE_INIT;
    a.user_id = "USR-12345";
    a.previous_id = "anon";
    segbus_sent_t sent;
    ASSERT_EQ(segbus_send(cl.c, SEGBUS_ALIAS, &a, &sent), 0);
    ASSERT_EQ(segbus_flush(cl.c, 5000), 0) << segbus_last_error();
    auto got = d.take();
    ASSERT_EQ(got.size(), 6u);
    const char *types[] = {"track", "identify", "page", "screen", "group", "alias"};
    for (size_t k = 0; k < 6; k++) {
        Decoded e = mp_decode(got[k].data.data(), got[k].data.size());
        ASSERT_TRUE(e.ok);
        EXPECT_EQ(e.fields["type"], std::string("\"") + types[k] + "\"");
        EXPECT_EQ(e.fields["writeKey"], "\"wk_test\"");
        EXPECT_EQ(e.fields["context"], "{" + kLibInner + ",\"app\":{\"name\":\"shop\"}}");
        EXPECT_EQ(e.fields["messageId"].size(), 38u);
        EXPECT_EQ(e.fields["timestamp"].size(), 26u);
    }
    Decoded t = mp_decode(got[0].data.data(), got[0].data.size());
    EXPECT_EQ(t.fields["event"], "\"Subscription Renewed\"");
    EXPECT_EQ(t.fields["properties"], "{\"plan_type\":\"pro\",\"revenue\":99}");
    EXPECT_EQ(t.fields["integrations"], "{\"All\":true}");
    EXPECT_EQ(t.nfields, 9u) << t.text;
    Decoded al = mp_decode(got[5].data.data(), got[5].data.size());
    EXPECT_EQ(al.fields["previousId"], "\"anon\"");
    EXPECT_EQ(al.fields["messageId"], std::string("\"") + sent.message_id + "\"");
    struct segbus_client_stats st;
    ASSERT_EQ(segbus_client_get_stats(cl.c, &st), 0);
    EXPECT_EQ(st.sent, 6u);
    EXPECT_EQ(st.invalid, 0u);
    segbus_map_free(props);
}

TEST(Client, ErrorsWriteNothing)
{
    std::string path = temp_socket_path("client-err");
    Daemon d(path);
    Client cl(path);
    ASSERT_EQ(cl.rc, 0);
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    EXPECT_EQ(segbus_track(cl.c, &m), -SEGBUS_ENOIDENTITY);
    m.user_id = "u";
    EXPECT_EQ(segbus_track(cl.c, &m), -SEGBUS_ENOEVENT);
    m.event = "E";
    m.properties_json = "{\"a\": [1, 2,, 3]}";
    EXPECT_EQ(segbus_track(cl.c, &m), -SEGBUS_EJSON);
    EXPECT_NE(std::string(segbus_last_error()).find("properties: invalid JSON at byte"),
              std::string::npos)
        << segbus_last_error();
    m.properties_json = nullptr;
    m.timestamp = "2026-02-30T00:00:00Z";
    EXPECT_EQ(segbus_track(cl.c, &m), -SEGBUS_ETIMESTAMP);
    m.timestamp = nullptr;
    std::string big(40000, 'x');
    segbus_map_t *p = segbus_map_new();
    segbus_map_add_str(p, "big", big.c_str());
    m.properties = p;
    EXPECT_EQ(segbus_track(cl.c, &m), -EMSGSIZE);
    m.properties = nullptr;
    EXPECT_EQ(segbus_identify(cl.c, &m), -EINVAL) << "identify does not take event";
    EXPECT_EQ(segbus_track(nullptr, &m), -EINVAL);
    EXPECT_EQ(segbus_track(cl.c, nullptr), -EINVAL);
    m.message_id = "the-only-one";
    EXPECT_EQ(segbus_track(cl.c, &m), 0);
    ASSERT_EQ(segbus_flush(cl.c, 5000), 0);
    auto got = d.take();
    ASSERT_EQ(got.size(), 1u) << "a refused call must write nothing";
    EXPECT_EQ(mp_decode(got[0].data.data(), got[0].data.size()).fields["messageId"],
              "\"the-only-one\"");
    struct segbus_client_stats st;
    segbus_client_get_stats(cl.c, &st);
    EXPECT_EQ(st.invalid, 7u); // every refused call but the one without a client
    EXPECT_EQ(st.sent, 1u);
    segbus_map_free(p);
}

TEST(Client, FlushReportsTimeoutHonestly)
{
    std::string path = temp_socket_path("client-flush");
    Daemon d(path, 256 * 1024, /*drain=*/false);
    Client cl(path);
    ASSERT_EQ(cl.rc, 0);
    ASSERT_TRUE(d.wait_count(0, 10));
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(segbus_track(cl.c, &m), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    EXPECT_EQ(segbus_flush(cl.c, 150), -SEGBUS_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    EXPECT_GE(ms, 140.0);
    EXPECT_LT(ms, 3000.0);
    EXPECT_NE(std::string(segbus_last_error()).find("150 ms"), std::string::npos);
    d.set_drain(true);
    EXPECT_EQ(segbus_flush(cl.c, 5000), 0) << segbus_last_error();
    EXPECT_EQ(d.count(), 10u) << "flush returned before the daemon took every event";
}

TEST(Client, FullRingPolicies)
{
    std::string path = temp_socket_path("client-full");
    Daemon d(path, SEGBUS_RING_MIN_CAPACITY, /*drain=*/false);
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    std::string pad(2000, 'p');
    segbus_map_t *p = segbus_map_new();
    segbus_map_add_str(p, "pad", pad.c_str());
    m.properties = p;
    {
        Client cl(path, SEGBUS_FULL_ERROR);
        ASSERT_EQ(cl.rc, 0);
        int rc = 0, n = 0;
        while (n < 1000 && (rc = segbus_track(cl.c, &m)) == 0)
            n++;
        EXPECT_EQ(rc, -EAGAIN);
        EXPECT_GT(n, 10);
        struct segbus_client_stats st;
        segbus_client_get_stats(cl.c, &st);
        EXPECT_EQ(st.full, 1u);
        EXPECT_EQ(st.sent, (uint64_t)n);
    }
    {
        Client cl(path, SEGBUS_FULL_DROP);
        ASSERT_EQ(cl.rc, 0);
        EXPECT_EQ(segbus_track(cl.c, &m), SEGBUS_DROPPED);
        struct segbus_client_stats st;
        segbus_client_get_stats(cl.c, &st);
        EXPECT_EQ(st.dropped, 1u);
    }
    {
        Client cl(path, SEGBUS_FULL_BLOCK, 100);
        ASSERT_EQ(cl.rc, 0);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        EXPECT_EQ(segbus_track(cl.c, &m), -EAGAIN);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        EXPECT_GE(ms, 90.0);
        // Room appears while blocked: the call succeeds.
        d.set_drain(true);
        EXPECT_EQ(segbus_track(cl.c, &m), 0) << segbus_last_error();
    }
    segbus_map_free(p);
}

TEST(Client, SocketResolutionAndNoDaemon)
{
    unsetenv(SEGBUS_SOCKET_ENV);
    EXPECT_STREQ(segbus_client_socket(nullptr), SEGBUS_DEFAULT_SOCKET);
    std::string path = temp_socket_path("client-none");
    setenv(SEGBUS_SOCKET_ENV, path.c_str(), 1);
    EXPECT_STREQ(segbus_client_socket(nullptr), path.c_str());
    segbus_options_t *o = segbus_options_new();
    segbus_options_set_standalone(o, 0);
    segbus_client_t *c = nullptr;
    EXPECT_EQ(segbus_client_open(&c, o), -SEGBUS_ENODAEMON);
    EXPECT_EQ(c, nullptr);
    EXPECT_NE(std::string(segbus_last_error()).find(path), std::string::npos)
        << segbus_last_error();
    {
        Daemon d(path); // found through the environment
        ASSERT_EQ(segbus_client_open(&c, o), 0) << segbus_last_error();
        EXPECT_STREQ(segbus_client_socket(c), path.c_str());
        segbus_message_t m = SEGBUS_MESSAGE_INIT;
        m.anonymous_id = "a";
        m.event = "E";
        EXPECT_EQ(segbus_track(c, &m), 0);
        EXPECT_EQ(segbus_flush(c, 5000), 0);
        EXPECT_EQ(d.count(), 1u);
        segbus_client_close(c);
    }
    unsetenv(SEGBUS_SOCKET_ENV);
    EXPECT_EQ(segbus_options_set_socket(o, std::string(200, 's').c_str()), -EINVAL);
    EXPECT_EQ(segbus_options_set_write_key(o, std::string(300, 'k').c_str()), -EINVAL);
    EXPECT_EQ(segbus_options_set_write_key(o, "k\xff"), -SEGBUS_EUTF8);
    EXPECT_EQ(segbus_options_set_full_policy(o, (enum segbus_full_policy)9, 0), -EINVAL);
    EXPECT_EQ(segbus_options_set_context_json(o, "{\"ip\": 1.2.3}", SIZE_MAX), -SEGBUS_EJSON);
    EXPECT_EQ(std::string(segbus_last_error()).rfind("context: invalid JSON at byte", 0), 0u)
        << segbus_last_error();
    EXPECT_EQ(segbus_options_set_context_json(o, "[1]", SIZE_MAX), -SEGBUS_ENOTOBJECT);
    segbus_options_free(o);
    segbus_options_free(nullptr);
    segbus_client_close(nullptr);
}

TEST(Client, EncodeWithoutSending)
{
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "u";
    m.event = "E";
    uint8_t buf[1024];
    size_t len = 0;
    segbus_sent_t sent;
    ASSERT_EQ(segbus_encode(nullptr, SEGBUS_TRACK, &m, buf, sizeof buf, &len, &sent), 0);
    Decoded e = mp_decode(buf, len);
    EXPECT_EQ(e.fields["messageId"], std::string("\"") + sent.generated_id + "\"");
    EXPECT_EQ(e.fields["timestamp"], std::string("\"") + sent.timestamp + "\"");
    EXPECT_EQ(sent.bytes, len);
    size_t need = 0;
    EXPECT_EQ(segbus_encode(nullptr, SEGBUS_TRACK, &m, buf, 10, &need, nullptr), -ENOSPC);
    EXPECT_EQ(need, len);
}

} // namespace

namespace
{

TEST(Client, StandaloneRingIsAdoptedByALaterDaemon)
{
    std::string path = temp_socket_path("client-standalone");
    segbus_options_t *o = segbus_options_new();
    segbus_options_set_socket(o, path.c_str()); // standalone is allowed by default
    segbus_client_t *c = nullptr;
    ASSERT_EQ(segbus_client_open(&c, o), 0) << segbus_last_error();
    segbus_options_free(o);
    segbus_message_t m = SEGBUS_MESSAGE_INIT;
    m.user_id = "early";
    m.event = "Before The Daemon";
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(segbus_track(c, &m), 0) << segbus_last_error();
    EXPECT_EQ(segbus_flush(c, 50), -SEGBUS_ENODAEMON) << "no daemon can have taken them";
    Daemon d(path);
    m.user_id = "late";
    ASSERT_EQ(segbus_track(c, &m), 0) << segbus_last_error();
    ASSERT_EQ(segbus_flush(c, 5000), 0) << segbus_last_error();
    ASSERT_TRUE(d.wait_count(6, 5000)) << d.count();
    auto got = d.take();
    EXPECT_EQ(got.size(), 6u);
    int early = 0;
    for (auto &g : got)
        early += mp_decode(g.data.data(), g.data.size()).fields["userId"] == "\"early\"";
    EXPECT_EQ(early, 5) << "events written before the daemon started are delivered";
    segbus_client_close(c);
}

} // namespace
