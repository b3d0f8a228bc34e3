// config_test.cc: the YAML loader: defaults, the commented example, errors with line numbers.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>

extern "C" {
#include "config/config.h"
}

namespace
{

struct Cfg {
    sb_config cfg{};
    sb_config_error err{};
    int rc = 0;
    explicit Cfg(const std::string &yaml)
    {
        rc = sb_config_load_string(&cfg, yaml.data(), yaml.size(), "test.yaml", &err);
    }
    ~Cfg()
    {
        sb_config_free(&cfg);
    }
};

std::string load_error(const std::string &yaml)
{
    Cfg c(yaml);
    EXPECT_EQ(c.rc, -EINVAL) << yaml;
    return c.err.msg;
}

void expect_same_globals(const sb_config &a, const sb_config &b)
{
    EXPECT_EQ(a.log_level, b.log_level);
    EXPECT_EQ(a.shutdown_timeout_ns, b.shutdown_timeout_ns);
    EXPECT_STREQ(a.socket.path, b.socket.path);
    EXPECT_EQ(a.socket.n_allowed_uids, b.socket.n_allowed_uids);
    EXPECT_EQ(a.socket.n_allowed_gids, b.socket.n_allowed_gids);
    EXPECT_EQ(a.ring.capacity, b.ring.capacity);
    EXPECT_EQ(a.ring.producer_grace_ns, b.ring.producer_grace_ns);
    EXPECT_EQ(a.ring.source == nullptr, b.ring.source == nullptr);
    EXPECT_EQ(a.dedup.window_count, b.dedup.window_count);
    EXPECT_EQ(a.dedup.window_ns, b.dedup.window_ns);
    EXPECT_EQ(a.batch.max_events, b.batch.max_events);
    EXPECT_EQ(a.batch.max_bytes, b.batch.max_bytes);
    EXPECT_EQ(a.batch.flush_interval_ns, b.batch.flush_interval_ns);
    EXPECT_STREQ(a.spool.dir, b.spool.dir);
    EXPECT_EQ(a.spool.segment_bytes, b.spool.segment_bytes);
    EXPECT_EQ(a.spool.max_bytes, b.spool.max_bytes);
    EXPECT_EQ(a.spool.full_policy, b.spool.full_policy);
    EXPECT_STREQ(a.metrics.listen, b.metrics.listen);
    EXPECT_EQ(a.http.enabled, b.http.enabled);
    EXPECT_STREQ(a.http.listen, b.http.listen);
    EXPECT_EQ(a.http.tls_cert == nullptr, b.http.tls_cert == nullptr);
    EXPECT_EQ(a.http.tls_key == nullptr, b.http.tls_key == nullptr);
    EXPECT_EQ(a.http.max_body_bytes, b.http.max_body_bytes);
    EXPECT_EQ(a.http.max_header_bytes, b.http.max_header_bytes);
    EXPECT_EQ(a.http.max_connections, b.http.max_connections);
    EXPECT_EQ(a.http.header_timeout_ns, b.http.header_timeout_ns);
    EXPECT_EQ(a.http.body_timeout_ns, b.http.body_timeout_ns);
    EXPECT_EQ(a.http.idle_timeout_ns, b.http.idle_timeout_ns);
}

// Every defaultable field of an example output must equal the type's built-in default.
void expect_output_defaults(const sb_config &cfg, const sb_output_config &o)
{
    sb_output_config d;
    ASSERT_EQ(sb_output_defaults(&d, o.type, &cfg), 0);
    SCOPED_TRACE(o.name);
    EXPECT_EQ(o.batch.max_events, d.batch.max_events);
    EXPECT_EQ(o.batch.max_bytes, d.batch.max_bytes);
    EXPECT_EQ(o.batch.flush_interval_ns, d.batch.flush_interval_ns);
    EXPECT_EQ(o.gzip, d.gzip);
    EXPECT_EQ(o.timeout_ns, d.timeout_ns);
    EXPECT_EQ(o.max_retry_duration_ns, d.max_retry_duration_ns);
    EXPECT_EQ(o.tls_ca_file, nullptr);
    EXPECT_EQ(o.dead_letter, nullptr);
    EXPECT_EQ(o.rotate_bytes, d.rotate_bytes);
    EXPECT_EQ(o.webhook_mode, d.webhook_mode);
    EXPECT_EQ(o.keep, d.keep);
    EXPECT_EQ(o.rotate_interval_ns, d.rotate_interval_ns);
    EXPECT_EQ(o.sources.n, 0u);
    EXPECT_EQ(o.allow.n, 0u);
    EXPECT_EQ(o.deny.n, 0u);
    if (o.type == SB_OUTPUT_SEGMENT) {
        EXPECT_STREQ(o.endpoint.host, d.endpoint.host);
        EXPECT_EQ(o.endpoint.port, d.endpoint.port);
        EXPECT_STREQ(o.endpoint.path, d.endpoint.path);
    }
    if (o.type == SB_OUTPUT_POSTGRES) {
        EXPECT_STREQ(o.schema, d.schema);
    }
    if (o.type == SB_OUTPUT_HUB) {
        EXPECT_EQ(o.write_key, nullptr);
    }
    if (o.type == SB_OUTPUT_WEBHOOK) {
        EXPECT_EQ(o.secret, nullptr);
    }
    // sb_output_defaults allocates; free through a throwaway config.
    sb_config tmp{};
    tmp.outputs = (sb_output_config *)calloc(1, sizeof d);
    tmp.outputs[0] = d;
    tmp.n_outputs = 1;
    sb_config_free(&tmp);
}

TEST(Config, EmptyFileIsAllDefaults)
{
    sb_config d;
    ASSERT_EQ(sb_config_defaults(&d), 0);
    for (const char *text : {"", "# nothing\n", "~\n"}) {
        Cfg c(text);
        ASSERT_EQ(c.rc, 0) << c.err.msg;
        expect_same_globals(c.cfg, d);
        EXPECT_EQ(c.cfg.n_outputs, 0u);
        EXPECT_EQ(c.cfg.n_sources, 0u);
    }
    EXPECT_EQ(d.batch.max_events, 2500u);
    EXPECT_EQ(d.batch.max_bytes, 500000u);
    EXPECT_EQ(d.spool.full_policy, SB_SPOOL_FULL_BLOCK);
    EXPECT_FALSE(d.http.enabled);
    sb_config_free(&d);
}

TEST(Config, ExampleStatesTheDefaults)
{
    std::string path = std::string(SEGBUS_SOURCE_DIR) + "/examples/segbusd.yaml";
    sb_config cfg, d;
    sb_config_error err;
    ASSERT_EQ(sb_config_load_file(&cfg, path.c_str(), &err), 0) << err.msg;
    ASSERT_EQ(sb_config_defaults(&d), 0);
    expect_same_globals(cfg, d);
    EXPECT_STREQ(cfg.file, path.c_str());
    // One output of every type, each stating its defaults.
    ASSERT_EQ(cfg.n_outputs, 7u);
    bool seen[7] = {};
    for (size_t i = 0; i < cfg.n_outputs; i++) {
        seen[cfg.outputs[i].type] = true;
        expect_output_defaults(cfg, cfg.outputs[i]);
    }
    for (bool s : seen)
        EXPECT_TRUE(s);
    ASSERT_EQ(cfg.n_sources, 1u);
    EXPECT_EQ(cfg.sources[0].environment, SB_ENV_PROD);
    ASSERT_EQ(cfg.sources[0].n_write_keys, 2u);
    EXPECT_EQ(cfg.sources[0].write_keys[0].expires, 1801353600); // 2027-01-31T00:00:00Z
    EXPECT_EQ(cfg.sources[0].write_keys[1].expires, 0);
    EXPECT_EQ(cfg.sources[0].plan_file, nullptr);
    const sb_output_config *k = sb_config_output(&cfg, "kafka");
    ASSERT_NE(k, nullptr);
    ASSERT_EQ(k->kafka.n, 1u);
    EXPECT_STREQ(k->kafka.items[0].path, "compression.codec");
    EXPECT_STREQ(k->kafka.items[0].value, "lz4");
    sb_config_free(&cfg);
    sb_config_free(&d);
}

TEST(Config, ValuesAndUnits)
{
    Cfg c(R"(log_level: debug
shutdown_timeout: 1.5s
socket: {path: /tmp/x.sock, allowed_uids: [0, root, 1000], allowed_gids: [0]}
ring: {capacity: 64KiB, producer_grace: 2m}
dedup: {window_count: 0, window_time: 0}
batch: {max_events: 10, max_bytes: 64KB, flush_interval: 250ms}
spool: {dir: /tmp/s, segment_bytes: 1MiB, max_bytes: 8MiB, full_policy: drop_oldest}
metrics: {listen: ""}
http: {enabled: yes, listen: "0.0.0.0:9000"}
sources:
  - name: app
    environment: dev
    write_keys: [abc]
    violations: {unplanned_events: block}
    transforms:
      - hash: [email, phone]
      - rename: {from: a, to: b}
outputs:
  - {type: file, name: f, settings: {path: /tmp/o.ndjson}}
  - type: segment
    name: s
    sources: [app]
    events: {deny: [Secret Event]}
    batch: {max_events: 5}
    settings: {write_key: k1, host: eu}
  - type: hub
    name: h
    settings: {url: "http://[::1]:8080"}
)");
    ASSERT_EQ(c.rc, 0) << c.err.msg;
    const sb_config &g = c.cfg;
    EXPECT_EQ(g.log_level, SB_CFG_LOG_DEBUG);
    EXPECT_EQ(g.shutdown_timeout_ns, 1500000000u);
    EXPECT_STREQ(g.socket.path, "/tmp/x.sock");
    ASSERT_EQ(g.socket.n_allowed_uids, 3u);
    EXPECT_EQ(g.socket.allowed_uids[1], 0u);
    EXPECT_EQ(g.socket.allowed_uids[2], 1000u);
    EXPECT_EQ(g.ring.capacity, 65536u);
    EXPECT_EQ(g.ring.producer_grace_ns, 120 * SB_NS_PER_S);
    EXPECT_EQ(g.dedup.window_count, 0u);
    EXPECT_EQ(g.batch.max_bytes, 64000u);
    EXPECT_EQ(g.batch.flush_interval_ns, 250 * SB_NS_PER_MS);
    EXPECT_EQ(g.spool.full_policy, SB_SPOOL_FULL_DROP_OLDEST);
    EXPECT_EQ(g.metrics.listen, nullptr);
    EXPECT_TRUE(g.http.enabled);
    EXPECT_EQ(g.sources[0].environment, SB_ENV_DEV);
    ASSERT_EQ(g.sources[0].transforms.n, 4u);
    EXPECT_STREQ(g.sources[0].transforms.items[1].path, "0.hash.1");
    EXPECT_STREQ(g.sources[0].transforms.items[1].value, "phone");
    EXPECT_EQ(g.sources[0].transforms.items[1].line, 16);
    EXPECT_STREQ(g.sources[0].transforms.items[3].path, "1.rename.to");
    EXPECT_STREQ(g.sources[0].violations.items[0].path, "unplanned_events");
    const sb_output_config *f = sb_config_output(&g, "f");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->batch.max_events, 10u); // inherits the global batch limits
    const sb_output_config *s = sb_config_output(&g, "s");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->batch.max_events, 5u);
    EXPECT_EQ(s->batch.max_bytes, 64000u);
    EXPECT_STREQ(s->endpoint.host, "events.eu1.segmentapis.com");
    EXPECT_TRUE(s->endpoint.tls);
    EXPECT_STREQ(s->endpoint.path, "/v1/batch");
    EXPECT_TRUE(s->gzip);
    ASSERT_EQ(s->deny.n, 1u);
    EXPECT_STREQ(s->deny.items[0], "Secret Event");
    const sb_output_config *h = sb_config_output(&g, "h");
    EXPECT_STREQ(h->endpoint.host, "::1");
    EXPECT_EQ(h->endpoint.port, 8080);
    EXPECT_FALSE(h->endpoint.tls);
    EXPECT_STREQ(h->endpoint.path, "/v1/batch");
}

