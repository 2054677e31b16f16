"""moerl_fuzz_target: one libFuzzer entry point, two targets.

  moerl_fuzz_target(name = "record_reader_fuzz", srcs = [...], deps = [...],
                    corpus = glob(["testdata/fuzz/record_reader/*"]))

- `<name>`: the libFuzzer binary, tagged manual; build and run it with clang:
      bazel run --config=fuzz //common/transport:record_reader_fuzz -- -max_total_time=60
- `<name>_smoke_test`: the same LLVMFuzzerTestOneInput linked with a small
  driver (common/testing/fuzz_driver.cc) that replays the corpus and a fixed
  number of seeded random and mutated inputs; runs in CI with gcc.
"""

def moerl_fuzz_target(name, srcs, deps = [], corpus = [], smoke_iterations = 20000, **kwargs):
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps,
        copts = ["-fsanitize=fuzzer"],
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual", "fuzz"],
        **kwargs
    )
    native.cc_test(
        name = name + "_smoke_test",
        size = "small",
        srcs = srcs,
        deps = deps + ["//common/testing:fuzz_driver"],
        data = corpus,
        args = ["--iterations=%d" % smoke_iterations] + ["$(location %s)" % c for c in corpus],
        **kwargs
    )
