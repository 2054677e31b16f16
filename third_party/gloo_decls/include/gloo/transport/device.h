// Declaration only; see third_party/gloo_decls/README.md.
#ifndef MOERL_GLOO_DECLS_TRANSPORT_DEVICE_H_
#define MOERL_GLOO_DECLS_TRANSPORT_DEVICE_H_

namespace gloo {
namespace transport {

class Device;
class UnboundBuffer;

}  // namespace transport
}  // namespace gloo

#endif  // MOERL_GLOO_DECLS_TRANSPORT_DEVICE_H_
