// producer_test.cc: the public producer handle against a real registry over a real UNIX
// socket: registration, allow-list, hostile fds both ways, policies, flush, standalone rings,
// fork, daemon restart.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

#include "daemon_fixture.h"

namespace
{

segbus_producer_t *open_ok(const std::string &path, segbus_producer_options_t *o = nullptr)
{
    segbus_producer_t *p = nullptr;
    int rc = segbus_producer_open(&p, path.c_str(), o);
    EXPECT_EQ(0, rc) << segbus_strerror(rc);
    return p;
}

TEST(Producer, OpenErrors)
{
    segbus_producer_t *p = nullptr;
    std::string path = temp_socket_path("none");
    EXPECT_EQ(-EINVAL, segbus_producer_open(nullptr, path.c_str(), nullptr));
    EXPECT_EQ(-EINVAL, segbus_producer_open(&p, nullptr, nullptr));
    EXPECT_EQ(-EINVAL, segbus_producer_open(&p, std::string(200, 'x').c_str(), nullptr));
    EXPECT_EQ(-SEGBUS_ENODAEMON, segbus_producer_open(&p, path.c_str(), nullptr));
    segbus_producer_options_t o;
    segbus_producer_options_init(&o);
    o.full_policy = 7;
    EXPECT_EQ(-EINVAL, segbus_producer_open(&p, path.c_str(), &o));
    segbus_producer_options_init(&o);
    o.standalone_capacity = 100000; // not a power of two
    EXPECT_EQ(-EINVAL, segbus_producer_open(&p, path.c_str(), &o));
    EXPECT_EQ(nullptr, p);
    segbus_producer_close(nullptr);
    EXPECT_EQ(-EINVAL, segbus_producer_write(nullptr, 1, "x", 1));
    EXPECT_EQ(-EINVAL, segbus_producer_flush(nullptr, 0));
    EXPECT_STREQ("full_drop", segbus_drop_reason_name(SEGBUS_DROP_FULL_DROP));
    EXPECT_STREQ("unknown", segbus_drop_reason_name((segbus_drop_reason_t)99));
}

TEST(Producer, WriteClaimCommitAbortFlush)
{
    std::string path = temp_socket_path("basic");
    Daemon d(path);
    segbus_producer_t *p = open_ok(path);
    ASSERT_NE(nullptr, p);
    segbus_producer_stats_t st;
    ASSERT_EQ(0, segbus_producer_get_stats(p, &st));
    EXPECT_EQ(1, st.registered);
    EXPECT_NE(0u, st.producer_id);
    EXPECT_EQ(256u * 1024, st.capacity);
    EXPECT_EQ(256u * 1024 / 8 - 16, segbus_producer_max_payload(p)); // capacity/8 rule
    EXPECT_EQ(-EINVAL, segbus_producer_write(p, 0, "x", 1));
    EXPECT_EQ(-EMSGSIZE, segbus_producer_write(p, 1, std::string(40000, 'x').data(), 40000));
    ASSERT_EQ(0, segbus_producer_write(p, 1, "first", 5));
    segbus_claim_t c;
    ASSERT_EQ(0, segbus_producer_claim(p, 100, 2, &c));
    EXPECT_EQ(100u, c.len);
    memcpy(c.data, "second", 6);
    EXPECT_EQ(-EINVAL, segbus_producer_commit(p, &c, 101));
    ASSERT_EQ(0, segbus_producer_commit(p, &c, 6));
    EXPECT_EQ(-EINVAL, segbus_producer_commit(p, &c, 6));
    ASSERT_EQ(0, segbus_producer_claim(p, 10, 2, &c));
    ASSERT_EQ(0, segbus_producer_abort(p, &c));
    ASSERT_EQ(0, segbus_producer_write(p, 3, "third", 5));
    ASSERT_EQ(0, segbus_producer_flush(p, 5000));
    auto got = d.take();
    ASSERT_EQ(3u, got.size());
    EXPECT_EQ("first", got[0].data);
    EXPECT_EQ("second", got[1].data);
    EXPECT_EQ("third", got[2].data);
    for (auto &g : got)
        EXPECT_EQ(st.producer_id, g.producer);
    ASSERT_EQ(0, segbus_producer_get_stats(p, &st));
    EXPECT_EQ(3u, st.written);
    segbus_producer_close(p);
}

TEST(Producer, FullRingPolicies)
{
    std::string path = temp_socket_path("full");
    Daemon d(path, 64 * 1024, /*drain=*/false);
    segbus_producer_t *p = open_ok(path);
    ASSERT_NE(nullptr, p);
    std::string rec(1000, 'f');
    int rc;
    while ((rc = segbus_producer_write(p, 1, rec.data(), rec.size())) == 0) {
    }
    EXPECT_EQ(-EAGAIN, rc);
    segbus_claim_t c;
    EXPECT_EQ(-EAGAIN, segbus_producer_claim(p, 1000, 1, &c));
    ASSERT_EQ(0, segbus_producer_set_full_policy(p, SEGBUS_FULL_DROP, 0));
    EXPECT_EQ(SEGBUS_DROPPED, segbus_producer_write(p, 1, rec.data(), rec.size()));
    ASSERT_EQ(0, segbus_producer_set_full_policy(p, SEGBUS_FULL_BLOCK, 60));
    int64_t t0 = sb_ring_now_ns();
    EXPECT_EQ(-EAGAIN, segbus_producer_write(p, 1, rec.data(), rec.size()));
    EXPECT_GE(sb_ring_now_ns() - t0, 60 * 1000000ll);
    EXPECT_EQ(-EINVAL, segbus_producer_set_full_policy(p, 9, 0));
    EXPECT_EQ(-EINVAL, segbus_producer_set_full_policy(p, SEGBUS_FULL_BLOCK, -5));
    segbus_producer_stats_t st;
    ASSERT_EQ(0, segbus_producer_get_stats(p, &st));
    EXPECT_EQ(2u, st.dropped[SEGBUS_DROP_FULL_ERROR]);
    EXPECT_EQ(1u, st.dropped[SEGBUS_DROP_FULL_DROP]);
    EXPECT_EQ(1u, st.dropped[SEGBUS_DROP_FULL_TIMEOUT]);
    EXPECT_EQ(2u, st.ring_dropped[SEGBUS_DROP_FULL_ERROR]);
    EXPECT_EQ(1u, st.ring_dropped[SEGBUS_DROP_FULL_DROP]);
    // flush cannot finish while nobody reads
    EXPECT_EQ(-SEGBUS_ETIMEDOUT, segbus_producer_flush(p, 30));
    // blocking writer gets through once the reader frees room
    std::thread unblock([&] {
        usleep(30000);
        d.set_drain(true);
    });
    ASSERT_EQ(0, segbus_producer_set_full_policy(p, SEGBUS_FULL_BLOCK, 5000));
    EXPECT_EQ(0, segbus_producer_write(p, 1, rec.data(), rec.size()));
    unblock.join();
    EXPECT_EQ(0, segbus_producer_flush(p, 5000));
    segbus_producer_close(p);
}

TEST(Producer, AllowListRefusesOtherUsers)
{
    std::string path = temp_socket_path("deny");
    Daemon d(path);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(2);
        segbus_producer_t *p = nullptr;
        int rc = segbus_producer_open(&p, path.c_str(), nullptr);
        _exit(rc == -SEGBUS_EDENIED ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2) {
        GTEST_FAIL() << "cannot change uid here (tests run as root in CI)";
    }
    EXPECT_EQ(0, WEXITSTATUS(status));
    // ... and an allow-listed uid is let in
    std::string path2 = temp_socket_path("allow");
    sb_registry_config cfg;
    sb_registry_config_init(&cfg);
    uid_t nobody = 65534;
    cfg.uids = &nobody;
    cfg.nuids = 1;
    Daemon d2(path2, 256 * 1024, true, &cfg);
    pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(2);
        segbus_producer_t *p = nullptr;
        int rc = segbus_producer_open(&p, path2.c_str(), nullptr);
        _exit(rc == 0 ? 0 : 1);
    }
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int raw_connect(const std::string &path)
{
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path.c_str());
    EXPECT_EQ(0, connect(s, (sockaddr *)&sa, sizeof sa));
    return s;
}

