// FakeInferenceClient: an in-process InferenceClient for tests of the
// rollout bridge. It "generates" deterministic tokens one at a time (with an
// optional delay per token), honours pause (requests in flight end with
// kAbort and their partial output; new ones wait for Continue), reports the
// version it was last updated to as weight_version, and answers the probe
// with FakeProbeLogprobs (plus probe_offset, to play a server that loaded
// the wrong weights; like SGLang, a paused server holds the probe too).
// Faults are scripted through the public setters.
//
//   FakeInferenceClient server("fake:1");
//   server.set_token_delay(absl::Milliseconds(1));
//   FakeInferenceClient::Counters c = server.counters();
//
// Token i of an answer is a function of the request's whole input, so a
// resumed request continues the same sequence. Thread-safe.
#ifndef MOERL_ROLLOUT_FAKE_INFERENCE_CLIENT_H_
#define MOERL_ROLLOUT_FAKE_INFERENCE_CLIENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "rollout/inference_client.h"

namespace moerl {

// What the fake answers for the probe of `input_ids` at `version`.
std::vector<double> FakeProbeLogprobs(const std::vector<int32_t>& input_ids, int64_t version);

class FakeInferenceClient : public InferenceClient {
 public:
  struct Counters {
    int64_t generate_calls = 0;
    int64_t aborted = 0;       // answers that ended with kAbort
    int64_t updates = 0;
    int64_t max_in_flight = 0;
    std::vector<std::string> loaded_paths;
  };

  explicit FakeInferenceClient(std::string address, int64_t version = 0)
      : address_(std::move(address)), version_(version) {}

  const std::string& address() const override { return address_; }
  absl::StatusOr<Generation> Generate(const GenerationRequest& request,
                                      absl::Duration timeout) override;
  absl::StatusOr<std::vector<double>> ScoreTokens(const std::vector<int32_t>& input_ids,
                                                  absl::Duration timeout) override;
  absl::Status UpdateWeightsFromDisk(const std::string& path, int64_t version,
                                     absl::Duration timeout) override;
  absl::Status PauseGeneration(absl::Duration timeout) override;
  absl::Status ContinueGeneration(absl::Duration timeout) override;
  absl::Status Health(absl::Duration timeout) override;
  absl::Status AbortAll(absl::Duration timeout) override;
  void Cancel() override;

  void set_token_delay(absl::Duration delay);
  // Added to every probe log-prob (0: agrees with FakeProbeLogprobs).
  void set_probe_offset(double offset);
  // Every call fails with kUnavailable while dead.
  void set_dead(bool dead);
  // The next `n` Generate calls fail with kUnavailable.
  void FailNextGenerates(int n);
  // Emit the stop token (kStopToken) as the n-th token of every request (0: never).
  void set_stop_after(int n);
  // Routed experts of width `width` per token (0: none).
  void set_routed_width(int width);

  int64_t version() const;
  Counters counters() const;

  static constexpr int32_t kStopToken = 2;

 private:
  const std::string address_;
  mutable absl::Mutex mu_;
  int64_t version_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  int64_t pause_epoch_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by each pause and abort
  bool dead_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  int stop_after_ ABSL_GUARDED_BY(mu_) = 0;
  int routed_width_ ABSL_GUARDED_BY(mu_) = 0;
  double probe_offset_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration token_delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_FAKE_INFERENCE_CLIENT_H_
