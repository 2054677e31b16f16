// Declaration only; see third_party/gloo_decls/README.md.
#ifndef MOERL_GLOO_DECLS_RENDEZVOUS_STORE_H_
#define MOERL_GLOO_DECLS_RENDEZVOUS_STORE_H_

#include <chrono>
#include <string>
#include <vector>

namespace gloo {
namespace rendezvous {

// The virtuals c10d's GlooStore overrides inline (without gloo's store v2).
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) = 0;
};

}  // namespace rendezvous
}  // namespace gloo

#endif  // MOERL_GLOO_DECLS_RENDEZVOUS_STORE_H_
