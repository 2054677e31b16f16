"""moerl_cc_proto: C++ code from .proto files with the system protoc.

The native proto_library wants to download @com_google_protobuf; a genrule
that runs Debian's protoc (the same version as the libprotobuf we link)
keeps the build offline. Imports are resolved from the workspace root, so a
schema imports another as "common/proto/prompt.proto".
"""

def moerl_cc_proto(name, srcs, deps = [], visibility = None):
    """Generates <src>.pb.{h,cc} for each of srcs and wraps them in a cc_library.

    Args:
      name: the cc_library's name.
      srcs: .proto files in this package.
      deps: other moerl_cc_proto targets whose .proto files srcs import.
      visibility: the cc_library's visibility.
    """
    outs = []
    for src in srcs:
        if not src.endswith(".proto"):
            fail("moerl_cc_proto: %s is not a .proto file" % src)
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
    native.filegroup(
        name = name + "_protos",
        srcs = srcs + [dep + "_protos" for dep in deps],
        visibility = visibility,
    )
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [dep + "_protos" for dep in deps],
        outs = outs,
        cmd = "protoc --proto_path=. --cpp_out=$(GENDIR) " +
              " ".join(["$(location %s)" % src for src in srcs]),
        message = "protoc %s" % native.package_name(),
    )
    native.cc_library(
        name = name,
        srcs = [out for out in outs if out.endswith(".cc")],
        hdrs = [out for out in outs if out.endswith(".h")],
        # Generated code is not ours to keep warning-clean.
        copts = ["-Wno-unused-parameter", "-Wno-deprecated-declarations"],
        deps = deps + ["@protobuf"],
        visibility = visibility,
    )
