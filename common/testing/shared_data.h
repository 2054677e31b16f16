// Where tests find ../shared (GSM8K, the Qwen tokenizer files, Qwen3
// configs): the folder beside the checkout, as laid out for developers and CI.
//
//   std::string path = SharedDataPath("data/gsm8k/test.jsonl");
//   if (path.empty()) GTEST_FAIL() << MissingSharedDataMessage("data/gsm8k/test.jsonl");
//
// $MOERL_SHARED_DIR overrides the location. Otherwise the checkout is found
// through the WORKSPACE file in the test's runfiles (a symlink into the
// source tree), and shared/ is its sibling. Tests that use this depend on
// "//:workspace_marker" as data.
#ifndef MOERL_COMMON_TESTING_SHARED_DATA_H_
#define MOERL_COMMON_TESTING_SHARED_DATA_H_

#include <string>

namespace moerl {

// Absolute path of `relative` under shared/, or "" if it does not exist.
std::string SharedDataPath(const std::string& relative);

// "missing ../shared/<relative>: ..." with what to do about it.
std::string MissingSharedDataMessage(const std::string& relative);

}  // namespace moerl

#endif  // MOERL_COMMON_TESTING_SHARED_DATA_H_
