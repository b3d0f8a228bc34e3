// batch_test.cc: the batcher's limits and envelopes (decoded with msgpack-c), and the retry
// policy: every status class, Retry-After forms and cap, backoff bounds, give-up.
#include <gtest/gtest.h>

#include <msgpack.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "event_util.h"

extern "C" {
#include "pipeline/batch.h"
#include "pipeline/retry.h"
}

using namespace sbt;

namespace
{

struct Sink {
    std::vector<std::string> envelopes;
    std::vector<uint32_t> counts;
    int fail = 0;
    static int emit(void *arg, const uint8_t *env, size_t len, uint32_t count)
    {
        Sink *s = (Sink *)arg;
        if (s->fail)
            return s->fail;
        s->envelopes.emplace_back((const char *)env, len);
        s->counts.push_back(count);
        return 0;
    }
};

// Decode an envelope with msgpack-c: a map {batch: [...], sentAt: str}; returns the events'
// messageIds.
std::vector<std::string> decode(const std::string &env, std::string *sent_at = nullptr)
{
    std::vector<std::string> ids;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    EXPECT_EQ(msgpack_unpack_next(&u, env.data(), env.size(), &off), MSGPACK_UNPACK_SUCCESS);
    EXPECT_EQ(off, env.size());
    const msgpack_object &o = u.data;
    EXPECT_EQ(o.type, MSGPACK_OBJECT_MAP);
    EXPECT_EQ(o.via.map.size, 2u);
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        std::string k(o.via.map.ptr[i].key.via.str.ptr, o.via.map.ptr[i].key.via.str.size);
        const msgpack_object &v = o.via.map.ptr[i].val;
        if (k == "batch") {
            EXPECT_EQ(v.type, MSGPACK_OBJECT_ARRAY);
            for (uint32_t j = 0; j < v.via.array.size; j++) {
                const msgpack_object &e = v.via.array.ptr[j];
                for (uint32_t m = 0; m < e.via.map.size; m++)
                    if (std::string(e.via.map.ptr[m].key.via.str.ptr,
                                    e.via.map.ptr[m].key.via.str.size) == "messageId")
                        ids.emplace_back(e.via.map.ptr[m].val.via.str.ptr,
                                         e.via.map.ptr[m].val.via.str.size);
            }
        } else {
            EXPECT_EQ(k, "sentAt");
            EXPECT_EQ(v.type, MSGPACK_OBJECT_STR);
            if (sent_at)
                *sent_at = std::string(v.via.str.ptr, v.via.str.size);
        }
    }
    msgpack_unpacked_destroy(&u);
    return ids;
}

TEST(Batch, ByCount)
{
    Sink s;
    sb_batch_limits lim{3, 500000, 1000000000};
    sb_batcher *b;
    ASSERT_EQ(sb_batcher_new(&b, &lim, Sink::emit, &s), 0);
    for (int i = 0; i < 7; i++) {
        std::string e = track("m" + std::to_string(i));
        ASSERT_EQ(sb_batcher_add(b, (const uint8_t *)e.data(), e.size(), 100), 0);
    }
    ASSERT_EQ(s.envelopes.size(), 2u);
    EXPECT_EQ(sb_batcher_pending(b), 1u);
    EXPECT_EQ(decode(s.envelopes[0]), (std::vector<std::string>{"m0", "m1", "m2"}));
    EXPECT_EQ(decode(s.envelopes[1]), (std::vector<std::string>{"m3", "m4", "m5"}));
    ASSERT_EQ(sb_batcher_flush(b, 0, true), 0);
    EXPECT_EQ(decode(s.envelopes[2]), (std::vector<std::string>{"m6"}));
    EXPECT_EQ(sb_batcher_deadline(b), UINT64_MAX);
    sb_batcher_free(b);
}

TEST(Batch, ByBytesNeverOver)
{
    Sink s;
    std::string e = track("0190d9f2-7c1a-7cc0-8a1b-9d5e8f1a2b3c");
    sb_batch_limits lim{2500, 10 * e.size() + SB_BATCH_HEAD_BYTES + SB_BATCH_TAIL_BYTES - 1,
                        1000000000};
    sb_batcher *b;
    ASSERT_EQ(sb_batcher_new(&b, &lim, Sink::emit, &s), 0);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(sb_batcher_add(b, (const uint8_t *)e.data(), e.size(), 1), 0);
    sb_batcher_flush(b, 0, true);
    size_t total = 0;
    for (size_t i = 0; i < s.envelopes.size(); i++) {
        EXPECT_LE(s.envelopes[i].size(), lim.max_bytes);
        if (i + 1 < s.envelopes.size()) {
            EXPECT_EQ(s.counts[i], 9u); // ten would be one byte over
        }
        EXPECT_EQ(decode(s.envelopes[i]).size(), s.counts[i]);
        total += s.counts[i];
    }
    EXPECT_EQ(total, 100u); // all delivered
    sb_batcher_free(b);
}

