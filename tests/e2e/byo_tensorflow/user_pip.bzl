"""Stand-ins for a monorepo's own Python set-up: its interpreter and its pip library.

A real monorepo would use rules_python's toolchain and `pip_parse`; both download from
GitHub, which the machines this is tested on cannot reach. These two repository rules
do the same work with what is here:

- `user_python`: a Python toolchain of the workspace's own, a python3 that has no
  site-packages (`-S`, as rules_python's downloaded interpreters have none), so that
  every package comes from the library below.
- `user_pip`: what `pip_parse` makes of a lock: each entry installed as it is, checked
  against its hashes, without resolving its requirements again (`--no-deps`), as a
  py_library whose `imports` puts it on the path. The user's lock is that of
  TensorFlow, Keras and absl alone: core_lock.py takes their entries from
  rules_keras's lock. pip_parse makes one repository per package; one folder for all
  of them changes nothing the exporter sees. The installer is uv from rules_keras's
  cache folder, with its download cache, so the wheels rules_keras's venv downloaded
  are not downloaded again.
"""

def _real_python(rctx):
    python = rctx.which("python3")
    if python == None:
        fail("user_python: no python3 on PATH")
    result = rctx.execute([python, "-c", "import os, sys; print(os.path.realpath(sys.executable))"])
    return result.stdout.strip()

def _user_python_impl(rctx):
    rctx.file("python3", "#!/bin/sh\nexec %s -S \"$@\"\n" % _real_python(rctx), executable = True)
    rctx.file("BUILD.bazel", """load("@rules_python//python:defs.bzl", "py_runtime", "py_runtime_pair")

py_runtime(
    name = "runtime",
    interpreter = "python3",
    python_version = "PY3",
    stub_shebang = "#!/usr/bin/env python3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""")

user_python = repository_rule(implementation = _user_python_impl, local = True)

def _cache_dir(rctx):
    xdg = rctx.os.environ.get("XDG_CACHE_HOME", "")
    return (xdg or rctx.os.environ.get("HOME", "/tmp") + "/.cache") + "/rules_keras"

def _uv(rctx, cache):
    for line in rctx.read(rctx.attr._uv_lock).splitlines():
        if line.startswith("uv=="):
            uv = rctx.path("%s/uv/%s/bin/uv" % (cache, line[len("uv=="):].split(" ")[0]))
            if uv.exists:
                return uv
            fail("user_pip: %s is missing: build anything in rules_keras first, which installs it" % uv)
    fail("user_pip: no uv pin in %s" % rctx.attr._uv_lock)

def _user_pip_impl(rctx):
    cache = _cache_dir(rctx)
    python = _real_python(rctx)
    result = rctx.execute([python, rctx.path(rctx.attr._core_lock), rctx.path(rctx.attr.requirements_lock)] + rctx.attr.packages)
    if result.return_code != 0:
        fail("user_pip: " + result.stderr)
    rctx.file("requirements_lock.txt", result.stdout)
    result = rctx.execute(
        [
            _uv(rctx, cache),
            "pip",
            "install",
            "--python",
            python,
            "--target",
            "site-packages",
            "--require-hashes",
            "--only-binary=:all:",
            "--no-deps",
            "--no-progress",
            "--compile-bytecode",
            "-r",
            "requirements_lock.txt",
        ],
        environment = {"UV_CACHE_DIR": cache + "/uv-cache"},
        quiet = True,
    )
    if result.return_code != 0:
        fail("user_pip: uv failed:\n" + result.stderr)
    rctx.file("BUILD.bazel", """load("@rules_python//python:defs.bzl", "py_library")

# Exactly the packages of requirements_lock.txt (beside this file).
py_library(
    name = "{name}",
    srcs = glob(["site-packages/**/*.py"], exclude = ["**/* *"]),
    # Byte code too: compiled at install, so that no action compiles TensorFlow again.
    # Without TensorFlow's C++ headers (only for building custom ops: 11,000 of the
    # 21,000 files), as pip_parse's pip_data_exclude does, so that each action and
    # test stages half as many files.
    data = glob(
        ["site-packages/**"],
        exclude = ["**/*.py", "**/* *", "site-packages/bin/**", "site-packages/tensorflow/include/**"],
    ),
    imports = ["site-packages"],
    visibility = ["//visibility:public"],
)
""".format(name = rctx.attr.library))

user_pip = repository_rule(
    implementation = _user_pip_impl,
    attrs = {
        "library": attr.string(mandatory = True),
        "packages": attr.string_list(mandatory = True),
        "requirements_lock": attr.label(mandatory = True, allow_single_file = True),
        "_core_lock": attr.label(default = Label("//:core_lock.py"), allow_single_file = True),
        "_uv_lock": attr.label(default = Label("@rules_keras//rules/private:uv_lock.txt"), allow_single_file = True),
    },
    environ = ["XDG_CACHE_HOME"],
)
