/* client.c: segbus_client_t, the six Segment calls on top of the ring's producer handle: options,
 * socket resolution, per-client defaults (write key, context), flush and counters. */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/buf.h"
#include "event/event.h"
#include "event/mpw.h"

#define SB_WRITE_KEY_MAX 256
#define SB_DEFAULT_CONTEXT_MAX (16 * 1024)

struct segbus_options {
    char *socket; /* NULL: environment, then the default */
    char *write_key;
    int policy;
    int64_t block_ms;
    int standalone;
    struct sb_buf ctx; /* the default context as one msgpack map value; empty: none */
};

struct segbus_client {
    segbus_producer_t *prod;
    struct sb_event_cfg cfg;
    uint8_t *ctx_storage;
    char *write_key;
    char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
    atomic_uint_fast64_t invalid; /* only touched on the error path */
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

SEGBUS_API segbus_options_t *segbus_options_new(void)
{
    segbus_options_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->policy = SEGBUS_FULL_ERROR;
    o->block_ms = 1000;
    o->standalone = 1;
    return o;
}

SEGBUS_API void segbus_options_free(segbus_options_t *o)
{
    if (!o)
        return;
    free(o->socket);
    free(o->write_key);
    sb_buf_free(&o->ctx);
    free(o);
}

/* The socket an options object resolves to: explicit, then SEGBUS_SOCKET, then the default. */
static const char *resolve_socket(const segbus_options_t *o)
{
    if (o && o->socket)
        return o->socket;
    const char *env = getenv(SEGBUS_SOCKET_ENV);
    if (env && env[0])
        return env;
    return SEGBUS_DEFAULT_SOCKET;
}

SEGBUS_API int segbus_options_set_socket(segbus_options_t *o, const char *path)
{
    sb_err_clear();
    if (!o)
        return sb_err(-EINVAL, "options is NULL");
    char *copy = NULL;
    if (path) {
        if (!path[0] || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return sb_err(-EINVAL, "socket path must be 1 to %zu bytes",
                          sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        if (!(copy = dup_str(path)))
            return -ENOMEM;
    }
    free(o->socket);
    o->socket = copy;
    return 0;
}

SEGBUS_API int segbus_options_set_write_key(segbus_options_t *o, const char *key)
{
    sb_err_clear();
    if (!o)
        return sb_err(-EINVAL, "options is NULL");
    char *copy = NULL;
    if (key) {
        size_t n = strlen(key), bad;
        if (n == 0 || n > SB_WRITE_KEY_MAX)
            return sb_err(-EINVAL, "writeKey must be 1 to %d bytes", SB_WRITE_KEY_MAX);
        if (!sb_utf8_valid(key, n, &bad))
            return sb_err(-SEGBUS_EUTF8, "writeKey: invalid UTF-8 at byte %zu", bad);
        if (!(copy = dup_str(key)))
            return -ENOMEM;
    }
    free(o->write_key);
    o->write_key = copy;
    return 0;
}

SEGBUS_API int segbus_options_set_full_policy(segbus_options_t *o, enum segbus_full_policy policy,
                                              int64_t block_ms)
{
    sb_err_clear();
    if (!o)
        return sb_err(-EINVAL, "options is NULL");
    if (policy != SEGBUS_FULL_ERROR && policy != SEGBUS_FULL_BLOCK && policy != SEGBUS_FULL_DROP)
        return sb_err(-EINVAL, "unknown full-ring policy %d", (int)policy);
    if (block_ms < 0)
        return sb_err(-EINVAL, "block_ms must be >= 0");
    o->policy = policy;
    o->block_ms = block_ms;
    return 0;
}

SEGBUS_API int segbus_options_set_standalone(segbus_options_t *o, int allow)
{
    if (!o)
        return sb_err(-EINVAL, "options is NULL");
    o->standalone = allow != 0;
    return 0;
}

SEGBUS_API int segbus_options_set_context_json(segbus_options_t *o, const char *json, size_t len)
{
    sb_err_clear();
    if (!o)
        return sb_err(-EINVAL, "options is NULL");
    if (!json) {
        o->ctx.len = 0;
        return 0;
    }
    struct sb_buf b = SB_BUF_INIT;
    int rc = sb_event_json_object("context", json, len, &b);
    if (rc == 0 && b.len > SB_DEFAULT_CONTEXT_MAX)
        rc = sb_err(-EMSGSIZE, "context: the default context is over 16 KB");
    if (rc) {
        sb_buf_free(&b);
        return rc;
    }
    sb_buf_free(&o->ctx);
    o->ctx = b;
    return 0;
}

SEGBUS_API int segbus_options_set_context(segbus_options_t *o, const segbus_map_t *map)
{
    sb_err_clear();
    if (!o)
        return sb_err(-EINVAL, "options is NULL");
    if (!map) {
        o->ctx.len = 0;
        return 0;
    }
    struct sb_map_view v;
    sb_map_get_view(map, &v);
    if (v.err)
        return sb_err(v.err, "context: %s", v.detail);
    if (v.len + 5 > SB_DEFAULT_CONTEXT_MAX)
        return sb_err(-EMSGSIZE, "context: the default context is over 16 KB");
    uint8_t hdr[8];
    size_t h = mpw_cont_hdr_to(hdr, v.count, 1);
    struct sb_buf b = SB_BUF_INIT;
    if (sb_buf_append(&b, hdr, h) < 0 || sb_buf_append(&b, v.entries, v.len) < 0) {
        sb_buf_free(&b);
        return -ENOMEM;
    }
    sb_buf_free(&o->ctx);
    o->ctx = b;
    return 0;
}

SEGBUS_API int segbus_client_open(segbus_client_t **out, const segbus_options_t *o)
{
    sb_err_clear();
    if (!out)
        return sb_err(-EINVAL, "out is NULL");
    *out = NULL;
    segbus_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    const char *path = resolve_socket(o);
    if (strlen(path) >= sizeof c->socket) {
        free(c);
        return sb_err(-EINVAL, "socket path \"%.60s...\" is too long", path);
    }
    strcpy(c->socket, path);
    int rc = sb_event_cfg_context(&c->cfg, o && o->ctx.len ? o->ctx.data : NULL, o ? o->ctx.len : 0,
                                  &c->ctx_storage);
    if (rc) {
        free(c);
        return sb_err(rc, "context: %s", segbus_strerror(rc));
    }
    if (o && o->write_key) {
        if (!(c->write_key = dup_str(o->write_key))) {
            segbus_client_close(c);
            return -ENOMEM;
        }
        c->cfg.write_key = c->write_key;
        c->cfg.write_key_len = strlen(c->write_key);
    }
    segbus_producer_options_t po;
    segbus_producer_options_init(&po);
    po.full_policy = o ? o->policy : SEGBUS_FULL_ERROR;
    if (o)
        po.block_timeout_ms = o->block_ms > INT_MAX ? INT_MAX : (int)o->block_ms;
    po.standalone_capacity = !o || o->standalone ? SEGBUS_RING_DEFAULT_CAPACITY : 0;
    rc = segbus_producer_open(&c->prod, c->socket, &po);
    if (rc < 0) {
        if (!segbus_last_error()[0])
            sb_err_set("open %s: %s", c->socket, segbus_strerror(rc));
        segbus_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

SEGBUS_API void segbus_client_close(segbus_client_t *c)
{
    if (!c)
        return;
    segbus_producer_close(c->prod);
    free(c->ctx_storage);
    free(c->write_key);
    free(c);
}

SEGBUS_API const char *segbus_client_socket(const segbus_client_t *c)
{
    return c ? c->socket : resolve_socket(NULL);
}

SEGBUS_API int segbus_flush(segbus_client_t *c, int64_t timeout_ms)
{
    sb_err_clear();
    if (!c)
        return sb_err(-EINVAL, "client is NULL");
    int t = timeout_ms < 0 ? -1 : timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
    int rc = segbus_producer_flush(c->prod, t);
    if (rc == -SEGBUS_ETIMEDOUT)
        sb_err_set("flush: not every event was taken by segbusd within %lld ms",
                   (long long)timeout_ms);
    else if (rc == -SEGBUS_ENODAEMON)
        sb_err_set("flush: no segbusd is draining this client's ring (socket %s)", c->socket);
    else if (rc < 0)
        sb_err_set("flush: %s", segbus_strerror(rc));
    return rc;
}

SEGBUS_API int segbus_client_get_stats(const segbus_client_t *c, struct segbus_client_stats *st)
{
    if (!c || !st)
        return -EINVAL;
    segbus_producer_stats_t ps;
    memset(&ps, 0, sizeof ps);
    int rc = segbus_producer_get_stats(c->prod, &ps);
    if (rc < 0)
        return rc;
    st->sent = ps.written;
    st->full = ps.dropped[SEGBUS_DROP_FULL_ERROR] + ps.dropped[SEGBUS_DROP_FULL_TIMEOUT];
    st->dropped = ps.dropped[SEGBUS_DROP_FULL_DROP];
    st->invalid = atomic_load_explicit(&((segbus_client_t *)c)->invalid, memory_order_relaxed);
    return 0;
}

SEGBUS_API int segbus_send(segbus_client_t *c, enum segbus_type type, const segbus_message_t *msg,
                           segbus_sent_t *sent)
{
    if (!c) {
        sb_err_clear();
        return sb_err(-EINVAL, "client is NULL");
    }
    const uint8_t *ev;
    size_t len;
    int rc = sb_event_encode(&c->cfg, type, msg, &ev, &len, sent);
    if (__builtin_expect(rc < 0, 0)) {
        /* A counter for the stats only: relaxed, no ordering with anything. */
        atomic_fetch_add_explicit(&c->invalid, 1, memory_order_relaxed);
        return rc;
    }
    rc = segbus_producer_write(c->prod, SEGBUS_RECORD_TYPE_EVENT, ev, len);
    if (__builtin_expect(rc != 0, 0)) {
        if (rc == SEGBUS_DROPPED)
            sb_err_set("ring full: event dropped (policy drop, counted)");
        else if (rc == -EAGAIN)
            sb_err_set("ring full: event not written (-EAGAIN)");
        else if (rc < 0)
            sb_err_set("ring write: %s", segbus_strerror(rc));
    }
    return rc;
}

SEGBUS_API int segbus_track(segbus_client_t *c, const segbus_message_t *m)
{
    return segbus_send(c, SEGBUS_TRACK, m, NULL);
}
SEGBUS_API int segbus_identify(segbus_client_t *c, const segbus_message_t *m)
{
    return segbus_send(c, SEGBUS_IDENTIFY, m, NULL);
}
SEGBUS_API int segbus_page(segbus_client_t *c, const segbus_message_t *m)
{
    return segbus_send(c, SEGBUS_PAGE, m, NULL);
}
SEGBUS_API int segbus_screen(segbus_client_t *c, const segbus_message_t *m)
{
    return segbus_send(c, SEGBUS_SCREEN, m, NULL);
}
SEGBUS_API int segbus_group(segbus_client_t *c, const segbus_message_t *m)
{
    return segbus_send(c, SEGBUS_GROUP, m, NULL);
}
SEGBUS_API int segbus_alias(segbus_client_t *c, const segbus_message_t *m)
{
    return segbus_send(c, SEGBUS_ALIAS, m, NULL);
}

SEGBUS_API int segbus_encode(const segbus_client_t *c, enum segbus_type type,
                             const segbus_message_t *msg, void *buf, size_t cap, size_t *len,
                             segbus_sent_t *sent)
{
    const uint8_t *ev;
    size_t n;
    if (!len || (!buf && cap)) {
        sb_err_clear();
        return sb_err(-EINVAL, "len is NULL, or buf NULL with cap > 0");
    }
    int rc = sb_event_encode(c ? &c->cfg : NULL, type, msg, &ev, &n, sent);
    if (rc)
        return rc;
    *len = n;
    if (n > cap)
        return sb_err(-ENOSPC, "the event needs %zu bytes, the buffer has %zu", n, cap);
    memcpy(buf, ev, n);
    return 0;
}
