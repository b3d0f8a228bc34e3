// harness.h: what the process-level tests share - ports, temp dirs, a segbusd child process,
// blocking HTTP requests, an HTTP receiver on its own io_uring loop, and counting messageIds in
// NDJSON files and msgpack batch envelopes. One copy, so every test starts things the same way.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "segbus/segbus.h"

struct sb_http_exchange;
struct sb_http_message;

namespace sbt
{

// An unused TCP port on 127.0.0.1, below the kernel's ephemeral range (see harness.cc).
uint16_t free_port();

// A fresh directory under /tmp, removed with its contents at destruction unless the
// environment has SEGBUS_KEEP_TMP=1 (for looking at logs after a failure).
struct TempDir {
    std::string path;
    explicit TempDir(const char *prefix = "segbus-test");
    ~TempDir();
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    std::string operator/(const std::string &name) const
    {
        return path + "/" + name;
    }
};

std::string slurp(const std::string &path);
void write_file(const std::string &path, const std::string &text);

// Polls cond every 5 ms for up to ms milliseconds; true as soon as it holds.
bool wait_for(const std::function<bool()> &cond, int ms);
// The file (a UNIX socket) exists within ms milliseconds.
bool wait_socket(const std::string &path, int ms = 5000);
// segbus_producer_open, retried for up to ms milliseconds while no daemon listens yet (the
// socket file appears at bind, a moment before listen). 0 or the last error.
int producer_open(segbus_producer_t **h, const std::string &sock,
                  const segbus_producer_options_t *o = nullptr, int ms = 5000);

struct Reply {
    int status = 0; // 0: no answer (connection refused, timeout, cut short)
    std::string head, body;
    bool has(const std::string &text) const
    {
        return head.find(text) != std::string::npos;
    }
};

// One request on a fresh connection to 127.0.0.1:port; `headers` are complete lines ending in
// \r\n. Reads the whole Content-Length framed answer, at most timeout_s seconds.
Reply http_request(uint16_t port, const std::string &method, const std::string &path,
                   const std::string &headers = "", const std::string &body = "",
                   int timeout_s = 10);
// A metric in Prometheus text: the sum of its samples whose label text contains `labels`
// (e.g. "reason=\"full_error\""; "" takes all), -1 when there is none.
double metric_value(const std::string &text, const std::string &name,
                    const std::string &labels = "");
// GET with Connection: close; the raw response (status line, headers and body), "" if refused.
std::string http_get(uint16_t port, const std::string &path);

// A program run to its end: exit status (128+signal when killed by one; -9 when it outlived
// its time and was SIGKILLed), stdout and stderr.
struct RunResult {
    int code = -1;
    std::string out, err;
};

// A child process with stdout and stderr captured in temp files. env: variables to set for it;
// a null value unsets the variable.
struct Child {
    pid_t pid = -1;
    bool start(const std::string &program, const std::vector<std::string> &args,
               const std::map<std::string, const char *> &env = {});
    RunResult wait(int seconds = 60); // then SIGKILL
    ~Child();

