/* config.c: load segbusd's YAML configuration (libyaml document API) into struct sb_config.
 *
 * The schema is a set of tables (key, kind, offset, bounds) so that defaults, unknown-key errors
 * and range checks are one mechanism; the few structured values (write keys, uid lists,
 * endpoints, opaque sub-blocks) have small parsers of their own.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <xxhash.h>
#include <yaml.h>

/* A YAML document is outside input: aliases can make a small file expand enormously and an
 * anchor can refer to itself, so every walk is bounded in depth and in visited nodes. */
#define SB_CFG_MAX_DEPTH 32
#define SB_CFG_MAX_VISITS 200000
#define SB_CFG_MAX_FILE (4u << 20)

struct ctx {
    yaml_document_t *doc;
    const char *name;
    struct sb_config_error *err;
    struct sb_config *cfg;
    size_t visits;
    int oom;
};

static int fail(struct ctx *c, const yaml_node_t *node, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct ctx *c, const yaml_node_t *node, const char *path, const char *fmt, ...)
{
    char what[300];
    va_list ap;
    int line = node ? (int)node->start_mark.line + 1 : 0;
    int col = node ? (int)node->start_mark.column + 1 : 0;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c->err) {
        c->err->line = line;
        if (line)
            snprintf(c->err->msg, sizeof c->err->msg, "%s:%d:%d: %s: %s", c->name, line, col,
                     path && *path ? path : "(top)", what);
        else
            snprintf(c->err->msg, sizeof c->err->msg, "%s: %s: %s", c->name,
                     path && *path ? path : "(top)", what);
    }
    return -EINVAL;
}

static int oom(struct ctx *c)
{
    c->oom = 1;
    if (c->err) {
        snprintf(c->err->msg, sizeof c->err->msg, "%s: out of memory", c->name);
        c->err->line = 0;
    }
    return -ENOMEM;
}

static yaml_node_t *node_at(struct ctx *c, int index)
{
    return yaml_document_get_node(c->doc, index);
}

static int visit(struct ctx *c, const yaml_node_t *node, const char *path, int depth)
{
    if (++c->visits > SB_CFG_MAX_VISITS)
        return fail(c, node, path, "document too large (aliases expanding?)");
    if (depth > SB_CFG_MAX_DEPTH)
        return fail(c, node, path, "nested deeper than %d levels", SB_CFG_MAX_DEPTH);
    return 0;
}

static void join_path(char *out, size_t cap, const char *parent, const char *key)
{
    if (parent && *parent)
        snprintf(out, cap, "%s.%s", parent, key);
    else
        snprintf(out, cap, "%s", key);
}

/* A scalar's text (NUL-terminated by libyaml), or NULL if the node is not a scalar. */
static const char *scalar(const yaml_node_t *node)
{
    if (!node || node->type != YAML_SCALAR_NODE)
        return NULL;
    return (const char *)node->data.scalar.value;
}

/* A plain scalar spelling null: empty, "~" or "null". Quoted "" is a string, not null. */
static bool is_null(const yaml_node_t *node)
{
    const char *s = scalar(node);

    if (!s || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* ---- value parsers ------------------------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    unsigned long long x;

    if (!s || !*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    x = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *v = x;
    return 0;
}

/* Split "<digits>[.<digits>]<unit>" and scale; the result must fit in 64 bits. */
static int parse_scaled(const char *s, const char *const *units, const uint64_t *scale,
                        size_t n_units, bool unit_required, uint64_t *out)
{
    const char *p = s;
    uint64_t whole = 0, frac = 0, frac_div = 1;

    if (!s || !isdigit((unsigned char)*p))
        return -EINVAL;
    while (isdigit((unsigned char)*p)) {
        if (whole > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        whole = whole * 10 + (uint64_t)(*p++ - '0');
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        while (isdigit((unsigned char)*p)) {
            if (frac_div < 1000000000ull) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_div *= 10;
            }
            p++;
        }
    }
    while (*p == ' ')
        p++;
    if (!*p) {
        if (unit_required && (whole || frac))
            return -EINVAL;
        if (frac)
            return -EINVAL; /* fractional bytes / seconds without a unit make no sense */
        *out = whole;
        return 0;
    }
    for (size_t i = 0; i < n_units; i++) {
        if (strcasecmp(p, units[i]) == 0) {
            uint64_t m = scale[i];
            if (m && whole > UINT64_MAX / m)
                return -EINVAL;
            *out = whole * m + (frac * m) / frac_div;
            return 0;
        }
    }
    return -EINVAL;
}

int sb_parse_duration(const char *s, uint64_t *ns)
{
    static const char *const units[] = {"ns", "us", "ms", "s", "m", "h", "d"};
    static const uint64_t scale[] = {
        1, 1000, 1000000, 1000000000ull, 60 * SB_NS_PER_S, 3600 * SB_NS_PER_S, 86400 * SB_NS_PER_S};
    return parse_scaled(s, units, scale, 7, true, ns);
}

int sb_parse_size(const char *s, uint64_t *bytes)
{
    static const char *const units[] = {"B",  "K",   "KB",  "M",   "MB", "G",
                                        "GB", "KiB", "MiB", "GiB", "TB", "TiB"};
    static const uint64_t scale[] = {
        1,          1000, 1000,        1000000,    1000000,          1000000000,
        1000000000, 1024, 1024 * 1024, 1ull << 30, 1000000000000ull, 1ull << 40};
    return parse_scaled(s, units, scale, 12, false, bytes);
}

void sb_endpoint_free(struct sb_endpoint *ep)
{
    if (!ep)
        return;
    free(ep->host);
    free(ep->path);
    memset(ep, 0, sizeof *ep);
}

static int set_endpoint(struct sb_endpoint *ep, bool tls, const char *host, size_t host_len,
                        uint16_t port, const char *path)
{
    struct sb_endpoint e = {.tls = tls, .port = port};

    e.host = strndup(host, host_len);
    e.path = strdup(path);
    if (!e.host || !e.path) {
        sb_endpoint_free(&e);
        return -ENOMEM;
    }
    sb_endpoint_free(ep);
    *ep = e;
    return 0;
}

int sb_parse_endpoint(const char *s, const char *default_path, struct sb_endpoint *ep)
{
    const char *host, *host_end, *p;
    bool tls;
    unsigned long port;

    if (!s || !*s)
        return -EINVAL;
    if (!default_path)
        default_path = "/";
    if (!strcmp(s, "us") || !strcmp(s, "api.segment.io"))
        return set_endpoint(ep, true, "api.segment.io", 14, 443, default_path);
    if (!strcmp(s, "eu") || !strcmp(s, "events.eu1.segmentapis.com"))
        return set_endpoint(ep, true, "events.eu1.segmentapis.com", 26, 443, default_path);
    if (!strncmp(s, "https://", 8)) {
        tls = true;
        host = s + 8;
    } else if (!strncmp(s, "http://", 7)) {
        tls = false;
        host = s + 7;
    } else {
        return -EINVAL;
    }
    if (*host == '[') { /* IPv6 literal */
        host_end = strchr(host, ']');
        if (!host_end || host_end == host + 1)
            return -EINVAL;
        p = host_end + 1;
        host++;
    } else {
        host_end = host + strcspn(host, ":/?#");
        p = host_end;
    }
    if (host_end == host)
        return -EINVAL;
    for (const char *q = host; q < host_end; q++)
        if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != ':' && *q != '_')
            return -EINVAL;
    port = tls ? 443 : 80;
    if (*p == ':') {
        char *end;
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        port = strtoul(p, &end, 10);
        if (port == 0 || port > 65535)
            return -EINVAL;
        p = end;
    }
    if (*p && *p != '/')
        return -EINVAL;
    for (const char *q = p; *q; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
            return -EINVAL; /* would break the request line */
    return set_endpoint(ep, tls, host, (size_t)(host_end - host), (uint16_t)port,
                        (!*p || !strcmp(p, "/")) ? default_path : p);
}

/* RFC 3339 / ISO 8601 UTC date-time or date to Unix seconds. */
static int parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    const char *p;
    int off = 0;

    memset(&tm, 0, sizeof tm);
    p = strptime(s, "%Y-%m-%d", &tm);
    if (!p)
        return -EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p = strptime(p + 1, "%H:%M:%S", &tm);
        if (!p)
            return -EINVAL;
        if (*p == '.')
            for (p++; isdigit((unsigned char)*p); p++)
                ;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, hh, mm;
            if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
                return -EINVAL;
            off = sign * (hh * 3600 + mm * 60);
            p += 6;
        } else {
            return -EINVAL;
        }
    }
    if (*p)
        return -EINVAL;
    *out = (int64_t)timegm(&tm) - off;
    return 0;
}

