"""What the artifact rules look like from Starlark, written as JSON for surface_test.

An aspect reads a real target of each artifact rule at analysis time: its attribute
names, the environment of its action (the mnemonic of export/formats.bzl) and, for a
keras_saved_model, the signature name of each mode. Nothing is built: no action runs.
"""

load("//export:formats.bzl", "FORMATS")
load("//rules:defs.bzl", "SavedModelInfo")

# The syntax check is private to //rules; this test is what pins it to the exporter's.
# buildifier: disable=bzl-visibility
load("//rules/private:symbol_reference.bzl", "is_custom_object_name", "is_symbol_reference")

_TargetSurfaceInfo = provider(
    doc = "What the aspect saw of one target.",
    fields = ["attrs", "format", "action_env", "signature_of_mode"],
)

_FORMAT_OF_MNEMONIC = {f["mnemonic"]: f["rule"] for f in FORMATS}

def _surface_aspect_impl(target, ctx):
    action_env = None
    format = None
    for action in target.actions:
        if action.mnemonic in _FORMAT_OF_MNEMONIC:
            format = _FORMAT_OF_MNEMONIC[action.mnemonic]
            action_env = action.env
    signature_of_mode = None
    if SavedModelInfo in target:
        modes = ctx.rule.attr.modes
        signature_of_mode = {mode: target[SavedModelInfo].signature_names[i] for i, mode in enumerate(modes)}
    return [_TargetSurfaceInfo(
        attrs = sorted(dir(ctx.rule.attr)),
        format = format,
        action_env = action_env,
        signature_of_mode = signature_of_mode,
    )]

_surface_aspect = aspect(implementation = _surface_aspect_impl)

def _rule_surface_impl(ctx):
    common = ctx.attr.attributeless[_TargetSurfaceInfo]
    formats = {}
    for target in ctx.attr.artifacts:
        seen = target[_TargetSurfaceInfo]
        formats[seen.format] = struct(
            # Bazel's own attributes (name, tags, visibility, ...) are those of a rule
            # that declares none.
            attrs = [a for a in seen.attrs if a not in common.attrs],
            action_env = seen.action_env,
        )
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.write(out, json.encode_indent(struct(
        formats = formats,
        signature_of_mode = ctx.attr.export[_TargetSurfaceInfo].signature_of_mode,
    )))
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

rule_surface = rule(
    implementation = _rule_surface_impl,
    doc = "Writes `<name>.json`: `formats`, each format's `attrs` and `action_env` by " +
          "its rule's name, and `signature_of_mode` of `export`.",
    attrs = {
        "artifacts": attr.label_list(
            aspects = [_surface_aspect],
            doc = "A target of each artifact rule of export/formats.bzl.",
        ),
        "attributeless": attr.label(
            aspects = [_surface_aspect],
            doc = "A target of a rule without attributes of its own.",
        ),
        "export": attr.label(
            aspects = [_surface_aspect],
            providers = [SavedModelInfo],
            doc = "A keras_saved_model target with every mode in `modes`.",
        ),
    },
)

def _attributeless_impl(
        ctx):  # @unused
    return []

attributeless = rule(
    implementation = _attributeless_impl,
    doc = "A rule with no attributes but Bazel's own.",
)

def _symbol_syntax_verdicts_impl(ctx):
    verdicts = {
        "custom_object_names": {
            text: {"expected": expected, "starlark": "good" if is_custom_object_name(text) else "bad"}
            for text, expected in ctx.attr.custom_object_names.items()
        },
        "symbol_references": {
            text: {"expected": expected, "starlark": "good" if is_symbol_reference(text) else "bad"}
            for text, expected in ctx.attr.symbol_references.items()
        },
    }
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.write(out, json.encode_indent(verdicts))
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

symbol_syntax_verdicts = rule(
    implementation = _symbol_syntax_verdicts_impl,
    doc = "Writes `<name>.json`: each string's expected verdict and the Starlark check's.",
    attrs = {
        "custom_object_names": attr.string_dict(
            doc = "Key of `custom_objects` to \"good\" or \"bad\".",
        ),
        "symbol_references": attr.string_dict(
            doc = "`package.module:symbol` string to \"good\" or \"bad\".",
        ),
    },
)
