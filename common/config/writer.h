// Writes the resolved configuration of a run to <run_dir>/config.yaml, so a
// run can be reproduced from its own directory.
//
//   MOERL_RETURN_IF_ERROR(WriteResolvedConfig(
//       tree, RunDirectory(cluster.fileroot, run.experiment_name, run.trial_name)));
//
// Creates run_dir if needed; writes a temporary file, fsyncs and renames it,
// so readers never see a half-written config. Safe to call from one thread
// per run directory.
#ifndef MOERL_COMMON_CONFIG_WRITER_H_
#define MOERL_COMMON_CONFIG_WRITER_H_

#include <string>

#include "absl/status/status.h"
#include "common/config/config_tree.h"

namespace moerl {

absl::Status WriteResolvedConfig(const ConfigTree& tree, const std::string& run_dir);

}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_WRITER_H_
