"""Workspace set-up for rules_keras: a Python with TensorFlow for the exporter.

In a consumer's WORKSPACE, after declaring the `rules_keras` repository:

    load("@rules_keras//rules:repositories.bzl", "rules_keras_dependencies")
    rules_keras_dependencies()
"""

load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")
load("@bazel_tools//tools/build_defs/repo:utils.bzl", "maybe")
load("//rules/private:python_venv.bzl", "python_venv")
load("//rules/private:venv_defaults.bzl", "DEFAULT_REQUIREMENTS_LOCK", "DEFAULT_TOOLCHAIN_LAYOUT", "DEFAULT_VENV_NAME")

def rules_keras_dependencies(
        name = DEFAULT_VENV_NAME,
        requirements_lock = DEFAULT_REQUIREMENTS_LOCK,
        python_interpreter = "",
        toolchain_layout = DEFAULT_TOOLCHAIN_LAYOUT,
        register_toolchains = True):
    """Declares rules_python and the Python the exporter runs in, as a toolchain.

    rules_python (every Python rule rules_keras uses is loaded from it) is declared
    only when the workspace has not declared it already: a workspace with its own,
    newer rules_python keeps it.

    Args:
      name: name of the venv repository; its toolchain is `@<name>//:toolchain`.
      requirements_lock: hash-locked requirements to install. The default is
        rules_keras's own lock (tensorflow-cpu 2.21, absl-py, bazel-runfiles). A
        monorepo may pass its own lock, as long as it holds those packages.
      python_interpreter: python3 to build the venv from (name on PATH or absolute
        path); empty means search PATH for Python 3.11 or 3.12.
      toolchain_layout: how the toolchain holds its Python (docs/rules.md).
        "venv" (the default): a venv that the interpreter wrapper finds by its real
        path in the output base; actions do not declare its files, so local builds
        stage nothing, but only a local build can run them. "hermetic": a relocatable
        copy of the interpreter with the lock installed, whose ~11,300 files are
        declared inputs of every Python action and test, as remote execution needs;
        locally each sandboxed action then stages them. The
        RULES_KERAS_TOOLCHAIN_LAYOUT environment variable (for example
        `--repo_env=RULES_KERAS_TOOLCHAIN_LAYOUT=hermetic`) wins.
      register_toolchains: register `@<name>//:toolchain` as the Python toolchain.
        Pass False if the workspace already registers its own Python toolchain with
        TensorFlow installed.
    """
    maybe(
        http_archive,
        name = "rules_python",
        # 0.9.0: the last release its authors tested on Bazel 4.
        url = "https://github.com/bazelbuild/rules_python/archive/refs/tags/0.9.0.tar.gz",
        strip_prefix = "rules_python-0.9.0",
        sha256 = "5fa3c738d33acca3b97622a13a741129f67ef43f5fdfcec63b29374cc0574c29",
    )
    if not native.existing_rule(name):
        python_venv(
            name = name,
            requirements_lock = requirements_lock,
            python_interpreter = python_interpreter,
            layout = toolchain_layout,
        )
    if register_toolchains:
        native.register_toolchains("@%s//:toolchain" % name)
