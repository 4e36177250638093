"""bzlmod entry point: rules_keras's TensorFlow venv as a module extension.

Written for Bazel 7, 8 and 9 and not run: Bazel 4.2.3, the only Bazel on the machines
rules_keras is tested on, cannot load module extensions. Everything it does is the
WORKSPACE path's, which is tested: the same python_venv repository rule, with the same
defaults, as rules_keras_dependencies().

In the root module's MODULE.bazel:

    bazel_dep(name = "rules_keras", version = "...")

    venv = use_extension("@rules_keras//rules:extensions.bzl", "venv")
    venv.install()  # or venv.install(requirements_lock = "//:my_lock.txt")
    use_repo(venv, "rules_keras_python")
    register_toolchains("@rules_keras_python//:toolchain")

The extension only declares the venv: registering it as the Python toolchain is the
root module's choice. A workspace with its own Python toolchain and TensorFlow from
rules_python's pip.parse skips all of this and repoints
`@rules_keras//export:tensorflow` instead (docs/rules.md).
"""

load("//rules/private:python_venv.bzl", "python_venv")
load("//rules/private:venv_defaults.bzl", "DEFAULT_REQUIREMENTS_LOCK", "DEFAULT_TOOLCHAIN_LAYOUT", "DEFAULT_VENV_NAME")

_install = tag_class(
    doc = "Declares a venv repository with a hash-locked requirements file installed.",
    attrs = {
        "name": attr.string(
            default = DEFAULT_VENV_NAME,
            doc = "The venv repository; its toolchain is `@<name>//:toolchain`.",
        ),
        "python_interpreter": attr.string(
            doc = "The python3 (3.11 or 3.12) to make the venv from; empty searches PATH.",
        ),
        "requirements_lock": attr.label(
            default = DEFAULT_REQUIREMENTS_LOCK,
            doc = "Hash-locked requirements holding tensorflow-cpu, keras and absl-py.",
        ),
        "toolchain_layout": attr.string(
            default = DEFAULT_TOOLCHAIN_LAYOUT,
            doc = "\"venv\" or \"hermetic\" (for remote execution), as in " +
                  "rules_keras_dependencies().",
        ),
    },
)

def _venv_impl(module_ctx):
    # The root module's tags first: for a venv name that several modules configure,
    # the root module's settings win, then the first module's in the graph's order.
    modules = [m for m in module_ctx.modules if m.is_root]
    modules += [m for m in module_ctx.modules if not m.is_root]
    chosen = {}
    for module in modules:
        for tag in module.tags.install:
            if tag.name not in chosen:
                chosen[tag.name] = tag
    for name, tag in chosen.items():
        python_venv(
            name = name,
            requirements_lock = tag.requirements_lock,
            python_interpreter = tag.python_interpreter,
            layout = tag.toolchain_layout,
        )

venv = module_extension(
    implementation = _venv_impl,
    doc = "rules_keras's Python venv with TensorFlow; see this file's docstring.",
    tag_classes = {"install": _install},
)