TEST(Batch, ByIntervalAndSentAt)
{
    Sink s;
    sb_batch_limits lim{2500, 500000, 100000000};
    sb_batcher *b;
    ASSERT_EQ(sb_batcher_new(&b, &lim, Sink::emit, &s), 0);
    std::string e = track("m");
    ASSERT_EQ(sb_batcher_add(b, (const uint8_t *)e.data(), e.size(), 5000), 0);
    ASSERT_EQ(sb_batcher_add(b, (const uint8_t *)e.data(), e.size(), 5000 + 50000000), 0);
    EXPECT_EQ(sb_batcher_deadline(b), 5000u + 100000000u); // from the first event
    EXPECT_EQ(sb_batcher_flush(b, 5000 + 99999999, false), 0);
    EXPECT_TRUE(s.envelopes.empty());
    EXPECT_EQ(sb_batcher_flush(b, 5000 + 100000000, false), 0);
    ASSERT_EQ(s.envelopes.size(), 1u);
    std::string sent;
    decode(s.envelopes[0], &sent);
    ASSERT_EQ(sent.size(), 24u);
    EXPECT_EQ(sent[10], 'T');
    EXPECT_EQ(sent[23], 'Z');
    std::string env = s.envelopes[0];
    ASSERT_EQ(sb_batch_set_sent_at((uint8_t *)env.data(), env.size(), 1801353600123LL), 0);
    decode(env, &sent);
    EXPECT_EQ(sent, "2027-01-31T00:00:00.123Z");
    EXPECT_EQ(sb_batch_set_sent_at((uint8_t *)e.data(), e.size(), 0), -EINVAL);
    sb_batcher_free(b);
}

