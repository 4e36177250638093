"""The venv's defaults, shared by rules_keras_dependencies() and the bzlmod extension."""

# The venv repository; its toolchain is `@<name>//:toolchain`.
DEFAULT_VENV_NAME = "rules_keras_python"

# rules_keras's own lock: tensorflow-cpu, Keras, absl-py and bazel-runfiles.
DEFAULT_REQUIREMENTS_LOCK = Label("//:requirements_lock.txt")

# How the toolchain holds its Python: "venv" or "hermetic" (rules/private/python_venv.bzl).
DEFAULT_TOOLCHAIN_LAYOUT = "venv"
