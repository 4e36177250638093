"""One shape for every artifact rule (keras_saved_model, keras_tflite_model). Internal.

An artifact rule turns its inputs into build artifacts in one action that runs the
format's program (export/formats.bzl names it). What every format shares is here:

- `artifact_format(rule, settings)`: the format's entry of export/formats.bzl with its
  settings table (export/settings.bzl says what a setting is);
- `artifact_rule(format, ...)`: the rule, with one attribute per setting a user sets
  and the program to run;
- `program_arguments(ctx, format)` and `run_program(ctx, format, ...)`: the action,
  with every attribute passed as the flag of the same name, through a flagfile, as a
  persistent worker, sandboxed without network, quiet on success, its errors naming
  the target;
- `ArtifactInfo`: what the format's test gets of a target, besides the public provider;
- `artifact_test(name, format, target, ...)`: the format's test, a py_test that gets
  the artifact's files one way (a JSON of their runfiles paths, `--artifact_files`,
  read by rules/private/artifact_files.py) and the model's Python library as a dep;
- `artifact_library(name, target)`: the `<name>.deps` library of a rule whose model
  comes from another target;
- `export_attribute(format, name)` and `convert_export(ctx, format, ...)`: the
  attribute and the action of a format converted from a keras_saved_model's export
  (formats/<format>/), and the providers every such format returns;
  `converted_artifact(rule, name, ...)`: what its public macro makes.

CONTRIBUTING.md, "Add an artifact format", says which files a format adds.
"""

load("//export:formats.bzl", "FORMATS")
load(":actions.bzl", "ACTION_ENV", "add_flag", "attribute", "display_label")
load(":providers.bzl", "SavedModelInfo")
load(":py.bzl", "PyInfo", "py_test")

ArtifactInfo = provider(
    doc = "Internal: what an artifact rule gives its test, the same for every format.",
    fields = {
        "format": "string: the rule's name in export/formats.bzl.",
        "files": "dict of string to File or None: the files the test reads by role " +
                 "(e.g. `tflite`, `manifest`, `saved_model`); the test gets them as a " +
                 "JSON of runfiles paths.",
        "runfiles": "runfiles: those files and whatever else the test reads (the " +
                    "model file and weights the export was made from).",
        "library": "Target or None: the py_library of the exporter's library and the " +
                   "model's deps (`<export>.deps`), with which the test rebuilds the " +
                   "Keras model.",
    },
)

def _label(path, suffix = ""):
    """The Label `//<folder>:<name>` of the workspace path `<folder>/<name><suffix>`."""
    folder, _, name = path.rpartition("/")
    if suffix and name.endswith(suffix):
        name = name[:-len(suffix)]
    return Label("//%s:%s" % (folder, name))

def _also(label, included):
    """[label], or [] when it is `included` (the exporter's library is //export:lib)."""
    return [] if label == included else [label]

def format_program(entry):
    """The py_binary of a format's program: `//<folder>:<name>` for `<folder>/<name>.py`."""
    return _label(entry["program"], ".py")

def format_library(entry):
    """The py_library of a format's library.

    `//<folder>:<module>`, or //export:lib for a module of export/lib.
    """
    if entry["library"].startswith("export/lib/"):
        return Label("//export:lib")
    return _label(entry["library"], ".py")

def format_file(entry, key):
    """The Label of the file that the format's `key` (table, test_program...) names."""
    return _label(entry[key])

def artifact_format(rule_name, settings):
    """The format of the rule `rule_name`: its entry of export/formats.bzl and table.

    Args:
      rule_name: the public rule's name, as export/formats.bzl lists it.
      settings: the format's settings table (e.g. TFLITE_SETTINGS).

    Returns:
      A struct: `name`, `settings`, `attribute_settings` (those a user sets),
      `program` (the Label of the program), `mnemonic`, `test` (the test macro's
      name), `test_main` (the Label of its program) and `library` (the Label of the
      py_library its program imports).
    """
    entries = [f for f in FORMATS if f["rule"] == rule_name]
    if len(entries) != 1:
        fail("export/formats.bzl lists %d formats named %r" % (len(entries), rule_name))
    entry = entries[0]
    return struct(
        name = rule_name,
        settings = settings,
        attribute_settings = [s for s in settings if s["set_by"] == "user"],
        program = format_program(entry),
        mnemonic = entry["mnemonic"],
        test = entry["test"],
        test_main = format_file(entry, "test_program"),
        library = format_library(entry),
    )

def setting_doc(format, name):
    """The doc of the setting `name` of the format's table.

    For an attribute the rule declares itself (a label that needs a provider).

    Args:
      format: from artifact_format.
      name: the setting's name.

    Returns:
      The setting's doc.
    """
    return [s for s in format.settings if s["name"] == name][0]["doc"]