TEST(Config, ErrorsNameLineAndKey)
{
    EXPECT_EQ(load_error("log_level: info\nspool:\n  dri: /x\n"),
              "test.yaml:3:3: spool.dri: unknown key");
    EXPECT_EQ(load_error("batch:\n  max_events: lots\n"),
              "test.yaml:2:15: batch.max_events: 'lots' is not a whole number");
    EXPECT_EQ(load_error("log_level: loud\n"),
              "test.yaml:1:12: log_level: 'loud' is not one of debug, info, warn, error");
    EXPECT_EQ(load_error("shutdown_timeout: 10\n"),
              "test.yaml:1:19: shutdown_timeout: '10' is not a duration (a number with a unit: "
              "ms, s, m, h, d)");
    EXPECT_EQ(load_error("ring: {capacity: 3MiB}\n"),
              "test.yaml:1:18: ring.capacity: must be a power of two (e.g. 1MiB, 4MiB)");
    EXPECT_EQ(load_error("log_level: info\nlog_level: warn\n"),
              "test.yaml:2:1: log_level: key given twice");
    EXPECT_NE(load_error("batch: {max_events: 0}\n").find("out of range"), std::string::npos);
    EXPECT_NE(load_error("spool: [a]\n").find("expected a map"), std::string::npos);
    EXPECT_NE(load_error("socket: {allowed_uids: [no-such-user-xyz]}\n").find("no user named"),
              std::string::npos);
    EXPECT_NE(load_error("outputs:\n  - {name: x}\n").find("needs a type"), std::string::npos);
    EXPECT_NE(load_error("outputs:\n  - {type: carrier-pigeon, name: x}\n").find("not one of"),
              std::string::npos);
    EXPECT_EQ(load_error("outputs:\n  - type: file\n    name: f\n    settings: {path: /x, gzip: "
                         "true}\n"),
              "test.yaml:4:26: outputs.0.settings.gzip: not a setting of output type file");
    EXPECT_NE(load_error("outputs:\n  - {type: segment, name: s}\n").find("write_key"),
              std::string::npos);
    EXPECT_NE(load_error("outputs:\n  - {type: segment, name: s, batch: {max_events: 3000}, "
                         "settings: {write_key: k}}\n")
                  .find("larger than Segment accepts"),
              std::string::npos);
    EXPECT_NE(load_error("outputs:\n  - {type: hub, name: h, settings: {url: ftp://x}}\n")
                  .find("not an http(s)"),
              std::string::npos);
    EXPECT_NE(load_error("outputs:\n  - {type: file, name: a, settings: {path: /x}}\n"
                         "  - {type: file, name: a, settings: {path: /y}}\n")
                  .find("used twice"),
              std::string::npos);
    EXPECT_NE(load_error("sources: [{name: a}]\noutputs:\n  - {type: file, name: f, sources: "
                         "[b], settings: {path: /x}}\n")
                  .find("no source named 'b'"),
              std::string::npos);
    EXPECT_NE(load_error("ring: {source: nope}\n").find("no source named"), std::string::npos);
    EXPECT_NE(load_error("http: {enabled: true, tls_cert: /c}\n").find("go together"),
              std::string::npos);
    EXPECT_NE(load_error("sources: [{name: a, write_keys: [{key: k, expires: tomorrow}]}]\n")
                  .find("not a date-time"),
              std::string::npos);
    EXPECT_NE(load_error("key: [unclosed\n").find("YAML syntax"), std::string::npos);
    EXPECT_NE(load_error("- a\n- b\n").find("must be a map"), std::string::npos);
}

