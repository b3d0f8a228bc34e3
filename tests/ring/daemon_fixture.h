// daemon_fixture.h: a registry + reader driven by a thread, collecting what it drains, for
// the producer and concurrency tests.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

extern "C" {
#include "ring/registry.h"
#include "ring/ring.h"
#include "ring/shm.h"
}

struct Got {
    uint32_t producer;
    size_t ring;
    std::string data;
};

inline std::string temp_socket_path(const char *tag)
{
    return std::string("/tmp/segbus-") + tag + "-" + std::to_string(getpid()) + "-" +
           std::to_string(rand()) + ".sock";
}

class Daemon
{
  public:
    explicit Daemon(const std::string &path, uint64_t capacity = 256 * 1024, bool drain = true,
                    sb_registry_config *cfgp = nullptr)
        : drain_(drain)
    {
        sb_registry_config cfg;
        if (cfgp) {
            cfg = *cfgp;
        } else {
            sb_registry_config_init(&cfg);
        }
        cfg.socket_path = path.c_str();
        cfg.capacity = capacity;
        rc_ = sb_registry_open(&reg_, &cfg);
        EXPECT_EQ(0, rc_) << segbus_strerror(rc_);
        if (rc_ == 0)
            thr_ = std::thread([this] { loop(); });
    }
    ~Daemon()
    {
        stop();
    }
    void stop()
    {
        if (thr_.joinable()) {
            stop_ = true;
            thr_.join();
        }
        sb_registry_close(reg_);
        reg_ = nullptr;
    }
    void set_drain(bool on)
    {
        drain_ = on;
    }
    std::vector<Got> take()
    {
        std::lock_guard<std::mutex> g(mu_);
        return got_;
    }
    size_t count()
    {
        std::lock_guard<std::mutex> g(mu_);
        return got_.size();
    }
    bool wait_count(size_t n, int ms)
    {
        for (int i = 0; i < ms; i++) {
            if (count() >= n)
                return true;
            usleep(1000);
        }
        return count() >= n;
    }
    size_t nrings()
    {
        std::lock_guard<std::mutex> g(mu_);
        return nrings_;
    }
    size_t live()
    {
        std::lock_guard<std::mutex> g(mu_);
        return live_;
    }
    template <class F> void with(F f)
    {
        std::lock_guard<std::mutex> g(mu_);
        f(reg_);
    }
    sb_registry *reg_ = nullptr;
    int rc_ = 0;

  private:
    static int on_rec(void *ctx, size_t ring, const sb_ring_rec *rec)
    {
        auto *d = static_cast<Daemon *>(ctx);
        d->got_.push_back(Got{rec->producer, ring,
                              std::string(reinterpret_cast<const char *>(rec->data), rec->len)});
        return 0;
    }
    void loop()
    {
        while (!stop_) {
            std::lock_guard<std::mutex> g(mu_);
            sb_registry_poll(reg_, 0);
            if (drain_)
                sb_registry_drain(reg_, on_rec, this, sb_ring_now_ns());
            nrings_ = sb_registry_nrings(reg_);
            live_ = sb_registry_live_producers(reg_);
            mu_.unlock();
            usleep(500);
            mu_.lock();
        }
    }
    std::atomic<bool> stop_{false};
    std::atomic<bool> drain_;
    std::thread thr_;
    std::mutex mu_;
    std::vector<Got> got_;
    size_t nrings_ = 1, live_ = 0;
};
