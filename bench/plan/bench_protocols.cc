// bench_protocols.cc: the cost of the seed's plan and its PII transform on the daemon's per-event
// work, on vs off, measured in the same run on the same events: (1) against verify alone (the
// pipeline stages only), (2) against the drain (verify, dedup, batching, and the Segment
// output's JSON body of each batch, as segbusd does for every event; no ring, no network).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <algorithm>

extern "C" {
#include "config/config.h"
#include "json/json.h"
#include "pipeline/batch.h"
#include "pipeline/dedup.h"
#include "pipeline/stage.h"
#include "pipeline/verify.h"
#include "protocols/protocols.h"
}

namespace
{
const char plan_json[] =
    R"({"events":[{"name":"Order Completed","rules":{"properties":{"type":"object",
"required":["order_id","total","currency","products"],"properties":{"order_id":{"type":"string"},
"total":{"type":"number","minimum":0},"currency":{"type":"string","enum":["USD","EUR","GBP"]},
"products":{"type":"array","items":{"type":"object","required":["product_id","price"],
"properties":{"product_id":{"type":"string"},"price":{"type":"number"}}}}}}}}]})";

// The seed's Order Completed event, with the PII its middleware strips (email, phone, ip).
std::string event_json(int i)
{
    char id[64];
    std::snprintf(id, sizeof id, "01890a5d-ac96-774b-bcce-%012d", i); // patched per event later
    return std::string(R"({"type":"track","event":"Order Completed","userId":"USR-12345","messageId":")") +
           id + R"(","timestamp":"2024-05-01T12:34:56.789Z","context":{
"library":{"name":"segbus","version":"0.1.0"},"ip":"203.0.113.7"},"properties":{"order_id":
"ORD-2024-12345","total":129.98,"subtotal":119.98,"tax":10.40,"shipping":5.99,"discount":6.39,
"coupon":"SAVE10","currency":"USD","email":"ada@example.com","phone":"+1 555 0100","ip_address":
"203.0.113.7","products":[{"product_id":"SKU-12345","name":"Premium Widget","price":49.99,
"quantity":1,"category":"Widgets","brand":"Acme"},{"product_id":"SKU-67890","name":
"Deluxe Gadget","price":79.99,"quantity":1,"category":"Gadgets","brand":"Acme"}]}})";
}

sb_config defaults()
{
    sb_config cfg;
    if (sb_config_defaults(&cfg))
        std::abort();
    return cfg;
}

// segbusd's default dedup window; a fresh one per pipeline
sb_stage *dedup_stage()
{
    sb_config cfg = defaults();
    sb_dedup *dd;
    sb_stage *s = nullptr;
    if (!sb_dedup_new(&dd, cfg.dedup.window_count, cfg.dedup.window_ns))
        s = sb_dedup_stage_new(dd);
    sb_config_free(&cfg);
    return s;
}

double loadavg1()
{
    double l = -1;
    if (FILE *f = std::fopen("/proc/loadavg", "r")) {
        if (std::fscanf(f, "%lf", &l) != 1)
            l = -1;
        std::fclose(f);
    }
    return l;
}

int buf_write(void *data, const char *b, size_t len)
{
    return sb_buf_append(static_cast<sb_buf *>(data), b, len) ? -1 : 0;
}