int memfd_of(size_t size, unsigned seals)
{
    int fd = memfd_create("t", MFD_ALLOW_SEALING);
    EXPECT_EQ(0, ftruncate(fd, (off_t)size));
    if (seals) {
        EXPECT_EQ(0, fcntl(fd, F_ADD_SEALS, seals));
    }
    return fd;
}

// A fake daemon on the socket: accepts, then answers with `mode` (0: never, 1: wrong magic,
// 2: no fd, 3: an unsealed memfd, 4: a refusal).
int fake_daemon(const std::string &path, int mode)
{
    int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path.c_str());
    unlink(path.c_str());
    EXPECT_EQ(0, bind(l, (sockaddr *)&sa, sizeof sa));
    EXPECT_EQ(0, listen(l, 4));
    pid_t pid = fork();
    if (pid == 0) {
        int c = accept(l, nullptr, nullptr);
        sb_reg_hello h;
        int fd = -1;
        pollfd pf{c, POLLIN, 0};
        poll(&pf, 1, 2000);
        sb_reg_recv(c, &h, sizeof h, &fd);
        sb_reg_reply r{SB_REG_MAGIC, SB_REG_VERSION, 0, 0, 7, 64 * 1024, {}};
        int mfd = memfd_of(sb_ring_map_size(64 * 1024), 0);
        if (mode == 1)
            r.magic ^= 1;
        if (mode == 4)
            r.status = -SEGBUS_EDENIED;
        if (mode != 0)
            sb_reg_send(c, &r, sizeof r, mode == 3 ? mfd : -1);
        sleep(mode == 0 ? 2 : 0);
        _exit(0);
    }
    close(l);
    return pid;
}