/* ---- schema tables ------------------------------------------------------------------------ */

enum kind {
    K_STR,      /* char *, NULL when null/empty */
    K_BOOL,     /* bool */
    K_U32,      /* uint32_t */
    K_SIZE,     /* uint64_t bytes */
    K_DURATION, /* uint64_t ns */
    K_ENUM,     /* int (enum), names in enums */
    K_STRLIST,  /* struct sb_str_list */
    K_KV,       /* struct sb_kv_list (opaque sub-block) */
    K_MAP,      /* nested table, same base */
    K_CUSTOM,   /* fn */
    K_SKIP,     /* handled before the walk */
};

struct field;
typedef int (*custom_fn)(struct ctx *c, yaml_node_t *node, void *base, const char *path);

struct field {
    const char *key;
    enum kind kind;
    size_t off;
    uint64_t min, max;        /* inclusive bounds for numbers (max 0 = none) */
    const char *const *enums; /* K_ENUM: NULL-terminated names, value = index */
    const struct field *sub;  /* K_MAP */
    custom_fn fn;             /* K_CUSTOM */
    unsigned types;           /* output settings: bitmask of types it applies to; 0 = all */
};

#define T(x) (1u << (x))
#define END                                                                                        \
    {                                                                                              \
        NULL, K_SKIP, 0, 0, 0, NULL, NULL, NULL, 0                                                 \
    }

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const full_policies[] = {"block", "drop_oldest", NULL};
static const char *const environments[] = {"dev", "staging", "prod", NULL};
static const char *const webhook_modes[] = {"batch", "event", NULL};
static const char *const output_types[] = {"segment",  "hub",     "file",  "sqlite",
                                           "postgres", "webhook", "kafka", NULL};

const char *sb_output_type_name(enum sb_output_type type)
{
    return (unsigned)type < 7 ? output_types[type] : "?";
}

const char *sb_environment_name(enum sb_environment env)
{
    return (unsigned)env < 3 ? environments[env] : "?";
}

static int parse_uids(struct ctx *c, yaml_node_t *node, void *base, const char *path);
static int parse_gids(struct ctx *c, yaml_node_t *node, void *base, const char *path);
static int parse_write_keys(struct ctx *c, yaml_node_t *node, void *base, const char *path);
static int parse_endpoint_field(struct ctx *c, yaml_node_t *node, void *base, const char *path);

#define CO(f) offsetof(struct sb_config, f)
#define SO(f) offsetof(struct sb_source_config, f)
#define OO(f) offsetof(struct sb_output_config, f)

static const struct field socket_fields[] = {
    {"path", K_STR, CO(socket.path), 0, 0, NULL, NULL, NULL, 0},
    {"allowed_uids", K_CUSTOM, 0, 0, 0, NULL, NULL, parse_uids, 0},
    {"allowed_gids", K_CUSTOM, 0, 0, 0, NULL, NULL, parse_gids, 0},
    END};
static const struct field ring_fields[] = {
    {"capacity", K_SIZE, CO(ring.capacity), 64 * 1024, 1ull << 30, NULL, NULL, NULL, 0},
    {"producer_grace", K_DURATION, CO(ring.producer_grace_ns), SB_NS_PER_S, 3600 * SB_NS_PER_S,
     NULL, NULL, NULL, 0},
    {"source", K_STR, CO(ring.source), 0, 0, NULL, NULL, NULL, 0},
    END};
static const struct field dedup_fields[] = {
    {"window_count", K_U32, CO(dedup.window_count), 0, 1u << 26, NULL, NULL, NULL, 0},
    {"window_time", K_DURATION, CO(dedup.window_ns), 0, 7 * 86400 * SB_NS_PER_S, NULL, NULL, NULL,
     0},
    END};
static const struct field batch_fields[] = {
    {"max_events", K_U32, CO(batch.max_events), 1, 1000000, NULL, NULL, NULL, 0},
    {"max_bytes", K_SIZE, CO(batch.max_bytes), 1024, 64ull << 20, NULL, NULL, NULL, 0},
    {"flush_interval", K_DURATION, CO(batch.flush_interval_ns), SB_NS_PER_MS, 3600 * SB_NS_PER_S,
     NULL, NULL, NULL, 0},
    END};
static const struct field spool_fields[] = {
    {"dir", K_STR, CO(spool.dir), 0, 0, NULL, NULL, NULL, 0},
    {"segment_bytes", K_SIZE, CO(spool.segment_bytes), 1 << 20, 1ull << 32, NULL, NULL, NULL, 0},
    {"max_bytes", K_SIZE, CO(spool.max_bytes), 4 << 20, 0, NULL, NULL, NULL, 0},
    {"full_policy", K_ENUM, CO(spool.full_policy), 0, 0, full_policies, NULL, NULL, 0},
    END};
static const struct field metrics_fields[] = {
    {"listen", K_STR, CO(metrics.listen), 0, 0, NULL, NULL, NULL, 0}, END};
