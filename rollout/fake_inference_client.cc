#include "rollout/fake_inference_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moerl {
namespace {

// Deterministic "sampling": a hash of the whole input, away from the stop id.
int32_t NextToken(const std::vector<int32_t>& input) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t id : input) h = (h ^ static_cast<uint32_t>(id)) * 1099511628211ull;
  return 10 + static_cast<int32_t>(h % 90);
}

}  // namespace

std::vector<double> FakeProbeLogprobs(const std::vector<int32_t>& input_ids, int64_t version) {
  std::vector<double> out;
  for (size_t i = 1; i < input_ids.size(); ++i) {
    out.push_back(-0.25 * (input_ids[i] % 7) - 0.01 * static_cast<double>(version));
  }
  return out;
}

absl::StatusOr<Generation> FakeInferenceClient::Generate(const GenerationRequest& request,
                                                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  ++counters_.generate_calls;
  if (dead_ || fail_next_ > 0) {
    if (!dead_) --fail_next_;
    return absl::UnavailableError(absl::StrCat("POST /generate to ", address_, " failed: fake"));
  }
  // A paused server holds new requests until Continue.
  auto not_paused = [this]()
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !paused_ || cancelled_ || dead_; };
  if (!mu_.AwaitWithDeadline(absl::Condition(&not_paused), deadline)) {
    return absl::DeadlineExceededError(absl::StrCat("/generate to ", address_, ": timeout"));
  }
  if (cancelled_) return absl::CancelledError(absl::StrCat(address_, ": cancelled"));
  ++in_flight_;
  counters_.max_in_flight = std::max(counters_.max_in_flight, in_flight_);
  const int64_t epoch = pause_epoch_;
  // Every load aborts requests in flight, so one answer's tokens all come
  // from the weights it started on.
  const int64_t version = version_;
  Generation g;
  g.finish = GenerationFinish::kLength;
  std::vector<int32_t> input = request.input_ids;
  for (int64_t i = 0; i < request.sampling.max_new_tokens; ++i) {
    if (token_delay_ > absl::ZeroDuration()) {
      auto interrupted = [this, epoch]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return pause_epoch_ != epoch || cancelled_ || dead_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&interrupted), token_delay_);
    }
    if (dead_ || cancelled_) {
      --in_flight_;
      return absl::UnavailableError(absl::StrCat("/generate to ", address_, ": connection lost"));
    }
    if (pause_epoch_ != epoch) {
      g.finish = GenerationFinish::kAbort;
      break;
    }
    const bool stop = stop_after_ > 0 && i + 1 == stop_after_;
    const int32_t token = stop ? kStopToken : NextToken(input);
    input.push_back(token);
    g.output_tokens.push_back(token);
    g.output_logprobs.push_back(-0.5f - 0.001f * static_cast<float>(version));
    for (int w = 0; w < routed_width_ && request.return_routed_experts; ++w) {
      g.routed_experts.push_back((token + w) % 8);
    }
    if (stop) {
      g.finish = GenerationFinish::kStop;
      break;
    }
  }
  if (request.return_routed_experts && routed_width_ > 0) g.routed_experts_width = routed_width_;
  g.weight_version = absl::StrCat(version);
  if (g.finish == GenerationFinish::kAbort) ++counters_.aborted;
  --in_flight_;
  return g;
}

absl::StatusOr<std::vector<double>> FakeInferenceClient::ScoreTokens(
    const std::vector<int32_t>& input_ids, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (dead_) return absl::UnavailableError(absl::StrCat(address_, ": fake dead"));
  // The probe is a /generate: a paused server holds it, as SGLang does.
  auto not_paused = [this]()
                        ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !paused_ || cancelled_ || dead_; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&not_paused), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("probe on ", address_, ": held while paused"));
  }
  std::vector<double> out = FakeProbeLogprobs(input_ids, version_);
  for (double& v : out) v += probe_offset_;
  return out;
}

absl::Status FakeInferenceClient::UpdateWeightsFromDisk(const std::string& path, int64_t version,
                                                        absl::Duration) {
  absl::MutexLock lock(&mu_);
  if (dead_) return absl::UnavailableError(absl::StrCat(address_, ": fake dead"));
  ++pause_epoch_;  // abort_all_requests
  version_ = version;
  ++counters_.updates;
  counters_.loaded_paths.push_back(path);
  return absl::OkStatus();
}

absl::Status FakeInferenceClient::PauseGeneration(absl::Duration) {
  absl::MutexLock lock(&mu_);
  if (dead_) return absl::UnavailableError(absl::StrCat(address_, ": fake dead"));
  paused_ = true;
  ++pause_epoch_;
  return absl::OkStatus();
}

absl::Status FakeInferenceClient::ContinueGeneration(absl::Duration) {
  absl::MutexLock lock(&mu_);
  if (dead_) return absl::UnavailableError(absl::StrCat(address_, ": fake dead"));
  paused_ = false;
  return absl::OkStatus();
}

absl::Status FakeInferenceClient::Health(absl::Duration) {
  absl::MutexLock lock(&mu_);
  if (dead_) return absl::UnavailableError(absl::StrCat("GET /health to ", address_, ": dead"));
  return absl::OkStatus();
}

absl::Status FakeInferenceClient::AbortAll(absl::Duration) {
  absl::MutexLock lock(&mu_);
  ++pause_epoch_;
  return absl::OkStatus();
}

void FakeInferenceClient::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

void FakeInferenceClient::set_token_delay(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  token_delay_ = delay;
}
void FakeInferenceClient::set_probe_offset(double offset) {
  absl::MutexLock lock(&mu_);
  probe_offset_ = offset;
}
void FakeInferenceClient::set_dead(bool dead) {
  absl::MutexLock lock(&mu_);
  dead_ = dead;
}
void FakeInferenceClient::FailNextGenerates(int n) {
  absl::MutexLock lock(&mu_);
  fail_next_ = n;
}
void FakeInferenceClient::set_stop_after(int n) {
  absl::MutexLock lock(&mu_);
  stop_after_ = n;
}
void FakeInferenceClient::set_routed_width(int width) {
  absl::MutexLock lock(&mu_);
  routed_width_ = width;
}
int64_t FakeInferenceClient::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}
FakeInferenceClient::Counters FakeInferenceClient::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace moerl
