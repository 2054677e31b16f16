#include "common/stage_timing.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace moerl {

StageTiming::StageTiming(std::string stage, Clock clock)
    : stage_(std::move(stage)), clock_(std::move(clock)), start_(Now()) {}

void StageTiming::Count(const std::string& name, int64_t n) {
  absl::MutexLock lock(&mu_);
  counts_[name] += n;
}

std::string StageTiming::ToJson() const {
  // Stage and count names are ours (letters, digits, '_', '.'), so they
  // need no escaping.
  auto seconds = [](absl::Duration d) { return absl::StrFormat("%.6f", absl::ToDoubleSeconds(d)); };
  std::string out = absl::StrCat(
      "{\"stage\":\"", stage_, "\",\"wall_s\":", seconds(Now() - start_),
      ",\"wait_input_s\":", seconds(Total(TimeBucket::kWaitInput)),
      ",\"wait_output_s\":", seconds(Total(TimeBucket::kWaitOutput)),
      ",\"transport_s\":", seconds(Total(TimeBucket::kTransport)),
      ",\"compute_s\":", seconds(Total(TimeBucket::kCompute)), ",\"counts\":{");
  absl::MutexLock lock(&mu_);
  const char* separator = "";
  for (const auto& [name, n] : counts_) {
    absl::StrAppend(&out, separator, "\"", name, "\":", n);
    separator = ",";
  }
  absl::StrAppend(&out, "}}");
  return out;
}

StageTimingReporter::StageTimingReporter(const StageTiming* timing, absl::Duration period)
    : timing_(timing) {
  thread_ = std::thread([this, period] {
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), period)) {
      MOERL_LOG(INFO) << "stage_timing " << timing_->ToJson();
    }
  });
}

StageTimingReporter::~StageTimingReporter() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  MOERL_LOG(INFO) << "stage_timing " << timing_->ToJson();
}

}  // namespace moerl