static const struct field http_fields[] = {
    {"enabled", K_BOOL, CO(http.enabled), 0, 0, NULL, NULL, NULL, 0},
    {"listen", K_STR, CO(http.listen), 0, 0, NULL, NULL, NULL, 0},
    {"tls_cert", K_STR, CO(http.tls_cert), 0, 0, NULL, NULL, NULL, 0},
    {"tls_key", K_STR, CO(http.tls_key), 0, 0, NULL, NULL, NULL, 0},
    {"max_body_bytes", K_SIZE, CO(http.max_body_bytes), 1024, 64ull << 20, NULL, NULL, NULL, 0},
    {"max_header_bytes", K_SIZE, CO(http.max_header_bytes), 1024, 1 << 20, NULL, NULL, NULL, 0},
    {"max_connections", K_U32, CO(http.max_connections), 1, 1000000, NULL, NULL, NULL, 0},
    {"header_timeout", K_DURATION, CO(http.header_timeout_ns), SB_NS_PER_MS, 3600 * SB_NS_PER_S,
     NULL, NULL, NULL, 0},
    {"body_timeout", K_DURATION, CO(http.body_timeout_ns), SB_NS_PER_MS, 3600 * SB_NS_PER_S, NULL,
     NULL, NULL, 0},
    {"idle_timeout", K_DURATION, CO(http.idle_timeout_ns), SB_NS_PER_MS, 86400 * SB_NS_PER_S, NULL,
     NULL, NULL, 0},
    END};
static const struct field kafka_input_fields[] = {
    {"brokers", K_STR, CO(kafka_input.brokers), 0, 0, NULL, NULL, NULL, 0},
    {"group", K_STR, CO(kafka_input.group), 0, 0, NULL, NULL, NULL, 0},
    {"topics", K_STRLIST, CO(kafka_input.topics), 0, 0, NULL, NULL, NULL, 0},
    {"value_format", K_STR, CO(kafka_input.value_format), 0, 0, NULL, NULL, NULL, 0},
    {"revoke_timeout", K_DURATION, CO(kafka_input.revoke_timeout_ns), SB_NS_PER_MS,
     3600 * SB_NS_PER_S, NULL, NULL, NULL, 0},
    {"properties", K_KV, CO(kafka_input.properties), 0, 0, NULL, NULL, NULL, 0},
    END};
static const struct field top_fields[] = {
    {"log_level", K_ENUM, CO(log_level), 0, 0, log_levels, NULL, NULL, 0},
    {"shutdown_timeout", K_DURATION, CO(shutdown_timeout_ns), 0, 3600 * SB_NS_PER_S, NULL, NULL,
     NULL, 0},
    {"socket", K_MAP, 0, 0, 0, NULL, socket_fields, NULL, 0},
    {"ring", K_MAP, 0, 0, 0, NULL, ring_fields, NULL, 0},
    {"dedup", K_MAP, 0, 0, 0, NULL, dedup_fields, NULL, 0},
    {"batch", K_MAP, 0, 0, 0, NULL, batch_fields, NULL, 0},
    {"spool", K_MAP, 0, 0, 0, NULL, spool_fields, NULL, 0},
    {"metrics", K_MAP, 0, 0, 0, NULL, metrics_fields, NULL, 0},
    {"http", K_MAP, 0, 0, 0, NULL, http_fields, NULL, 0},
    {"kafka_input", K_MAP, 0, 0, 0, NULL, kafka_input_fields, NULL, 0},
    {"sources", K_SKIP, 0, 0, 0, NULL, NULL, NULL, 0},
    {"outputs", K_SKIP, 0, 0, 0, NULL, NULL, NULL, 0},
    END};

static const struct field source_fields[] = {
    {"name", K_STR, SO(name), 0, 0, NULL, NULL, NULL, 0},
    {"environment", K_ENUM, SO(environment), 0, 0, environments, NULL, NULL, 0},
    {"write_keys", K_CUSTOM, 0, 0, 0, NULL, NULL, parse_write_keys, 0},
    {"plan", K_STR, SO(plan_file), 0, 0, NULL, NULL, NULL, 0},
    {"violations", K_KV, SO(violations), 0, 0, NULL, NULL, NULL, 0},
    {"transforms", K_KV, SO(transforms), 0, 0, NULL, NULL, NULL, 0},
    END};

#define HTTP_TYPES (T(SB_OUTPUT_SEGMENT) | T(SB_OUTPUT_HUB) | T(SB_OUTPUT_WEBHOOK))
static const struct field output_event_fields[] = {
    {"allow", K_STRLIST, OO(allow), 0, 0, NULL, NULL, NULL, 0},
    {"deny", K_STRLIST, OO(deny), 0, 0, NULL, NULL, NULL, 0},
    END};
static const struct field output_batch_fields[] = {
    {"max_events", K_U32, OO(batch.max_events), 1, 1000000, NULL, NULL, NULL, 0},
    {"max_bytes", K_SIZE, OO(batch.max_bytes), 1024, 64ull << 20, NULL, NULL, NULL, 0},
    {"flush_interval", K_DURATION, OO(batch.flush_interval_ns), SB_NS_PER_MS, 3600 * SB_NS_PER_S,
     NULL, NULL, NULL, 0},
    END};
static const struct field output_settings_fields[] = {
    {"host", K_CUSTOM, 0, 0, 0, NULL, NULL, parse_endpoint_field, T(SB_OUTPUT_SEGMENT)},
    {"url", K_CUSTOM, 0, 0, 0, NULL, NULL, parse_endpoint_field,
     T(SB_OUTPUT_HUB) | T(SB_OUTPUT_WEBHOOK)},
    {"write_key", K_STR, OO(write_key), 0, 0, NULL, NULL, NULL,
     T(SB_OUTPUT_SEGMENT) | T(SB_OUTPUT_HUB)},
    {"gzip", K_BOOL, OO(gzip), 0, 0, NULL, NULL, NULL, HTTP_TYPES},
    {"tls_ca_file", K_STR, OO(tls_ca_file), 0, 0, NULL, NULL, NULL, HTTP_TYPES},
    {"timeout", K_DURATION, OO(timeout_ns), SB_NS_PER_MS, 3600 * SB_NS_PER_S, NULL, NULL, NULL,
     HTTP_TYPES},
    {"max_retry_duration", K_DURATION, OO(max_retry_duration_ns), 0, 30 * 86400 * SB_NS_PER_S, NULL,
     NULL, NULL, HTTP_TYPES},
    {"dead_letter", K_STR, OO(dead_letter), 0, 0, NULL, NULL, NULL, HTTP_TYPES},
    {"path", K_STR, OO(path), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_FILE) | T(SB_OUTPUT_SQLITE)},
    {"rotate_bytes", K_SIZE, OO(rotate_bytes), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_FILE)},
    {"rotate_interval", K_DURATION, OO(rotate_interval_ns), 0, 366 * 86400 * SB_NS_PER_S, NULL,
     NULL, NULL, T(SB_OUTPUT_FILE)},
    {"keep", K_U32, OO(keep), 1, 10000, NULL, NULL, NULL, T(SB_OUTPUT_FILE)},
    {"dsn", K_STR, OO(dsn), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_POSTGRES)},
    {"schema", K_STR, OO(schema), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_POSTGRES)},
    {"secret", K_STR, OO(secret), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_WEBHOOK)},
    {"signature_header", K_STR, OO(signature_header), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_WEBHOOK)},
    {"mode", K_ENUM, OO(webhook_mode), 0, 0, webhook_modes, NULL, NULL, T(SB_OUTPUT_WEBHOOK)},
    {"headers", K_KV, OO(headers), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_WEBHOOK)},
    {"brokers", K_STR, OO(brokers), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_KAFKA)},
    {"topic", K_STR, OO(topic), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_KAFKA)},
    {"value_format", K_STR, OO(value_format), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_KAFKA)},
    {"properties", K_KV, OO(kafka), 0, 0, NULL, NULL, NULL, T(SB_OUTPUT_KAFKA)},
    END};
