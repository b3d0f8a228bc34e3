/* registry.c: daemon-side producer registration, liveness and ring adoption (registry.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "ring/registry.h"
#include "ring/shm.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

struct reg_ring {
    struct sb_shm shm;
    struct sb_ring_reader rd;
    uint64_t death_tail; /* tail when a producer that may have written here was found dead */
    struct sb_registry *reg;
    size_t index;
};

struct reg_conn {
    int fd;
    int pidfd;
    pid_t pid;
    uint32_t id;   /* 0 until registered */
    size_t ring;   /* ring it writes to */
    size_t handed; /* ring it handed back (SIZE_MAX: none) */
    int dead;
    uint64_t dead_tail; /* tail of its ring when found dead: forget it once head passes */
};

struct sb_registry {
    struct sb_registry_config cfg;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    uid_t *uids;
    gid_t *gids;
    int lfd;
    struct reg_ring **rings;
    size_t nrings;
    struct reg_conn *conns;
    size_t nconns;
    uint32_t next_id;
};

void sb_registry_config_init(struct sb_registry_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->capacity = SEGBUS_RING_DEFAULT_CAPACITY;
    cfg->socket_mode = 0666;
    sb_ring_reader_opts_init(&cfg->reader);
}

static void mark_dead(struct sb_registry *reg, struct reg_conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    /* Any claim this producer still holds lies below the tails as they are now. */
    if (c->ring < reg->nrings) {
        struct reg_ring *rr = reg->rings[c->ring];
        rr->death_tail = sb_ring_tail(&rr->shm.ring);
        c->dead_tail = rr->death_tail;
    }
    if (c->handed < reg->nrings) {
        struct reg_ring *rr = reg->rings[c->handed];
        rr->death_tail = sb_ring_tail(&rr->shm.ring);
    }
}

