"""Offline stand-in for @rules_java//java:defs.bzl: forwards to Bazel's native Java rules.

Bazel 4.2.3 loads this file through its registered JDK toolchains even for Python-only
builds. See third_party/README.md.
"""

java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_plugin = native.java_plugin
java_proto_library = native.java_proto_library
java_runtime = native.java_runtime
java_test = native.java_test
java_toolchain = native.java_toolchain
