/* kafka.c: the Kafka output: one delivery attempt of a batch = one produce per event, done
 * when every message has its delivery report (librdkafka, idempotent producer).
 *
 * Topic: settings.topic, where "{source}" stands for the output's one source. Key: userId,
 * else anonymousId (so one user's events stay ordered within a partition; murmur2 like the
 * Java client unless properties say otherwise). Value: the event as JSON (default) or msgpack
 * (settings.value_format). Headers: "type", "messageId" and, when the output has one source,
 * "source" (the workers' kafka input gives each event its source from it).
 *
 * Loop integration: librdkafka runs its own broker threads; what reaches us (delivery reports,
 * errors) waits on its main queue, which kafka_input/kafka_waker.h puts on the io_uring loop
 * (an eventfd that librdkafka writes when the queue becomes non-empty); the loop then serves
 * the queue with rd_kafka_poll(rk, 0) until it is empty (never blocking). Chosen over a periodic
 * rd_kafka_poll timer: no latency floor and no wake-ups while idle, and every callback runs on the
 * loop's thread as the runner requires.
 *
 * Failures: a message that librdkafka could not deliver within message.timeout.ms (it retries
 * broker outages itself until then) or could not even enqueue fails the attempt as a network
 * error, so the runner retries the whole batch; the dedup window downstream absorbs the
 * messages of the batch that did arrive. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "common/log.h"
#include "json/json.h"
#include "kafka_input/kafka_waker.h"
#include "mp/mp_reader.h"
#include "net/loop.h"
#include "outputs/output.h"
#include "pipeline/batch.h"

struct kafka_out {
    char *name;
    struct sb_loop *loop;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    bool json;
    struct sb_kafka_waker *waker;
    char *source; /* the output's one source (header "source"), or NULL */
    struct sb_buf value;
    /* the attempt in flight */
    struct sb_delivery *d;
    uint32_t outstanding; /* messages produced, report not seen yet */
    bool producing;       /* still inside deliver(): reports may not finish the attempt yet */
    rd_kafka_resp_err_t err;
    char detail[256];
};

static void kafka_finish(struct kafka_out *k)
{
    struct sb_delivery *d = k->d;
    struct sb_output_result res = {.status = 200};

    if (!d || k->outstanding || k->producing)
        return;
    k->d = NULL;
    if (k->err) {
        /* No broker answered for us in time: a network error, retried by the runner. */
        res.status = -EAGAIN;
        res.detail = k->detail;
        res.detail_len = strlen(k->detail);
    }
    sb_delivery_done(d, &res);
}

static void kafka_fail(struct kafka_out *k, rd_kafka_resp_err_t err, const char *what)
{
    if (k->err)
        return; /* the first failure is the one worth reporting */
    k->err = err;
    snprintf(k->detail, sizeof k->detail, "kafka %s: %s", what, rd_kafka_err2str(err));
}

static void kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_out *k = opaque;

    (void)rk;
    if (!k->d || !k->outstanding)
        return; /* purged at destroy */
    if (m->err)
        kafka_fail(k, m->err, "delivery");
    k->outstanding--;
    kafka_finish(k);
}

static void kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_out *k = opaque;

    (void)rk;
    /* Transient broker errors are retried inside librdkafka: worth a line, not an action. */
    sb_warn("kafka", "output %s: %s: %s", k->name, rd_kafka_err2name((rd_kafka_resp_err_t)err),
            reason);
}

/* The main queue has something (delivery reports, errors): serve all of it now; the
 * callbacks may finish the attempt, and the runner may start the next one from there. */
static void kafka_serve(void *arg)
{
    struct kafka_out *k = arg;

    while (rd_kafka_poll(k->rk, 0) > 0)
        ;
}

/* settings.topic with "{source}" replaced by the output's one source. */
static char *kafka_topic_name(const struct sb_output_config *cfg, char *err, size_t errlen)
{
    const char *tmpl = cfg->topic;
    const char *at = strstr(tmpl, "{source}");
    const char *src;
    size_t n;
    char *out;

    if (!at)
        return strdup(tmpl);
    if (cfg->sources.n != 1) {
        snprintf(err, errlen,
                 "output %s: settings.topic \"%s\" uses {source}: list exactly one source under "
                 "sources (one kafka output per source)",
                 cfg->name, tmpl);
        return NULL;
    }
    src = cfg->sources.items[0];
    n = strlen(tmpl) - 8 + strlen(src) + 1;
    out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s%s%s", (int)(at - tmpl), tmpl, src, at + 8);
    return out;
}