TEST(Producer, HostileOrSilentDaemon)
{
    std::string path = temp_socket_path("fake");
    const int want[] = {-SEGBUS_ETIMEDOUT, -EPROTO, -EPROTO, -EPROTO, -SEGBUS_EDENIED};
    for (int mode = 0; mode < 5; mode++) {
        pid_t pid = fake_daemon(path, mode);
        segbus_producer_options_t o;
        segbus_producer_options_init(&o);
        // Only the silent daemon must time out; the others answer, however loaded the machine.
        o.connect_timeout_ms = mode == 0 ? 100 : 10000;
        segbus_producer_t *p = nullptr;
        EXPECT_EQ(want[mode], segbus_producer_open(&p, path.c_str(), &o)) << "mode " << mode;
        EXPECT_EQ(nullptr, p);
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
    }
    unlink(path.c_str());
}

// A producer cannot make the daemon map something it could truncate, or anything else odd.
TEST(Registry, HostileHandbackNotAdopted)
{
    std::string path = temp_socket_path("hostile");
    Daemon d(path);
    size_t ring = sb_ring_map_size(64 * 1024);
    int pipefd[2];
    ASSERT_EQ(0, pipe(pipefd));
    int fds[] = {pipefd[0],
                 memfd_of(ring, 0),
                 memfd_of(ring, F_SEAL_SHRINK),
                 memfd_of(ring + 8, F_SEAL_SHRINK | F_SEAL_GROW),
                 memfd_of(ring, F_SEAL_SHRINK | F_SEAL_GROW), // size ok, not formatted
                 memfd_of(ring, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)};
    for (int fd : fds) {
        int s = raw_connect(path);
        sb_reg_hello h{SB_REG_MAGIC, SB_REG_VERSION, SB_REG_HANDBACK, getpid(), 0};
        ASSERT_EQ(0, sb_reg_send(s, &h, sizeof h, fd));
        sb_reg_reply r{};
        int rfd = -1;
        pollfd pf{s, POLLIN, 0};
        ASSERT_EQ(1, poll(&pf, 1, 2000));
        ASSERT_EQ(0, sb_reg_recv(s, &r, sizeof r, &rfd));
        EXPECT_EQ(0, r.status); // registered; the ring simply is not adopted
        EXPECT_GE(rfd, 0);
        close(rfd);
        close(s);
        close(fd);
    }
    close(pipefd[1]);
    EXPECT_EQ(1u, d.nrings());
    // garbage hello and wrong sizes get -EPROTO and a closed socket
    int s = raw_connect(path);
    char junk[5] = "junk";
    ASSERT_EQ(0, sb_reg_send(s, junk, sizeof junk, -1));
    sb_reg_reply r{};
    int rfd = -1;
    pollfd pf{s, POLLIN, 0};
    ASSERT_EQ(1, poll(&pf, 1, 2000));
    ASSERT_EQ(0, sb_reg_recv(s, &r, sizeof r, &rfd));
    EXPECT_EQ(-EPROTO, r.status);
    EXPECT_EQ(-1, rfd);
    close(s);
}

