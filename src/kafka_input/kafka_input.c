/* kafka_input.c: the delivery worker's Kafka consumer group: messages into the pipeline,
 * offsets committed once durable, revokes that wait for durability (see kafka_input.h). */
#include "kafka_input/kafka_input.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/log.h"
#include "json/json.h"
#include "kafka_input/kafka_waker.h"
#include "metrics/metrics.h"
#include "pipeline/stage.h"

#define ROUND_MAX 4096                      /* messages per serving of the queue */
#define COMMIT_EVERY_NS (50 * SB_NS_PER_MS) /* at most 20 commit requests a second */
/* A commit unanswered this long waits behind something on the coordinator's connection (a
 * JoinGroup held while the group re-forms): stop taking messages until it is answered, so
 * that a commit refused at the end of that join leaves little for the next owner to re-read. */
#define COMMIT_STALL_NS (300 * SB_NS_PER_MS)
#define CLOSE_NS (5 * SB_NS_PER_S) /* leaving the group at shutdown, at most */

/* A partition that has been assigned to this consumer at some point. */
struct slot {
    char *topic;
    int32_t partition;
    uint32_t epoch;       /* bumped at every assignment: marks of an older one are not ours */
    bool assigned;        /* in librdkafka's assignment */
    bool active;          /* its messages are taken (false once a revoke names it) */
    bool revoking;        /* named by the pending revoke */
    bool dirty;           /* durable_next moved past committed */
    int64_t durable_next; /* first offset whose event is not durable yet (-1: none seen) */
    int64_t committed;    /* the last offset asked to be committed (-1: none) */
};

struct entry {
    uint32_t slot, epoch;
    int64_t offset; /* highest offset of the slot taken in the round */
};

/* One round of messages: durable once every output has need[o] events durable. */
struct mark {
    uint64_t *need;
    struct entry *e;
    size_t n;
};

struct sb_kafka_input {
    const struct sb_config *cfg;
    struct sb_hub_sink sink;
    struct sb_loop *loop;
    rd_kafka_t *rk;
    struct sb_kafka_waker *waker;
    enum sb_kafka_value_format vfmt;
    bool cooperative;
    bool closing;
    bool serving; /* inside a round: the rebalance callback only takes notes */

    struct slot *slots;
    size_t n_slots, cap_slots;

    struct mark *marks; /* FIFO ring */
    size_t marks_head, n_marks, cap_marks;
    struct mark cur; /* the round being read */
    size_t cur_cap;

    struct {
        bool pending;
        bool commit_sent;
        bool lost; /* partitions lost (session timeout): no commit possible */
        rd_kafka_topic_partition_list_t *parts;
        uint64_t deadline_ns;
    } revoke;
    unsigned commits_inflight;
    uint64_t commit_sent_ns; /* when the oldest commit in flight was sent */
    uint64_t next_commit_ns;
    bool joining; /* librdkafka's statistics say the group handler is (re)joining */
    bool paused;  /* every assigned partition paused: sink busy, commit stalled, joining */
    /* No periodic commit while the group may be joining: a commit queued behind a JoinGroup
     * (responses come in order on the coordinator's connection) is answered with
     * ILLEGAL_GENERATION once the join completes, and librdkafka then declares the whole
     * assignment lost, so its next owner would read again what this worker already spooled.
     * Set when a commit is refused for a rebalance and after giving partitions up
     * (cooperative: librdkafka rejoins at once); cleared by the next rebalance callback,
     * whose generation is fresh, or after hold_until as a safety net. */
    bool commit_hold;
    bool rejoining; /* cooperative: partitions given up, the "assign after revoke" is next */
    uint64_t hold_until_ns;

    uint64_t session_timeout_ns;
    msgpack_sbuffer scratch; /* JSON values as msgpack */
    struct sb_kafka_input_stats st;
    uint64_t dropped_undecodable; /* mirrors st.undecodable under segbus_dropped_events_total */
};

static void set_paused(struct sb_kafka_input *in, bool pause,
                       rd_kafka_topic_partition_list_t *only);

/* ---- partitions ----------------------------------------------------------------------------- */

static long slot_find(const struct sb_kafka_input *in, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < in->n_slots; i++)
        if (in->slots[i].partition == partition && !strcmp(in->slots[i].topic, topic))
            return (long)i;
    return -1;
}

