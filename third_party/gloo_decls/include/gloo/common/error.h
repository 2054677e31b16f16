// Declaration only; see third_party/gloo_decls/README.md. c10d's
// ProcessGroupGloo.hpp includes this header but its declarations need nothing
// from it.
#ifndef MOERL_GLOO_DECLS_COMMON_ERROR_H_
#define MOERL_GLOO_DECLS_COMMON_ERROR_H_
#endif