def artifact_rule(format, implementation, doc, attrs = {}, **kwargs):
    """The rule of a format: one attribute per setting a user sets, and the program.

    Args:
      format: from artifact_format.
      implementation: the rule's implementation; it calls program_arguments and
        run_program, and returns the format's provider and an ArtifactInfo.
      doc: the rule's doc.
      attrs: the rule's other attributes; one named as a setting replaces the one
        made from the table (e.g. a label that needs a provider).
      **kwargs: passed to rule() (toolchains, ...).

    Returns:
      The rule.
    """
    attributes = {
        setting["name"]: attribute(setting, format.name)
        for setting in format.attribute_settings
        if setting["name"] not in attrs
    }
    attributes.update(attrs)
    attributes["_program"] = attr.label(default = format.program, executable = True, cfg = "exec")
    return rule(implementation = implementation, doc = doc, attrs = attributes, **kwargs)

def setting_value(ctx, setting):
    """The value of a setting's attribute: a File for labels, else the attribute's."""
    if setting["type"] == "label":
        return getattr(ctx.file, setting["name"])
    return getattr(ctx.attr, setting["name"])

def program_arguments(ctx, format):
    """The program's arguments, holding the flag of every attribute a user sets.

    A setting the table marks `flag_by_rule` is left out: the rule passes its flag
    itself (it adds more flags to the returned Args, `--name=value` each).

    Args:
      ctx: the rule's context.
      format: from artifact_format.

    Returns:
      (Args, list of the File inputs those flags name).
    """
    args = ctx.actions.args()

    # Flags go through a file, as Bazel's persistent workers require; one
    # `--flag=value` a line, as absl reads a flagfile.
    args.use_param_file("--flagfile=%s", use_always = True)
    args.set_param_file_format("multiline")
    files = []
    for setting in format.attribute_settings:
        if not setting.get("flag_by_rule"):
            file = add_flag(args, setting, setting_value(ctx, setting))
            if file:
                files.append(file)
    return args, files

def run_program(ctx, format, arguments, inputs, outputs, progress_message):
    """Runs the format's program in one action.

    Args:
      ctx: the rule's context.
      format: from artifact_format.
      arguments: the Args from program_arguments, with the rule's own flags added.
      inputs: a depset or list of the action's inputs.
      outputs: the files and folders the program writes.
      progress_message: what Bazel shows while it runs.
    """
    arguments.add("--quiet")

    # Errors then speak of this target's attributes, not of the program's flags.
    arguments.add(display_label(ctx.label), format = "--target_label=%s")
    ctx.actions.run(
        executable = ctx.executable._program,
        arguments = [arguments],
        inputs = inputs,
        outputs = outputs,
        env = ACTION_ENV,
        mnemonic = format.mnemonic,
        progress_message = progress_message,
        execution_requirements = {
            # Sandboxed without network: the program reads only its declared inputs.
            "block-network": "",
            # A persistent worker imports TensorFlow once for many requests; each
            # runs in a fresh fork, so the bytes are those of a one-shot run.
            # --strategy=<mnemonic>=sandboxed turns it off.
            "supports-workers": "1",
        },
    )

def export_attribute(format, name):
    """The label attribute `name` of a format converted from a keras_saved_model."""
    return attr.label(
        mandatory = True,
        providers = [SavedModelInfo, ArtifactInfo],
        doc = setting_doc(format, name),
    )

def convert_export(ctx, format, export_attr, role, runtime):
    """Runs the format's program on the export of attribute `export_attr`.

    The program takes the export's folder as `--<export_attr>` and writes
    `<name>.<role>` (`--<role>_out`) and its manifest `<name>.<role>.json`
    (`--<role>_manifest_out`).

    Args:
      ctx: the rule's context.
      format: the format (artifact_format).
      export_attr: the attribute naming the keras_saved_model (export_attribute).
      role: the file's extension, its role in ArtifactInfo.files and its flags' prefix.
      runtime: what the progress message says it is converted to ("TFLite").

    Returns:
      struct(export = its SavedModelInfo, file, manifest, providers = DefaultInfo,
      ArtifactInfo and the `manifest` output group), to which the rule adds its own
      documented provider.
    """
    source = getattr(ctx.attr, export_attr)
    export = source[SavedModelInfo]
    out = ctx.actions.declare_file("%s.%s" % (ctx.label.name, role))
    manifest = ctx.actions.declare_file("%s.%s.json" % (ctx.label.name, role))
    args, _ = program_arguments(ctx, format)
    args.add(export.base_dir.path, format = "--%s=%%s" % export_attr)
    args.add(out, format = "--%s_out=%%s" % role)
    args.add(manifest, format = "--%s_manifest_out=%%s" % role)
    run_program(
        ctx,
        format,
        args,
        inputs = [export.base_dir],
        outputs = [out, manifest],
        progress_message = "Converting %s to %s" % (source.label, runtime),
    )
    made_from = source[ArtifactInfo]
    files = ctx.runfiles(files = [out, manifest])
    return struct(
        export = export,
        file = out,
        manifest = manifest,
        providers = [
            DefaultInfo(files = depset([out]), runfiles = files),
            ArtifactInfo(
                format = format.name,
                files = {"manifest": manifest, role: out, "saved_model": export.base_dir},
                runfiles = files.merge(made_from.runfiles),
                library = made_from.library,
            ),
            OutputGroupInfo(manifest = depset([manifest])),
        ],
    )