static long slot_get(struct sb_kafka_input *in, const char *topic, int32_t partition)
{
    long i = slot_find(in, topic, partition);
    struct slot *s;

    if (i >= 0)
        return i;
    if (in->n_slots == in->cap_slots) {
        size_t cap = in->cap_slots ? in->cap_slots * 2 : 16;
        struct slot *n = realloc(in->slots, cap * sizeof *n);
        if (!n)
            return -1;
        in->slots = n;
        in->cap_slots = cap;
    }
    s = &in->slots[in->n_slots];
    memset(s, 0, sizeof *s);
    if (!(s->topic = strdup(topic)))
        return -1;
    s->partition = partition;
    s->durable_next = s->committed = -1;
    return (long)in->n_slots++;
}

/* ---- durability marks ----------------------------------------------------------------------- */

static struct mark *mark_at(struct sb_kafka_input *in, size_t i)
{
    return &in->marks[(in->marks_head + i) % in->cap_marks];
}

static bool mark_durable(struct sb_kafka_input *in, const struct mark *m)
{
    for (size_t o = 0; o < in->sink.n_outputs; o++)
        if (in->sink.durable(in->sink.arg, o) < m->need[o])
            return false;
    return true;
}

/* Pop every mark whose events are durable: their partitions may be committed that far. */
static void check_marks(struct sb_kafka_input *in)
{
    while (in->n_marks) {
        struct mark *m = mark_at(in, 0);
        if (!mark_durable(in, m))
            return;
        for (size_t i = 0; i < m->n; i++) {
            struct slot *s = &in->slots[m->e[i].slot];
            if (s->epoch != m->e[i].epoch || !s->assigned || m->e[i].offset < s->durable_next)
                continue; /* a partition given up since: its new owner commits it */
            s->durable_next = m->e[i].offset + 1;
            s->dirty = s->durable_next > s->committed;
        }
        free(m->need);
        free(m->e);
        in->marks_head = (in->marks_head + 1) % in->cap_marks;
        in->n_marks--;
    }
}

/* The round that just ended becomes a mark (nothing durable is waited for if it took none). */
static int push_round(struct sb_kafka_input *in)
{
    struct mark *m;

    if (!in->cur.n)
        return 0;
    for (size_t o = 0; o < in->sink.n_outputs; o++)
        in->cur.need[o] = in->sink.added(in->sink.arg, o);
    if (in->n_marks == in->cap_marks) {
        size_t cap = in->cap_marks ? in->cap_marks * 2 : 16;
        struct mark *n = calloc(cap, sizeof *n);
        if (!n)
            return -ENOMEM;
        for (size_t i = 0; i < in->n_marks; i++)
            n[i] = *mark_at(in, i);
        free(in->marks);
        in->marks = n;
        in->marks_head = 0;
        in->cap_marks = cap;
    }
    m = mark_at(in, in->n_marks++);
    *m = in->cur;
    memset(&in->cur, 0, sizeof in->cur);
    in->cur_cap = 0;
    return 0;
}

static int round_note(struct sb_kafka_input *in, uint32_t slot, int64_t offset)
{
    struct mark *c = &in->cur;

    if (!c->need &&
        !(c->need = calloc(in->sink.n_outputs ? in->sink.n_outputs : 1, sizeof *c->need)))
        return -ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        if (c->e[i].slot == slot && c->e[i].epoch == in->slots[slot].epoch) {
            if (offset > c->e[i].offset)
                c->e[i].offset = offset;
            return 0;
        }
    }
    if (c->n == in->cur_cap) {
        size_t cap = in->cur_cap ? in->cur_cap * 2 : 8;
        struct entry *e = realloc(c->e, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        c->e = e;
        in->cur_cap = cap;
    }
    c->e[c->n++] = (struct entry){slot, in->slots[slot].epoch, offset};
    return 0;
}

/* Does a mark still waiting hold messages of a partition being revoked? */
static bool revoke_waits(struct sb_kafka_input *in)
{
    for (size_t k = 0; k < in->n_marks; k++) {
        const struct mark *m = mark_at(in, k);
        for (size_t i = 0; i < m->n; i++) {
            const struct slot *s = &in->slots[m->e[i].slot];
            if (s->revoking && s->epoch == m->e[i].epoch)
                return true;
        }
    }
    return false;
}

