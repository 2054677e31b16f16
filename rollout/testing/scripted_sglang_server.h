// ScriptedServer: an SGLang-speaking HTTP server on 127.0.0.1 for tests of
// the bridge and its client. /generate answers deterministic tokens
// (10 + (input length + i) % 50), log-prob -0.5 each, the weight_version of
// the last /update_weights_from_disk, routed experts when asked, and
// ProbeValue(id) log-probs for the probe request (logprob_start_len 0).
// Generation requests first follow a script of faults.
//
//   ScriptedServer server;
//   server.Start();                       // port 0: any free port
//   server.Script({Fault::k500, Fault::kHang});
//   ... server.address() ...              // "127.0.0.1:<port>"
//   server.Stop(); server.Start(port);    // dies, comes back on its port
//
// Thread-safe; handlers run on cpp-httplib's pool.
#ifndef MOERL_ROLLOUT_TESTING_SCRIPTED_SGLANG_SERVER_H_
#define MOERL_ROLLOUT_TESTING_SCRIPTED_SGLANG_SERVER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace moerl {

enum class Fault { kNone, k500, k400, kGarbage, kHang, kTruncated };

// The log-prob the server gives token `id` in a probe.
inline double ProbeValue(int64_t id) { return -0.125 * (id % 5); }

class ScriptedServer {
 public:
  ScriptedServer();
  ~ScriptedServer();

  // False when the port cannot be bound.
  bool Start(int port = 0);
  void Stop();

  void Script(std::vector<Fault> faults);
  std::string address() const;
  int port() const { return port_; }
  int64_t generates();
  int64_t updates();

 private:
  void Generate(const httplib::Request& req, httplib::Response& res);

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  absl::Mutex mu_;
  std::deque<Fault> script_ ABSL_GUARDED_BY(mu_);
  std::string version_ ABSL_GUARDED_BY(mu_) = "default";
  int64_t generates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t updates_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_TESTING_SCRIPTED_SGLANG_SERVER_H_
