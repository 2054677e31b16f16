// The format versions of moerl's Protobuf schemas (common/proto/*.proto).
// Writers stamp them into format_version; readers check them before use.
#ifndef MOERL_COMMON_PROTO_FORMATS_H_
#define MOERL_COMMON_PROTO_FORMATS_H_

#include <cstdint>

namespace moerl {

inline constexpr uint32_t kPromptFormatVersion = 1;
inline constexpr uint32_t kTrajectoryFormatVersion = 2;  // 2: routed_experts
inline constexpr uint32_t kTrajectoryBatchFormatVersion = 1;
inline constexpr uint32_t kStepStatsFormatVersion = 1;
inline constexpr uint32_t kCheckpointManifestFormatVersion = 1;

}  // namespace moerl

#endif  // MOERL_COMMON_PROTO_FORMATS_H_
