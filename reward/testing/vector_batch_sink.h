// Test helper: a BatchSink (reward/scorer.h) that keeps every scored batch in
// memory, numbering them 0, 1, 2, ... in arrival order.
//
//   VectorBatchSink sink;
//   TrajectoryScorer scorer(config, &sink);
//   ASSERT_TRUE(scorer.Run(*ring, &report).ok());
//   sink.batches.size();
//
// Thread-safe: several scorers may write to one sink; read `batches` only
// after they have stopped (or under `mu`).
#ifndef MOERL_REWARD_TESTING_VECTOR_BATCH_SINK_H_
#define MOERL_REWARD_TESTING_VECTOR_BATCH_SINK_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/proto/trajectory.pb.h"
#include "reward/scorer.h"

namespace moerl {

class VectorBatchSink : public BatchSink {
 public:
  absl::StatusOr<std::string> WriteBatch(proto::TrajectoryBatch& batch) override {
    absl::MutexLock lock(&mu);
    batch.set_batch_index(batches.size());
    batches.push_back(batch);
    return absl::StrCat("batch ", batch.batch_index());
  }

  absl::Mutex mu;
  std::vector<proto::TrajectoryBatch> batches;
};

}  // namespace moerl

#endif  // MOERL_REWARD_TESTING_VECTOR_BATCH_SINK_H_