static const struct field output_fields[] = {
    {"type", K_SKIP, 0, 0, 0, NULL, NULL, NULL, 0},
    {"name", K_STR, OO(name), 0, 0, NULL, NULL, NULL, 0},
    {"sources", K_STRLIST, OO(sources), 0, 0, NULL, NULL, NULL, 0},
    {"integration", K_STR, OO(integration), 0, 0, NULL, NULL, NULL, 0},
    {"events", K_MAP, 0, 0, 0, NULL, output_event_fields, NULL, 0},
    {"batch", K_MAP, 0, 0, 0, NULL, output_batch_fields, NULL, 0},
    {"settings", K_MAP, 0, 0, 0, NULL, output_settings_fields, NULL, 0},
    END};

/* ---- generic walkers ---------------------------------------------------------------------- */

static void str_list_free(struct sb_str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void kv_list_free(struct sb_kv_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].path);
        free(l->items[i].value);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int get_scalar(struct ctx *c, yaml_node_t *node, const char *path, const char **out)
{
    const char *s = scalar(node);

    if (!s)
        return fail(c, node, path, "expected a single value, found a %s",
                    node && node->type == YAML_SEQUENCE_NODE ? "list" : "map");
    *out = s;
    return 0;
}

static int parse_strlist(struct ctx *c, yaml_node_t *node, struct sb_str_list *out,
                         const char *path, int depth)
{
    struct sb_str_list l = {NULL, 0};
    yaml_node_item_t *it;
    size_t n;

    if (is_null(node)) {
        str_list_free(out);
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE)
        return fail(c, node, path, "expected a list like [a, b]");
    n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (n) {
        l.items = calloc(n, sizeof *l.items);
        if (!l.items)
            return oom(c);
    }
    for (it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
        yaml_node_t *item = node_at(c, *it);
        const char *s = NULL;
        int rc = visit(c, item, path, depth + 1);
        if (!rc)
            rc = get_scalar(c, item, path, &s);
        if (!rc && (!s || !*s))
            rc = fail(c, item, path, "empty name in list");
        if (!rc && !(l.items[l.n] = strdup(s)))
            rc = oom(c);
        if (rc) {
            str_list_free(&l);
            return rc;
        }
        l.n++;
    }
    str_list_free(out);
    *out = l;
    return 0;
}

static int kv_add(struct ctx *c, struct sb_kv_list *l, const char *path, const char *value,
                  int line)
{
    struct sb_kv *items;

    if ((l->n & (l->n - 1)) == 0) { /* grow at powers of two */
        items = realloc(l->items, (l->n ? l->n * 2 : 4) * sizeof *items);
        if (!items)
            return oom(c);
        l->items = items;
    }
    l->items[l->n].path = strdup(path);
    l->items[l->n].value = strdup(value);
    l->items[l->n].line = line;
    if (!l->items[l->n].path || !l->items[l->n].value) {
        free(l->items[l->n].path);
        free(l->items[l->n].value);
        return oom(c);
    }
    l->n++;
    return 0;
}