  private:
    std::string out_path_, err_path_;
};

RunResult run_program(const std::string &program, const std::vector<std::string> &args,
                      int seconds = 60, const std::map<std::string, const char *> &env = {});
// `sh -c command`.
RunResult run_shell(const std::string &command, int seconds = 60);
// The built binaries.
std::string segbus_cli();

// The common head of a test segbusd config: socket <dir>/segbusd.sock, spool <dir>/spool,
// batches of max_events flushed every 10 ms, a 1 h dedup window, metrics on 127.0.0.1:
// metrics_port (off when 0), the hub's HTTP input on 127.0.0.1:http_port (off when 0). Append
// sources: and outputs:.
std::string daemon_config(const std::string &dir, uint16_t http_port, uint16_t metrics_port,
                          unsigned max_events = 500);

// A segbusd child process. Its stderr goes to the log file.
struct Segbusd {
    pid_t pid = -1;
    std::string log;
    static std::string binary();
    // Starts `segbusd --config config`; append: add to the log rather than truncate it.
    bool start(const std::string &config, const std::string &log_path, bool append = false);
    // SIGTERM, then waits up to `seconds`: the exit status (128+signal if killed by one), or -1
    // if it is still running (it is then SIGKILLed).
    int stop(int seconds);
    void kill9(); // SIGKILL and reap
    bool alive();
    ~Segbusd();
};

// messageId -> number of lines carrying it, in an NDJSON file of Segment events; also the
// number of lines and, when line_of is given, the (last) line of each messageId.
std::map<std::string, int>
ndjson_message_ids(const std::string &path, int *lines = nullptr,
                   std::map<std::string, std::string> *line_of = nullptr);
// Adds each messageId of a msgpack envelope {"batch": [event...]} to ids; false if the bytes are
// not such an envelope.
bool msgpack_batch_message_ids(const void *body, size_t len, std::map<std::string, int> &ids);

// Every "messageId":"..." in a JSON text (a webhook body, an NDJSON line), in order.
std::vector<std::string> json_message_ids(const std::string &json);
// Lowercase hex HMAC-SHA256 of body under key: what a receiver of signed webhooks checks.
std::string hmac_sha256_hex(const std::string &key, const std::string &body);
// Does the header value equal "sha256=" + hmac_sha256_hex(key, body)? Compared in constant time.
bool signature_ok(const std::string &header, const std::string &key, const std::string &body);

// An HTTP server on 127.0.0.1 running its own io_uring loop in a thread. The handler answers
// each request with sb_http_respond (or respond_json below). stop() closes the listener and its
// connections; start() again on the same port brings it back, as a destination that was down.
struct HttpReceiver {
    using Handler = std::function<void(sb_http_exchange *, const sb_http_message *)>;
    uint16_t port = 0; // 0 before the first start: an ephemeral port, kept for restarts
    size_t max_body_bytes = 8 << 20;
    std::string tls_cert, tls_key; // both set: HTTPS
    bool start(Handler handler);
    void stop();
    ~HttpReceiver();

  private:
    Handler handler_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<int> state_{0}; // 0 starting, 1 up, -1 failed
    static void route(void *arg, sb_http_exchange *ex, const sb_http_message *req);
};

// A segbus hub stand-in on an HttpReceiver: takes msgpack batch envelopes on POST /v1/batch,
// counts every messageId, answers {"success":true}. The first `fail_first` requests get
// `fail_status` (with Retry-After: fail_retry_after unless that is null), as a hub that is busy.
// Lock `mu` to read the fields while it runs.
struct HubStandIn {
    HttpReceiver http;
    std::mutex mu;
    std::map<std::string, int> ids;
    int requests = 0, bad = 0, fail_first = 0, fail_status = 503;
    const char *fail_retry_after = "0";
    std::vector<std::string> retry_counts; // X-Retry-Count of each request, "" when absent
    bool start();
    size_t distinct();
    int max_copies(); // the most times one messageId arrived (1 when exactly once)
};

// A test PKI made with the openssl CLI in a temp dir: a CA, a server certificate signed by it
// for IP 127.0.0.1 and DNS localhost (cert, key), one signed by it for another name only
// (wrong_host_cert, wrong_host_key: a host-name mismatch), and an unrelated CA (other_ca).
// ok is false (with the CLI's output in error) if openssl failed.
struct TestCA {
    TempDir dir{"segbus-ca"};
    std::string ca, other_ca, cert, key, wrong_host_cert, wrong_host_key, error;
    bool ok = false;
    TestCA();
};

// Answers with a JSON body and Content-Type: application/json (plus extra headers as
// "Name: value" pairs, e.g. {"Retry-After", "0"}).
void respond_json(sb_http_exchange *ex, int status, const std::string &body,
                  const std::map<std::string, std::string> &headers = {});
// A request header's value, "" when absent.
std::string header(const sb_http_message *req, const char *name);
std::string body(const sb_http_message *req);
std::string path(const sb_http_message *req);

} // namespace sbt
