"""Offline stand-in for @rules_python//python:defs.bzl: forwards to Bazel's Python rules.

rules_keras loads every Python rule and provider from @rules_python. Its
rules_keras_dependencies() declares the real rules_python 0.9.0, which these machines
cannot download, so this project's own WORKSPACE declares this folder first. Only the
symbols rules_keras uses are here, each forwarding to the rule Bazel 4.2.3 has built in.
A workspace with network access, or with its own rules_python, does not need it. See
third_party/README.md.
"""

load("@bazel_tools//tools/python:toolchain.bzl", _py_runtime_pair = "py_runtime_pair")
load("//python/private:builtins.bzl", "builtin_py_info", "builtin_py_runtime_info")

# --incompatible_load_python_rules_from_bzl refuses a native Python rule unless it
# carries this tag, which marks it as made by rules_python's own wrappers. The tag is
# rules_python's and Bazel's, spelled exactly as there.
_FROM_RULES_PYTHON_TAG = "__PYTHON_RULES_MIGRATION_DO_NOT_USE_WILL_BREAK__"

def _tagged(kwargs):
    tags = kwargs.pop("tags", None) or []
    return dict(kwargs, tags = tags + [_FROM_RULES_PYTHON_TAG])

def py_binary(**kwargs):
    native.py_binary(**_tagged(kwargs))  # buildifier: disable=native-py

def py_library(**kwargs):
    native.py_library(**_tagged(kwargs))  # buildifier: disable=native-py

def py_runtime(**kwargs):
    native.py_runtime(**_tagged(kwargs))  # buildifier: disable=native-py

def py_test(**kwargs):
    native.py_test(**_tagged(kwargs))  # buildifier: disable=native-py

py_runtime_pair = _py_runtime_pair

PyInfo = builtin_py_info

PyRuntimeInfo = builtin_py_runtime_info