sb_pipeline *build(bool plan_on, bool transform_on, bool drain = false)
{
    sb_pipeline *p;
    char err[256];
    if (sb_pipeline_new(&p) || sb_pipeline_add(p, sb_verify_stage_new()))
        return nullptr;
    if (drain && !plan_on) // the daemon's order: verify, plan, transforms, dedup
        return sb_pipeline_add(p, dedup_stage()) ? nullptr : p;
    if (plan_on) {
        sb_plan *plan;
        if (sb_plan_load_json(plan_json, sizeof plan_json - 1, &plan, err, sizeof err))
            return nullptr;
        sb_plan_opts o{};
        o.unplanned_events = SB_PMODE_BLOCK;
        o.unplanned_properties = SB_PMODE_OMIT;
        o.invalid = SB_PMODE_BLOCK;
        o.log_path = const_cast<char *>("/dev/null");
        sb_pipeline_add(p, sb_plan_stage_new(plan, &o, "web", 0, nullptr));
    }
    if (transform_on) {
        // the seed's middleware: strip email/phone/ip_address from track, Title Case names
        static char kv[][2][32] = {{"0.type", "track"},
                                   {"0.drop.0", "properties.email"},
                                   {"0.drop.1", "properties.phone"},
                                   {"0.drop.2", "properties.ip_address"},
                                   {"1.normalize", "title_case"}};
        sb_kv items[5];
        for (int i = 0; i < 5; i++)
            items[i] = sb_kv{kv[i][0], kv[i][1], i + 1};
        sb_kv_list l{items, 5};
        sb_transform *t;
        if (sb_transform_new(&l, &t, err, sizeof err))
            return nullptr;
        sb_pipeline_add(p, sb_transform_stage_new(t, 0));
    }
    if (drain && sb_pipeline_add(p, dedup_stage()))
        return nullptr;
    return p;
}

// What the Segment output does with each closed batch before the POST: its JSON body.
struct drain_out {
    sb_batcher *batcher = nullptr;
    sb_buf body = SB_BUF_INIT;
    uint64_t events = 0, bytes = 0;
    static int emit(void *arg, const uint8_t *env, size_t len, uint32_t count)
    {
        auto *d = static_cast<drain_out *>(arg);
        size_t used;
        sb_buf_clear(&d->body);
        if (sb_msgpack_to_json(env, len, &used, &d->body))
            return -EINVAL;
        d->events += count;
        d->bytes += d->body.len;
        return 0;
    }
};

// The drain per event: pipeline, then the batcher (as segbusd's on_record and its output).
// Every event gets a fresh messageId (its last 12 digits), or dedup would drop the repeats.
double run_drain(sb_pipeline *p, drain_out *d, std::vector<std::string> &evs,
                 const std::vector<size_t> &id_off, size_t iters, uint64_t *next_id, size_t *passed)
{
    static const char hex[] = "0123456789abcdef";
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < iters; i++) {
        std::string &e = evs[i % evs.size()];
        uint64_t v = (*next_id)++;
        for (int k = 11; k >= 0; k--, v >>= 4)
            e[id_off[i % evs.size()] + (size_t)k] = hex[v & 15];
        sb_event_meta meta{};
        meta.source = 0;
        const uint8_t *out;
        size_t out_len;
        if (sb_pipeline_run(p, (const uint8_t *)e.data(), e.size(), &meta, &out, &out_len) ==
            SB_STAGE_PASS) {
            (*passed)++;
            if (sb_batcher_add(d->batcher, out, out_len, 0))
                return -1;
        }
    }
    if (sb_batcher_flush(d->batcher, 0, true))
        return -1;
    auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)iters;
}

double run(sb_pipeline *p, const std::vector<std::string> &evs, size_t iters, size_t *passed)
{
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < iters; i++) {
        const std::string &e = evs[i % evs.size()];
        sb_event_meta meta{};
        meta.source = 0;
        const uint8_t *out;
        size_t out_len;
        *passed += sb_pipeline_run(p, (const uint8_t *)e.data(), e.size(), &meta, &out, &out_len) ==
                   SB_STAGE_PASS;
    }
    auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)iters;
}
} // namespace

