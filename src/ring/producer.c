/* producer.c: the public producer handle (segbus_producer_*): registration, the write fast
 * path, full-ring policies, flush, fork and daemon-restart handling, standalone rings. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ring/ring.h"
#include "ring/shm.h"

#define LOAD(p, o) __atomic_load_n((p), __ATOMIC_##o)
#define STORE(p, v, o) __atomic_store_n((p), (v), __ATOMIC_##o)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define MAX_RINGS 64         /* rings a handle has written to (old ones stay mapped) */
#define CHECK_EVERY 4096     /* writes between looks at the daemon's liveness */
#define RETRY_NS 100000000ll /* at most one reconnect attempt per 100 ms */
#define STALE_RETRIES 8      /* claims repaired under a preempted writer, tried again */

struct prod_ring {
    struct sb_shm shm;
};

struct segbus_producer {
    struct prod_ring *cur; /* atomic: the ring writes go to */
    uint32_t id;           /* atomic: our producer id on cur (0 when standalone) */
    unsigned fork_gen;     /* atomic: sb_fork_gen when we registered */
    int policy;            /* atomic */
    int block_ms;          /* atomic */
    uint32_t countdown;    /* approximate under threads: only paces liveness checks */
    /* slow path, under lock */
    pthread_mutex_t lock;
    char path[108];
    segbus_producer_options_t opts;
    int conn;       /* registration socket, -1 when standalone */
    int registered; /* atomic */
    int64_t last_try_ns;
    struct prod_ring *rings[MAX_RINGS];
    size_t nrings;
    /* counters (relaxed; written/bytes are approximate with several writing threads) */
    uint64_t written, written_bytes, reregs;
    uint64_t dropped[SEGBUS_DROP_REASONS];
    struct segbus_producer *next_live, *prev_live;
};

/* fork(): the child handler bumps the generation; a handle whose generation is older
 * re-registers on its next write. The list of live handles lets the handler reset their
 * locks, which a thread that does not exist in the child may have held. */
static unsigned sb_fork_gen;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct segbus_producer *live_head;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&live_lock);
    for (struct segbus_producer *p = live_head; p; p = p->next_live)
        pthread_mutex_lock(&p->lock);
}

static void atfork_parent(void)
{
    for (struct segbus_producer *p = live_head; p; p = p->next_live)
        pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&live_lock);
}

static void atfork_child(void)
{
    for (struct segbus_producer *p = live_head; p; p = p->next_live)
        pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&live_lock);
    __atomic_add_fetch(&sb_fork_gen, 1, __ATOMIC_RELEASE);
}