TEST(Batch, FailedEmitKeepsEvents)
{
    Sink s;
    sb_batch_limits lim{2, 500000, 1000};
    sb_batcher *b;
    ASSERT_EQ(sb_batcher_new(&b, &lim, Sink::emit, &s), 0);
    std::string e0 = track("a"), e1 = track("b"), e2 = track("c");
    s.fail = -ENOSPC;
    ASSERT_EQ(sb_batcher_add(b, (const uint8_t *)e0.data(), e0.size(), 1), 0);
    ASSERT_EQ(sb_batcher_add(b, (const uint8_t *)e1.data(), e1.size(), 1), 0); // full; emit fails
    EXPECT_EQ(sb_batcher_add(b, (const uint8_t *)e2.data(), e2.size(), 1), -ENOSPC);
    EXPECT_EQ(sb_batcher_pending(b), 2u);
    EXPECT_EQ(sb_batcher_flush(b, 5000, false), -ENOSPC);
    s.fail = 0;
    ASSERT_EQ(sb_batcher_add(b, (const uint8_t *)e2.data(), e2.size(), 1), 0);
    sb_batcher_flush(b, 0, true);
    ASSERT_EQ(s.envelopes.size(), 2u);
    EXPECT_EQ(decode(s.envelopes[0]), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(decode(s.envelopes[1]), (std::vector<std::string>{"c"}));
    sb_batcher_free(b);
}

TEST(Retry, Classify)
{
    for (int st : {200, 201, 204, 299, 301, 304, 399})
        EXPECT_EQ(sb_retry_classify(st), SB_HTTP_SUCCESS) << st;
    for (int st : {0, -1, 408, 410, 429, 460, 500, 502, 503, 504, 506, 510, 599})
        EXPECT_EQ(sb_retry_classify(st), SB_HTTP_RETRY) << st;
    for (int st : {400, 401, 403, 404, 413, 422, 461, 501, 505, 511, 100, 600})
        EXPECT_EQ(sb_retry_classify(st), SB_HTTP_DEAD_LETTER) << st;
}

TEST(Retry, RetryAfter)
{
    uint64_t d;
    EXPECT_EQ(sb_retry_after_parse("7", 0, &d), 0);
    EXPECT_EQ(d, 7000000000ull);
    EXPECT_EQ(sb_retry_after_parse(" 0 ", 0, &d), 0);
    EXPECT_EQ(d, 0u);
    EXPECT_EQ(sb_retry_after_parse("3600", 0, &d), 0);
    EXPECT_EQ(d, SB_RETRY_AFTER_CAP_NS);
    EXPECT_EQ(sb_retry_after_parse("99999999999999999999999", 0, &d), 0);
    EXPECT_EQ(d, SB_RETRY_AFTER_CAP_NS);
    // 1801353600 = Sun, 31 Jan 2027 00:00:00 GMT
    EXPECT_EQ(sb_retry_after_parse("Sun, 31 Jan 2027 00:00:00 GMT", 1801353600 - 42, &d), 0);
    EXPECT_EQ(d, 42000000000ull);
    EXPECT_EQ(sb_retry_after_parse("Sunday, 31-Jan-27 00:00:00 GMT", 1801353600 - 5, &d), 0);
    EXPECT_EQ(d, 5000000000ull);
    EXPECT_EQ(sb_retry_after_parse("Sun Jan 31 00:00:00 2027", 1801353600 - 1, &d), 0);
    EXPECT_EQ(d, 1000000000ull);
    EXPECT_EQ(sb_retry_after_parse("Sun, 31 Jan 2027 00:00:00 GMT", 1801353600 + 10, &d), 0);
    EXPECT_EQ(d, 0u); // a past date: retry now
    EXPECT_EQ(sb_retry_after_parse("Sun, 31 Jan 2027 00:00:00 GMT", 1801353600 - 86400, &d), 0);
    EXPECT_EQ(d, SB_RETRY_AFTER_CAP_NS);
    for (const char *bad : {"", "soon", "-5", "5s", "1.5", "Sun, 31 Jan 2027"})
        EXPECT_EQ(sb_retry_after_parse(bad, 0, &d), -EINVAL) << bad;
}

TEST(Retry, BackoffBoundsAndJitter)
{
    for (uint32_t a = 0; a < 40; a++) {
        uint64_t base =
            a >= 7 ? SB_RETRY_CAP_NS : std::min<uint64_t>(SB_RETRY_BASE_NS << a, SB_RETRY_CAP_NS);
        uint64_t lo = UINT64_MAX, hi = 0;
        for (uint64_t r = 0; r < 2000; r++) {
            uint64_t d = sb_retry_backoff_ns(a, r * 0x9e3779b97f4a7c15ull);
            lo = std::min(lo, d);
            hi = std::max(hi, d);
        }
        EXPECT_GE(lo, base - base / 10) << a;
        EXPECT_LE(hi, std::min<uint64_t>(base + base / 10, SB_RETRY_CAP_NS)) << a;
        EXPECT_LT(lo, hi) << a; // there is jitter
    }
    EXPECT_GE(sb_retry_backoff_ns(0, 0), 450000000u);
    EXPECT_LE(sb_retry_backoff_ns(0, ~0ull), 550000000u);
}

TEST(Retry, SequenceHeaderAndGiveUp)
{
    sb_retry st{};
    uint64_t d = 0, now = 1000;
    const uint64_t hour = 3600ull * 1000000000ull;
    EXPECT_EQ(sb_retry_next(&st, 200, nullptr, now, 0, hour, 1, &d), SB_HTTP_SUCCESS);
    EXPECT_EQ(st.retries, 0u);
    EXPECT_EQ(sb_retry_next(&st, 400, nullptr, now, 0, hour, 1, &d), SB_HTTP_DEAD_LETTER);
    EXPECT_EQ(sb_retry_next(&st, 500, nullptr, now, 0, hour, 1, &d), SB_HTTP_RETRY);
    EXPECT_EQ(st.retries, 1u); // X-Retry-Count: 1 on the next send
    EXPECT_NEAR((double)d, 5e8, 5e7);
    EXPECT_EQ(sb_retry_next(&st, 503, nullptr, now + 1, 0, hour, 1, &d), SB_HTTP_RETRY);
    EXPECT_NEAR((double)d, 1e9, 1e8);
    // Retry-After wins and does not advance the exponential backoff.
    EXPECT_EQ(sb_retry_next(&st, 429, "12", now + 2, 0, hour, 1, &d), SB_HTTP_RETRY);
    EXPECT_EQ(d, 12000000000ull);
    EXPECT_EQ(sb_retry_next(&st, -ECONNREFUSED, "12", now + 3, 0, hour, 1, &d), SB_HTTP_RETRY);
    EXPECT_NEAR((double)d, 2e9, 2e8); // no response: no header to honour
    EXPECT_EQ(st.retries, 4u);
    // A garbage Retry-After falls back to the backoff.
    EXPECT_EQ(sb_retry_next(&st, 503, "later", now + 4, 0, hour, 1, &d), SB_HTTP_RETRY);
    EXPECT_NEAR((double)d, 4e9, 4e8);
    // After max_retry_duration of failing, give up.
    EXPECT_EQ(sb_retry_next(&st, 503, nullptr, now + hour, 0, hour, 1, &d), SB_HTTP_DEAD_LETTER);
    sb_retry st2{};
    EXPECT_EQ(sb_retry_next(&st2, 503, nullptr, 5, 0, 0, 1, &d), SB_HTTP_RETRY);
    EXPECT_EQ(sb_retry_next(&st2, 503, nullptr, 100 * hour, 0, 0, 1, &d), SB_HTTP_RETRY);
    EXPECT_LE(d, SB_RETRY_CAP_NS);
}

} // namespace
