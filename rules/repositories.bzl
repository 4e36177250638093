"""Workspace set-up for rules_keras: a Python with TensorFlow for the exporter.

In a consumer's WORKSPACE, after declaring the `rules_keras` repository:

    load("@rules_keras//rules:repositories.bzl", "rules_keras_dependencies")
    rules_keras_dependencies()
"""

load("//rules/private:python_venv.bzl", "python_venv")

def rules_keras_dependencies(
        name = "rules_keras_python",
        requirements_lock = Label("//:requirements_lock.txt"),
        python_interpreter = "",
        register_toolchains = True):
    """Declares the Python venv the exporter runs in and registers it as a toolchain.

    Args:
      name: name of the venv repository; its toolchain is `@<name>//:toolchain`.
      requirements_lock: hash-locked requirements to install. The default is
        rules_keras's own lock (tensorflow-cpu 2.21, absl-py, bazel-runfiles). A
        monorepo may pass its own lock, as long as it holds those packages.
      python_interpreter: python3 to build the venv from (name on PATH or absolute
        path); empty means search PATH for Python 3.11 or 3.12.
      register_toolchains: register `@<name>//:toolchain` as the Python toolchain.
        Pass False if the workspace already registers its own Python toolchain with
        TensorFlow installed.
    """
    if not native.existing_rule(name):
        python_venv(
            name = name,
            requirements_lock = requirements_lock,
            python_interpreter = python_interpreter,
        )
    if register_toolchains:
        native.register_toolchains("@%s//:toolchain" % name)