static int flatten(struct ctx *c, yaml_node_t *node, struct sb_kv_list *l, const char *rel,
                   const char *path, int depth)
{
    char sub[256], full[512];
    int rc = visit(c, node, path, depth);

    if (rc)
        return rc;
    if (node->type == YAML_SCALAR_NODE) {
        if (!*rel && is_null(node))
            return 0;
        return kv_add(c, l, rel, scalar(node), (int)node->start_mark.line + 1);
    }
    if (node->type == YAML_SEQUENCE_NODE) {
        size_t i = 0;
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             it < node->data.sequence.items.top; it++, i++) {
            char idx[24];
            snprintf(idx, sizeof idx, "%zu", i);
            join_path(sub, sizeof sub, rel, idx);
            join_path(full, sizeof full, path, idx);
            rc = flatten(c, node_at(c, *it), l, sub, full, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const char *k = NULL;
        rc = get_scalar(c, node_at(c, p->key), path, &k);
        if (rc)
            return rc;
        join_path(sub, sizeof sub, rel, k);
        join_path(full, sizeof full, path, k);
        rc = flatten(c, node_at(c, p->value), l, sub, full, depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

static int walk_map(struct ctx *c, yaml_node_t *node, const struct field *table, void *base,
                    const char *path, int depth, unsigned type_mask, const char *type_name);

static int set_field(struct ctx *c, const struct field *f, yaml_node_t *node, void *base,
                     const char *path, int depth, unsigned type_mask, const char *type_name)
{
    char *dst = (char *)base + f->off;
    const char *s = NULL;
    uint64_t v = 0;
    int rc;

    switch (f->kind) {
    case K_MAP:
        if (is_null(node))
            return 0;
        return walk_map(c, node, f->sub, base, path, depth + 1, type_mask, type_name);
    case K_CUSTOM:
        return f->fn(c, node, base, path);
    case K_STRLIST:
        return parse_strlist(c, node, (struct sb_str_list *)(void *)dst, path, depth);
    case K_KV: {
        struct sb_kv_list l = {NULL, 0};
        rc = flatten(c, node, &l, "", path, depth);
        if (rc) {
            kv_list_free(&l);
            return rc;
        }
        kv_list_free((struct sb_kv_list *)(void *)dst);
        *(struct sb_kv_list *)(void *)dst = l;
        return 0;
    }
    case K_SKIP:
        return 0;
    default:
        break;
    }
    rc = get_scalar(c, node, path, &s);
    if (rc)
        return rc;
    switch (f->kind) {
    case K_STR: {
        char *copy = NULL;
        if (!is_null(node) && *s && !(copy = strdup(s)))
            return oom(c);
        free(*(char **)(void *)dst);
        *(char **)(void *)dst = copy;
        return 0;
    }
    case K_BOOL: {
        bool b;
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
            b = true;
        else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
            b = false;
        else
            return fail(c, node, path, "'%.60s' is not a boolean (true or false)", s);
        *(bool *)(void *)dst = b;
        return 0;
    }
    case K_ENUM:
        for (int i = 0; f->enums[i]; i++) {
            if (!strcmp(s, f->enums[i])) {
                *(int *)(void *)dst = i;
                return 0;
            }
        }
        {
            char names[160] = "";
            for (int i = 0; f->enums[i]; i++) {
                strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
                strncat(names, f->enums[i], sizeof names - strlen(names) - 1);
            }
            return fail(c, node, path, "'%.60s' is not one of %s", s, names);
        }
    case K_U32:
        if (parse_u64(s, &v) || v > UINT32_MAX)
            return fail(c, node, path, "'%.60s' is not a whole number", s);
        break;
    case K_SIZE:
        if (sb_parse_size(s, &v))
            return fail(c, node, path,
                        "'%.60s' is not a size (a number of bytes, or with a unit: KB, MB, GB, "
                        "KiB, MiB, GiB)",
                        s);
        break;
    case K_DURATION:
        if (sb_parse_duration(s, &v))
            return fail(c, node, path,
                        "'%.60s' is not a duration (a number with a unit: ms, s, m, h, d)", s);
        break;
    default:
        return fail(c, node, path, "internal: bad field kind");
    }
    if (v < f->min || (f->max && v > f->max))
        return fail(c, node, path, "%.60s is out of range (%llu to %llu%s)", s,
                    (unsigned long long)f->min, (unsigned long long)f->max,
                    f->kind == K_DURATION ? " ns"
                    : f->kind == K_SIZE   ? " bytes"
                                          : "");
    if (f->kind == K_U32)
        *(uint32_t *)(void *)dst = (uint32_t)v;
    else
        *(uint64_t *)(void *)dst = v;
    return 0;
}

static int walk_map(struct ctx *c, yaml_node_t *node, const struct field *table, void *base,
                    const char *path, int depth, unsigned type_mask, const char *type_name)
{
    uint64_t seen = 0;
    int rc = visit(c, node, path, depth);

    if (rc)
        return rc;
    if (node->type != YAML_MAPPING_NODE)
        return fail(c, node, path, "expected a map of settings (key: value)");
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = node_at(c, p->key), *vn = node_at(c, p->value);
        const char *k = NULL;
        char sub[256];
        int i;

        rc = get_scalar(c, kn, path, &k);
        if (rc)
            return rc;
        join_path(sub, sizeof sub, path, k);
        for (i = 0; table[i].key; i++)
            if (!strcmp(table[i].key, k))
                break;
        if (!table[i].key)
            return fail(c, kn, sub, "unknown key");
        if (table[i].types && type_mask && !(table[i].types & type_mask))
            return fail(c, kn, sub, "not a setting of output type %s", type_name);
        if (seen & (1ull << i))
            return fail(c, kn, sub, "key given twice");
        seen |= 1ull << i;
        rc = set_field(c, &table[i], vn, base, sub, depth, type_mask, type_name);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- structured values -------------------------------------------------------------------- */

static int parse_ids(struct ctx *c, yaml_node_t *node, const char *path, bool groups,
                     unsigned **out, size_t *n_out)
{
    unsigned *ids = NULL;
    size_t n = 0, cap;

    if (is_null(node)) {
        free(*out);
        *out = NULL;
        *n_out = 0;
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE)
        return fail(c, node, path, "expected a list of %s names or numbers",
                    groups ? "group" : "user");
    cap = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (cap && !(ids = calloc(cap, sizeof *ids)))
        return oom(c);
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++) {
        yaml_node_t *item = node_at(c, *it);
        const char *s = NULL;
        uint64_t v;
        int rc = get_scalar(c, item, path, &s);
        if (rc) {
            free(ids);
            return rc;
        }
        if (parse_u64(s, &v) == 0 && v < UINT32_MAX) {
            ids[n++] = (unsigned)v;
            continue;
        }
        {
            char buf[4096];
            int e;
            if (groups) {
                struct group gr, *res = NULL;
                e = getgrnam_r(s, &gr, buf, sizeof buf, &res);
                if (!e && res) {
                    ids[n++] = (unsigned)res->gr_gid;
                    continue;
                }
            } else {
                struct passwd pw, *res = NULL;
                e = getpwnam_r(s, &pw, buf, sizeof buf, &res);
                if (!e && res) {
                    ids[n++] = (unsigned)res->pw_uid;
                    continue;
                }
            }
        }
        free(ids);
        return fail(c, item, path, "no %s named '%.60s'", groups ? "group" : "user", s);
    }
    free(*out);
    *out = ids;
    *n_out = n;
    return 0;
}

static int parse_uids(struct ctx *c, yaml_node_t *node, void *base, const char *path)
{
    struct sb_config *cfg = base;
    unsigned *ids = cfg->socket.allowed_uids;
    int rc;

    _Static_assert(sizeof(uid_t) == sizeof(unsigned), "uid_t is 32 bits");
    rc = parse_ids(c, node, path, false, &ids, &cfg->socket.n_allowed_uids);
    cfg->socket.allowed_uids = (uid_t *)ids;
    return rc;
}

static int parse_gids(struct ctx *c, yaml_node_t *node, void *base, const char *path)
{
    struct sb_config *cfg = base;
    unsigned *ids = cfg->socket.allowed_gids;
    int rc;

    _Static_assert(sizeof(gid_t) == sizeof(unsigned), "gid_t is 32 bits");
    rc = parse_ids(c, node, path, true, &ids, &cfg->socket.n_allowed_gids);
    cfg->socket.allowed_gids = (gid_t *)ids;
    return rc;
}

static int parse_write_keys(struct ctx *c, yaml_node_t *node, void *base, const char *path)
{
    struct sb_source_config *src = base;
    size_t cap;

    if (node->type != YAML_SEQUENCE_NODE)
        return fail(c, node, path, "expected a list of keys (each a string or {key, expires})");
    cap = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (!cap)
        return 0;
    src->write_keys = calloc(cap, sizeof *src->write_keys);
    if (!src->write_keys)
        return oom(c);
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++) {
        yaml_node_t *item = node_at(c, *it);
        struct sb_write_key *wk = &src->write_keys[src->n_write_keys];
        const char *key = NULL;
        int rc = visit(c, item, path, 3);

        if (rc)
            return rc;
        if (item->type == YAML_SCALAR_NODE) {
            key = scalar(item);
        } else if (item->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *p = item->data.mapping.pairs.start;
                 p < item->data.mapping.pairs.top; p++) {
                yaml_node_t *kn = node_at(c, p->key), *vn = node_at(c, p->value);
                const char *k = NULL, *v = NULL;
                char sub[256];
                if ((rc = get_scalar(c, kn, path, &k)))
                    return rc;
                join_path(sub, sizeof sub, path, k);
                if ((rc = get_scalar(c, vn, sub, &v)))
                    return rc;
                if (!strcmp(k, "key")) {
                    key = v;
                } else if (!strcmp(k, "expires")) {
                    if (is_null(vn))
                        continue;
                    if (parse_time(v, &wk->expires) || wk->expires <= 0)
                        return fail(c, vn, sub,
                                    "'%.60s' is not a date-time like 2026-12-31T00:00:00Z", v);
                } else {
                    return fail(c, kn, sub, "unknown key (a write key has key and expires)");
                }
            }
        } else {
            return fail(c, item, path, "a write key is a string or {key, expires}");
        }
        if (!key || !*key)
            return fail(c, item, path, "write key is empty");
        /* Printable ASCII only: it is compared against Basic auth and never logged, and a key
         * with spaces or control bytes is certainly a paste error. */
        for (const char *q = key; *q; q++)
            if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
                return fail(c, item, path, "write key has a space or non-printable character");
        if (!(wk->key = strdup(key)))
            return oom(c);
        src->n_write_keys++;
    }
    return 0;
}

static int parse_endpoint_field(struct ctx *c, yaml_node_t *node, void *base, const char *path)
{
    struct sb_output_config *out = base;
    const char *s = NULL;
    int rc = get_scalar(c, node, path, &s);

    if (rc)
        return rc;
    rc = sb_parse_endpoint(s, out->type == SB_OUTPUT_WEBHOOK ? "/" : "/v1/batch", &out->endpoint);
    if (rc == -ENOMEM)
        return oom(c);
    if (rc)
        return fail(c, node, path,
                    out->type == SB_OUTPUT_SEGMENT
                        ? "'%.80s' is not us, eu, a Segment host or an http(s):// URL"
                        : "'%.80s' is not an http(s)://host[:port][/path] URL",
                    s);
    return 0;
}

/* ---- defaults ----------------------------------------------------------------------------- */

int sb_config_defaults(struct sb_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->log_level = SB_CFG_LOG_INFO;
    cfg->shutdown_timeout_ns = 10 * SB_NS_PER_S;
    cfg->socket.path = strdup("/run/segbus/segbus.sock");
    cfg->ring.capacity = 4u << 20;
    cfg->ring.producer_grace_ns = 30 * SB_NS_PER_S;
    cfg->dedup.window_count = 131072;
    cfg->dedup.window_ns = 600 * SB_NS_PER_S;
    cfg->batch.max_events = SB_SEGMENT_MAX_BATCH_EVENTS;
    cfg->batch.max_bytes = SB_SEGMENT_MAX_BATCH_BYTES;
    cfg->batch.flush_interval_ns = 100 * SB_NS_PER_MS;
    cfg->spool.dir = strdup("/var/lib/segbus/spool");
    cfg->spool.segment_bytes = 16u << 20;
    cfg->spool.max_bytes = 1ull << 30;
    cfg->spool.full_policy = SB_SPOOL_FULL_BLOCK;
    cfg->metrics.listen = strdup("127.0.0.1:9464");
    cfg->http.enabled = false;
    cfg->http.listen = strdup("127.0.0.1:8080");
    cfg->http.max_body_bytes = 512000; /* Segment's 500 KB batch plus its envelope */
    cfg->http.max_header_bytes = 16384;
    cfg->http.max_connections = 1024;
    cfg->http.header_timeout_ns = 10 * SB_NS_PER_S;
    cfg->http.body_timeout_ns = 30 * SB_NS_PER_S;
    cfg->http.idle_timeout_ns = 60 * SB_NS_PER_S;
    cfg->kafka_input.revoke_timeout_ns = 30 * SB_NS_PER_S;
    if (!cfg->socket.path || !cfg->spool.dir || !cfg->metrics.listen || !cfg->http.listen) {
        sb_config_free(cfg);
        return -ENOMEM;
    }
    return 0;
}

int sb_output_defaults(struct sb_output_config *out, enum sb_output_type type,
                       const struct sb_config *cfg)
{
    memset(out, 0, sizeof *out);
    out->type = type;
    out->batch = cfg->batch;
    out->timeout_ns = 10 * SB_NS_PER_S;
    out->max_retry_duration_ns = 43200 * SB_NS_PER_S; /* Segment's SDKs give up after 12 h */
    out->gzip = type == SB_OUTPUT_SEGMENT;
    if (type == SB_OUTPUT_SEGMENT && out->batch.max_bytes > SB_SEGMENT_DEFAULT_BATCH_BYTES)
        out->batch.max_bytes = SB_SEGMENT_DEFAULT_BATCH_BYTES;
    out->keep = 5;
    if (type == SB_OUTPUT_SEGMENT)
        return sb_parse_endpoint("us", "/v1/batch", &out->endpoint);
    if (type == SB_OUTPUT_POSTGRES && !(out->schema = strdup("public")))
        return -ENOMEM;
    return 0;
}

static void output_free(struct sb_output_config *o)
{
    free(o->name);
    str_list_free(&o->sources);
    str_list_free(&o->allow);
    str_list_free(&o->deny);
    sb_endpoint_free(&o->endpoint);
    free(o->write_key);
    free(o->tls_ca_file);
    free(o->dead_letter);
    free(o->path);
    free(o->dsn);
    free(o->schema);
    free(o->secret);
    free(o->signature_header);
    kv_list_free(&o->headers);
    free(o->integration);
    free(o->brokers);
    free(o->topic);
    free(o->value_format);
    kv_list_free(&o->kafka);
}

static void source_free(struct sb_source_config *s)
{
    free(s->name);
    for (size_t i = 0; i < s->n_write_keys; i++)
        free(s->write_keys[i].key);
    free(s->write_keys);
    free(s->plan_file);
    kv_list_free(&s->violations);
    kv_list_free(&s->transforms);
}

void sb_config_free(struct sb_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->file);
    free(cfg->socket.path);
    free(cfg->socket.allowed_uids);
    free(cfg->socket.allowed_gids);
    free(cfg->ring.source);
    free(cfg->spool.dir);
    free(cfg->metrics.listen);
    free(cfg->http.listen);
    free(cfg->http.tls_cert);
    free(cfg->http.tls_key);
    free(cfg->kafka_input.brokers);
    free(cfg->kafka_input.group);
    str_list_free(&cfg->kafka_input.topics);
    free(cfg->kafka_input.value_format);
    kv_list_free(&cfg->kafka_input.properties);
    for (size_t i = 0; i < cfg->n_sources; i++)
        source_free(&cfg->sources[i]);
    free(cfg->sources);
    for (size_t i = 0; i < cfg->n_outputs; i++)
        output_free(&cfg->outputs[i]);
    free(cfg->outputs);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- sources and outputs ------------------------------------------------------------------ */

static yaml_node_t *map_get(struct ctx *c, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = scalar(node_at(c, p->key));
        if (k && !strcmp(k, key))
            return node_at(c, p->value);
    }
    return NULL;
}

static bool valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

static int parse_sources(struct ctx *c, yaml_node_t *node)
{
    struct sb_config *cfg = c->cfg;
    size_t cap, i = 0;

    if (!node || is_null(node))
        return 0;
    if (node->type != YAML_SEQUENCE_NODE)
        return fail(c, node, "sources", "expected a list of sources");
    cap = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (!cap)
        return 0;
    if (!(cfg->sources = calloc(cap, sizeof *cfg->sources)))
        return oom(c);
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++, i++) {
        yaml_node_t *item = node_at(c, *it);
        struct sb_source_config *s = &cfg->sources[cfg->n_sources++];
        char path[64];
        int rc;

        snprintf(path, sizeof path, "sources.%zu", i);
        s->line = (int)item->start_mark.line + 1;
        s->environment = SB_ENV_PROD;
        rc = walk_map(c, item, source_fields, s, path, 1, 0, NULL);
        if (rc)
            return rc;
        if (!valid_name(s->name))
            return fail(c, item, path, "a source needs a name (letters, digits, _ - ., <= 64)");
        for (size_t j = 0; j + 1 < cfg->n_sources; j++)
            if (!strcmp(cfg->sources[j].name, s->name))
                return fail(c, item, path, "source name '%s' is used twice", s->name);
        /* A key must identify one source: compare with every key seen before it. */
        for (size_t k = 0; k < s->n_write_keys; k++)
            for (size_t j = 0; j < cfg->n_sources; j++) {
                const struct sb_source_config *o = &cfg->sources[j];
                size_t upto = o == s ? k : o->n_write_keys;
                for (size_t m = 0; m < upto; m++)
                    if (!strcmp(o->write_keys[m].key, s->write_keys[k].key)) {
                        char r[16];
                        return fail(c, item, path, "write key %s is given twice",
                                    sb_config_redact(s->write_keys[k].key, r));
                    }
            }
    }
    return 0;
}