int main()
{
    std::vector<std::string> evs;
    std::vector<size_t> id_off;
    for (int i = 0; i < 1024; i++) {
        sb_buf b = SB_BUF_INIT;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, buf_write);
        std::string j = event_json(i);
        if (sb_json_to_msgpack(j.data(), j.size(), &pk, nullptr))
            return 1;
        evs.emplace_back((const char *)b.data, b.len);
        sb_buf_free(&b);
        id_off.push_back(evs.back().find("01890a5d-ac96-774b-bcce-") + 24);
    }
    sb_pipeline *off = build(false, false), *plan = build(true, false), *on = build(true, true);
    if (!off || !plan || !on)
        return 1;
    const size_t iters = 200000;
    double best_off = 1e30, best_plan = 1e30, best_on = 1e30;
    size_t passed = 0;
    // interleaved rounds, best of each: the three see the same machine state
    for (int round = 0; round < 5; round++) {
        best_off = std::min(best_off, run(off, evs, iters, &passed));
        best_plan = std::min(best_plan, run(plan, evs, iters, &passed));
        best_on = std::min(best_on, run(on, evs, iters, &passed));
    }
    if (passed != 3 * 5 * iters) {
        std::fprintf(stderr, "bench: %zu of %zu events passed\n", passed, 3 * 5 * iters);
        return 1;
    }
    // the drain, on vs off
    sb_config cfg = defaults();
    drain_out d_off, d_on;
    if (sb_batcher_new(&d_off.batcher, &cfg.batch, drain_out::emit, &d_off) ||
        sb_batcher_new(&d_on.batcher, &cfg.batch, drain_out::emit, &d_on))
        return 1;
    sb_pipeline *drain_off = build(false, false, true), *drain_on = build(true, true, true);
    if (!drain_off || !drain_on)
        return 1;
    double best_doff = 1e30, best_don = 1e30;
    uint64_t next_id = 1;
    size_t dpassed = 0;
    for (int round = 0; round < 5; round++) {
        best_doff = std::min(best_doff, run_drain(drain_off, &d_off, evs, id_off, iters, &next_id, &dpassed));
        best_don = std::min(best_don, run_drain(drain_on, &d_on, evs, id_off, iters, &next_id, &dpassed));
    }
    if (best_doff < 0 || best_don < 0 || dpassed != 2 * 5 * iters || d_on.events != 5 * iters) {
        std::fprintf(stderr, "bench: drain: %zu of %zu events passed\n", dpassed, 2 * 5 * iters);
        return 1;
    }
    double cost = (best_on - best_off) / best_off, dcost = (best_don - best_doff) / best_doff;
    double load = loadavg1();
    std::printf("{\"suite\":\"plan\",\"case\":\"pipeline_off\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"note\":\"verify only\"}\n",
                best_off);
    std::printf("{\"suite\":\"plan\",\"case\":\"pipeline_plan\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"note\":\"verify + seed plan\"}\n",
                best_plan);
    std::printf("{\"suite\":\"plan\",\"case\":\"pipeline_plan_pii\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"peer\":\"pipeline_off\",\"peer_value\":%.0f,\"ratio\":%.3f,\"events_per_s_on\":%.0f,"
                "\"events_per_s_off\":%.0f,\"cost\":%.3f,\"note\":\"against verify alone\","
                "\"load\":%.2f}\n",
                best_on, best_off, best_on / best_off, 1e9 / best_on, 1e9 / best_off, cost, load);
    std::printf("{\"suite\":\"plan\",\"case\":\"drain_plan_pii\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"peer\":\"drain_off\",\"peer_value\":%.0f,\"ratio\":%.3f,\"events_per_s_on\":%.0f,"
                "\"events_per_s_off\":%.0f,\"cost\":%.3f,\"goal\":\"cost <= 20%%\",\"met\":%s,"
                "\"note\":\"verify+dedup+batch+JSON body; on adds plan+PII transform\",\"load\":%.2f}\n",
                best_don, best_doff, best_don / best_doff, 1e9 / best_don, 1e9 / best_doff, dcost,
                dcost <= 0.20 ? "true" : "false", load);
    std::printf("{\"suite\":\"plan\",\"case\":\"pii_transform_only\",\"unit\":\"ns/event\",\"value\":%.0f,"
                "\"peer\":\"pipeline_plan\",\"peer_value\":%.0f,\"ratio\":%.3f}\n",
                best_on - best_plan, best_plan, best_on / best_plan);
    sb_pipeline_free(drain_off);
    sb_pipeline_free(drain_on);
    sb_batcher_free(d_off.batcher);
    sb_batcher_free(d_on.batcher);
    sb_buf_free(&d_off.body);
    sb_buf_free(&d_on.body);
    sb_config_free(&cfg);
    sb_pipeline_free(off);
    sb_pipeline_free(plan);
    sb_pipeline_free(on);
    return 0;
}
