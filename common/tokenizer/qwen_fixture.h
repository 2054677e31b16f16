// A gtest fixture that loads Qwen3's tokenizer (151k tokens, ~1 s) once per
// test suite and fails each test with the load error when third_party/data is absent.
//
//   class MyTest : public tokenizer_testing::QwenTokenizerTest {};
//   TEST_F(MyTest, X) { shared_->Encode("..."); }
//
// Test-only; the tokenizer is shared read-only by the suite's tests.
#ifndef MOERL_COMMON_TOKENIZER_QWEN_FIXTURE_H_
#define MOERL_COMMON_TOKENIZER_QWEN_FIXTURE_H_

#include <utility>

#include "absl/status/status.h"
#include "common/tokenizer/golden_util.h"
#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace moerl {
namespace tokenizer_testing {

class QwenTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto tok = LoadQwenTokenizer();
    if (tok.ok()) {
      shared_ = new Tokenizer(*std::move(tok));
    } else {
      load_error_ = new absl::Status(tok.status());
    }
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
    delete load_error_;
    load_error_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(shared_, nullptr) << *load_error_; }

  inline static Tokenizer* shared_ = nullptr;
  inline static absl::Status* load_error_ = nullptr;
};

}  // namespace tokenizer_testing
}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_QWEN_FIXTURE_H_
