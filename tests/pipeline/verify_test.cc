// verify_test.cc: the verify stage and the pipeline runner: every reason, metadata, mutations.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "event_util.h"

extern "C" {
#include "pipeline/stage.h"
#include "pipeline/verify.h"
}

using namespace sbt;

namespace
{

int inspect(const std::string &b, sb_event_meta *m = nullptr)
{
    sb_event_meta tmp{};
    return sb_event_inspect((const uint8_t *)b.data(), b.size(), m ? m : &tmp);
}

int reason(const Fields &f)
{
    int rc = inspect(pack(f));
    return rc == 0 ? -1 : -1 - rc;
}

TEST(Verify, AllSixCallsPass)
{
    Val id = Val::str("m-1");
    struct {
        Fields f;
        sb_call call;
    } ok[] = {
        {{{"type", Val::str("identify")}, {"userId", Val::str("u")}, {"messageId", id}},
         SB_CALL_IDENTIFY},
        {{{"type", Val::str("track")},
          {"anonymousId", Val::str("a")},
          {"event", Val::str("E")},
          {"messageId", id}},
         SB_CALL_TRACK},
        {{{"type", Val::str("page")},
          {"userId", Val::str("u")},
          {"name", Val::str("Home")},
          {"messageId", id}},
         SB_CALL_PAGE},
        {{{"type", Val::str("screen")}, {"userId", Val::str("u")}, {"messageId", id}},
         SB_CALL_SCREEN},
        {{{"type", Val::str("group")},
          {"userId", Val::str("u")},
          {"groupId", Val::str("g")},
          {"messageId", id}},
         SB_CALL_GROUP},
        {{{"type", Val::str("alias")},
          {"userId", Val::str("u")},
          {"previousId", Val::str("p")},
          {"messageId", id}},
         SB_CALL_ALIAS},
    };
    for (auto &c : ok) {
        sb_event_meta m{};
        std::string b = pack(c.f);
        ASSERT_EQ(inspect(b, &m), 0) << sb_call_name(c.call);
        EXPECT_EQ(m.call, c.call);
        ASSERT_EQ(m.message_id_len, 3u);
        EXPECT_EQ(std::memcmp(m.message_id, "m-1", 3), 0);
        EXPECT_GE(m.message_id, (const uint8_t *)b.data());
        EXPECT_LE(m.message_id + 3, (const uint8_t *)b.data() + b.size());
    }
}

TEST(Verify, MetadataPointsIntoTheEvent)
{
    std::string integ = map_raw({{"All", Val::raw("\xc2")}});
    std::string b = pack({{"type", Val::str("track")},
                          {"userId", Val::str("user-7")},
                          {"event", Val::str("Signed Up")},
                          {"integrations", Val::raw(integ)},
                          {"messageId", Val::str("abc")}});
    sb_event_meta m{};
    ASSERT_EQ(inspect(b, &m), 0);
    EXPECT_EQ(std::string((const char *)m.event, m.event_len), "Signed Up");
    EXPECT_EQ(std::string((const char *)m.user_id, m.user_id_len), "user-7");
    EXPECT_EQ(std::string((const char *)m.integrations, m.integrations_len), integ);
}

TEST(Verify, EachReason)
{
    Val id = Val::str("m");
    EXPECT_EQ(reason({{"userId", Val::str("u")}, {"messageId", id}}), SB_VERIFY_NO_TYPE);
    EXPECT_EQ(reason({{"type", Val::str("trak")}, {"userId", Val::str("u")}, {"messageId", id}}),
              SB_VERIFY_BAD_TYPE);
    EXPECT_EQ(reason({{"type", Val::num(1)}, {"userId", Val::str("u")}, {"messageId", id}}),
              SB_VERIFY_BAD_TYPE);
    EXPECT_EQ(reason({{"type", Val::str("identify")}, {"messageId", id}}), SB_VERIFY_NO_IDENTITY);
    EXPECT_EQ(reason({{"type", Val::str("identify")}, {"userId", Val::str("")}, {"messageId", id}}),
              SB_VERIFY_NO_IDENTITY);
    EXPECT_EQ(reason({{"type", Val::str("identify")},
                      {"userId", Val::nil()},
                      {"anonymousId", Val::str("a")},
                      {"messageId", id}}),
              -1); // null userId with an anonymousId is fine
    EXPECT_EQ(reason({{"type", Val::str("identify")}, {"userId", Val::num(5)}, {"messageId", id}}),
              SB_VERIFY_BAD_FIELD);
    EXPECT_EQ(reason({{"type", Val::str("track")}, {"userId", Val::str("u")}, {"messageId", id}}),
              SB_VERIFY_NO_EVENT);
    EXPECT_EQ(reason({{"type", Val::str("group")}, {"userId", Val::str("u")}, {"messageId", id}}),
              SB_VERIFY_NO_GROUP_ID);
    EXPECT_EQ(reason({{"type", Val::str("alias")}, {"userId", Val::str("u")}, {"messageId", id}}),
              SB_VERIFY_NO_PREVIOUS_ID);
    EXPECT_EQ(reason({{"type", Val::str("alias")},
                      {"anonymousId", Val::str("a")},
                      {"previousId", Val::str("p")},
                      {"messageId", id}}),
              SB_VERIFY_NO_USER_ID);
    EXPECT_EQ(reason({{"type", Val::str("identify")}, {"userId", Val::str("u")}}),
              SB_VERIFY_NO_MESSAGE_ID);
    EXPECT_EQ(reason({{"type", Val::str("identify")},
                      {"userId", Val::str("u")},
                      {"messageId", Val::str(std::string(101, 'x'))}}),
              SB_VERIFY_BAD_MESSAGE_ID);
    EXPECT_EQ(reason({{"type", Val::str("identify")},
                      {"userId", Val::str("u")},
                      {"messageId", Val::str(std::string(100, 'x'))}}),
              -1);
    EXPECT_EQ(reason({{"type", Val::str("identify")},
                      {"userId", Val::str("u")},
                      {"messageId", Val::num(7)}}),
              SB_VERIFY_BAD_MESSAGE_ID);
    EXPECT_EQ(reason({{"type", Val::str("identify")},
                      {"userId", Val::str("u")},
                      {"traits", Val::str("not a map")},
                      {"messageId", id}}),
              SB_VERIFY_BAD_FIELD);
    EXPECT_EQ(reason({{"type", Val::str("identify")},
                      {"userId", Val::str("u")},
                      {"userId", Val::str("v")},
                      {"messageId", id}}),
              SB_VERIFY_BAD_FIELD);
    // Not a map, trailing bytes, truncation, too large.
    EXPECT_EQ(-1 - inspect("\x93\x01\x02\x03"), SB_VERIFY_NOT_A_MAP);
    std::string ok = track("m1");
    ASSERT_EQ(inspect(ok), 0);
    EXPECT_EQ(-1 - inspect(ok + "\x01"), SB_VERIFY_MALFORMED);
    EXPECT_EQ(-1 - inspect(ok.substr(0, ok.size() - 1)), SB_VERIFY_MALFORMED);
    EXPECT_EQ(-1 - inspect(""), SB_VERIFY_MALFORMED);
    std::string big = pack({{"type", Val::str("track")},
                            {"userId", Val::str("u")},
                            {"event", Val::str("E")},
                            {"messageId", id},
                            {"pad", Val::str(std::string(32768, 'p'))}});
    EXPECT_EQ(-1 - inspect(big), SB_VERIFY_TOO_LARGE);
}

// Every single-byte mutation and truncation of a valid event, plus random bytes: verify
// answers (pass or a reason) and never reads out of bounds (ASan build).
TEST(Verify, MutationsNeverCrash)
{
    std::string ok = track("0190d9f2-7c1a-7cc0-8a1b-9d5e8f1a2b3c");
    size_t passed = 0, total = 0;
    for (size_t i = 0; i < ok.size(); i++) {
        for (int v : {0x00, 0xc1, 0xdf, 0xff, 0x80, 0xa0, 0xdb, 0xdd}) {
            std::string m = ok;
            m[i] = (char)v;
            std::string heap(m); // exact-size allocation so ASan sees overreads
            passed += inspect(heap) == 0;
            total++;
        }
        std::string cut = ok.substr(0, i);
        EXPECT_NE(inspect(cut), 0);
    }
    std::mt19937_64 rng(42);
    for (int n = 0; n < 20000; n++) {
        std::string r(rng() % 64, '\0');
        for (auto &c : r)
            c = (char)rng();
        inspect(r);
    }
    EXPECT_LT(passed, total); // mutations are caught
}

struct Upper {
    static int process(sb_stage *, sb_stage_event *ev)
    {
        // Replace the event with one whose event name is upper-cased.
        sb_buf_clear(ev->scratch);
        std::string b = track("m-repl", "u1", "SHOUTED");
        sb_buf_append(ev->scratch, b.data(), b.size());
        return SB_STAGE_REPLACE;
    }
    static int broken(sb_stage *, sb_stage_event *ev)
    {
        sb_buf_clear(ev->scratch);
        sb_buf_append(ev->scratch, "\x90", 1);
        return SB_STAGE_REPLACE;
    }
    static int drop_second(sb_stage *, sb_stage_event *ev)
    {
        if (ev->meta->event_len == 7) {
            ev->reason = 1;
            return SB_STAGE_DROP;
        }
        return SB_STAGE_PASS;
    }
    static void destroy(sb_stage *s)
    {
        free(s);
    }
};

sb_stage *make_stage(const char *name, int (*fn)(sb_stage *, sb_stage_event *),
                     const char *const *reasons = nullptr)
{
    sb_stage *s = (sb_stage *)calloc(1, sizeof *s);
    s->name = name;
    s->process = fn;
    s->destroy = Upper::destroy;
    s->reasons = reasons;
    return s;
}

TEST(Pipeline, PassDropReplaceAndCounters)
{
    static const char *const reasons[] = {"a", "seven", nullptr};
    sb_pipeline *p;
    ASSERT_EQ(sb_pipeline_new(&p), 0);
    ASSERT_EQ(sb_pipeline_add(p, sb_verify_stage_new()), 0);
    ASSERT_EQ(sb_pipeline_add(p, make_stage("upper", Upper::process)), 0);
    ASSERT_EQ(sb_pipeline_add(p, make_stage("filter", Upper::drop_second, reasons)), 0);

    std::string ev = track("m-orig");
    sb_event_meta m{};
    const uint8_t *out;
    size_t out_len;
    ASSERT_EQ(sb_pipeline_run(p, (const uint8_t *)ev.data(), ev.size(), &m, &out, &out_len),
              SB_STAGE_DROP); // "SHOUTED" has 7 letters
    sb_stage *const *st;
    ASSERT_EQ(sb_pipeline_stages(p, &st), 3u);
    EXPECT_EQ(st[0]->passed, 1u);
    EXPECT_EQ(st[1]->replaced, 1u);
    EXPECT_EQ(st[2]->dropped[1], 1u);
    EXPECT_EQ(std::string((const char *)m.message_id, m.message_id_len), "m-repl");

    // A bad event stops at verify with its reason.
    std::string bad = pack({{"type", Val::str("track")}, {"messageId", Val::str("x")}});
    EXPECT_EQ(sb_pipeline_run(p, (const uint8_t *)bad.data(), bad.size(), &m, &out, &out_len),
              SB_STAGE_DROP);
    EXPECT_EQ(st[0]->dropped[SB_VERIFY_NO_IDENTITY], 1u);
    sb_pipeline_free(p);

    // A replacement that is not an event is dropped against its stage.
    ASSERT_EQ(sb_pipeline_new(&p), 0);
    ASSERT_EQ(sb_pipeline_add(p, sb_verify_stage_new()), 0);
    ASSERT_EQ(sb_pipeline_add(p, make_stage("broken", Upper::broken)), 0);
    EXPECT_EQ(sb_pipeline_run(p, (const uint8_t *)ev.data(), ev.size(), &m, &out, &out_len),
              SB_STAGE_DROP);
    sb_pipeline_stages(p, &st);
    EXPECT_EQ(st[1]->dropped[st[1]->n_reasons + 1], 1u);
    sb_pipeline_free(p);

    // An empty pipeline passes the input through untouched.
    ASSERT_EQ(sb_pipeline_new(&p), 0);
    EXPECT_EQ(sb_pipeline_run(p, (const uint8_t *)ev.data(), ev.size(), &m, &out, &out_len),
              SB_STAGE_PASS);
    EXPECT_EQ(out, (const uint8_t *)ev.data());
    EXPECT_EQ(out_len, ev.size());
    sb_pipeline_free(p);
}

// A client's writeKey (in the event since the C, Python and Ruby clients take one) never reaches
// a destination: verify takes the entry out, in any position and with any map header form.
TEST(Verify, WriteKeyIsRemoved)
{
    sb_pipeline *p;
    ASSERT_EQ(sb_pipeline_new(&p), 0);
    ASSERT_EQ(sb_pipeline_add(p, sb_verify_stage_new()), 0);
    Fields base = {{"type", Val::str("track")},
                   {"userId", Val::str("u")},
                   {"event", Val::str("E")},
                   {"messageId", Val::str("m-wk")}};
    for (size_t pos = 0; pos <= base.size(); pos++)
        for (int extra : {0, 20}) { // 20 more fields: a map16 header instead of a fixmap
            Fields with = base, without = base;
            for (int i = 0; i < extra; i++) {
                with.push_back({"k" + std::to_string(i), Val::num(i)});
                without.push_back({"k" + std::to_string(i), Val::num(i)});
            }
            with.insert(with.begin() + (long)pos, {"writeKey", Val::str("wk_secret")});
            std::string in = pack(with), want = pack(without);
            sb_event_meta m{};
            const uint8_t *out;
            size_t out_len;
            ASSERT_EQ(sb_pipeline_run(p, (const uint8_t *)in.data(), in.size(), &m, &out, &out_len),
                      SB_STAGE_PASS);
            EXPECT_EQ(std::string((const char *)out, out_len), want) << "position " << pos;
            EXPECT_EQ(std::string((const char *)m.message_id, m.message_id_len), "m-wk");
            EXPECT_EQ(m.write_key_end, 0u);
        }
    sb_pipeline_free(p);
}

// verify walks the event once (no separate well-formedness pass): malformed bytes anywhere still
// win over every other reason, nesting is bounded at 64 containers in all, and a container used
// as a key is skipped whole.
TEST(Verify, OnePassKeepsEveryRule)
{
    const Fields base = {{"type", Val::str("track")},
                         {"userId", Val::str("u")},
                         {"event", Val::str("E")},
                         {"messageId", Val::str("m")}};
    std::string ok = pack(base);
    ASSERT_EQ(0, inspect(ok));
    EXPECT_EQ(-1 - SB_VERIFY_MALFORMED, inspect(ok + "\x01")); // bytes after the map
    // A duplicate key found first, a truncated value after it: malformed, not bad_field.
    Fields dup = base;
    dup.push_back({"userId", Val::str("v")});
    EXPECT_EQ(-1 - SB_VERIFY_BAD_FIELD, inspect(pack(dup)));
    dup.push_back({"properties", Val::raw("\x81\xa1k\xa5"
                                          "ab")}); // str of 5, 2 bytes there
    EXPECT_EQ(-1 - SB_VERIFY_MALFORMED, inspect(pack(dup)));
    // Not a map: malformed when broken, not_a_map when well formed.
    EXPECT_EQ(-1 - SB_VERIFY_NOT_A_MAP, inspect("\x92\x01\x02"));
    EXPECT_EQ(-1 - SB_VERIFY_MALFORMED, inspect("\x92\x01"));
    EXPECT_EQ(-1 - SB_VERIFY_MALFORMED, inspect("\x92\x01\x02\x03"));
    // properties nested: the event's map, properties, then n more maps {"k": ...}.
    for (int n : {61, 62, 63}) {
        std::string v = "\xa1x";
        for (int i = 0; i < n; i++)
            v = "\x81\xa1k" + v;
        Fields f = base;
        f.push_back({"properties", Val::raw("\x81\xa1k" + v)});
        EXPECT_EQ(n + 2 <= 64 ? 0 : -1 - SB_VERIFY_MALFORMED, inspect(pack(f))) << n;
    }
    // A map whose key is an array: skipped whole, whatever it holds; the event stays valid.
    std::string odd = ok;
    odd[0] = (char)(odd[0] + 1); // one more pair in the fixmap
    odd += "\x92\xa1"
           "a"
           "\x81\xa1"
           "b"
           "\x01"; // key ["a", {"b": 1}]
    odd += "\xa1v";
    EXPECT_EQ(0, inspect(odd));
    odd.pop_back(); // the value cut short
    EXPECT_EQ(-1 - SB_VERIFY_MALFORMED, inspect(odd));
}

// The messageId guess used for prefetching: a fixstr or str8 after the key text, never read
// past the bytes; anything else is no guess.
TEST(Verify, GuessMessageId)
{
    const uint8_t *id;
    size_t n;
    std::string uuid = "0193a8c2-7f00-7000-8000-000000000001";
    std::string ev = track(uuid);
    ASSERT_EQ(1, sb_event_guess_message_id((const uint8_t *)ev.data(), ev.size(), &id, &n));
    EXPECT_EQ(uuid, std::string((const char *)id, n));
    ev = track("m-1");
    ASSERT_EQ(1, sb_event_guess_message_id((const uint8_t *)ev.data(), ev.size(), &id, &n));
    EXPECT_EQ("m-1", std::string((const char *)id, n));
    std::string key = "\xa9messageId";
    for (std::string bad : {std::string(), key, key + "\xd9", key + "\xd9\x05" + "abcd",
                            key + "\xa5" + "abcd", key + "\x01\x02", std::string("\x81")}) {
        EXPECT_EQ(0, sb_event_guess_message_id((const uint8_t *)bad.data(), bad.size(), &id, &n))
            << bad.size();
    }
    std::string cut = ev.substr(0, ev.find("m-1") + 2); // the id's last byte missing
    EXPECT_EQ(0, sb_event_guess_message_id((const uint8_t *)cut.data(), cut.size(), &id, &n));
}

} // namespace
