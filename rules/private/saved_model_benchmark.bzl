"""Internal: `<name>.benchmark`, which `bazel run` runs to time an export's serving
signature through TensorFlow's C++ loader (cc/saved_model_benchmark.cc)."""

load(":providers.bzl", "SavedModelInfo")

def _saved_model_benchmark_impl(ctx):
    export = ctx.attr.saved_model[DefaultInfo].files.to_list()
    if len(export) != 1:
        fail("%s: expected one export folder, got %s" % (ctx.attr.saved_model.label, export))
    launcher = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(
        launcher,
        content = """#!/bin/sh
# `bazel run` starts this in its runfiles folder; run directly, it goes there itself.
# The JSON goes to the folder the command was started from.
: "${{BUILD_WORKING_DIRECTORY:=$PWD}}"
export BUILD_WORKING_DIRECTORY
if [ -d "$0.runfiles/{workspace}" ]; then cd "$0.runfiles/{workspace}"; fi
exec "{benchmark}" "{export}" "$@"
""".format(
            workspace = ctx.workspace_name,
            benchmark = ctx.executable._benchmark.short_path,
            export = export[0].short_path,
        ),
        is_executable = True,
    )
    runfiles = ctx.runfiles(files = export).merge(ctx.attr._benchmark[DefaultInfo].default_runfiles)
    return [DefaultInfo(executable = launcher, runfiles = runfiles)]

saved_model_benchmark = rule(
    implementation = _saved_model_benchmark_impl,
    executable = True,
    attrs = {
        "saved_model": attr.label(mandatory = True, providers = [SavedModelInfo]),
        "_benchmark": attr.label(
            default = Label("//cc:saved_model_benchmark"),
            executable = True,
            cfg = "target",
        ),
    },
)
