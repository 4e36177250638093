"""keras_saved_model's `<name>.provenance.json`, written by a small action after the
export (rules/private/provenance.py: standard library only, so it needs no TensorFlow
and the export action stays as it is). Internal."""

load(":actions.bzl", "ACTION_ENV", "display_label")

PYTHON_TOOLCHAIN = "@bazel_tools//tools/python:toolchain_type"

# The rule's attributes this needs.
PROVENANCE_ATTRS = {
    "_provenance_writer": attr.label(
        default = Label("//rules/private:provenance"),
        executable = True,
        cfg = "exec",
    ),
}

def _material(file):
    # Named by its runfiles path, which is the same in every output base.
    return "--material=%s=%s" % (file.short_path, file.path)

def write_provenance(ctx, base_dir, export_info, built_from, stamped):
    """Declares `<name>.provenance.json` and the action that writes it.

    Args:
      ctx: keras_saved_model's context.
      base_dir: the export's tree artifact.
      export_info: `<name>.export.json` (the target's settings).
      built_from: depset of the files the export action read (model file, weights,
        the builder's and custom objects' modules, the exporter's library).
      stamped: whether the version is the build time.

    Returns:
      The provenance File.
    """
    provenance = ctx.actions.declare_file(ctx.label.name + ".provenance.json")
    interpreter = ctx.toolchains[PYTHON_TOOLCHAIN].py3_runtime.interpreter
    args = ctx.actions.args()
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")
    args.add(base_dir.path, format = "--export_dir=%s")
    args.add(export_info, format = "--export_info=%s")
    args.add(display_label(ctx.label), format = "--target=%s")
    args.add_all(built_from, map_each = _material)
    args.add(interpreter, format = "--interpreter=%s")
    args.add(interpreter.short_path, format = "--interpreter_name=%s")
    args.add(json.encode(ACTION_ENV), format = "--action_env=%s")
    if stamped:
        args.add("--stamped")
    args.add(provenance, format = "--output=%s")
    ctx.actions.run(
        executable = ctx.executable._provenance_writer,
        arguments = [args],
        inputs = depset([base_dir, export_info, interpreter], transitive = [built_from]),
        outputs = [provenance],
        mnemonic = "KerasProvenance",
        progress_message = "Writing the provenance of %s" % ctx.label,
    )
    return provenance