static bool http_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-^_`|~", *s)))
            return false;
    return true;
}

/* Extra webhook headers and the signature header: valid names and values, and none of the
 * headers segbusd itself sets (the body's framing, its encoding, the signature, the retry
 * count), so that a config cannot make a request lie about its own bytes. */
static int check_webhook_headers(struct ctx *c, yaml_node_t *item, const char *path,
                                 const struct sb_output_config *o)
{
    static const char *const reserved[] = {
        "Content-Length", "Content-Type",  "Content-Encoding", "Transfer-Encoding", "Host",
        "Connection",     "X-Retry-Count", "Expect",           "Upgrade",           NULL};
    const char *sig = o->signature_header ? o->signature_header : "X-Signature";

    if (!http_token(sig))
        return fail(c, item, path, "settings.signature_header: '%.60s' is not a header name", sig);
    for (int k = 0; reserved[k]; k++)
        if (!strcasecmp(sig, reserved[k]))
            return fail(c, item, path, "settings.signature_header: %s is set by segbusd", sig);
    if (o->headers.n > SB_WEBHOOK_MAX_HEADERS)
        return fail(c, item, path, "settings.headers: at most %d extra headers",
                    SB_WEBHOOK_MAX_HEADERS);
    for (size_t i = 0; i < o->headers.n; i++) {
        const struct sb_kv *h = &o->headers.items[i];
        /* Never echo the value: headers often carry tokens. */
        if (!http_token(h->path))
            return fail(c, item, path, "settings.headers (line %d): '%.60s' is not a header name",
                        h->line, h->path);
        for (int k = 0; reserved[k]; k++)
            if (!strcasecmp(h->path, reserved[k]))
                return fail(c, item, path, "settings.headers (line %d): %s is set by segbusd",
                            h->line, h->path);
        if (!strcasecmp(h->path, sig))
            return fail(c, item, path, "settings.headers (line %d): %s is the signature header",
                        h->line, h->path);
        for (const char *q = h->value; *q; q++)
            if ((unsigned char)*q < ' ' && *q != '\t')
                return fail(c, item, path,
                            "settings.headers.%s (line %d): the value has a control character",
                            h->path, h->line);
    }
    return 0;
}

static int check_output(struct ctx *c, yaml_node_t *item, const char *path,
                        struct sb_output_config *o)
{
    struct sb_config *cfg = c->cfg;

    for (size_t j = 0; j < o->sources.n; j++)
        if (!sb_config_source(cfg, o->sources.items[j]))
            return fail(c, item, path, "sources: no source named '%s'", o->sources.items[j]);
    switch (o->type) {
    case SB_OUTPUT_SEGMENT:
        if (!o->write_key)
            return fail(c, item, path, "a segment output needs settings.write_key");
        if (o->batch.max_bytes > SB_SEGMENT_MAX_BATCH_BYTES ||
            o->batch.max_events > SB_SEGMENT_MAX_BATCH_EVENTS)
            return fail(c, item, path,
                        "batch is larger than Segment accepts (at most %u events and %u bytes)",
                        SB_SEGMENT_MAX_BATCH_EVENTS, SB_SEGMENT_MAX_BATCH_BYTES);
        break;
    case SB_OUTPUT_HUB:
    case SB_OUTPUT_WEBHOOK:
        if (!o->endpoint.host)
            return fail(c, item, path, "a %s output needs settings.url", output_types[o->type]);
        if (o->type == SB_OUTPUT_WEBHOOK)
            return check_webhook_headers(c, item, path, o);
        break;
    case SB_OUTPUT_FILE:
    case SB_OUTPUT_SQLITE:
        if (!o->path)
            return fail(c, item, path, "a %s output needs settings.path", output_types[o->type]);
        break;
    case SB_OUTPUT_POSTGRES:
        if (!o->dsn)
            return fail(c, item, path, "a postgres output needs settings.dsn");
        break;
    case SB_OUTPUT_KAFKA:
        if (!o->brokers || !o->topic)
            return fail(c, item, path, "a kafka output needs settings.brokers and settings.topic");
        if (o->value_format && strcmp(o->value_format, "json") &&
            strcmp(o->value_format, "msgpack"))
            return fail(c, item, path, "settings.value_format: expected json or msgpack");
        break;
    }
    return 0;
}

static int parse_outputs(struct ctx *c, yaml_node_t *node)
{
    struct sb_config *cfg = c->cfg;
    size_t cap, i = 0;

    if (!node || is_null(node))
        return 0;
    if (node->type != YAML_SEQUENCE_NODE)
        return fail(c, node, "outputs", "expected a list of outputs");
    cap = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (!cap)
        return 0;
    if (!(cfg->outputs = calloc(cap, sizeof *cfg->outputs)))
        return oom(c);
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++, i++) {
        yaml_node_t *item = node_at(c, *it), *tn;
        struct sb_output_config *o = &cfg->outputs[cfg->n_outputs];
        const char *t = NULL;
        char path[64];
        int type = -1, rc;

        snprintf(path, sizeof path, "outputs.%zu", i);
        if ((rc = visit(c, item, path, 1)))
            return rc;
        if (item->type != YAML_MAPPING_NODE)
            return fail(c, item, path, "expected a map with type, name and settings");
        tn = map_get(c, item, "type");
        if (!tn)
            return fail(c, item, path, "an output needs a type (%s)",
                        "segment, hub, file, sqlite, postgres, webhook or kafka");
        if ((rc = get_scalar(c, tn, path, &t)))
            return rc;
        for (int k = 0; output_types[k]; k++)
            if (!strcmp(t, output_types[k]))
                type = k;
        if (type < 0)
            return fail(c, tn, path,
                        "type '%.40s' is not one of segment, hub, file, sqlite, postgres, "
                        "webhook, kafka",
                        t);
        if (sb_output_defaults(o, (enum sb_output_type)type, cfg))
            return oom(c);
        cfg->n_outputs++;
        o->line = (int)item->start_mark.line + 1;
        rc = walk_map(c, item, output_fields, o, path, 1, T(type), output_types[type]);
        if (rc)
            return rc;
        if (!valid_name(o->name))
            return fail(c, item, path, "an output needs a name (letters, digits, _ - ., <= 64)");
        for (size_t j = 0; j + 1 < cfg->n_outputs; j++)
            if (!strcmp(cfg->outputs[j].name, o->name))
                return fail(c, item, path, "output name '%s' is used twice", o->name);
        if ((rc = check_output(c, item, path, o)))
            return rc;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* A kafka_input block, when given, names its brokers, its consumer group and its topics. */
static int check_kafka_input(struct ctx *c, yaml_node_t *node)
{
    struct sb_config *cfg = c->cfg;
    const char *vf = cfg->kafka_input.value_format;

    if (!node || is_null(node))
        return 0;
    cfg->kafka_input.line = (int)node->start_mark.line + 1;
    if (!cfg->kafka_input.brokers && !cfg->kafka_input.group && !cfg->kafka_input.topics.n)
        return 0; /* the block with its defaults: off */
    if (!cfg->kafka_input.brokers)
        return fail(c, node, "kafka_input.brokers",
                    "the Kafka input needs brokers (host:port,...)");
    if (!cfg->kafka_input.group)
        return fail(c, node, "kafka_input.group", "the Kafka input needs a consumer group name");
    if (!cfg->kafka_input.topics.n)
        return fail(c, node, "kafka_input.topics", "the Kafka input needs a list of topics");
    if (vf && strcmp(vf, "auto") && strcmp(vf, "json") && strcmp(vf, "msgpack"))
        return fail(c, map_get(c, node, "value_format"), "kafka_input.value_format",
                    "'%.40s' is not one of auto, json, msgpack", vf);
    return 0;
}

static int load_document(struct ctx *c, yaml_document_t *doc)
{
    struct sb_config *cfg = c->cfg;
    yaml_node_t *root = yaml_document_get_root_node(doc);
    int rc;

    if (!root || is_null(root))
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, "", "the configuration must be a map of settings");
    rc = walk_map(c, root, top_fields, cfg, "", 0, 0, NULL);
    if (!rc)
        rc = parse_sources(c, map_get(c, root, "sources"));
    if (!rc)
        rc = parse_outputs(c, map_get(c, root, "outputs"));
    if (rc)
        return rc;
    if (cfg->ring.capacity & (cfg->ring.capacity - 1))
        return fail(c, map_get(c, map_get(c, root, "ring"), "capacity"), "ring.capacity",
                    "must be a power of two (e.g. 1MiB, 4MiB)");
    if (cfg->ring.source && !sb_config_source(cfg, cfg->ring.source))
        return fail(c, map_get(c, map_get(c, root, "ring"), "source"), "ring.source",
                    "no source named '%s'", cfg->ring.source);
    if (cfg->spool.max_bytes < 2 * cfg->spool.segment_bytes)
        return fail(c, map_get(c, root, "spool"), "spool.max_bytes",
                    "must hold at least two segments (2 x spool.segment_bytes)");
    if (cfg->http.enabled && (!cfg->http.tls_cert) != (!cfg->http.tls_key))
        return fail(c, map_get(c, root, "http"), "http",
                    "tls_cert and tls_key go together: give both or neither");
    if (cfg->http.enabled && !cfg->http.listen)
        return fail(c, map_get(c, root, "http"), "http.listen", "the HTTP input needs listen");
    return check_kafka_input(c, map_get(c, root, "kafka_input"));
}

int sb_config_load_string(struct sb_config *cfg, const char *text, size_t len, const char *name,
                          struct sb_config_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    struct ctx c = {.doc = &doc, .name = name ? name : "config", .err = err, .cfg = cfg};
    int rc;

    if (err) {
        err->msg[0] = 0;
        err->line = 0;
    }
    rc = sb_config_defaults(cfg);
    if (rc)
        return oom(&c);
    if (!yaml_parser_initialize(&parser)) {
        sb_config_free(cfg);
        return oom(&c);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        if (parser.error == YAML_MEMORY_ERROR) {
            rc = oom(&c);
        } else {
            rc = -EINVAL;
            if (err) {
                err->line = (int)parser.problem_mark.line + 1;
                snprintf(err->msg, sizeof err->msg, "%s:%d:%d: YAML syntax: %s%s%s", c.name,
                         err->line, (int)parser.problem_mark.column + 1,
                         parser.problem ? parser.problem : "error", parser.context ? " " : "",
                         parser.context ? parser.context : "");
            }
        }
        yaml_parser_delete(&parser);
        sb_config_free(cfg);
        return rc;
    }
    rc = load_document(&c, &doc);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc) {
        sb_config_free(cfg);
        return rc;
    }
    return 0;
}

int sb_config_load_file(struct sb_config *cfg, const char *path, struct sb_config_error *err)
{
    FILE *f = fopen(path, "rb");
    char *text;
    size_t n;
    int rc;

    if (err) {
        err->msg[0] = 0;
        err->line = 0;
    }
    memset(cfg, 0, sizeof *cfg);
    if (!f) {
        rc = -errno;
        if (err)
            snprintf(err->msg, sizeof err->msg, "%s: cannot open: %s", path, strerror(-rc));
        return rc;
    }
    text = malloc(SB_CFG_MAX_FILE + 1);
    if (!text) {
        fclose(f);
        return -ENOMEM;
    }
    n = fread(text, 1, SB_CFG_MAX_FILE + 1, f);
    rc = ferror(f) ? -EIO : 0;
    fclose(f);
    if (!rc && n > SB_CFG_MAX_FILE)
        rc = -EFBIG;
    if (rc) {
        if (err)
            snprintf(err->msg, sizeof err->msg, "%s: cannot read: %s", path,
                     rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
        free(text);
        return rc;
    }
    rc = sb_config_load_string(cfg, text, n, path, err);
    free(text);
    if (!rc && !(cfg->file = strdup(path))) {
        sb_config_free(cfg);
        return -ENOMEM;
    }
    return rc;
}

const struct sb_output_config *sb_config_output(const struct sb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_outputs; i++)
        if (cfg->outputs[i].name && !strcmp(cfg->outputs[i].name, name))
            return &cfg->outputs[i];
    return NULL;
}

const struct sb_source_config *sb_config_source(const struct sb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_sources; i++)
        if (cfg->sources[i].name && !strcmp(cfg->sources[i].name, name))
            return &cfg->sources[i];
    return NULL;
}

const char *sb_config_redact(const char *secret, char out[16])
{
    if (!secret || !*secret) {
        snprintf(out, 16, "wk:none");
        return out;
    }
    snprintf(out, 16, "wk:%08x", (unsigned)(XXH3_64bits(secret, strlen(secret)) >> 32));
    return out;
}