TEST(Config, WriteKeysNeverInErrors)
{
    std::string msg = load_error("sources:\n  - {name: a, write_keys: [s3cr3t-key]}\n"
                                 "  - {name: b, write_keys: [s3cr3t-key]}\n");
    EXPECT_NE(msg.find("given twice"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("s3cr3t"), std::string::npos) << msg;
    char r1[16], r2[16];
    EXPECT_STREQ(sb_config_redact(nullptr, r1), "wk:none");
    EXPECT_STREQ(sb_config_redact("", r1), "wk:none");
    sb_config_redact("abc", r1);
    sb_config_redact("abd", r2);
    EXPECT_EQ(strlen(r1), 11u);
    EXPECT_STRNE(r1, r2);
    EXPECT_EQ(std::string(r1).find("abc"), std::string::npos);
}

TEST(Config, AliasBombIsRefused)
{
    // Ten levels of eight aliases each: 8^9 * 10 leaves if expanded.
    std::string y = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    std::string prev = "a";
    for (char n : std::string("bcdefghij")) {
        std::string ref = "*" + prev;
        y += std::string(1, n) + ": &" + n + " [" + ref;
        for (int i = 0; i < 7; i++)
            y += ", " + ref;
        y += "]\n";
        prev = std::string(1, n);
    }
    y += "sources: [{name: s, transforms: *j}]\n";
    Cfg c(y);
    EXPECT_EQ(c.rc, -EINVAL);
}

TEST(Config, Parsers)
{
    uint64_t v;
    EXPECT_EQ(sb_parse_duration("250ms", &v), 0);
    EXPECT_EQ(v, 250 * SB_NS_PER_MS);
    EXPECT_EQ(sb_parse_duration("1d", &v), 0);
    EXPECT_EQ(v, 86400 * SB_NS_PER_S);
    EXPECT_EQ(sb_parse_duration("0", &v), 0);
    EXPECT_EQ(v, 0u);
    EXPECT_EQ(sb_parse_duration("5", &v), -EINVAL);
    EXPECT_EQ(sb_parse_duration("-5s", &v), -EINVAL);
    EXPECT_EQ(sb_parse_duration("5 fortnights", &v), -EINVAL);
    EXPECT_EQ(sb_parse_duration("99999999999999999999s", &v), -EINVAL);
    EXPECT_EQ(sb_parse_size("500KB", &v), 0);
    EXPECT_EQ(v, 500000u);
    EXPECT_EQ(sb_parse_size("4MiB", &v), 0);
    EXPECT_EQ(v, 4u << 20);
    EXPECT_EQ(sb_parse_size("1.5KiB", &v), 0);
    EXPECT_EQ(v, 1536u);
    EXPECT_EQ(sb_parse_size("12", &v), 0);
    EXPECT_EQ(v, 12u);
    EXPECT_EQ(sb_parse_size("KB", &v), -EINVAL);
    EXPECT_EQ(sb_parse_size("20000000000TiB", &v), -EINVAL);

    sb_endpoint ep{};
    EXPECT_EQ(sb_parse_endpoint("us", "/v1/batch", &ep), 0);
    EXPECT_STREQ(ep.host, "api.segment.io");
    EXPECT_EQ(ep.port, 443);
    EXPECT_TRUE(ep.tls);
    EXPECT_EQ(sb_parse_endpoint("https://proxy.example.com:8443/seg/v1/batch", "/v1/batch", &ep),
              0);
    EXPECT_STREQ(ep.host, "proxy.example.com");
    EXPECT_EQ(ep.port, 8443);
    EXPECT_STREQ(ep.path, "/seg/v1/batch");
    EXPECT_EQ(sb_parse_endpoint("http://127.0.0.1", "/v1/batch", &ep), 0);
    EXPECT_EQ(ep.port, 80);
    EXPECT_STREQ(ep.path, "/v1/batch");
    EXPECT_EQ(sb_parse_endpoint("http://:80", "/", &ep), -EINVAL);
    EXPECT_EQ(sb_parse_endpoint("http://a:0", "/", &ep), -EINVAL);
    EXPECT_EQ(sb_parse_endpoint("http://a:99999", "/", &ep), -EINVAL);
    EXPECT_EQ(sb_parse_endpoint("http://a/b c", "/", &ep), -EINVAL);
    EXPECT_EQ(sb_parse_endpoint("api.segment.io.evil", "/", &ep), -EINVAL);
    EXPECT_STREQ(ep.host, "127.0.0.1"); // failures leave the previous value intact
    sb_endpoint_free(&ep);
}

} // namespace

