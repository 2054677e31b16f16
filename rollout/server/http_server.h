// SglangHttpServer: SGLang's native HTTP endpoints (docs/server.md) on a
// Scheduler, with cpp-httplib.
//
//   SglangHttpServer http(scheduler.get(), /*threads=*/64);
//   MOERL_ASSIGN_OR_RETURN(int port, http.Bind("127.0.0.1", 0));   // 0: a free port
//   std::thread t([&] { http.Serve(); });   // until Stop()
//   ...
//   http.Stop();  t.join();
//
// Endpoints: POST|PUT /generate, GET /health, GET /health_generate,
// GET /get_model_info, GET /get_server_info, GET /get_weight_version,
// GET|POST /flush_cache, POST /update_weights_from_disk,
// POST /pause_generation, POST /continue_generation, POST /abort_request.
// Bad requests get HTTP 400 with SGLang's error body naming the field; the
// server never crashes on input. docs/server.md lists the shapes.
//
// Threading: each request runs on an HTTP worker thread (a pool of
// `threads`); a /generate call blocks its worker until its sequences finish.
#ifndef MOERL_ROLLOUT_SERVER_HTTP_SERVER_H_
#define MOERL_ROLLOUT_SERVER_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/stage_timing.h"
#include "rollout/server/scheduler.h"

namespace httplib {
class Server;
}

namespace moerl {

class SglangHttpServer {
 public:
  // `timing` (optional, borrowed): /generate's JSON decoding and encoding
  // are added to its transport (docs/pipeline.md, "Stage timing").
  SglangHttpServer(Scheduler* scheduler, int64_t threads, uint64_t seed,
                   StageTiming* timing = nullptr);
  ~SglangHttpServer();

  // Binds (port 0: any free port) and returns the port.
  absl::StatusOr<int> Bind(const std::string& host, int port);
  // Serves until Stop(); call after Bind.
  absl::Status Serve();
  void Stop();

 private:
  void Routes();

  Scheduler* scheduler_;
  std::unique_ptr<httplib::Server> http_;
  uint64_t seed_;
  StageTiming* timing_;
  std::atomic<uint64_t> request_counter_{0};
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_SERVER_HTTP_SERVER_H_
