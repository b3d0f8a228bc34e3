/* config.h: segbusd's configuration: the typed settings, their defaults, and the YAML loader.
 *
 * One YAML file (see examples/segbusd.yaml and docs/configuration.md) is loaded into a
 * struct sb_config. sb_config_defaults() gives every setting its built-in default; the loader
 * overwrites what the file states. Unknown keys, duplicate keys and bad values are errors that
 * name the file, line, column and key path. The struct owns all its strings; sb_config_free()
 * releases them. Write keys and secrets live here in clear: never log them, pass them through
 * sb_config_redact() first.
 */
#ifndef SEGBUS_CONFIG_CONFIG_H
#define SEGBUS_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_NS_PER_MS 1000000ull
#define SB_NS_PER_S 1000000000ull

/* Segment's documented limits (research/segment.md 1.3). */
#define SB_SEGMENT_MAX_EVENT_BYTES 32768u  /* 32 KB per event, as the SDKs count it */
#define SB_SEGMENT_MAX_BATCH_BYTES 500000u /* 500 KB per /v1/batch request */
/* A Segment output's default batch bound, in msgpack bytes: JSON is 10-30% larger, and a batch
 * over 500 KB once JSON is split and encoded again at send time (measured: most batches at the
 * 500 KB msgpack bound were). */
#define SB_SEGMENT_DEFAULT_BATCH_BYTES 380000u
#define SB_SEGMENT_MAX_BATCH_EVENTS 2500u
#define SB_SEGMENT_MAX_MESSAGEID 100u

enum sb_cfg_log_level { SB_CFG_LOG_DEBUG, SB_CFG_LOG_INFO, SB_CFG_LOG_WARN, SB_CFG_LOG_ERROR };
enum sb_spool_full_policy { SB_SPOOL_FULL_BLOCK, SB_SPOOL_FULL_DROP_OLDEST };
enum sb_environment { SB_ENV_DEV, SB_ENV_STAGING, SB_ENV_PROD };
enum sb_webhook_mode { SB_WEBHOOK_BATCH, SB_WEBHOOK_EVENT }; /* one POST per batch / event */
#define SB_WEBHOOK_MAX_HEADERS 16

enum sb_output_type {
    SB_OUTPUT_SEGMENT,
    SB_OUTPUT_HUB,
    SB_OUTPUT_FILE,
    SB_OUTPUT_SQLITE,
    SB_OUTPUT_POSTGRES,
    SB_OUTPUT_WEBHOOK,
    SB_OUTPUT_KAFKA,
};

/* A flattened YAML sub-tree kept for a later stage to interpret (tracking-plan violation
 * modes, transforms, Kafka properties). Each scalar leaf becomes one item whose path joins
 * the map keys and sequence indexes below the block with '.', e.g. "0.hash.1" = "email".
 * line is 1-based, for error messages of whoever interprets the item. */
struct sb_kv {
    char *path;
    char *value;
    int line;
};
struct sb_kv_list {
    struct sb_kv *items;
    size_t n;
};

struct sb_str_list {
    char **items;
    size_t n;
};

/* Count, bytes and time bounds of one batch. */
struct sb_batch_limits {
    uint32_t max_events;
    uint64_t max_bytes;
    uint64_t flush_interval_ns;
};

/* An HTTP(S) endpoint, parsed from a URL or a Segment region name. */
struct sb_endpoint {
    bool tls;   /* https */
    char *host; /* name or address, without brackets */
    uint16_t port;
    char *path; /* request path, e.g. "/v1/batch" */
};

struct sb_write_key {
    char *key;
    int64_t expires; /* Unix seconds after which the key is refused; 0 = never */
};

struct sb_source_config {
    char *name;
    enum sb_environment environment;
    struct sb_write_key *write_keys;
    size_t n_write_keys;
    char *plan_file;              /* tracking plan JSON; NULL = none */
    struct sb_kv_list violations; /* opaque: interpreted by the plan stage (later issue) */
    struct sb_kv_list transforms; /* opaque: interpreted by the transform stage (later issue) */
    int line;
};

/* One destination. Type-specific settings are in one flat struct; each type uses its own
 * fields (documented per type in docs/configuration.md), the others keep their defaults. */
struct sb_output_config {
    enum sb_output_type type;
    char *name;
    struct sb_str_list sources;   /* names of the sources that feed it; empty = all */
    struct sb_str_list allow;     /* event names (track) or types to deliver; empty = all */
    struct sb_str_list deny;      /* event names or types never delivered; wins over allow */
    char *integration;            /* its key in an event's `integrations` object; NULL = name */
    struct sb_batch_limits batch; /* the global batch limits with this output's overrides */
    int line;

