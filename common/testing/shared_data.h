// Where tests find the project's data (GSM8K, the Qwen tokenizer files,
// Qwen3 configs): third_party/data in the repository, with its licenses.
//
//   std::string path = SharedDataPath("data/gsm8k/test.jsonl");
//   if (path.empty()) GTEST_FAIL() << MissingSharedDataMessage("data/gsm8k/test.jsonl");
//
// `relative` names a path under third_party/ ("data/gsm8k/test.jsonl").
// $MOERL_SHARED_DIR overrides the location (a folder holding data/...).
// Otherwise the test's runfiles are searched (depend on the
// //third_party/data filegroup you read), then the checkout found through the
// WORKSPACE file in the runfiles ("//:workspace_marker" as data).
#ifndef MOERL_COMMON_TESTING_SHARED_DATA_H_
#define MOERL_COMMON_TESTING_SHARED_DATA_H_

#include <string>

namespace moerl {

// Absolute path of `relative`, or "" if it does not exist.
std::string SharedDataPath(const std::string& relative);

// "missing third_party/<relative>: ..." with what to do about it.
std::string MissingSharedDataMessage(const std::string& relative);

}  // namespace moerl

#endif  // MOERL_COMMON_TESTING_SHARED_DATA_H_