/* Look at every producer's pidfd and socket without blocking. */
static void refresh_liveness(struct sb_registry *reg)
{
    for (size_t i = 0; i < reg->nconns; i++) {
        struct reg_conn *c = &reg->conns[i];
        struct pollfd p[2];
        int n = 0;

        if (c->dead || !c->id || c->fd < 0)
            continue;
        p[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
        if (c->pidfd >= 0)
            p[n++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
        if (poll(p, (nfds_t)n, 0) <= 0)
            continue;
        if ((p[0].revents & (POLLHUP | POLLERR)) || (n > 1 && p[1].revents)) {
            mark_dead(reg, c);
        } else if (p[0].revents & POLLIN) {
            char b;
            if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
                mark_dead(reg, c);
        }
    }
}

static int ring_alive(void *ctx, uint32_t producer, uint64_t pos)
{
    struct reg_ring *rr = ctx;
    struct sb_registry *reg = rr->reg;

    refresh_liveness(reg);
    if (producer == SB_RING_PRODUCER_UNKNOWN)
        return (int64_t)(rr->death_tail - pos) > 0 ? 0 : 1;
    for (size_t i = 0; i < reg->nconns; i++)
        if (reg->conns[i].id == producer)
            return !reg->conns[i].dead;
    /* An id we never gave (a previous daemon's, or garbage): it may be alive; the long
     * grace applies. */
    return 1;
}

static int add_ring(struct sb_registry *reg, struct sb_shm *shm, size_t *index)
{
    struct reg_ring *rr, **v;
    struct sb_ring_reader_opts o = reg->cfg.reader;
    int rc;

    v = realloc(reg->rings, (reg->nrings + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    reg->rings = v;
    rr = calloc(1, sizeof *rr);
    if (!rr)
        return -ENOMEM;
    rr->shm = *shm;
    rr->reg = reg;
    rr->index = reg->nrings;
    o.alive = ring_alive;
    o.alive_ctx = rr;
    rc = sb_ring_reader_init(&rr->rd, &rr->shm.ring, &o, (int32_t)getpid(), sb_ring_now_ns());
    if (rc < 0) {
        free(rr);
        return rc;
    }
    reg->rings[reg->nrings] = rr;
    *index = reg->nrings++;
    return 0;
}

int sb_registry_open(struct sb_registry **out, const struct sb_registry_config *cfg)
{
    struct sb_registry *reg;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct sb_shm shm;
    struct stat st;
    size_t idx;
    int rc;

    if (!out || !cfg || !cfg->socket_path || !*cfg->socket_path ||
        strlen(cfg->socket_path) >= sizeof sa.sun_path)
        return -EINVAL;
    reg = calloc(1, sizeof *reg);
    if (!reg)
        return -ENOMEM;
    reg->cfg = *cfg;
    reg->lfd = -1;
    memcpy(reg->path, cfg->socket_path, strlen(cfg->socket_path) + 1);
    reg->uids = cfg->nuids ? malloc(cfg->nuids * sizeof(uid_t)) : NULL;
    reg->gids = cfg->ngids ? malloc(cfg->ngids * sizeof(gid_t)) : NULL;
    if ((cfg->nuids && !reg->uids) || (cfg->ngids && !reg->gids)) {
        rc = -ENOMEM;
        goto fail;
    }
    if (cfg->nuids)
        memcpy(reg->uids, cfg->uids, cfg->nuids * sizeof(uid_t));
    if (cfg->ngids)
        memcpy(reg->gids, cfg->gids, cfg->ngids * sizeof(gid_t));
    reg->cfg.uids = reg->uids;
    reg->cfg.gids = reg->gids;
    /* Ids start at a random point so that a restarted daemon's ids do not collide with the
     * previous daemon's still found in adopted rings. */
    if (getrandom(&reg->next_id, sizeof reg->next_id, GRND_NONBLOCK) != sizeof reg->next_id)
        reg->next_id = (uint32_t)getpid() << 12;
    reg->next_id = (reg->next_id & 0x3fffffff) | 1;
    rc = sb_shm_create(&shm, cfg->capacity ? cfg->capacity : SEGBUS_RING_DEFAULT_CAPACITY);
    if (rc < 0)
        goto fail;
    rc = add_ring(reg, &shm, &idx);
    if (rc < 0) {
        sb_shm_close(&shm);
        goto fail;
    }
    reg->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (reg->lfd < 0) {
        rc = -errno;
        goto fail;
    }
    memcpy(sa.sun_path, reg->path, strlen(reg->path) + 1);
    if (lstat(reg->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        /* Replace a dead daemon's socket, never a live one. */
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        int live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            rc = -EADDRINUSE;
            goto fail;
        }
        unlink(reg->path);
    }
    if (bind(reg->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(reg->lfd, 128) != 0) {
        rc = -errno;
        goto fail;
    }
    chmod(reg->path, (mode_t)(cfg->socket_mode ? cfg->socket_mode : 0666));
    *out = reg;
    return 0;
fail:
    sb_registry_close(reg);
    return rc;
}

void sb_registry_close(struct sb_registry *reg)
{
    if (!reg)
        return;
    if (reg->lfd >= 0) {
        close(reg->lfd);
        unlink(reg->path);
    }
    for (size_t i = 0; i < reg->nconns; i++) {
        if (reg->conns[i].fd >= 0)
            close(reg->conns[i].fd);
        if (reg->conns[i].pidfd >= 0)
            close(reg->conns[i].pidfd);
    }
    for (size_t i = 0; i < reg->nrings; i++) {
        sb_ring_reader_free(&reg->rings[i]->rd);
        sb_shm_close(&reg->rings[i]->shm);
        free(reg->rings[i]);
    }
    free(reg->rings);
    free(reg->conns);
    free(reg->uids);
    free(reg->gids);
    free(reg);
}

int sb_registry_listen_fd(const struct sb_registry *reg)
{
    return reg->lfd;
}

int sb_registry_accept(struct sb_registry *reg)
{
    int n = 0;

    for (;;) {
        struct reg_conn *v;
        int fd = accept4(reg->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return n;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return n ? n : -errno;
        }
        v = realloc(reg->conns, (reg->nconns + 1) * sizeof *v);
        if (!v) {
            close(fd);
            return -ENOMEM;
        }
        reg->conns = v;
        reg->conns[reg->nconns++] = (struct reg_conn){.fd = fd, .pidfd = -1, .handed = SIZE_MAX};
        n++;
    }
}

static int allowed(const struct sb_registry *reg, uid_t uid, gid_t gid)
{
    if (uid == geteuid())
        return 1;
    for (size_t i = 0; i < reg->cfg.nuids; i++)
        if (reg->cfg.uids[i] == uid)
            return 1;
    for (size_t i = 0; i < reg->cfg.ngids; i++)
        if (reg->cfg.gids[i] == gid)
            return 1;
    return 0;
}

/* A connection ends: an unregistered one is forgotten; a registered producer is remembered
 * as dead until no record of its can be stuck any more (see prune()). */
static void drop_conn(struct sb_registry *reg, size_t i)
{
    struct reg_conn *c = &reg->conns[i];

    if (c->fd >= 0)
        close(c->fd);
    if (c->pidfd >= 0)
        close(c->pidfd);
    c->fd = c->pidfd = -1;
    if (!c->id) {
        reg->conns[i] = reg->conns[--reg->nconns];
        return;
    }
    mark_dead(reg, c);
}

static void prune(struct sb_registry *reg)
{
    for (size_t i = 0; i < reg->nconns;) {
        struct reg_conn *c = &reg->conns[i];
        if (c->dead && c->fd < 0 && c->ring < reg->nrings &&
            (int64_t)(reg->rings[c->ring]->rd.head - c->dead_tail) >= 0)
            reg->conns[i] = reg->conns[--reg->nconns];
        else
            i++;
    }
}

/* Adopt a handed-back ring unless we read it already. Returns its index or -errno. */
static long adopt(struct sb_registry *reg, int fd)
{
    struct sb_shm shm;
    size_t idx;
    int rc = sb_shm_map_fd(&shm, fd, 0);

    if (rc < 0) {
        close(fd);
        return rc;
    }
    for (size_t i = 0; i < reg->nrings; i++)
        if (memcmp(reg->rings[i]->shm.id, shm.id, sizeof shm.id) == 0) {
            sb_shm_close(&shm);
            return (long)i;
        }
    rc = add_ring(reg, &shm, &idx);
    if (rc < 0) {
        sb_shm_close(&shm);
        return rc;
    }
    return (long)idx;
}

static int do_hello(struct sb_registry *reg, size_t i)
{
    struct reg_conn *c = &reg->conns[i];
    struct sb_reg_hello hello;
    struct sb_reg_reply reply = {.magic = SB_REG_MAGIC, .version = SB_REG_VERSION};
    struct ucred cred;
    socklen_t cl = sizeof cred;
    struct reg_ring *primary = reg->rings[0];
    int fd, rc;

    rc = sb_reg_recv(c->fd, &hello, sizeof hello, &fd);
    if (rc == -EAGAIN)
        return 0;
    if (rc < 0 || hello.magic != SB_REG_MAGIC || hello.version != SB_REG_VERSION) {
        if (fd >= 0)
            close(fd);
        reply.status = -EPROTO;
        goto refuse;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
        !allowed(reg, cred.uid, cred.gid)) {
        if (fd >= 0)
            close(fd);
        reply.status = -SEGBUS_EDENIED;
        goto refuse;
    }
    if ((hello.flags & SB_REG_HANDBACK) && fd >= 0) {
        long idx = adopt(reg, fd);
        c->handed = idx >= 0 ? (size_t)idx : SIZE_MAX;
    } else if (fd >= 0) {
        close(fd);
    }
    c->pid = cred.pid;
    /* A pidfd straight from the socket has no pid-reuse window; older kernels: pidfd_open. */
    {
        int pfd = -1;
        socklen_t pl = sizeof pfd;
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &pfd, &pl) != 0)
            pfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
        c->pidfd = pfd;
    }
    c->id = reg->next_id++;
    if (reg->next_id == 0 || reg->next_id > 0x7fffffff)
        reg->next_id = 1;
    c->ring = 0;
    reply.producer_id = c->id;
    reply.capacity = primary->shm.ring.capacity;
    memcpy(reply.ring_id, primary->shm.id, sizeof reply.ring_id);
    rc = sb_reg_send(c->fd, &reply, sizeof reply, primary->shm.fd);
    if (rc < 0) {
        drop_conn(reg, i);
        return rc;
    }
    return 1;
refuse:
    sb_reg_send(c->fd, &reply, sizeof reply, -1);
    drop_conn(reg, i);
    return 0;
}

int sb_registry_handle(struct sb_registry *reg, int fd)
{
    if (fd < 0)
        return -ENOENT;
    for (size_t i = 0; i < reg->nconns; i++) {
        struct reg_conn *c = &reg->conns[i];
        if (c->fd == fd) {
            char b;
            if (!c->id)
                return do_hello(reg, i) < 0 ? -EIO : 0;
            /* A registered producer only ever sends more hand-backs (older rings it still
             * maps and that hold unread records); anything else, or EOF, ends it. */
            (void)b;
            for (;;) {
                struct sb_reg_hello more;
                int hfd = -1, rc = sb_reg_recv(c->fd, &more, sizeof more, &hfd);
                if (rc == -EAGAIN)
                    return 0;
                if (rc == 0 && more.magic == SB_REG_MAGIC && more.version == SB_REG_VERSION &&
                    (more.flags & SB_REG_HANDBACK) && hfd >= 0) {
                    adopt(reg, hfd);
                    continue;
                }
                if (hfd >= 0)
                    close(hfd);
                drop_conn(reg, i);
                return 0;
            }
        }
        if (c->pidfd == fd) {
            mark_dead(reg, c);
            close(c->pidfd);
            c->pidfd = -1;
            return 0;
        }
    }
    return -ENOENT;
}

size_t sb_registry_watch_fds(const struct sb_registry *reg, int *fds, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < reg->nconns; i++) {
        if (reg->conns[i].fd < 0)
            continue;
        if (n < max)
            fds[n] = reg->conns[i].fd;
        n++;
        if (reg->conns[i].pidfd >= 0 && !reg->conns[i].dead) {
            if (n < max)
                fds[n] = reg->conns[i].pidfd;
            n++;
        }
    }
    return n;
}

int sb_registry_poll(struct sb_registry *reg, int timeout_ms)
{
    size_t cap = 1 + 2 * reg->nconns, n;
    struct pollfd *p = calloc(cap, sizeof *p);
    int *fds = calloc(cap, sizeof *fds);
    int rc, handled = 0;

    if (!p || !fds) {
        free(p);
        free(fds);
        return -ENOMEM;
    }
    n = sb_registry_watch_fds(reg, fds, cap - 1);
    p[0] = (struct pollfd){.fd = reg->lfd, .events = POLLIN};
    for (size_t i = 0; i < n; i++)
        p[i + 1] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    rc = poll(p, (nfds_t)(n + 1), timeout_ms);
    if (rc < 0) {
        rc = errno == EINTR ? 0 : -errno;
        goto out;
    }
    for (size_t i = 1; i <= n; i++)
        if (p[i].revents) {
            sb_registry_handle(reg, p[i].fd);
            handled++;
        }
    if (p[0].revents & POLLIN) {
        int a = sb_registry_accept(reg);
        /* Answer hellos that are already there without another round. */
        if (a > 0)
            for (size_t i = reg->nconns - (size_t)a; i < reg->nconns; i++)
                if (!reg->conns[i].id) {
                    size_t before = reg->nconns;
                    do_hello(reg, i);
                    if (reg->nconns < before)
                        i--; /* dropped: the last one moved here */
                }
        handled += a > 0 ? a : 0;
    }
    rc = handled;
out:
    free(p);
    free(fds);
    return rc;
}

size_t sb_registry_nrings(const struct sb_registry *reg)
{
    return reg->nrings;
}

struct sb_ring_reader *sb_registry_reader(struct sb_registry *reg, size_t i)
{
    return i < reg->nrings ? &reg->rings[i]->rd : NULL;
}

long sb_registry_drain(struct sb_registry *reg, sb_registry_record_fn fn, void *ctx, int64_t now_ns)
{
    long total = 0;

    for (size_t r = 0; r < reg->nrings; r++) {
        struct sb_ring_reader *rd = &reg->rings[r]->rd;
        for (int rounds = 0; rounds < 64; rounds++) {
            int n = sb_ring_read(rd, now_ns), stop = 0;
            for (int i = 0; i < n && !stop; i++)
                stop = fn ? fn(ctx, r, &rd->recs[i]) : 0;
            if (!reg->cfg.hold_release)
                sb_ring_reader_release(rd);
            total += n;
            if (n == 0 || stop)
                break;
        }
    }
    prune(reg);
    return total;
}

const uint8_t *sb_registry_ring_id(const struct sb_registry *reg, size_t i)
{
    return i < reg->nrings ? reg->rings[i]->shm.id : NULL;
}

void sb_registry_release(struct sb_registry *reg, size_t ring, uint64_t pos)
{
    struct sb_ring_reader *rd;
    uint64_t read_pos;

    if (ring >= reg->nrings)
        return;
    rd = &reg->rings[ring]->rd;
    /* Only what was handed out may be released, and positions never go back. */
    if ((int64_t)(pos - rd->head) <= 0 || (int64_t)(rd->read_pos - pos) < 0)
        return;
    /* The reader releases everything it handed out: let it see pos as the end for a moment
     * (private state only; the ring's own release records the intent first, so an adopter
     * after a crash here finishes it). */
    read_pos = rd->read_pos;
    rd->read_pos = pos;
    sb_ring_reader_release(rd);
    rd->read_pos = read_pos;
    if (rd->o.track_durable)
        sb_ring_reader_set_durable(rd, pos);
}

size_t sb_registry_live_producers(const struct sb_registry *reg)
{
    size_t n = 0;

    for (size_t i = 0; i < reg->nconns; i++)
        n += reg->conns[i].id && !reg->conns[i].dead && reg->conns[i].fd >= 0;
    return n;
}