static void hold_commits(struct sb_kafka_input *in)
{
    in->commit_hold = true;
    in->hold_until_ns = sb_now_ns() + 2 * in->session_timeout_ns;
}

/* ---- commits -------------------------------------------------------------------------------- */

/* Ask for the commit of every partition whose durable offset moved (asynchronous: the answer
 * comes to on_commit through the consumer queue). */
static void commit_dirty(struct sb_kafka_input *in, bool now)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t e;
    uint64_t t = sb_now_ns();
    int n = 0;

    if (!now && (t < in->next_commit_ns || in->commits_inflight))
        return; /* one periodic commit at a time: at most one can meet a rebalance */
    if (!now && in->joining)
        return; /* it would queue behind the JoinGroup: see commit_hold */
    if (!now && in->commit_hold) {
        if (t < in->hold_until_ns)
            return;
        in->commit_hold = false;
    }
    for (size_t i = 0; i < in->n_slots; i++)
        n += in->slots[i].dirty && in->slots[i].assigned;
    if (!n)
        return;
    l = rd_kafka_topic_partition_list_new(n);
    for (size_t i = 0; i < in->n_slots; i++) {
        struct slot *s = &in->slots[i];
        if (!s->dirty || !s->assigned)
            continue;
        rd_kafka_topic_partition_list_add(l, s->topic, s->partition)->offset = s->durable_next;
        s->committed = s->durable_next;
        s->dirty = false;
    }
    e = rd_kafka_commit(in->rk, l, 1);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (!in->commits_inflight++)
            in->commit_sent_ns = t;
    } else {
        in->st.commit_failures++;
        sb_warn("kafka_input", "cannot commit offsets: %s", rd_kafka_err2str(e));
        for (int i = 0; i < l->cnt; i++) {
            long s = slot_find(in, l->elems[i].topic, l->elems[i].partition);
            if (s >= 0) {
                in->slots[s].committed = -1;
                in->slots[s].dirty = true;
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    in->next_commit_ns = t + COMMIT_EVERY_NS;
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct sb_kafka_input *in = opaque;

    (void)rk;
    if (in->commits_inflight)
        in->commits_inflight--;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    if (err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
        err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
        hold_commits(in);
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        rd_kafka_resp_err_t pe = err ? err : offsets->elems[i].err;
        long s;
        if (!pe)
            continue;
        s = slot_find(in, offsets->elems[i].topic, offsets->elems[i].partition);
        if (s >= 0 && in->slots[s].committed == offsets->elems[i].offset) {
            in->slots[s].committed = -1; /* committed again on the next round */
            in->slots[s].dirty = in->slots[s].assigned;
        }
        if (!err)
            err = pe;
    }
    if (err) {
        in->st.commit_failures++;
        sb_warn("kafka_input", "offset commit failed: %s", rd_kafka_err2str(err));
    } else {
        in->st.commits++;
    }
}

/* ---- rebalances ----------------------------------------------------------------------------- */

static void give_up(struct sb_kafka_input *in, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_error_t *ee = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

    for (int i = 0; i < parts->cnt; i++) {
        long s = slot_find(in, parts->elems[i].topic, parts->elems[i].partition);
        if (s >= 0) {
            in->slots[s].assigned = in->slots[s].active = in->slots[s].revoking = false;
            in->slots[s].dirty = false;
            in->st.assigned -= in->st.assigned > 0;
        }
    }
    if (in->cooperative) {
        ee = rd_kafka_incremental_unassign(in->rk, parts);
        /* librdkafka rejoins right after it (the callback of the assign that follows the
         * revoke does not end that join): hold commits until the round after. */
        hold_commits(in);
        in->rejoining = true;
    } else {
        e = rd_kafka_assign(in->rk, NULL);
    }
    if (ee) {
        sb_error("kafka_input", "unassign: %s", rd_kafka_error_string(ee));
        rd_kafka_error_destroy(ee);
    } else if (e) {
        sb_error("kafka_input", "unassign: %s", rd_kafka_err2str(e));
    }
}

/* Give the revoked partitions up once what was taken from them is durable and committed, or
 * at the deadline, or at once when they are lost or the consumer closes. */
static void finish_revoke(struct sb_kafka_input *in)
{
    bool late;

    if (!in->revoke.pending || in->serving)
        return;
    late = in->closing || in->revoke.lost || sb_now_ns() >= in->revoke.deadline_ns;
    check_marks(in);
    if (!late && revoke_waits(in))
        return;
    if (!in->revoke.commit_sent && !in->revoke.lost) {
        commit_dirty(in, true);
        in->revoke.commit_sent = true;
    }
    if (in->commits_inflight && !late)
        return; /* give up only once the next owner's start is committed */
    if (late && !in->closing && !in->revoke.lost && revoke_waits(in)) {
        in->st.revoke_timeouts++;
        sb_warn("kafka_input",
                "revoke: events still not durable after kafka_input.revoke_timeout; the next "
                "owner of the partitions reads them again");
    }
    in->revoke.pending = false;
    give_up(in, in->revoke.parts);
    rd_kafka_topic_partition_list_destroy(in->revoke.parts);
    in->revoke.parts = NULL;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct sb_kafka_input *in = opaque;

    in->st.rebalances++;
    if (in->rejoining && err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        in->rejoining = false; /* the "assign after revoke": still joining */
    else
        in->commit_hold = false; /* a round ended: the generation is fresh */
    in->cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_error_t *ee = NULL;
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (in->revoke.pending) { /* not expected: librdkafka waits for our unassign */
            in->revoke.deadline_ns = 0;
            bool serving = in->serving;
            in->serving = false;
            finish_revoke(in);
            in->serving = serving;
        }
        for (int i = 0; i < parts->cnt; i++) {
            long s = slot_get(in, parts->elems[i].topic, parts->elems[i].partition);
            if (s < 0) {
                sb_error("kafka_input", "out of memory taking an assignment");
                continue; /* its messages are skipped (not committed): the next owner reads */
            }
            struct slot *sl = &in->slots[s];
            sl->epoch++;
            in->st.assigned += !sl->assigned;
            sl->assigned = sl->active = true;
            sl->revoking = sl->dirty = false;
            sl->durable_next = sl->committed = -1;
        }
        if (in->cooperative)
            ee = rd_kafka_incremental_assign(rk, parts);
        else
            e = rd_kafka_assign(rk, parts);
        if (in->paused)
            set_paused(in, true, parts);
        if (ee) {
            sb_error("kafka_input", "assign: %s", rd_kafka_error_string(ee));
            rd_kafka_error_destroy(ee);
        } else if (e) {
            sb_error("kafka_input", "assign: %s", rd_kafka_err2str(e));
        }
        sb_info("kafka_input", "assigned %d partition(s) (%s)", parts->cnt,
                rd_kafka_rebalance_protocol(rk));
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(parts);
        if (in->revoke.pending) { /* two revokes before an unassign: merge them */
            for (int i = 0; i < parts->cnt; i++)
                rd_kafka_topic_partition_list_add(in->revoke.parts, parts->elems[i].topic,
                                                  parts->elems[i].partition);
            rd_kafka_topic_partition_list_destroy(copy);
        } else {
            in->revoke.parts = copy;
            in->revoke.commit_sent = false;
            in->revoke.deadline_ns = sb_now_ns() + in->cfg->kafka_input.revoke_timeout_ns;
        }
        in->revoke.pending = true;
        in->revoke.lost = rd_kafka_assignment_lost(rk) != 0;
        for (int i = 0; i < parts->cnt; i++) {
            long s = slot_find(in, parts->elems[i].topic, parts->elems[i].partition);
            if (s >= 0) {
                in->slots[s].active = false; /* from now on its messages are the next owner's */
                in->slots[s].revoking = true;
            }
        }
        sb_info("kafka_input", "revoking %d partition(s)%s", parts->cnt,
                in->revoke.lost ? " (lost)" : "");
        finish_revoke(in); /* at once when nothing waits (or closing, or lost) */
        return;
    }
    sb_error("kafka_input", "rebalance failed: %s; dropping the assignment", rd_kafka_err2str(err));
    for (size_t i = 0; i < in->n_slots; i++)
        in->slots[i].assigned = in->slots[i].active = false;
    in->st.assigned = 0;
    rd_kafka_assign(rk, NULL);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    /* Broker outages are retried inside librdkafka: worth a line, not an action. */
    sb_warn("kafka_input", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* Commit what became durable; finish a pending revoke. */
static void settle(struct sb_kafka_input *in)
{
    check_marks(in);
    finish_revoke(in);
    commit_dirty(in, false);
}

/* Pause (or resume) every assigned partition: librdkafka stops fetching them and drops what
 * it had fetched; resumed, they continue after the last message taken. The queue is still
 * served meanwhile, so rebalances and commit answers keep coming. */
static void set_paused(struct sb_kafka_input *in, bool pause, rd_kafka_topic_partition_list_t *only)
{
    rd_kafka_topic_partition_list_t *l = only;
    rd_kafka_resp_err_t e;

    if (!only) {
        if (pause == in->paused)
            return;
        in->paused = pause;
        l = rd_kafka_topic_partition_list_new((int)in->n_slots);
        for (size_t i = 0; i < in->n_slots; i++)
            if (in->slots[i].assigned)
                rd_kafka_topic_partition_list_add(l, in->slots[i].topic, in->slots[i].partition);
    }
    if (l->cnt) {
        e = pause ? rd_kafka_pause_partitions(in->rk, l) : rd_kafka_resume_partitions(in->rk, l);
        if (e)
            sb_warn("kafka_input", "%s partitions: %s", pause ? "pausing" : "resuming",
                    rd_kafka_err2str(e));
    }
    if (!only)
        rd_kafka_topic_partition_list_destroy(l);
}

/* librdkafka's statistics: only the consumer group's join state is of interest. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct sb_kafka_input *in = opaque;
    const char *p = memmem(json, len, "\"join_state\"", 12);

    (void)rk;
    if (p) {
        p += 12;
        while (*p == ' ' || *p == ':' || *p == '"')
            p++;
        in->joining = strncmp(p, "steady", 6) != 0;
    }
    return 0; /* librdkafka frees json */
}

/* ---- messages ------------------------------------------------------------------------------- */

static int source_of(const struct sb_kafka_input *in, rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;

    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, "source", &v, &n))
        return -1;
    for (size_t i = 0; i < in->cfg->n_sources; i++) {
        const char *name = in->cfg->sources[i].name;
        if (strlen(name) == n && !memcmp(name, v, n))
            return (int)i;
    }
    return -1;
}

const uint8_t *sb_kafka_value_decode(enum sb_kafka_value_format fmt, const void *value, size_t len,
                                     msgpack_sbuffer *scratch, size_t *out_len)
{
    const uint8_t *p = value;
    size_t n = len, i = 0;

    if (!p || !n)
        return NULL;
    if (fmt == SB_KAFKA_VALUE_AUTO) {
        /* A JSON object starts with '{' (after blanks); in msgpack those bytes are integers,
         * never the start of a map, so the guess is unambiguous for events. */
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
            i++;
        fmt = i < n && p[i] == '{' ? SB_KAFKA_VALUE_JSON : SB_KAFKA_VALUE_MSGPACK;
    }
    if (fmt == SB_KAFKA_VALUE_JSON) {
        msgpack_packer pk;
        struct sb_json_error je;
        msgpack_sbuffer_clear(scratch);
        msgpack_packer_init(&pk, scratch, msgpack_sbuffer_write);
        if (sb_json_to_msgpack((const char *)p, n, &pk, &je) != 0 || !scratch->size)
            return NULL;
        p = (const uint8_t *)scratch->data;
        n = scratch->size;
    }
    if ((p[0] & 0xf0) != 0x80 && p[0] != 0xde && p[0] != 0xdf)
        return NULL; /* not a map: the pipeline's verify would say so with less context */
    *out_len = n;
    return p;
}

/* One message into the pipeline. 0, or -ENOMEM (not taken: read again). */
static int take(struct sb_kafka_input *in, rd_kafka_message_t *m, uint32_t slot)
{
    struct sb_event_meta meta = {0};
    const uint8_t *ev;
    size_t len = 0;
    int rc;

    if (round_note(in, slot, m->offset))
        return -ENOMEM;
    ev = sb_kafka_value_decode(in->vfmt, m->payload, m->len, &in->scratch, &len);
    if (!ev) {
        in->st.undecodable++;
        in->dropped_undecodable++;
        if (in->st.undecodable <= 10 || in->st.undecodable % 10000 == 0)
            sb_warn("kafka_input",
                    "%s [%d] offset %lld: value is not a msgpack or JSON event map (skipped; "
                    "%llu so far)",
                    rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
                    (unsigned long long)in->st.undecodable);
        return 0; /* a poison message must not stop the partition: committed past */
    }
    meta.source = source_of(in, m);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    meta.received_at_ms = ts > 0 ? ts : 0;
    rc = in->sink.submit(in->sink.arg, ev, len, &meta);
    if (rc == 0)
        in->st.messages++;
    return rc;
}

/* Not taken after all: fetch the partition again from this message on (and free it). */
static void seek_back(struct sb_kafka_input *in, rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_error_t *ee;

    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
        m->offset;
    ee = rd_kafka_seek_partitions(in->rk, l, 0); /* 0: asynchronous, never blocks */
    if (ee) {
        sb_error("kafka_input", "seek: %s", rd_kafka_error_string(ee));
        rd_kafka_error_destroy(ee);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_message_destroy(m);
}

/* Serve the consumer queue: messages (until the sink is busy or a round is full), and the
 * rebalance and commit callbacks that come with them; then commit what became durable and
 * finish a pending revoke. */
static void serve(void *arg)
{
    struct sb_kafka_input *in = arg;

    if (in->closing)
        return;
    in->serving = true;
    for (int i = 0; i < ROUND_MAX; i++) {
        rd_kafka_message_t *m;
        long s;
        bool busy = in->sink.busy(in->sink.arg);
        set_paused(in,
                   busy || in->joining ||
                       (in->commits_inflight && sb_now_ns() - in->commit_sent_ns > COMMIT_STALL_NS),
                   NULL);
        m = rd_kafka_consumer_poll(in->rk, 0);
        if (!m)
            break;
        if (!m->err && busy) {
            seek_back(in, m); /* fetched before the pause took effect: again after the resume */
            break;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                sb_warn("kafka_input", "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        s = slot_find(in, rd_kafka_topic_name(m->rkt), m->partition);
        if (s < 0 || !in->slots[s].active) {
            in->st.skipped_revoked++; /* not committed: the partition's next owner reads it */
            rd_kafka_message_destroy(m);
            continue;
        }
        if (take(in, m, (uint32_t)s) != 0) {
            sb_error("kafka_input", "out of memory taking a message; reading it again");
            seek_back(in, m);
            break;
        }
        rd_kafka_message_destroy(m);
    }
    in->serving = false;
    if (push_round(in) != 0)
        sb_error("kafka_input", "out of memory noting a round: its offsets wait for the next");
    settle(in);
}

void sb_kafka_input_poll(struct sb_kafka_input *in)
{
    if (in)
        serve(in);
}

void sb_kafka_input_on_durable(struct sb_kafka_input *in)
{
    if (in && !in->closing)
        settle(in);
}

/* ---- set-up and teardown -------------------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, int line, char *err,
                    size_t errlen)
{
    char why[256];

    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK)
        return 0;
    if (line)
        snprintf(err, errlen, "kafka_input.properties.%s (line %d): %s", key, line, why);
    else
        snprintf(err, errlen, "kafka_input: %s: %s", key, why);
    return -EINVAL;
}

/* The consumer's configuration: our defaults, the passed-through properties, then what the
 * durability promise needs. 0, or -EINVAL with err naming the bad property and its line. */
static int build_conf(const struct sb_config *cfg, rd_kafka_conf_t **out, char *err, size_t errlen)
{
    const __typeof__(cfg->kafka_input) *kc = &cfg->kafka_input;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    *out = NULL;
    /* Defaults a worker wants, which properties may change... */
    if (conf_set(conf, "bootstrap.servers", kc->brokers, 0, err, errlen) ||
        conf_set(conf, "group.id", kc->group, 0, err, errlen) ||
        conf_set(conf, "client.id", "segbusd-worker", 0, err, errlen) ||
        conf_set(conf, "auto.offset.reset", "earliest", 0, err, errlen) ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", 0, err, errlen) ||
        conf_set(conf, "statistics.interval.ms", "100", 0, err, errlen))
        goto fail;
    for (size_t i = 0; i < kc->properties.n; i++)
        if (conf_set(conf, kc->properties.items[i].path, kc->properties.items[i].value,
                     kc->properties.items[i].line, err, errlen))
            goto fail;
    /* ...and what the durability promise needs, forced: offsets move only by our commits. */
    if (conf_set(conf, "enable.auto.commit", "false", 0, err, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", 0, err, errlen))
        goto fail;
    *out = conf;
    return 0;
fail:
    rd_kafka_conf_destroy(conf);
    return -EINVAL;
}

int sb_kafka_input_check(const struct sb_config *cfg, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf;
    int rc;

    if (!cfg->kafka_input.brokers)
        return 0;
    if ((rc = build_conf(cfg, &conf, err, errlen)) == 0)
        rd_kafka_conf_destroy(conf);
    return rc;
}

static void register_metrics(struct sb_kafka_input *in, struct sb_metrics *m)
{
    static const char *const undecodable[] = {"where", "kafka_input", "reason", "undecodable",
                                              NULL};
    if (!m)
        return;
    sb_metrics_counter_ref(m, "segbus_kafka_input_messages_total",
                           "Kafka messages consumed and handed to the pipeline.", NULL,
                           &in->st.messages);
    sb_metrics_counter_ref(m, "segbus_kafka_input_skipped_revoked_total",
                           "Messages of partitions being revoked, left to their next owner.", NULL,
                           &in->st.skipped_revoked);
    sb_metrics_counter_ref(m, "segbus_kafka_input_rebalances_total",
                           "Partition assignments and revocations.", NULL, &in->st.rebalances);
    sb_metrics_counter_ref(m, "segbus_kafka_input_commits_total",
                           "Offset commits (of durable events) answered without error.", NULL,
                           &in->st.commits);
    sb_metrics_counter_ref(m, "segbus_kafka_input_commit_failures_total",
                           "Offset commits answered with an error (committed again later).", NULL,
                           &in->st.commit_failures);
    sb_metrics_counter_ref(m, "segbus_kafka_input_revoke_timeouts_total",
                           "Revokes that gave partitions up before everything was durable.", NULL,
                           &in->st.revoke_timeouts);
    sb_metrics_counter_ref(m, SB_M_DROPPED, NULL, undecodable, &in->dropped_undecodable);
}

int sb_kafka_input_new(struct sb_kafka_input **out, struct sb_loop *loop,
                       const struct sb_config *cfg, const struct sb_hub_sink *sink,
                       struct sb_metrics *metrics, char *err, size_t errlen)
{
    const __typeof__(cfg->kafka_input) *kc = &cfg->kafka_input;
    struct sb_kafka_input *in;
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_resp_err_t e;
    char why[512];
    int rc = -EINVAL;

    *out = NULL;
    if (!kc->brokers || !kc->group || !kc->topics.n) {
        snprintf(err, errlen, "kafka_input needs brokers, group and topics");
        return -EINVAL;
    }
    if (!(in = calloc(1, sizeof *in)))
        return -ENOMEM;
    in->cfg = cfg;
    in->sink = *sink;
    in->loop = loop;
    msgpack_sbuffer_init(&in->scratch);
    in->vfmt = !kc->value_format || !strcmp(kc->value_format, "auto") ? SB_KAFKA_VALUE_AUTO
               : !strcmp(kc->value_format, "json")                    ? SB_KAFKA_VALUE_JSON
                                                                      : SB_KAFKA_VALUE_MSGPACK;
    if ((rc = build_conf(cfg, &conf, err, errlen)) != 0)
        goto fail;
    {
        char v[32];
        size_t vn = sizeof v;
        long ms = 45000;
        if (rd_kafka_conf_get(conf, "session.timeout.ms", v, &vn) == RD_KAFKA_CONF_OK)
            ms = atol(v);
        in->session_timeout_ns = (uint64_t)(ms > 0 ? ms : 45000) * SB_NS_PER_MS;
    }
    rd_kafka_conf_set_opaque(conf, in);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_log_cb(conf, sb_kafka_log);
    in->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!in->rk) {
        snprintf(err, errlen, "kafka_input: cannot create the consumer: %s", why);
        rc = -EINVAL;
        goto fail_conf;
    }
    /* Everything (rebalances, commit results, errors) comes through the consumer queue. */
    rd_kafka_poll_set_consumer(in->rk);
    rc = sb_kafka_waker_new(&in->waker, loop, rd_kafka_queue_get_consumer(in->rk), serve, in);
    if (rc) {
        snprintf(err, errlen, "kafka_input: cannot put the consumer queue on the loop: %s",
                 strerror(-rc));
        goto fail;
    }
    topics = rd_kafka_topic_partition_list_new((int)kc->topics.n);
    for (size_t i = 0; i < kc->topics.n; i++)
        rd_kafka_topic_partition_list_add(topics, kc->topics.items[i], RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(in->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "kafka_input: cannot subscribe: %s", rd_kafka_err2str(e));
        rc = -EINVAL;
        goto fail;
    }
    register_metrics(in, metrics);
    sb_info("kafka_input", "consumer group %s on %zu topic(s) via %s", kc->group, kc->topics.n,
            kc->brokers);
    *out = in;
    return 0;
fail_conf:
    rd_kafka_conf_destroy(conf);
fail:
    sb_kafka_input_free(in);
    return rc;
}

void sb_kafka_input_get_stats(const struct sb_kafka_input *in, struct sb_kafka_input_stats *st)
{
    memset(st, 0, sizeof *st);
    if (in)
        *st = in->st;
}

/* Leave the group (commits in flight answered, partitions given up) within CLOSE_NS: with
 * the coordinator unreachable rd_kafka_consumer_close() could wait much longer, and a SIGTERM
 * must end the daemon. What is not committed then is read again by the next owner. */
static void close_consumer(struct sb_kafka_input *in)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(in->rk);
    rd_kafka_error_t *ce = rd_kafka_consumer_close_queue(in->rk, q);
    uint64_t until = sb_now_ns() + CLOSE_NS;
    bool closed = false;

    if (ce) {
        sb_warn("kafka_input", "closing the consumer: %s", rd_kafka_error_string(ce));
        rd_kafka_error_destroy(ce);
    } else {
        while (!(closed = rd_kafka_consumer_closed(in->rk)) && sb_now_ns() < until) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
            if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                on_rebalance(in->rk, rd_kafka_event_error(ev),
                             rd_kafka_event_topic_partition_list(ev), in);
            if (ev)
                rd_kafka_event_destroy(ev);
        }
        if (!closed)
            sb_warn("kafka_input", "the group did not answer the leave within %d s",
                    (int)(CLOSE_NS / SB_NS_PER_S));
    }
    rd_kafka_queue_destroy(q);
    if (closed) {
        rd_kafka_destroy(in->rk);
        return;
    }
    /* Not closed: rd_kafka_destroy would close again without a bound, and librdkafka 2.0.2
     * aborts in the sticky assignor (assertion `assignor_state`) when destroyed with
     * RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE in the middle of a join. This runs at shutdown,
     * right before the process exits: leave the handle to the exit. Its threads call nothing of
     * ours but sb_kafka_log (callbacks run only from our polls, and there are none any more). */
    sb_warn("kafka_input", "leaving the consumer to the process exit");
}

void sb_kafka_input_free(struct sb_kafka_input *in)
{
    if (!in)
        return;
    in->closing = true;
    sb_kafka_waker_free(in->waker); /* before the handle goes: no more eventfd writes */
    if (in->rk) {
        check_marks(in);
        commit_dirty(in, true); /* the close below waits for commits in flight */
        finish_revoke(in);      /* closing: gives the partitions up at once */
        close_consumer(in);
    }
    for (size_t i = 0; i < in->n_marks; i++) {
        free(mark_at(in, i)->need);
        free(mark_at(in, i)->e);
    }
    free(in->marks);
    free(in->cur.need);
    free(in->cur.e);
    for (size_t i = 0; i < in->n_slots; i++)
        free(in->slots[i].topic);
    free(in->slots);
    if (in->revoke.parts)
        rd_kafka_topic_partition_list_destroy(in->revoke.parts);
    msgpack_sbuffer_destroy(&in->scratch);
    free(in);
}