static void atfork_register(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static int64_t now_ns(void)
{
    return sb_ring_now_ns();
}

static void count_drop(struct segbus_producer *p, struct prod_ring *pr, int reason)
{
    __atomic_fetch_add(&p->dropped[reason], 1, __ATOMIC_RELAXED);
    sb_ring_count_drop(&pr->shm.ring, reason);
}

void segbus_producer_options_init(segbus_producer_options_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->full_policy = SEGBUS_FULL_ERROR;
    o->block_timeout_ms = 1000;
    o->connect_timeout_ms = 1000;
}

const char *segbus_drop_reason_name(segbus_drop_reason_t reason)
{
    static const char *const names[SEGBUS_DROP_REASONS] = {
        "full_error", "full_drop", "full_timeout", "stale", "repaired", "corrupt"};
    return (unsigned)reason < SEGBUS_DROP_REASONS ? names[reason] : "unknown";
}

static int policy_ok(int policy, int block_ms)
{
    return (policy == SEGBUS_FULL_ERROR || policy == SEGBUS_FULL_BLOCK ||
            policy == SEGBUS_FULL_DROP) &&
           block_ms >= -1;
}

/* Start using ring pr (already mapped): remember it, make it current. Under lock. */
static int switch_to(struct segbus_producer *p, struct prod_ring *pr)
{
    if (p->nrings == MAX_RINGS)
        return -ENOSPC;
    p->rings[p->nrings++] = pr;
    /* Release: a writer that loads cur sees the mapping and geometry we filled in. */
    STORE(&p->cur, pr, RELEASE);
    return 0;
}

static struct prod_ring *find_ring(struct segbus_producer *p, const uint8_t id[16])
{
    for (size_t i = 0; i < p->nrings; i++)
        if (memcmp(p->rings[i]->shm.id, id, 16) == 0)
            return p->rings[i];
    return NULL;
}

/* Register (again). handback: hand our current ring to the daemon (it was left without a
 * reader, or it is our standalone ring). Under lock. */
static int do_register(struct segbus_producer *p, int handback)
{
    struct sb_reg_reply reply;
    struct prod_ring *pr, *cur = LOAD(&p->cur, RELAXED);
    int conn, fd, rc;

    rc = sb_reg_connect(p->path, p->opts.connect_timeout_ms, handback && cur ? cur->shm.fd : -1,
                        &conn, &reply, &fd);
    if (rc < 0)
        return rc;
    pr = find_ring(p, reply.ring_id);
    if (pr) {
        close(fd); /* a ring we map already (a fork child, or the same daemon) */
    } else {
        pr = calloc(1, sizeof *pr);
        if (!pr) {
            rc = -ENOMEM;
        } else {
            rc = sb_shm_map_fd(&pr->shm, fd, reply.capacity);
            if (rc == 0 && memcmp(pr->shm.id, reply.ring_id, 16) != 0) {
                sb_shm_close(&pr->shm);
                fd = -1;
                rc = -EPROTO;
            }
        }
        if (rc < 0) {
            free(pr);
            if (fd >= 0)
                close(fd);
            close(conn);
            return rc;
        }
    }
    if (pr != cur && find_ring(p, reply.ring_id) == pr) {
        STORE(&p->cur, pr, RELEASE);
    } else if (pr != cur && (rc = switch_to(p, pr)) < 0) {
        sb_shm_close(&pr->shm);
        free(pr);
        close(conn);
        return rc;
    }
    if (handback) {
        /* Older rings we still map whose reader died before draining them: hand them over
         * too, or their records would die with our mapping. */
        struct sb_reg_hello more = {.magic = SB_REG_MAGIC,
                                    .version = SB_REG_VERSION,
                                    .flags = SB_REG_HANDBACK,
                                    .pid = (int32_t)getpid()};
        for (size_t i = 0; i < p->nrings; i++) {
            struct sb_ring *r = &p->rings[i]->shm.ring;
            if (p->rings[i] != cur && p->rings[i] != pr && sb_ring_head(r) != sb_ring_tail(r))
                sb_reg_send(conn, &more, sizeof more, p->rings[i]->shm.fd);
        }
    }
    if (p->conn >= 0)
        close(p->conn);
    p->conn = conn;
    STORE(&p->id, reply.producer_id, RELAXED);
    STORE(&p->registered, 1, RELEASE);
    return 0;
}

/* Is the daemon gone? EOF (or an error) on the registration socket. */
static int daemon_gone(struct segbus_producer *p)
{
    char b;
    ssize_t n;

    if (p->conn < 0)
        return 1;
    n = recv(p->conn, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Slow path: after fork, on a full ring, every CHECK_EVERY writes, on flush. Re-registers
 * when forked, hands the ring over when the daemon died or we run standalone. Rate limited
 * unless `force`. */
static void maintain(struct segbus_producer *p, int force)
{
    unsigned gen = LOAD(&sb_fork_gen, ACQUIRE);
    int64_t now = now_ns();

    pthread_mutex_lock(&p->lock);
    if (LOAD(&p->fork_gen, RELAXED) != gen) {
        /* A fork child: the socket is the parent's; get our own id (same ring). */
        if (p->conn >= 0)
            close(p->conn);
        p->conn = -1;
        STORE(&p->fork_gen, gen, RELAXED);
        if (LOAD(&p->registered, RELAXED)) {
            if (do_register(p, 0) == 0)
                p->reregs++;
            else
                STORE(&p->registered, 0, RELAXED); /* keep writing; retry later */
        }
        p->last_try_ns = now;
    } else if (force || now - p->last_try_ns >= RETRY_NS) {
        p->last_try_ns = now;
        if (!LOAD(&p->registered, RELAXED) || daemon_gone(p)) {
            /* No reader for our ring: hand it to whoever listens now. A fork child that
             * could not register yet still shares the daemon's ring: nothing to hand back
             * unless the daemon is gone. */
            if (do_register(p, 1) == 0)
                p->reregs++;
            else if (p->conn >= 0 && daemon_gone(p)) {
                close(p->conn);
                p->conn = -1;
                STORE(&p->registered, 0, RELAXED);
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
}

int segbus_producer_open(segbus_producer_t **out, const char *socket_path,
                         const segbus_producer_options_t *opts)
{
    struct segbus_producer *p;
    int rc;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!socket_path || !*socket_path || strlen(socket_path) >= sizeof p->path)
        return -EINVAL;
    p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    segbus_producer_options_init(&p->opts);
    if (opts) {
        if (opts->size < sizeof *opts) {
            free(p);
            return -EINVAL;
        }
        p->opts = *opts;
    }
    if (!policy_ok(p->opts.full_policy, p->opts.block_timeout_ms) ||
        (p->opts.standalone_capacity &&
         (p->opts.standalone_capacity < SEGBUS_RING_MIN_CAPACITY ||
          p->opts.standalone_capacity > SEGBUS_RING_MAX_CAPACITY ||
          (p->opts.standalone_capacity & (p->opts.standalone_capacity - 1))))) {
        free(p);
        return -EINVAL;
    }
    memcpy(p->path, socket_path, strlen(socket_path) + 1);
    p->conn = -1;
    p->policy = p->opts.full_policy;
    p->block_ms = p->opts.block_timeout_ms;
    p->countdown = CHECK_EVERY;
    pthread_once(&atfork_once, atfork_register);
    pthread_mutex_init(&p->lock, NULL);
    p->fork_gen = LOAD(&sb_fork_gen, ACQUIRE);
    rc = do_register(p, 0);
    if (rc == -SEGBUS_ENODAEMON && p->opts.standalone_capacity) {
        struct prod_ring *pr = calloc(1, sizeof *pr);
        rc = pr ? sb_shm_create(&pr->shm, p->opts.standalone_capacity) : -ENOMEM;
        if (rc == 0) {
            switch_to(p, pr);
            p->last_try_ns = now_ns();
        } else {
            free(pr);
        }
    }
    if (rc < 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return rc;
    }
    pthread_mutex_lock(&live_lock);
    p->next_live = live_head;
    if (live_head)
        live_head->prev_live = p;
    live_head = p;
    pthread_mutex_unlock(&live_lock);
    *out = p;
    return 0;
}

/* The ring is full: apply the policy. Returns 0 to retry the write, or the final result. */
static int on_full(struct segbus_producer *p, struct prod_ring *pr, int64_t *deadline)
{
    int policy = LOAD(&p->policy, RELAXED);

    maintain(p, 0); /* a full ring may mean that its reader died */
    if (LOAD(&p->cur, ACQUIRE) != pr)
        return 0; /* we moved to another ring: retry there */
    if (policy == SEGBUS_FULL_ERROR) {
        count_drop(p, pr, SEGBUS_DROP_FULL_ERROR);
        return -EAGAIN;
    }
    if (policy == SEGBUS_FULL_DROP) {
        count_drop(p, pr, SEGBUS_DROP_FULL_DROP);
        return SEGBUS_DROPPED;
    }
    if (*deadline == 0) {
        int ms = LOAD(&p->block_ms, RELAXED);
        *deadline = ms < 0 ? INT64_MAX : now_ns() + (int64_t)ms * 1000000;
    }
    if (now_ns() >= *deadline) {
        count_drop(p, pr, SEGBUS_DROP_FULL_TIMEOUT);
        return -EAGAIN;
    }
    /* The reader frees room in batches: sleep a little rather than spin on the tail line. */
    {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static inline void after_write(struct segbus_producer *p, size_t len)
{
    STORE(&p->written, LOAD(&p->written, RELAXED) + 1, RELAXED);
    STORE(&p->written_bytes, LOAD(&p->written_bytes, RELAXED) + len, RELAXED);
    uint32_t c = LOAD(&p->countdown, RELAXED);
    if (UNLIKELY(c <= 1)) {
        STORE(&p->countdown, CHECK_EVERY, RELAXED);
        maintain(p, 0);
    } else {
        STORE(&p->countdown, c - 1, RELAXED);
    }
}

int segbus_producer_write(segbus_producer_t *p, int32_t type, const void *data, size_t len)
{
    int64_t deadline = 0;
    int stale_retries = 0;

    if (UNLIKELY(!p || (!data && len) || type < 1))
        return -EINVAL;
    if (UNLIKELY(LOAD(&p->fork_gen, RELAXED) != LOAD(&sb_fork_gen, RELAXED)))
        maintain(p, 1);
    for (;;) {
        /* Acquire: pairs with switch_to()'s release of a new ring. */
        struct prod_ring *pr = LOAD(&p->cur, ACQUIRE);
        int rc = sb_ring_write(&pr->shm.ring, LOAD(&p->id, RELAXED), type, data, len);
        if (LIKELY(rc >= 0)) {
            if (rc == 1)
                sb_ring_wake(&pr->shm.ring);
            after_write(p, len);
            return 0;
        }
        /* Repaired while we were preempted: none of our bytes were committed, and the caller's
         * are still here, so writing again delivers the record once. */
        if (rc == -ESTALE && stale_retries++ < STALE_RETRIES)
            continue;
        if (rc != -EAGAIN)
            return rc;
        rc = on_full(p, pr, &deadline);
        if (rc != 0)
            return rc;
    }
}

int segbus_producer_claim(segbus_producer_t *p, size_t len, int32_t type, segbus_claim_t *claim)
{
    int64_t deadline = 0;
    int stale_retries = 0;

    if (!p || !claim || type < 1)
        return -EINVAL;
    if (UNLIKELY(LOAD(&p->fork_gen, RELAXED) != LOAD(&sb_fork_gen, RELAXED)))
        maintain(p, 1);
    for (;;) {
        struct prod_ring *pr = LOAD(&p->cur, ACQUIRE);
        struct sb_ring_slot s;
        uint32_t id = LOAD(&p->id, RELAXED);
        int rc = sb_ring_claim(&pr->shm.ring, id, type, len, &s);
        if (rc == 0) {
            claim->data = s.data;
            claim->len = s.len;
            claim->pos = s.pos;
            claim->ring = pr;
            claim->type = type;
            claim->gen = id;
            return 0;
        }
        if (rc == -ESTALE && stale_retries++ < STALE_RETRIES)
            continue; /* repaired before we wrote anything: claim again */
        if (rc != -EAGAIN)
            return rc;
        rc = on_full(p, pr, &deadline);
        if (rc == SEGBUS_DROPPED)
            return -EAGAIN; /* nothing to hand out; counted as a drop */
        if (rc != 0)
            return rc;
    }
}

static int finish_claim(segbus_producer_t *p, segbus_claim_t *claim, size_t len, int abort)
{
    struct prod_ring *pr;
    struct sb_ring_slot s;
    int rc;

    if (!p || !claim || !claim->ring || claim->type < 1 || len > claim->len)
        return -EINVAL;
    pr = claim->ring;
    s.pos = claim->pos;
    s.data = claim->data;
    s.len = (uint32_t)claim->len;
    s.type = claim->type;
    s.producer = claim->gen;
    rc =
        abort ? sb_ring_abort(&pr->shm.ring, &s) : sb_ring_commit(&pr->shm.ring, &s, (uint32_t)len);
    claim->type = 0;
    claim->ring = NULL;
    if (rc == -ESTALE) {
        __atomic_fetch_add(&p->dropped[SEGBUS_DROP_STALE], 1, __ATOMIC_RELAXED);
        return rc;
    }
    if (rc < 0)
        return rc;
    if (rc == 1)
        sb_ring_wake(&pr->shm.ring);
    if (!abort)
        after_write(p, len);
    return 0;
}

int segbus_producer_commit(segbus_producer_t *p, segbus_claim_t *claim, size_t len)
{
    return finish_claim(p, claim, len, 0);
}

int segbus_producer_abort(segbus_producer_t *p, segbus_claim_t *claim)
{
    return finish_claim(p, claim, claim ? claim->len : 0, 1);
}

int segbus_producer_flush(segbus_producer_t *p, int timeout_ms)
{
    uint64_t targets[MAX_RINGS];
    struct prod_ring *rings[MAX_RINGS];
    size_t n;
    int64_t deadline;
    long sleep_ns = 20000;

    if (!p || timeout_ms < -1)
        return -EINVAL;
    deadline = timeout_ms < 0 ? INT64_MAX : now_ns() + (int64_t)timeout_ms * 1000000;
    maintain(p, 1);
    pthread_mutex_lock(&p->lock);
    n = p->nrings;
    for (size_t i = 0; i < n; i++) {
        rings[i] = p->rings[i];
        /* Everything we committed before the call lies below the tail as it is now. */
        targets[i] = sb_ring_tail(&rings[i]->shm.ring);
    }
    pthread_mutex_unlock(&p->lock);
    for (;;) {
        int done = 1;
        for (size_t i = 0; i < n && done; i++)
            done = (int64_t)(sb_ring_durable_head(&rings[i]->shm.ring) - targets[i]) >= 0;
        if (done)
            return 0;
        if (now_ns() >= deadline)
            return LOAD(&p->registered, RELAXED) ? -SEGBUS_ETIMEDOUT : -SEGBUS_ENODAEMON;
        {
            struct timespec ts = {0, sleep_ns};
            nanosleep(&ts, NULL);
            if (sleep_ns < 1000000)
                sleep_ns *= 2;
        }
        if (!LOAD(&p->registered, RELAXED))
            maintain(p, 0);
    }
}

int segbus_producer_set_full_policy(segbus_producer_t *p, int policy, int block_timeout_ms)
{
    if (!p || !policy_ok(policy, block_timeout_ms))
        return -EINVAL;
    STORE(&p->block_ms, block_timeout_ms, RELAXED);
    STORE(&p->policy, policy, RELAXED);
    return 0;
}

size_t segbus_producer_max_payload(const segbus_producer_t *p)
{
    return p ? LOAD(&p->cur, ACQUIRE)->shm.ring.max_payload : 0;
}

int segbus_producer_get_stats(const segbus_producer_t *p, segbus_producer_stats_t *st)
{
    struct prod_ring *pr;

    if (!p || !st)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    pr = LOAD(&p->cur, ACQUIRE);
    st->producer_id = LOAD(&p->id, RELAXED);
    st->registered = LOAD(&p->registered, RELAXED);
    st->capacity = pr->shm.ring.capacity;
    st->written = LOAD(&p->written, RELAXED);
    st->written_bytes = LOAD(&p->written_bytes, RELAXED);
    st->reregistrations = LOAD(&p->reregs, RELAXED);
    for (int i = 0; i < SEGBUS_DROP_REASONS; i++) {
        st->dropped[i] = LOAD(&p->dropped[i], RELAXED);
        st->ring_dropped[i] = LOAD(&pr->shm.ring.ctrl->drops[i], RELAXED);
    }
    st->ring_dropped[SEGBUS_DROP_REPAIRED] =
        LOAD(&pr->shm.ring.ctrl->rcount[SB_RING_R_REPAIRED_DEAD], RELAXED) +
        LOAD(&pr->shm.ring.ctrl->rcount[SB_RING_R_REPAIRED_GRACE], RELAXED) +
        LOAD(&pr->shm.ring.ctrl->rcount[SB_RING_R_ZERO_GAPS], RELAXED);
    st->ring_dropped[SEGBUS_DROP_CORRUPT] =
        LOAD(&pr->shm.ring.ctrl->rcount[SB_RING_R_CORRUPT], RELAXED);
    return 0;
}

void segbus_producer_close(segbus_producer_t *p)
{
    if (!p)
        return;
    /* If the daemon went away, hand our ring to a new one once, so that what we committed
     * is not lost with the last mapping of the memfd. */
    if (LOAD(&p->fork_gen, RELAXED) == LOAD(&sb_fork_gen, RELAXED) &&
        (!LOAD(&p->registered, RELAXED) || daemon_gone(p)))
        maintain(p, 1);
    pthread_mutex_lock(&live_lock);
    if (p->prev_live)
        p->prev_live->next_live = p->next_live;
    else
        live_head = p->next_live;
    if (p->next_live)
        p->next_live->prev_live = p->prev_live;
    pthread_mutex_unlock(&live_lock);
    if (p->conn >= 0)
        close(p->conn);
    for (size_t i = 0; i < p->nrings; i++) {
        sb_shm_close(&p->rings[i]->shm);
        free(p->rings[i]);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}
