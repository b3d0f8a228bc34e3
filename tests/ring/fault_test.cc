// fault_test.cc: producers SIGKILLed between claim and commit, hundreds of times, while
// others keep writing; and the reader (daemon) SIGKILLed and restarted under load.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "daemon_fixture.h"

namespace
{

struct Rec {
    uint32_t who;
    uint32_t seq;
    uint64_t fill[6]; // 64-byte records
};

int g_hook_fd = -1;

void park_here()
{
    char b = 1;
    if (write(g_hook_fd, &b, 1) != 1)
        _exit(9);
    for (;;)
        pause();
}

struct Shared {
    std::atomic<int> stop;
    std::atomic<uint32_t> written[2];
    std::atomic<int64_t> max_block_ns[2];
};

// Steady producer: writes until told to stop, tracking its longest wait for room.
[[noreturn]] void steady(const std::string &path, Shared *sh, uint32_t who)
{
    segbus_producer_t *p = nullptr;
    if (segbus_producer_open(&p, path.c_str(), nullptr) != 0)
        _exit(20);
    Rec r{};
    r.who = who;
    int64_t blocked_since = 0;
    while (!sh->stop.load()) {
        r.seq = sh->written[who].load();
        int rc = segbus_producer_write(p, 1, &r, sizeof r);
        if (rc == 0) {
            if (blocked_since) {
                int64_t b = sb_ring_now_ns() - blocked_since;
                if (b > sh->max_block_ns[who].load())
                    sh->max_block_ns[who].store(b);
                blocked_since = 0;
            }
            sh->written[who].fetch_add(1);
            if (r.seq % 64 == 0)
                usleep(100);
        } else if (rc == -EAGAIN) {
            if (!blocked_since)
                blocked_since = sb_ring_now_ns();
            usleep(200);
        } else {
            _exit(21);
        }
    }
    _exit(segbus_producer_flush(p, 20000) == 0 ? 0 : 22);
}

TEST(RingFault, ProducersKilledBetweenClaimAndCommit)
{
    const int kVictims = 200;
    std::string path = temp_socket_path("kill");
    sb_registry_config cfg;
    sb_registry_config_init(&cfg);
    cfg.socket_path = path.c_str();
    cfg.capacity = 64 * 1024;
    cfg.reader.check_ns = 10 * 1000000;
    cfg.reader.gap_ns = 50 * 1000000;
    sb_registry *reg = nullptr;
    ASSERT_EQ(0, sb_registry_open(&reg, &cfg));
    auto *sh = static_cast<Shared *>(
        mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    new (sh) Shared{};
    std::vector<pid_t> steadies;
    for (uint32_t w = 0; w < 2; w++) {
        pid_t pid = fork();
        if (pid == 0)
            steady(path, sh, w);
        steadies.push_back(pid);
    }
    std::vector<uint32_t> next(2, 0);
    std::map<uint32_t, uint32_t> victim_got;
    std::string err;
    auto pump = [&] {
        sb_registry_poll(reg, 0);
        for (size_t ri = 0; ri < sb_registry_nrings(reg); ri++) {
            sb_ring_reader *rd = sb_registry_reader(reg, ri);
            int n = sb_ring_read(rd, sb_ring_now_ns());
            for (int i = 0; i < n; i++) {
                Rec r;
                if (rd->recs[i].len != sizeof r) {
                    err = "bad record length";
                    continue;
                }
                memcpy(&r, rd->recs[i].data, sizeof r);
                if (r.who < 2) {
                    if (r.seq != next[r.who])
                        err = "steady " + std::to_string(r.who) + " expected " +
                              std::to_string(next[r.who]) + " got " + std::to_string(r.seq);
                    next[r.who] = r.seq + 1;
                } else {
                    if (r.seq != victim_got[r.who])
                        err = "victim record out of order or duplicated";
                    victim_got[r.who]++;
                }
            }
            sb_ring_reader_release(rd);
        }
    };
    std::map<uint32_t, uint32_t> victim_committed;
    int64_t start = sb_ring_now_ns();
    for (int v = 0; v < kVictims && err.empty(); v++) {
        int pipefd[2];
        ASSERT_EQ(0, pipe(pipefd));
        uint32_t who = 100 + v, commits = v % 3;
        victim_committed[who] = commits;
        pid_t pid = fork();
        if (pid == 0) {
            close(pipefd[0]);
            g_hook_fd = pipefd[1];
            segbus_producer_t *p = nullptr;
            if (segbus_producer_open(&p, path.c_str(), nullptr) != 0)
                _exit(30);
            Rec r{};
            r.who = who;
            for (r.seq = 0; r.seq < commits; r.seq++)
                while (segbus_producer_write(p, 1, &r, sizeof r) == -EAGAIN)
                    usleep(100);
            // even victims die right after the tail CAS (zero-length claim), odd ones after
            // writing header and payload (negative length)
            if (v % 2 == 0)
                sb_ring_test_claim_hook = park_here;
            else
                sb_ring_test_pause_hook = park_here;
            while (segbus_producer_write(p, 1, &r, sizeof r) == -EAGAIN) {
                sb_ring_test_claim_hook = nullptr; // full: retry without parking
                usleep(100);
                if (v % 2 == 0)
                    sb_ring_test_claim_hook = park_here;
            }
            _exit(31); // the hook never returns
        }
        close(pipefd[1]);
        // pump the registry until the victim is parked between claim and commit
        bool parked = false;
        for (int i = 0; i < 20000 && !parked; i++) {
            pump();
            pollfd pf{pipefd[0], POLLIN, 0};
            parked = poll(&pf, 1, 0) == 1;
            if (!parked)
                usleep(100);
        }
        close(pipefd[0]);
        ASSERT_TRUE(parked) << "victim " << v;
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        pump();
    }
    // let the steady producers run on a little, then stop them and collect everything
    sh->stop.store(1);
    int64_t deadline = sb_ring_now_ns() + 20ll * 1000000000;
    for (pid_t k : steadies) {
        int st = 0;
        while (waitpid(k, &st, WNOHANG) == 0 && sb_ring_now_ns() < deadline) {
            pump();
            usleep(200);
        }
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "steady status " << st;
    }
    while ((next[0] < sh->written[0] || next[1] < sh->written[1]) && err.empty() &&
           sb_ring_now_ns() < deadline) {
        pump();
        usleep(200);
    }
    EXPECT_EQ("", err);
    EXPECT_EQ(sh->written[0].load(), next[0]);
    EXPECT_EQ(sh->written[1].load(), next[1]);
    for (auto &vc : victim_committed)
        EXPECT_EQ(vc.second, victim_got[vc.first]) << "victim " << vc.first;
    sb_ring_reader *rd = sb_registry_reader(reg, 0);
    uint64_t repaired = rd->counters[SB_RING_R_REPAIRED_DEAD],
             gaps = rd->counters[SB_RING_R_ZERO_GAPS],
             grace = rd->counters[SB_RING_R_REPAIRED_GRACE];
    EXPECT_EQ((uint64_t)kVictims / 2, repaired);
    // a victim parked right after its tail CAS leaves one gap, or two when its claim also
    // needed the wrap padding that it never wrote
    EXPECT_GE(gaps, (uint64_t)kVictims / 2);
    EXPECT_LE(gaps, (uint64_t)kVictims);
    EXPECT_EQ(0u, grace);
    EXPECT_EQ(0u, rd->counters[SB_RING_R_CORRUPT]);
    int64_t maxb = std::max(sh->max_block_ns[0].load(), sh->max_block_ns[1].load());
    printf("%d victims in %.1f s; steady producers wrote %u + %u, longest wait for room %.1f ms;"
           " repaired %llu in-progress, %llu never-written\n",
           kVictims, (sb_ring_now_ns() - start) / 1e9, sh->written[0].load(), sh->written[1].load(),
           maxb / 1e6, (unsigned long long)repaired, (unsigned long long)gaps);
    EXPECT_LT(maxb, cfg.reader.grace_ns); // never blocked as long as the grace
    EXPECT_LT(maxb, 2000ll * 1000000);    // in practice: liveness, well within a second or two
    sb_registry_close(reg);
    munmap(sh, sizeof(Shared));
}

struct Results {
    std::atomic<uint32_t> done[2];
    std::atomic<uint32_t> reregs[2];
    std::atomic<uint8_t> count[2][40000];
};

[[noreturn]] void daemon_proc(const std::string &path, Results *res)
{
    sb_registry_config cfg;
    sb_registry_config_init(&cfg);
    cfg.socket_path = path.c_str();
    cfg.capacity = 64 * 1024;
    sb_registry *reg = nullptr;
    for (int i = 0; i < 200 && sb_registry_open(&reg, &cfg) != 0; i++)
        usleep(10000);
    if (!reg)
        _exit(40);
    for (;;) {
        sb_registry_poll(reg, 0);
        for (size_t ri = 0; ri < sb_registry_nrings(reg); ri++) {
            sb_ring_reader *rd = sb_registry_reader(reg, ri);
            int n = sb_ring_read(rd, sb_ring_now_ns());
            for (int i = 0; i < n; i++) {
                Rec r;
                if (rd->recs[i].len != sizeof r)
                    _exit(41);
                memcpy(&r, rd->recs[i].data, sizeof r);
                if (r.who < 2 && r.seq < 40000)
                    res->count[r.who][r.seq].fetch_add(1);
            }
            sb_ring_reader_release(rd);
        }
        usleep(100);
    }
}

TEST(RingFault, ReaderKilledAndRestartedUnderLoad)
{
    const uint32_t kRecords = 40000;
    std::string path = temp_socket_path("rkill");
    auto *res = static_cast<Results *>(
        mmap(nullptr, sizeof(Results), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    new (res) Results{};
    auto start_daemon = [&] {
        pid_t pid = fork();
        if (pid == 0)
            daemon_proc(path, res);
        return pid;
    };
    pid_t daemon = start_daemon();
    usleep(100000);
    std::vector<pid_t> producers;
    for (uint32_t w = 0; w < 2; w++) {
        pid_t pid = fork();
        if (pid == 0) {
            segbus_producer_options_t o;
            segbus_producer_options_init(&o);
            o.full_policy = SEGBUS_FULL_BLOCK;
            o.block_timeout_ms = 20000;
            segbus_producer_t *p = nullptr;
            int rc = -1;
            for (int i = 0; i < 100 && rc != 0; i++)
                if ((rc = segbus_producer_open(&p, path.c_str(), &o)) != 0)
                    usleep(10000);
            if (rc != 0)
                _exit(50);
            Rec r{};
            r.who = w;
            for (r.seq = 0; r.seq < kRecords; r.seq++) {
                if (segbus_producer_write(p, 1, &r, sizeof r) != 0)
                    _exit(51);
                if (r.seq % 4 == 0) // pace it so that the run spans the reader's deaths
                    usleep(100);
            }
            rc = segbus_producer_flush(p, 20000);
            segbus_producer_stats_t st;
            segbus_producer_get_stats(p, &st);
            res->reregs[w].store((uint32_t)st.reregistrations);
            res->done[w].store(1);
            _exit(rc == 0 ? 0 : 52);
        }
        producers.push_back(pid);
    }
    // kill the daemon under load three times, restarting it after a pause each time
    for (int k = 0; k < 3; k++) {
        usleep(150000);
        kill(daemon, SIGKILL);
        waitpid(daemon, nullptr, 0);
        usleep(50000 + k * 50000);
        daemon = start_daemon();
    }
    for (pid_t pp : producers) {
        int st = 0;
        waitpid(pp, &st, 0);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "producer status " << st;
    }
    kill(daemon, SIGKILL);
    waitpid(daemon, nullptr, 0);
    unlink(path.c_str()); // a killed daemon leaves its socket file behind
    uint32_t missing = 0, dups = 0;
    for (int w = 0; w < 2; w++)
        for (uint32_t s = 0; s < kRecords; s++) {
            uint8_t c = res->count[w][s].load();
            missing += c == 0;
            dups += c > 1;
        }
    printf("reader killed 3 times: %u records, %u missing, %u delivered twice (read but not yet"
           " released when the reader died); producers re-registered %u and %u times\n",
           2 * kRecords, missing, dups, res->reregs[0].load(), res->reregs[1].load());
    EXPECT_GE(res->reregs[0].load(), 1u); // each handed its ring to a new reader at least once
    EXPECT_GE(res->reregs[1].load(), 1u);
    EXPECT_EQ(0u, missing);
    // at-least-once: only what a killed reader had handed out but not released comes again
    EXPECT_LE(dups, 3u * 2 * 1024);
    munmap(res, sizeof(Results));
}

} // namespace
