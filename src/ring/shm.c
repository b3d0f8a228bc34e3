/* shm.c: sealed memfd rings (create, validate, map) and the registration protocol messages. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ring/shm.h"

#define REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)
#define FORBIDDEN_SEALS (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)

int sb_shm_create(struct sb_shm *s, uint64_t capacity)
{
    size_t size = sb_ring_map_size(capacity);
    int rc;

    memset(s, 0, sizeof *s);
    s->fd = -1;
    if (capacity < SEGBUS_RING_MIN_CAPACITY || capacity > SEGBUS_RING_MAX_CAPACITY ||
        (capacity & (capacity - 1)))
        return -EINVAL;
    s->fd = memfd_create("segbus-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (s->fd < 0)
        return -errno;
    if (ftruncate(s->fd, (off_t)size) != 0 ||
        fcntl(s->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = -errno;
        goto fail;
    }
    s->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->mem == MAP_FAILED) {
        s->mem = NULL;
        rc = -errno;
        goto fail;
    }
    s->size = size;
    if (getrandom(s->id, sizeof s->id, 0) != (ssize_t)sizeof s->id) {
        /* Only uniqueness matters, not secrecy: fall back to time and address. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(s->id, &ts, sizeof ts < 16 ? sizeof ts : 16);
        s->id[15] ^= (uint8_t)(uintptr_t)s->mem;
    }
    {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rc = sb_ring_format(s->mem, capacity, s->id, (int32_t)getpid(),
                            (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    }
    if (rc == 0)
        rc = sb_ring_attach(&s->ring, s->mem, size);
    if (rc == 0)
        return 0;
fail:
    sb_shm_close(s);
    return rc;
}

int sb_shm_map_fd(struct sb_shm *s, int fd, uint64_t expect_capacity)
{
    struct stat st;
    int seals, rc;
    uint64_t cap;
    void *mem;

    memset(s, 0, sizeof *s);
    s->fd = -1;
    if (fd < 0)
        return -EINVAL;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)SB_RING_CTRL_SIZE)
        return -EPROTO;
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS || (seals & FORBIDDEN_SEALS))
        return -EPROTO; /* not a memfd, or truncatable (SIGBUS), or not writable */
    cap = (uint64_t)st.st_size - SB_RING_CTRL_SIZE;
    if (cap < SEGBUS_RING_MIN_CAPACITY || cap > SEGBUS_RING_MAX_CAPACITY || (cap & (cap - 1)) ||
        (expect_capacity && cap != expect_capacity))
        return -EPROTO;
    mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED)
        return errno == EACCES || errno == EPERM ? -EPROTO : -errno;
    rc = sb_ring_attach(&s->ring, mem, (size_t)st.st_size);
    if (rc < 0) {
        munmap(mem, (size_t)st.st_size);
        return rc;
    }
    s->fd = fd;
    s->mem = mem;
    s->size = (size_t)st.st_size;
    memcpy(s->id, s->ring.ctrl->id.ring_id, sizeof s->id);
    return 0;
}

void sb_shm_close(struct sb_shm *s)
{
    if (!s)
        return;
    if (s->mem)
        munmap(s->mem, s->size);
    if (s->fd >= 0)
        close(s->fd);
    s->mem = NULL;
    s->fd = -1;
}

int sb_reg_send(int sock, const void *msg, size_t len, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    if (fd >= 0) {
        struct cmsghdr *c;
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof u.buf;
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EPROTO;
}

int sb_reg_recv(int sock, void *msg, size_t len, int *fd)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = msg, .iov_len = len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    int got = -1, bad = 0;

    *fd = -1;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    /* Collect every fd the peer sent, so that none leaks, and accept at most one. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
            if (got < 0) {
                got = f;
            } else {
                close(f);
                bad = 1;
            }
        }
    }
    if (n == 0 && got < 0)
        return -ECONNRESET;
    if (bad || (size_t)n != len || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        if (got >= 0)
            close(got);
        return -EPROTO;
    }
    *fd = got;
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sb_reg_connect(const char *path, int timeout_ms, int handback_fd, int *conn,
                   struct sb_reg_reply *reply, int *ring_fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct sb_reg_hello hello = {.magic = SB_REG_MAGIC, .version = SB_REG_VERSION};
    int64_t deadline;
    int s, rc, fd = -1;

    *conn = -1;
    *ring_fd = -1;
    if (!path || !*path || strlen(path) >= sizeof sa.sun_path)
        return -EINVAL;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        rc = errno == ENOENT || errno == ECONNREFUSED ? -SEGBUS_ENODAEMON : -errno;
        goto fail;
    }
    hello.flags = handback_fd >= 0 ? SB_REG_HANDBACK : 0;
    hello.pid = (int32_t)getpid();
    rc = sb_reg_send(s, &hello, sizeof hello, handback_fd);
    if (rc < 0)
        goto fail;
    deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        int64_t left = deadline == INT64_MAX ? -1 : deadline - mono_ms();
        if (left < 0 && deadline != INT64_MAX) {
            rc = -SEGBUS_ETIMEDOUT;
            goto fail;
        }
        rc = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (rc < 0 && errno != EINTR) {
            rc = -errno;
            goto fail;
        }
        if (rc > 0)
            break;
    }
    rc = sb_reg_recv(s, reply, sizeof *reply, &fd);
    if (rc == -ECONNRESET)
        rc = -SEGBUS_ENODAEMON;
    if (rc < 0)
        goto fail;
    if (reply->magic != SB_REG_MAGIC || reply->version != SB_REG_VERSION) {
        rc = -EPROTO;
        goto fail;
    }
    if (reply->status < 0) {
        rc = reply->status;
        goto fail;
    }
    if (fd < 0 || reply->producer_id == 0) {
        rc = -EPROTO;
        goto fail;
    }
    *conn = s;
    *ring_fd = fd;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    close(s);
    return rc;
}