    /* segment, hub, webhook */
    struct sb_endpoint endpoint;
    char *write_key; /* segment (required), hub (optional) */
    bool gzip;
    char *tls_ca_file; /* NULL = the system store */
    uint64_t timeout_ns;
    uint64_t max_retry_duration_ns; /* after this a batch is dead-lettered */
    char *dead_letter;              /* NULL = <spool.dir>/<name>.dead.ndjson */
    /* file, sqlite */
    char *path;
    uint64_t rotate_bytes;       /* file: 0 = never rotate by size */
    uint64_t rotate_interval_ns; /* file: 0 = never rotate by age */
    uint32_t keep;               /* file: rotated files kept (<path>.1 .. <path>.keep) */
    /* postgres */
    char *dsn;
    char *schema;
    /* webhook */
    char *secret;           /* HMAC-SHA256 signing secret; NULL = unsigned */
    char *signature_header; /* where the signature goes; NULL = "X-Signature" */
    enum sb_webhook_mode webhook_mode;
    struct sb_kv_list headers; /* extra request headers: path = name, value (at most
                                  SB_WEBHOOK_MAX_HEADERS) */
    /* kafka */
    char *brokers;
    char *topic;             /* "{source}" = the output's one source */
    char *value_format;      /* "json" (NULL) or "msgpack" */
    struct sb_kv_list kafka; /* librdkafka properties, passed through */
};

struct sb_config {
    char *file; /* the path it was loaded from (NULL for defaults / strings) */
    enum sb_cfg_log_level log_level;
    uint64_t shutdown_timeout_ns;

    struct {
        char *path;
        uid_t *allowed_uids; /* empty = only the daemon's own uid (and root) */
        size_t n_allowed_uids;
        gid_t *allowed_gids;
        size_t n_allowed_gids;
    } socket;

    struct {
        uint64_t capacity; /* bytes of data area per producer ring, a power of two */
        uint64_t producer_grace_ns;
        char *source; /* source the ring's events belong to; NULL = none */
    } ring;

    struct {
        uint32_t window_count; /* 0 = dedup off */
        uint64_t window_ns;
    } dedup;

    struct sb_batch_limits batch;

    struct {
        char *dir;
        uint64_t segment_bytes;
        uint64_t max_bytes;
        enum sb_spool_full_policy full_policy;
    } spool;

    struct {
        char *listen; /* "host:port"; NULL = no metrics endpoint */
    } metrics;

    struct {
        bool enabled; /* false for a sidecar, true for a hub */
        char *listen;
        char *tls_cert;
        char *tls_key;
        uint64_t max_body_bytes;
        uint64_t max_header_bytes;
        uint32_t max_connections;
        uint64_t header_timeout_ns;
        uint64_t body_timeout_ns;
        uint64_t idle_timeout_ns;
    } http;

    /* A delivery worker's Kafka input (docs/kafka.md); off while brokers is NULL. */
    struct {
        char *brokers;
        char *group;
        struct sb_str_list topics;
        char *value_format;           /* "auto" (NULL), "json" or "msgpack" */
        uint64_t revoke_timeout_ns;   /* wait at most this for durability on a revoke */
        struct sb_kv_list properties; /* librdkafka consumer properties, passed through */
        int line;
    } kafka_input;

    struct sb_source_config *sources;
    size_t n_sources;
    struct sb_output_config *outputs;
    size_t n_outputs;
};

/* Why loading failed: "FILE:LINE:COL: KEY.PATH: what is wrong". */
struct sb_config_error {
    char msg[512];
    int line; /* 1-based, 0 if not tied to a line */
};

/* Fill cfg with every built-in default (allocates the default strings). 0 or -ENOMEM. */
int sb_config_defaults(struct sb_config *cfg);
/* Defaults for one output of a type, with the global batch limits of cfg. 0 or -ENOMEM. */
int sb_output_defaults(struct sb_output_config *out, enum sb_output_type type,
                       const struct sb_config *cfg);

/* Load a YAML text over the defaults into cfg (cfg need not be initialised; on failure it is
 * freed and zeroed). name is used in error messages. 0, -EINVAL (err says why) or -ENOMEM. */
int sb_config_load_string(struct sb_config *cfg, const char *text, size_t len, const char *name,
                          struct sb_config_error *err);
/* Same from a file; -errno if it cannot be read. */
int sb_config_load_file(struct sb_config *cfg, const char *path, struct sb_config_error *err);
/* Free everything cfg owns and zero it. NULL is a no-op. */
void sb_config_free(struct sb_config *cfg);

/* The output/source of that name, or NULL. */
const struct sb_output_config *sb_config_output(const struct sb_config *cfg, const char *name);
const struct sb_source_config *sb_config_source(const struct sb_config *cfg, const char *name);

/* A printable stand-in for a secret: "wk:" and 8 hex digits of its XXH3 hash (so operators can
 * tell keys apart), "wk:none" for NULL or "". Writes at most 12 bytes plus NUL into out. */
const char *sb_config_redact(const char *secret, char out[16]);

const char *sb_output_type_name(enum sb_output_type type);
const char *sb_environment_name(enum sb_environment env);

/* Parsers of single values, shared with the command line tool. 0 or -EINVAL. */
int sb_parse_duration(const char *s, uint64_t *ns); /* "250ms", "10s", "5m", "12h", "1d" */
int sb_parse_size(const char *s, uint64_t *bytes);  /* "512", "500KB", "64KiB", "1GiB" */
/* "us", "eu", a Segment host name, or an http(s) URL; a URL without a path gets default_path. */
int sb_parse_endpoint(const char *s, const char *default_path, struct sb_endpoint *ep);
void sb_endpoint_free(struct sb_endpoint *ep);

#ifdef __cplusplus
}
#endif
#endif
