"""The Python rules and provider that rules_keras's own rules and macros use.

Everything comes from rules_python, the one source of Python rules on every Bazel
release (Bazel 9 has no built-in ones); a change of where they come from is made here.
"""

load(
    "@rules_python//python:defs.bzl",
    _PyInfo = "PyInfo",
    _py_binary = "py_binary",
    _py_library = "py_library",
    _py_test = "py_test",
)

PyInfo = _PyInfo
py_binary = _py_binary
py_library = _py_library
py_test = _py_test
