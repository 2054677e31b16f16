// Declaration only; see third_party/gloo_decls/README.md.
#ifndef MOERL_GLOO_DECLS_CONTEXT_H_
#define MOERL_GLOO_DECLS_CONTEXT_H_

#include <chrono>

namespace gloo {

class Context {
 public:
  // Named by an inline method of c10d::ProcessGroupGloo; never called here.
  void setTimeout(std::chrono::milliseconds timeout);

 private:
  Context() = delete;
};

}  // namespace gloo

#endif  // MOERL_GLOO_DECLS_CONTEXT_H_
