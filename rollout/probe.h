// The probe of a weights version (docs/run_folder.md): v<N>/probe.json holds
// the log-probs the trainer's weights give a few fixed token sequences; the
// bridge asks each server for the same numbers after it loaded v<N> and
// refuses a server that disagrees.
//
//   MOERL_ASSIGN_OR_RETURN(std::optional<Probe> probe, ReadProbeFile(dir + "/probe.json"));
//   absl::Status same = CompareProbe(probe->sequences[0], server_logprobs, 0.05);
//
// Pure functions; thread-safe.
#ifndef MOERL_ROLLOUT_PROBE_H_
#define MOERL_ROLLOUT_PROBE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moerl {

struct ProbeSequence {
  std::vector<int32_t> input_ids;
  std::vector<double> logprobs;  // logprobs[i] = log p(input_ids[i + 1] | input_ids[..i])
};

struct Probe {
  int64_t version = 0;
  std::vector<ProbeSequence> sequences;
};

inline constexpr int64_t kProbeFormatVersion = 1;

// nullopt when the file does not exist; InvalidArgument naming the file and
// the field when it is not a probe (wrong format_version, lengths that do not
// fit, ...).
absl::StatusOr<std::optional<Probe>> ReadProbeFile(const std::string& path);
absl::StatusOr<Probe> ParseProbe(const std::string& text, const std::string& where);
std::string ProbeToJson(const Probe& probe);

// OK when `got` has the expected length and every value is within
// `tolerance`; else FailedPrecondition with the largest difference and where.
absl::Status CompareProbe(const ProbeSequence& expected, const std::vector<double>& got,
                          double tolerance);

// config.json's num_experts_per_tok in a Hugging Face folder; 0 when absent.
int64_t ReadNumExpertsPerToken(const std::string& model_dir);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_PROBE_H_