// Webhook settings: mode, signature header and extra headers are checked (never echoing a
// header's value: it may be a token).
TEST(Config, WebhookSettingsAreChecked)
{
    auto wh = [](const std::string &settings) {
        return load_error("outputs:\n  - {type: webhook, name: w, settings: {url: "
                          "http://127.0.0.1:9/h, " +
                          settings + "}}\n");
    };
    EXPECT_NE(wh("mode: stream").find("not one of batch, event"), std::string::npos);
    EXPECT_NE(wh("headers: {Content-Length: '1'}").find("Content-Length is set by segbusd"),
              std::string::npos);
    EXPECT_NE(wh("headers: {x-signature: abc}").find("is the signature header"), std::string::npos);
    EXPECT_NE(wh("signature_header: Host").find("Host is set by segbusd"), std::string::npos);
    std::string bad = wh("headers: {'Bad Name': tok-secret-1}");
    EXPECT_NE(bad.find("is not a header name"), std::string::npos) << bad;
    EXPECT_EQ(bad.find("tok-secret-1"), std::string::npos) << bad;
    std::string many = "headers: {";
    for (int i = 0; i < 17; i++)
        many += (i ? ", X-H" : "X-H") + std::to_string(i) + ": v";
    EXPECT_NE(wh(many + "}").find("at most 16"), std::string::npos);
    EXPECT_NE(load_error("outputs:\n  - {type: file, name: f, settings: {path: /x, keep: 0}}\n")
                  .find("out of range"),
              std::string::npos);

    sb_config cfg;
    sb_config_error err{};
    std::string ok = "outputs:\n  - type: webhook\n    name: w\n    integration: Webhooks\n"
                     "    settings:\n      url: http://127.0.0.1:9/h\n      mode: event\n"
                     "      secret: s\n      signature_header: X-Hub-Signature-256\n"
                     "      headers: {Authorization: Bearer t, X-Team: growth}\n"
                     "  - {type: file, name: f, settings: {path: /x, rotate_interval: 1h, "
                     "keep: 3}}\n";
    ASSERT_EQ(sb_config_load_string(&cfg, ok.data(), ok.size(), "test.yaml", &err), 0) << err.msg;
    const sb_output_config &w = cfg.outputs[0];
    EXPECT_EQ(w.webhook_mode, SB_WEBHOOK_EVENT);
    EXPECT_STREQ(w.integration, "Webhooks");
    EXPECT_STREQ(w.signature_header, "X-Hub-Signature-256");
    ASSERT_EQ(w.headers.n, 2u);
    EXPECT_STREQ(w.headers.items[0].path, "Authorization");
    EXPECT_STREQ(w.headers.items[0].value, "Bearer t");
    EXPECT_EQ(cfg.outputs[1].rotate_interval_ns, 3600 * SB_NS_PER_S);
    EXPECT_EQ(cfg.outputs[1].keep, 3u);
    sb_config_free(&cfg);
}