// The producer checks the daemon's fd just as strictly.
TEST(Shm, MapFdValidates)
{
    sb_shm s;
    size_t ring = sb_ring_map_size(64 * 1024);
    int f1 = memfd_of(ring, 0);
    EXPECT_EQ(-EPROTO, sb_shm_map_fd(&s, f1, 0));
    int f2 = memfd_of(ring, F_SEAL_SHRINK | F_SEAL_GROW);
    EXPECT_EQ(-EPROTO, sb_shm_map_fd(&s, f2, 0)); // not formatted
    int f3 = memfd_of(ring + 4096, F_SEAL_SHRINK | F_SEAL_GROW);
    EXPECT_EQ(-EPROTO, sb_shm_map_fd(&s, f3, 0)); // not a ring size
    EXPECT_EQ(-EINVAL, sb_shm_map_fd(&s, -1, 0));
    sb_shm good;
    ASSERT_EQ(0, sb_shm_create(&good, 64 * 1024));
    int seals = fcntl(good.fd, F_GET_SEALS);
    EXPECT_EQ(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, seals);
    EXPECT_NE(0, ftruncate(good.fd, 0)); // the producer cannot SIGBUS the reader
    int dup1 = dup(good.fd);
    EXPECT_EQ(-EPROTO, sb_shm_map_fd(&s, dup1, 128 * 1024)); // capacity mismatch
    ASSERT_EQ(0, sb_shm_map_fd(&s, dup1, 64 * 1024));
    EXPECT_EQ(0, memcmp(s.id, good.id, 16));
    good.ring.ctrl->id.version = 9;
    int dup2 = dup(good.fd);
    sb_shm s2;
    EXPECT_EQ(-EPROTO, sb_shm_map_fd(&s2, dup2, 0));
    close(dup2);
    sb_shm_close(&s);
    sb_shm_close(&good);
    close(f1);
    close(f2);
    close(f3);
    EXPECT_EQ(-EINVAL, sb_shm_create(&s, 1000));
}

