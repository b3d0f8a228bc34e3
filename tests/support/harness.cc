// harness.cc: the shared process-level test helpers (see harness.h).
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

// liburing's header must not be wrapped in extern "C"; included first, its guard keeps the
// net headers below from including it again inside the block.
#include <liburing.h>
extern "C" {
#include "net/http_server.h"
#include "net/loop.h"
}

namespace sbt
{

namespace
{

sockaddr_in loopback(uint16_t port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int connect_loopback(uint16_t port, int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    timeval tv{timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a = loopback(port);
    if (connect(fd, (sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool send_all(int fd, const std::string &s)
{
    for (size_t off = 0; off < s.size();) {
        ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    return true;
}

std::string str_of(const msgpack_object &o)
{
    return o.type == MSGPACK_OBJECT_STR ? std::string(o.via.str.ptr, o.via.str.size) : "";
}

} // namespace

// Below the kernel's ephemeral range: a client reconnecting to a port in that range while its
// server is down can be given that very port as its own local port (TCP self-connect), and the
// restarted server then cannot bind it. Random within the range below, checked by binding.
uint16_t free_port()
{
    unsigned lo = 32768;
    if (FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
        if (fscanf(f, "%u", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    unsigned base = lo > 12000 ? 10000 : 1024, span = (lo > base + 1000 ? lo : 32768) - base;
    static std::mt19937 rng(std::random_device{}() ^ (unsigned)getpid());
    for (int tries = 0; tries < 200; tries++) {
        uint16_t port = (uint16_t)(base + rng() % span);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = loopback(port);
        bool ok = fd >= 0 && bind(fd, (sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return 0;
}

TempDir::TempDir(const char *prefix)
{
    std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()))
        path = buf.data();
}

TempDir::~TempDir()
{
    const char *keep = getenv("SEGBUS_KEEP_TMP");
    if (path.empty() || (keep && strcmp(keep, "1") == 0))
        return;
    std::string cmd = "rm -rf '" + path + "'";
    (void)!system(cmd.c_str());
}

std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_file(const std::string &path, const std::string &text)
{
    std::ofstream f(path, std::ios::trunc);
    f << text;
}

bool wait_for(const std::function<bool()> &cond, int ms)
{
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
        if (cond())
            return true;
        if (std::chrono::steady_clock::now() >= end)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool wait_socket(const std::string &path, int ms)
{
    struct stat st;
    return wait_for([&] { return stat(path.c_str(), &st) == 0; }, ms);
}

int producer_open(segbus_producer_t **h, const std::string &sock,
                  const segbus_producer_options_t *o, int ms)
{
    int rc = -1;
    wait_for([&] { return (rc = segbus_producer_open(h, sock.c_str(), o)) != -SEGBUS_ENODAEMON; },
             ms);
    return rc;
}

double metric_value(const std::string &text, const std::string &name, const std::string &labels)
{
    double sum = -1;
    size_t p = 0;
    while ((p = text.find("\n" + name, p)) != std::string::npos) {
        p += 1 + name.size();
        size_t eol = text.find('\n', p);
        std::string line = text.substr(p, eol == std::string::npos ? std::string::npos : eol - p);
        if (line.empty() || (line[0] != ' ' && line[0] != '{') ||
            line.find(labels) == std::string::npos)
            continue;
        sum = (sum < 0 ? 0 : sum) + atof(line.c_str() + line.rfind(' ') + 1);
    }
    return sum;
}

Reply http_request(uint16_t port, const std::string &method, const std::string &path,
                   const std::string &headers, const std::string &body, int timeout_s)
{
    Reply r;
    int fd = connect_loopback(port, timeout_s);
    if (fd < 0)
        return r;
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (!send_all(fd, req)) {
        close(fd);
        return r;
    }
    std::string in;
    char buf[65536];
    for (;;) {
        size_t he = in.find("\r\n\r\n");
        if (he != std::string::npos) {
            size_t cl = in.find("Content-Length: ");
            size_t want = cl != std::string::npos && cl < he ? std::stoul(in.substr(cl + 16)) : 0;
            if (in.size() >= he + 4 + want) {
                r.head = in.substr(0, he);
                r.body = in.substr(he + 4, want);
                r.status = in.size() > 12 ? std::atoi(in.c_str() + 9) : 0;
                break;
            }
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        in.append(buf, (size_t)n);
    }
    close(fd);
    return r;
}

std::string http_get(uint16_t port, const std::string &path)
{
    int fd = connect_loopback(port, 10);
    if (fd < 0)
        return "";
    std::string out;
    if (send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) {
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            out.append(buf, (size_t)n);
    }
    close(fd);
    return out;
}

bool Child::start(const std::string &program, const std::vector<std::string> &args,
                  const std::map<std::string, const char *> &env)
{
    char o[] = "/tmp/segbus-out-XXXXXX", e[] = "/tmp/segbus-err-XXXXXX";
    int ofd = mkostemp(o, O_CLOEXEC), efd = mkostemp(e, O_CLOEXEC);
    out_path_ = o;
    err_path_ = e;
    pid = ofd >= 0 && efd >= 0 ? fork() : -1;
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        for (const auto &kv : env)
            kv.second ? setenv(kv.first.c_str(), kv.second, 1) : unsetenv(kv.first.c_str());
        std::vector<char *> argv{(char *)program.c_str()};
        for (const auto &a : args)
            argv.push_back((char *)a.c_str());
        argv.push_back(nullptr);
        execvp(program.c_str(), argv.data());
        _exit(127);
    }
    if (ofd >= 0)
        close(ofd);
    if (efd >= 0)
        close(efd);
    return pid > 0;
}

RunResult Child::wait(int seconds)
{
    RunResult r;
    if (pid <= 0)
        return r;
    int st = 0;
    bool done = wait_for([&] { return waitpid(pid, &st, WNOHANG) == pid; }, seconds * 1000);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        r.code = -9;
    } else {
        r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    pid = -1;
    r.out = slurp(out_path_);
    r.err = slurp(err_path_);
    unlink(out_path_.c_str());
    unlink(err_path_.c_str());
    return r;
}

Child::~Child()
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
    }
    if (!out_path_.empty()) {
        unlink(out_path_.c_str());
        unlink(err_path_.c_str());
    }
}

RunResult run_program(const std::string &program, const std::vector<std::string> &args, int seconds,
                      const std::map<std::string, const char *> &env)
{
    Child c;
    if (!c.start(program, args, env))
        return {};
    return c.wait(seconds);
}

RunResult run_shell(const std::string &command, int seconds)
{
    return run_program("/bin/sh", {"-c", command}, seconds);
}

std::string segbus_cli()
{
    return std::string(SEGBUS_BINARY_DIR) + "/src/cli/segbus";
}

std::string Segbusd::binary()
{
    return std::string(SEGBUS_BINARY_DIR) + "/src/daemon/segbusd";
}

bool Segbusd::start(const std::string &config, const std::string &log_path, bool append)
{
    log = log_path;
    std::string bin = binary();
    pid = fork();
    if (pid == 0) {
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(bin.c_str(), "segbusd", "--config", config.c_str(), (char *)nullptr);
        _exit(127);
    }
    return pid > 0;
}

int Segbusd::stop(int seconds)
{
    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < seconds * 100; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            pid = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill9();
    return -1;
}

void Segbusd::kill9()
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
}

bool Segbusd::alive()
{
    return pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0;
}

Segbusd::~Segbusd()
{
    kill9();
}

std::map<std::string, int> ndjson_message_ids(const std::string &path, int *lines,
                                              std::map<std::string, std::string> *line_of)
{
    std::map<std::string, int> ids;
    std::ifstream f(path);
    std::string line;
    int n = 0;
    while (std::getline(f, line)) {
        n++;
        size_t p = line.find("\"messageId\":\"");
        if (p == std::string::npos)
            continue;
        p += 13;
        std::string id = line.substr(p, line.find('"', p) - p);
        ids[id]++;
        if (line_of)
            (*line_of)[id] = line;
    }
    if (lines)
        *lines = n;
    return ids;
}

std::string daemon_config(const std::string &dir, uint16_t http_port, uint16_t metrics_port,
                          unsigned max_events)
{
    std::string c = "shutdown_timeout: 10s\nsocket: {path: " + dir + "/segbusd.sock}\n" +
                    "batch: {max_events: " + std::to_string(max_events) +
                    ", flush_interval: 10ms}\n" +
                    "dedup: {window_count: 100000, window_time: 1h}\n" + "spool: {dir: " + dir +
                    "/spool, segment_bytes: 4MiB, max_bytes: 256MiB}\n";
    c += metrics_port ? "metrics: {listen: 127.0.0.1:" + std::to_string(metrics_port) + "}\n"
                      : std::string("metrics: {listen: \"\"}\n");
    if (http_port)
        c += "http: {enabled: true, listen: 127.0.0.1:" + std::to_string(http_port) + "}\n";
    return c;
}

std::vector<std::string> json_message_ids(const std::string &json)
{
    std::vector<std::string> v;
    for (size_t p = 0; (p = json.find("\"messageId\":\"", p)) != std::string::npos;) {
        p += 13;
        size_t e = json.find('"', p);
        if (e == std::string::npos)
            break;
        v.push_back(json.substr(p, e - p));
        p = e;
    }
    return v;
}

std::string hmac_sha256_hex(const std::string &key, const std::string &body)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    std::string s;

    if (!HMAC(EVP_sha256(), key.data(), (int)key.size(), (const unsigned char *)body.data(),
              body.size(), mac, &n))
        return s;
    for (unsigned i = 0; i < n; i++) {
        s += hex[mac[i] >> 4];
        s += hex[mac[i] & 15];
    }
    return s;
}

bool signature_ok(const std::string &header, const std::string &key, const std::string &body)
{
    std::string want = "sha256=" + hmac_sha256_hex(key, body);
    return header.size() == want.size() &&
           CRYPTO_memcmp(header.data(), want.data(), want.size()) == 0;
}

bool msgpack_batch_message_ids(const void *body, size_t len, std::map<std::string, int> &ids)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    bool ok = msgpack_unpack_next(&u, (const char *)body, len, &off) == MSGPACK_UNPACK_SUCCESS &&
              u.data.type == MSGPACK_OBJECT_MAP;
    bool found = false;
    for (uint32_t i = 0; ok && i < u.data.via.map.size; i++) {
        const msgpack_object_kv &kv = u.data.via.map.ptr[i];
        if (str_of(kv.key) != "batch" || kv.val.type != MSGPACK_OBJECT_ARRAY)
            continue;
        found = true;
        for (uint32_t j = 0; j < kv.val.via.array.size; j++) {
            const msgpack_object &e = kv.val.via.array.ptr[j];
            if (e.type != MSGPACK_OBJECT_MAP) {
                ok = false;
                break;
            }
            for (uint32_t k = 0; k < e.via.map.size; k++)
                if (str_of(e.via.map.ptr[k].key) == "messageId")
                    ids[str_of(e.via.map.ptr[k].val)]++;
        }
    }
    msgpack_unpacked_destroy(&u);
    return ok && found;
}

void HttpReceiver::route(void *arg, sb_http_exchange *ex, const sb_http_message *req)
{
    ((HttpReceiver *)arg)->handler_(ex, req);
}

bool HttpReceiver::start(Handler handler)
{
    stop();
    if (port == 0)
        port = free_port(); // not an ephemeral one: it must survive restarts (see free_port)
    handler_ = std::move(handler);
    stop_ = false;
    state_ = 0;
    thread_ = std::thread([this] {
        sb_loop *loop;
        if (sb_loop_new(&loop, 64)) {
            state_ = -1;
            return;
        }
        sb_http_server_options o{};
        o.bind_addr = "127.0.0.1";
        o.port = port;
        o.route = route;
        o.arg = this;
        o.max_body_bytes = max_body_bytes;
        if (!tls_cert.empty() && !tls_key.empty()) {
            o.tls_cert_file = tls_cert.c_str();
            o.tls_key_file = tls_key.c_str();
        }
        sb_http_server *srv;
        char err[200];
        // A restart on the same port can race the old listener's close: try for a second.
        int rc = -1;
        for (int i = 0; i < 100 && (rc = sb_http_server_new(&srv, loop, &o, err, sizeof err)); i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (rc == 0) {
            port = sb_http_server_port(srv);
            state_ = 1;
            while (!stop_)
                sb_loop_run_once(loop, 20 * 1000000LL);
            sb_http_server_free(srv);
            // Let the closes of its connections complete (a stopped receiver must look like a
            // dead process to its clients: connections reset, not left open and silent).
            auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
            while (std::chrono::steady_clock::now() < end)
                sb_loop_run_once(loop, 5 * 1000000LL);
        } else {
            fprintf(stderr, "HttpReceiver: %s\n", err);
            state_ = -1;
        }
        sb_loop_free(loop);
    });
    wait_for([this] { return state_ != 0; }, 5000);
    return state_ == 1;
}

void HttpReceiver::stop()
{
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
}

HttpReceiver::~HttpReceiver()
{
    stop();
}

bool HubStandIn::start()
{
    return http.start([this](sb_http_exchange *ex, const sb_http_message *req) {
        std::lock_guard<std::mutex> g(mu);
        retry_counts.push_back(header(req, "X-Retry-Count"));
        if (requests++ < fail_first) {
            sb_http_header h = {"Retry-After", fail_retry_after};
            sb_http_respond(ex, fail_status, &h, fail_retry_after ? 1 : 0, "busy", 4);
            return;
        }
        if (header(req, "Content-Type") != "application/msgpack" || path(req) != "/v1/batch" ||
            !msgpack_batch_message_ids(req->body, req->body_len, ids))
            bad++;
        respond_json(ex, 200, "{\"success\":true}");
    });
}

size_t HubStandIn::distinct()
{
    std::lock_guard<std::mutex> g(mu);
    return ids.size();
}

int HubStandIn::max_copies()
{
    std::lock_guard<std::mutex> g(mu);
    int m = 0;
    for (const auto &kv : ids)
        m = kv.second > m ? kv.second : m;
    return m;
}

TestCA::TestCA()
{
    ca = dir / "ca.pem";
    other_ca = dir / "other-ca.pem";
    cert = dir / "server.pem";
    key = dir / "server.key";
    wrong_host_cert = dir / "wrong.pem";
    wrong_host_key = dir / "wrong.key";
    // EC keys: generated in milliseconds, unlike RSA.
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string sign = " -CA ca.pem -CAkey ca.key -CAcreateserial -days 2";
    RunResult r = run_shell(
        "cd '" + dir.path + "' && set -e" + " && openssl req -x509" + ec +
            " -keyout ca.key -out ca.pem -days 2 -subj /CN=segbus-test-ca" +
            " && openssl req -x509" + ec +
            " -keyout other.key -out other-ca.pem -days 2 -subj /CN=segbus-other-ca" +
            " && openssl req" + ec + " -keyout server.key -out server.csr -subj /CN=localhost" +
            " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ok.cnf" +
            " && openssl x509 -req -in server.csr -out server.pem -extfile ok.cnf" + sign +
            " && openssl req" + ec + " -keyout wrong.key -out wrong.csr -subj /CN=segment.invalid" +
            " && printf 'subjectAltName=DNS:segment.invalid\\n' > wrong.cnf" +
            " && openssl x509 -req -in wrong.csr -out wrong.pem -extfile wrong.cnf" + sign +
            " 2>&1",
        30);
    ok = r.code == 0;
    if (!ok)
        error = r.out + r.err;
}

void respond_json(sb_http_exchange *ex, int status, const std::string &body,
                  const std::map<std::string, std::string> &headers)
{
    std::vector<sb_http_header> hs;
    hs.push_back({"Content-Type", "application/json"});
    for (const auto &kv : headers)
        hs.push_back({kv.first.c_str(), kv.second.c_str()});
    sb_http_respond(ex, status, hs.data(), hs.size(), body.data(), body.size());
}

std::string header(const sb_http_message *req, const char *name)
{
    const char *v = sb_http_header_get(req, name);
    return v ? v : "";
}

std::string body(const sb_http_message *req)
{
    return std::string((const char *)req->body, req->body_len);
}

std::string path(const sb_http_message *req)
{
    return req->path ? req->path : "";
}

} // namespace sbt