def converted_artifact(rule, name, export_attr, export, **kwargs):
    """The targets a converted format's macro makes: `name` and `<name>.deps`.

    Args:
      rule: the format's rule (artifact_rule).
      name: the target.
      export_attr: the rule's attribute naming the keras_saved_model (export_attribute).
      export: that keras_saved_model.
      **kwargs: the rule's other attributes; `visibility`, `tags` and `testonly` also
        apply to `<name>.deps`.
    """

    # The export's own library, forwarded: the format's test rebuilds the Keras model's
    # sample inputs with it.
    artifact_library(
        name = name + ".deps",
        target = export,
        visibility = kwargs.get("visibility"),
        tags = kwargs.get("tags"),
        testonly = kwargs.get("testonly"),
    )
    attrs = dict(kwargs)
    attrs[export_attr] = export
    rule(name = name, **attrs)

def _artifact_files_impl(ctx):
    info = ctx.attr.target[ArtifactInfo]
    paths = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.write(paths, json.encode(struct(
        format = info.format,
        files = {role: file.short_path if file else None for role, file in info.files.items()},
    )))
    runfiles = ctx.runfiles(files = [paths]).merge(info.runfiles)
    return [DefaultInfo(files = depset([paths]), runfiles = runfiles)]

# `<test>.model_files`: a JSON of the runfiles paths of an artifact's files (the test's
# --artifact_files), with those files and what they were made from in its runfiles.
artifact_files = rule(
    implementation = _artifact_files_impl,
    doc = "Writes `<name>.json`, `{\"format\": rule, \"files\": {role: runfiles path}}` " +
          "of an artifact target's ArtifactInfo; its runfiles hold those files.",
    attrs = {"target": attr.label(mandatory = True, providers = [ArtifactInfo])},
)

def _artifact_library_impl(ctx):
    library = ctx.attr.target[ArtifactInfo].library
    return [
        DefaultInfo(files = library[DefaultInfo].files, runfiles = library[DefaultInfo].default_runfiles),
        library[PyInfo],
    ]

# The `<name>.deps` of a rule whose model comes from another target: that export's.
artifact_library = rule(
    implementation = _artifact_library_impl,
    doc = "The py_library an artifact target's model was made with (ArtifactInfo.library).",
    attrs = {"target": attr.label(mandatory = True, providers = [ArtifactInfo])},
)

def artifact_test(name, format, target, args = [], data = [], deps = [], srcs = [], **kwargs):
    """The format's test: a py_test running the format's test program on `target`.

    It makes `<name>.model_files` (artifact_files), passed as `--artifact_files` and
    read with rules/private/artifact_files.py, and `<name>.library`, the model's
    library (artifact_library), which the program imports to rebuild the model; the
    program also imports the format's library.

    Args:
      name: the test.
      format: from artifact_format.
      target: label of a target of the format's rule.
      args: the program's other flags.
      data: the test's other data.
      deps: extra py_library deps (the model's library is included).
      srcs: the program's other modules.
      **kwargs: passed to py_test (size, tags, timeout, ...).
    """
    files = ":%s.model_files" % name
    library = ":%s.library" % name
    for make, made in [(artifact_files, files), (artifact_library, library)]:
        make(
            name = made[1:],
            target = target,
            testonly = True,
            tags = kwargs.get("tags"),
            visibility = ["//visibility:private"],
        )
    py_test(
        name = name,
        srcs = [
            Label("//rules/private:artifact_files.py"),
            Label("//rules/private:conversion_check.py"),
            Label("//rules/private:export_info.py"),
            format.test_main,
        ] + srcs,
        main = format.test_main,
        args = ["--artifact_files=$(rootpath %s)" % files] + args,
        data = [files] + data,
        deps = [library, Label("//export:lib")] + _also(format.library, Label("//export:lib")) + deps,
        **kwargs
    )