// No daemon: write into a ring of our own; when a daemon appears, flush hands it over and
// everything arrives.
TEST(Producer, StandaloneThenHandover)
{
    std::string path = temp_socket_path("standalone");
    segbus_producer_options_t o;
    segbus_producer_options_init(&o);
    o.standalone_capacity = 128 * 1024;
    segbus_producer_t *p = open_ok(path, &o);
    ASSERT_NE(nullptr, p);
    segbus_producer_stats_t st;
    ASSERT_EQ(0, segbus_producer_get_stats(p, &st));
    EXPECT_EQ(0, st.registered);
    for (int i = 0; i < 100; i++) {
        std::string s = "s" + std::to_string(i);
        ASSERT_EQ(0, segbus_producer_write(p, 1, s.data(), s.size()));
    }
    EXPECT_EQ(-SEGBUS_ENODAEMON, segbus_producer_flush(p, 20));
    Daemon d(path);
    ASSERT_EQ(0, segbus_producer_flush(p, 5000));
    ASSERT_EQ(0, segbus_producer_write(p, 1, "after", 5));
    ASSERT_EQ(0, segbus_producer_flush(p, 5000));
    auto got = d.take();
    ASSERT_EQ(101u, got.size());
    for (int i = 0; i < 100; i++)
        EXPECT_EQ("s" + std::to_string(i), got[i].data);
    EXPECT_EQ(1u, got[0].ring); // the adopted ring
    EXPECT_EQ("after", got[100].data);
    EXPECT_EQ(0u, got[100].ring); // then the daemon's own
    ASSERT_EQ(0, segbus_producer_get_stats(p, &st));
    EXPECT_EQ(1, st.registered);
    EXPECT_EQ(2u, d.nrings());
    segbus_producer_close(p);
}

// The daemon dies with records in its ring; a new daemon starts; the producer hands the old
// ring back and nothing committed is lost.
TEST(Producer, DaemonRestartLosesNothing)
{
    std::string path = temp_socket_path("restart");
    auto d1 = std::make_unique<Daemon>(path, 256 * 1024, /*drain=*/false);
    segbus_producer_t *p = open_ok(path);
    ASSERT_NE(nullptr, p);
    for (int i = 0; i < 50; i++) {
        std::string s = "a" + std::to_string(i);
        ASSERT_EQ(0, segbus_producer_write(p, 1, s.data(), s.size()));
    }
    d1.reset();                     // dies without reading anything
    for (int i = 50; i < 80; i++) { // keep writing while no reader is attached
        std::string s = "a" + std::to_string(i);
        ASSERT_EQ(0, segbus_producer_write(p, 1, s.data(), s.size()));
    }
    Daemon d2(path);
    ASSERT_EQ(0, segbus_producer_flush(p, 5000));
    auto got = d2.take();
    ASSERT_EQ(80u, got.size());
    for (int i = 0; i < 80; i++)
        EXPECT_EQ("a" + std::to_string(i), got[i].data);
    segbus_producer_stats_t st;
    ASSERT_EQ(0, segbus_producer_get_stats(p, &st));
    EXPECT_EQ(1u, st.reregistrations);
    segbus_producer_close(p);
}

// A forked child gets its own producer id on its first write; both are delivered.
TEST(Producer, ForkChildReregisters)
{
    std::string path = temp_socket_path("fork");
    Daemon d(path);
    segbus_producer_t *p = open_ok(path);
    ASSERT_NE(nullptr, p);
    ASSERT_EQ(0, segbus_producer_write(p, 1, "parent", 6));
    segbus_producer_stats_t st;
    ASSERT_EQ(0, segbus_producer_get_stats(p, &st));
    uint32_t parent_id = st.producer_id;
    pid_t pid = fork();
    if (pid == 0) {
        int rc = segbus_producer_write(p, 1, "child", 5);
        segbus_producer_stats_t cs;
        segbus_producer_get_stats(p, &cs);
        rc = rc == 0 && cs.producer_id != parent_id && cs.reregistrations == 1 ? 0 : 1;
        if (segbus_producer_flush(p, 5000) != 0)
            rc = 3;
        _exit(rc);
    }
    int status = 0;
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    ASSERT_TRUE(d.wait_count(2, 5000));
    auto got = d.take();
    ASSERT_EQ(2u, got.size());
    EXPECT_EQ(parent_id, got[0].producer);
    EXPECT_NE(parent_id, got[1].producer);
    EXPECT_EQ("child", got[1].data);
    segbus_producer_close(p);
}

} // namespace
