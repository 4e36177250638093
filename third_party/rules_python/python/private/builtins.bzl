"""Bazel's built-in Python providers under names that python/defs.bzl can re-export.

defs.bzl cannot write `PyInfo = PyInfo`: a file's own global hides the built-in of the
same name. See third_party/README.md.
"""

builtin_py_info = PyInfo
builtin_py_runtime_info = PyRuntimeInfo
