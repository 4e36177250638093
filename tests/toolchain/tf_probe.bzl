"""A minimal rule that runs a Python tool importing TensorFlow as a build action."""

def _tf_probe_output_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.run(
        executable = ctx.executable.tool,
        arguments = ["--out", out.path],
        outputs = [out],
        mnemonic = "TfProbe",
        progress_message = "Running TensorFlow in a build action for %s" % ctx.label,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles([out]))]

tf_probe_output = rule(
    implementation = _tf_probe_output_impl,
    doc = "Writes `<name>.json` by running `tool`, which reports TensorFlow's version.",
    attrs = {
        "tool": attr.label(executable = True, cfg = "exec", mandatory = True),
    },
)