static int conf_set(rd_kafka_conf_t *conf, const char *out_name, const char *key, const char *value,
                    int line, char *err, size_t errlen)
{
    char why[256];

    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK)
        return 0;
    if (line)
        snprintf(err, errlen, "output %s: settings.properties.%s (line %d): %s", out_name, key,
                 line, why);
    else
        snprintf(err, errlen, "output %s: %s: %s", out_name, key, why);
    return -EINVAL;
}

static void kafka_destroy(void *state);

static int kafka_init(void **state, const struct sb_output_config *cfg, struct sb_loop *loop,
                      char *err, size_t errlen)
{
    struct kafka_out *k = calloc(1, sizeof *k);
    rd_kafka_conf_t *conf = NULL;
    char why[512];
    char *topic = NULL;
    int rc = -EINVAL;

    if (!k)
        return -ENOMEM;
    k->loop = loop;
    k->name = strdup(cfg->name ? cfg->name : "kafka");
    if (!k->name)
        goto nomem;
    if (!cfg->value_format || !strcmp(cfg->value_format, "json")) {
        k->json = true;
    } else if (strcmp(cfg->value_format, "msgpack") != 0) {
        snprintf(err, errlen, "output %s: settings.value_format \"%s\": expected json or msgpack",
                 k->name, cfg->value_format);
        goto fail;
    }
    if (!cfg->brokers || !cfg->topic) {
        snprintf(err, errlen, "output %s: a kafka output needs settings.brokers and settings.topic",
                 k->name);
        goto fail;
    }
    topic = kafka_topic_name(cfg, err, errlen);
    if (!topic) {
        if (!*err)
            goto nomem;
        goto fail;
    }
    conf = rd_kafka_conf_new();
    if (conf_set(conf, k->name, "bootstrap.servers", cfg->brokers, 0, err, errlen) ||
        conf_set(conf, k->name, "partitioner", "murmur2_random", 0, err, errlen))
        goto fail;
    for (size_t i = 0; i < cfg->kafka.n; i++)
        if (conf_set(conf, k->name, cfg->kafka.items[i].path, cfg->kafka.items[i].value,
                     cfg->kafka.items[i].line, err, errlen))
            goto fail;
    /* Forced after the passthrough: retries inside librdkafka must not duplicate or reorder. */
    if (conf_set(conf, k->name, "enable.idempotence", "true", 0, err, errlen))
        goto fail;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr);
    rd_kafka_conf_set_error_cb(conf, kafka_error);
    rd_kafka_conf_set_log_cb(conf, sb_kafka_log);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!k->rk) {
        snprintf(err, errlen, "output %s: cannot create the Kafka producer: %s", k->name, why);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    k->rkt = rd_kafka_topic_new(k->rk, topic, NULL);
    if (!k->rkt) {
        snprintf(err, errlen, "output %s: topic \"%s\": %s", k->name, topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    rc = sb_kafka_waker_new(&k->waker, loop, rd_kafka_queue_get_main(k->rk), kafka_serve, k);
    if (rc) {
        snprintf(err, errlen, "output %s: cannot put the Kafka queue on the loop: %s", k->name,
                 strerror(-rc));
        goto fail;
    }
    if (cfg->sources.n == 1 && !(k->source = strdup(cfg->sources.items[0])))
        goto nomem;
    free(topic);
    *state = k;
    return 0;
nomem:
    rc = -ENOMEM;
    snprintf(err, errlen, "output %s: out of memory", cfg->name ? cfg->name : "kafka");
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    free(topic);
    kafka_destroy(k);
    return rc;
}

/* The string value of key in the event map, or NULL. */
static const char *event_str(const uint8_t *ev, size_t len, const char *key, size_t *slen)
{
    struct sb_mp_reader v;
    const char *s;

    if (sb_mp_lookup(ev, len, key, &v) != 1 || sb_mp_read_str(&v, &s, slen) != 0)
        return NULL;
    return s;
}

static int kafka_produce_one(struct kafka_out *k, const uint8_t *ev, size_t len)
{
    size_t klen = 0, tlen = 0, mlen = 0;
    const char *key = event_str(ev, len, "userId", &klen);
    const char *type = event_str(ev, len, "type", &tlen);
    const char *mid = event_str(ev, len, "messageId", &mlen);
    const void *val = ev;
    size_t vlen = len;
    rd_kafka_headers_t *h = rd_kafka_headers_new(3);
    rd_kafka_resp_err_t e;

    if (!key || !klen)
        key = event_str(ev, len, "anonymousId", &klen);
    if (!key || !klen) {
        key = NULL; /* no identity: any partition */
        klen = 0;
    }
    if (k->json) {
        size_t used;
        sb_buf_clear(&k->value);
        if (sb_msgpack_to_json(ev, len, &used, &k->value) != 0) {
            rd_kafka_headers_destroy(h);
            return -EPROTO;
        }
        val = k->value.data;
        vlen = k->value.len;
    }
    if (type)
        rd_kafka_header_add(h, "type", 4, type, (ssize_t)tlen);
    if (mid)
        rd_kafka_header_add(h, "messageId", 9, mid, (ssize_t)mlen);
    if (k->source) /* the workers' per-source plans and output filters need it */
        rd_kafka_header_add(h, "source", 6, k->source, -1);
    e = rd_kafka_producev(k->rk, RD_KAFKA_V_RKT(k->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_KEY(key, klen),
                          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h); /* only owned by librdkafka on success */
        kafka_fail(k, e, "produce");
        return -EAGAIN;
    }
    k->outstanding++;
    return 0;
}

static int kafka_deliver(void *state, struct sb_delivery *d)
{
    struct kafka_out *k = state;
    const uint8_t *p = d->envelope + SB_BATCH_HEAD_BYTES;
    const uint8_t *end = d->envelope + d->len - SB_BATCH_TAIL_BYTES;

    if (k->d)
        return -EBUSY; /* the runner keeps one attempt in flight; never expected */
    k->d = d;
    k->err = 0;
    k->detail[0] = 0;
    k->outstanding = 0;
    k->producing = true;
    for (uint32_t i = 0; i < d->count && p < end; i++) {
        struct sb_mp_reader r;
        size_t n;
        sb_mp_reader_init(&r, p, (size_t)(end - p));
        if (sb_mp_skip(&r) != 0) {
            kafka_fail(k, RD_KAFKA_RESP_ERR__BAD_MSG, "envelope");
            break;
        }
        n = sb_mp_reader_offset(&r);
        if (kafka_produce_one(k, p, n) != 0) {
            if (!k->err)
                kafka_fail(k, RD_KAFKA_RESP_ERR__BAD_MSG, "event to JSON");
            break; /* the rest would fail alike; the runner retries the batch */
        }
        p += n;
    }
    k->producing = false;
    /* Reports are served from the loop (never inside this call); finish now only if nothing
     * was produced at all. */
    if (!k->outstanding)
        kafka_finish(k);
    return 0;
}

static void kafka_destroy(void *state)
{
    struct kafka_out *k = state;

    if (!k)
        return;
    k->d = NULL; /* the runner is going away: reports served below must not reach it */
    sb_kafka_waker_free(k->waker); /* before the handle goes: no more eventfd writes */
    if (k->rk) {
        /* Give queued messages a moment, then drop the rest: the spool still holds the batch,
         * so whatever is purged here is sent again at the next start. */
        rd_kafka_flush(k->rk, 2000);
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(k->rk, 0);
        if (k->rkt)
            rd_kafka_topic_destroy(k->rkt);
        rd_kafka_destroy(k->rk);
    }
    free(k->source);
    sb_buf_free(&k->value);
    free(k->name);
    free(k);
}

const struct sb_output_plugin sb_output_kafka = {"kafka", kafka_init, kafka_deliver, kafka_destroy,
                                                 NULL};
