"""Implementation of keras_saved_model: one build action runs the exporter."""

load("//export:settings.bzl", "DATA_SET_SIGNATURES", "MAX_WARMUP_REQUESTS", "SETTINGS", "SIGNATURE_OF_MODE")
load(
    ":artifact_rule.bzl",
    "ArtifactInfo",
    "artifact_format",
    "artifact_rule",
    "program_arguments",
    "run_program",
    "setting_value",
)
load(":provenance.bzl", "PROVENANCE_ATTRS", "PYTHON_TOOLCHAIN", "write_provenance")
load(":providers.bzl", "SavedModelInfo")
load(":py.bzl", "PyInfo", "py_library")
load(":release.bzl", "release_targets")
load(":saved_model_benchmark.bzl", "saved_model_benchmark")
load(":serving_contract.bzl", "serving_contract")
load(":symbol_reference.bzl", "is_custom_object_name", "is_symbol_reference")

# Its settings table is export/settings.bzl; its program //export:exporter.
SAVED_MODEL_FORMAT = artifact_format("keras_saved_model", SETTINGS)

def _fail_attr(attr, message):
    # Bazel names the rule and the target before the message, and `attr` as
    # "attribute <attr>:".
    fail(message, attr = attr)

def _validate(ctx):
    if bool(ctx.attr.builder) == bool(ctx.file.src):
        _fail_attr("builder", "set exactly one model source: `builder` (a " +
                              "\"module:function\" string returning a keras.Model, with " +
                              "its py_library in `deps`) or `src` (a .keras or .h5 file).")
    if ctx.attr.builder and not is_symbol_reference(ctx.attr.builder):
        _fail_attr("builder", "%r is not of the form \"package.module:function\"; " % ctx.attr.builder +
                              "for example builder = \"models.my_model:build\" for a function " +
                              "`build` in models/my_model.py.")
    for name, reference in ctx.attr.custom_objects.items():
        if not is_custom_object_name(name):
            _fail_attr("custom_objects", "key %r is not a Python identifier; use " % name +
                                         "the name the model's config gives the object " +
                                         "(its class name, or a registered name such as " +
                                         "\"my_package>MyLayer\").")
        if not is_symbol_reference(reference):
            _fail_attr("custom_objects", "value %r for %r is not of the form " % (reference, name) +
                                         "\"package.module:symbol\"; for example " +
                                         "{\"MyLayer\": \"models.layers:MyLayer\"}.")
    if ctx.attr.version < 0:
        _fail_attr("version", "must be 0 or more (TF Serving's version folders are " +
                              "non-negative integers), got %d." % ctx.attr.version)
    if ctx.attr.stamp not in (-1, 0, 1):
        _fail_attr("stamp", "must be -1 (follow --stamp), 0 (use `version`) or 1 " +
                            "(the build time), got %d." % ctx.attr.stamp)
    for mode in ctx.attr.modes:
        if mode not in SIGNATURE_OF_MODE:
            _fail_attr("modes", "unknown mode %r; choose among %s." % (mode, ", ".join(SIGNATURE_OF_MODE)))
    if ctx.attr.warmup_requests < 0 or ctx.attr.warmup_requests > MAX_WARMUP_REQUESTS:
        _fail_attr("warmup_requests", "must be from 0 to %d (TF Serving reads at most %d " % (MAX_WARMUP_REQUESTS, MAX_WARMUP_REQUESTS) +
                                      "warmup records; 0 writes none), got %d." % ctx.attr.warmup_requests)

def _is_stamped(ctx):
    return ctx.attr.stamp == 1 or (ctx.attr.stamp == -1 and ctx.attr.private_stamp_detect)

def _export_info(ctx):
    """What the export is made from, for keras_saved_model_test (`<name>.export.json`).

    Its keys: `label`, the target's label; and every setting a user sets
    (export/settings.bzl), by its name, with the attribute's value; a file as its
    runfiles path (short_path), or None. `modes` is as given (empty: the model decided;
    see `<name>.signatures.json`) and `version` is the attribute's even when stamped.
    """
    info = {"label": str(ctx.label)}
    for setting in SAVED_MODEL_FORMAT.attribute_settings:
        value = setting_value(ctx, setting)
        if setting["type"] == "label":
            value = value.short_path if value else None
        elif setting["type"] == "string":
            value = value or None
        info[setting["name"]] = value
    return json.encode(info)

def _source_root(source):
    """The folder, relative to the execroot, that a Python `source` imports from.

    A module `models/my_model.py` of the main repository imports as `models.my_model`
    from the source root "." or, when generated, from its output root; a module of
    another repository from that repository's root (its `workspace_root`) under either.
    Used lazily, as a map_each.
    """
    return "/".join([p for p in [source.root.path, source.owner.workspace_root] if p]) or "."

def _runfiles_repository(ctx, label):
    """The first part of a runfiles path of a file `label` owns: its repository's folder."""
    return label.workspace_name or ctx.workspace_name

def _imports_roots(ctx, python_deps):
    """The folders that py_library `imports` attributes add, relative to the execroot.

    An `imports` entry reaches PyInfo as a runfiles path, "<repository>/<folder>". The
    repository's place in the execroot is read from the sources it owns (their root and
    `workspace_root`), never guessed from its name: canonical names and folders differ
    between WORKSPACE and bzlmod. A repository without Python sources has nothing to
    import, so its entries add nothing.
    """
    imports = depset(transitive = [dep[PyInfo].imports for dep in python_deps]).to_list()
    if not imports:
        return []
    roots_of_repository = {}
    for dep in python_deps:
        for source in dep[PyInfo].transitive_sources.to_list():
            repository = _runfiles_repository(ctx, source.owner)
            roots_of_repository.setdefault(repository, {})[_source_root(source)] = True
    roots = []
    for path in imports:
        repository, _, folder = path.partition("/")
        for root in sorted(roots_of_repository.get(repository, {})):
            roots.append("/".join([p for p in [root, folder] if p != "." and p]) or ".")
    return roots

def _signature_names(modes):
    """The signatures `modes` makes, in the exporter's order, serving_default always.

    None when `modes` is empty: the model decides at build time what it supports.
    """
    if not modes:
        return None
    names = [SIGNATURE_OF_MODE[mode] for mode in SIGNATURE_OF_MODE if mode == "serve" or mode in modes]
    return names + (DATA_SET_SIGNATURES if "eval" in modes else [])

def _keras_saved_model_impl(ctx):
    _validate(ctx)
    base_dir = ctx.actions.declare_directory(ctx.label.name)
    signatures = ctx.actions.declare_file(ctx.label.name + ".signatures.json")
    export_info = ctx.actions.declare_file(ctx.label.name + ".export.json")
    ctx.actions.write(export_info, _export_info(ctx))

    args, inputs = program_arguments(ctx, SAVED_MODEL_FORMAT)

    # The deps' folders go first on the exporter's Python path.
    python_sources = depset(transitive = [dep[PyInfo].transitive_sources for dep in ctx.attr.deps])
    args.add_all(python_sources, map_each = _source_root, uniquify = True, format_each = "--import_path=%s")
    args.add_all(_imports_roots(ctx, ctx.attr.deps), uniquify = True, format_each = "--import_path=%s")
    args.add(base_dir.path, format = "--output_dir=%s")
    args.add(signatures, format = "--manifest_out=%s")
    if _is_stamped(ctx):
        args.add("--version=timestamp")
        args.add(ctx.version_file, format = "--workspace_status_file=%s")
        inputs.append(ctx.version_file)
    else:
        args.add(str(ctx.attr.version), format = "--version=%s")

    deps_files = [python_sources] + [dep[DefaultInfo].default_runfiles.files for dep in ctx.attr.deps]
    run_program(
        ctx,
        SAVED_MODEL_FORMAT,
        args,
        inputs = depset(inputs, transitive = deps_files),
        outputs = [base_dir, signatures],
        progress_message = "Exporting Keras SavedModel %s" % ctx.label,
    )

    # What the export was built from: its model file and weights, every module the
    # action imports (the builder's, the custom objects', the exporter's library) and
    # the exporter's own program; the volatile build time is no input of it.
    built_from = depset(
        [f for f in inputs if f != ctx.version_file],
        transitive = deps_files + [ctx.attr._program[PyInfo].transitive_sources],
    )
    provenance = write_provenance(ctx, base_dir, export_info, built_from, _is_stamped(ctx))

    # A consumer's runfiles get the SavedModel, not the model file it was made from
    # (keras_saved_model_test gets `src` and `weights` through ArtifactInfo).
    runfiles = ctx.runfiles(files = [base_dir, signatures, export_info, provenance])
    made_from = [f for f in [ctx.file.src, ctx.file.weights] if f]
    return [
        DefaultInfo(files = depset([base_dir]), runfiles = runfiles),
        SavedModelInfo(
            base_dir = base_dir,
            version = None if _is_stamped(ctx) else ctx.attr.version,
            signature_names = _signature_names(ctx.attr.modes),
            signatures = signatures,
            export_info = export_info,
            builder = ctx.attr.builder or None,
            src = ctx.file.src,
            weights = ctx.file.weights,
            provenance = provenance,
        ),
        ArtifactInfo(
            format = SAVED_MODEL_FORMAT.name,
            files = {
                "export_info": export_info,
                "provenance": provenance,
                "saved_model": base_dir,
                "signatures": signatures,
            },
            runfiles = runfiles.merge(ctx.runfiles(files = made_from)),
            library = ctx.attr.private_library,
        ),
        OutputGroupInfo(signatures = depset([signatures]), provenance = depset([provenance])),
    ]

keras_saved_model_rule = artifact_rule(
    SAVED_MODEL_FORMAT,
    implementation = _keras_saved_model_impl,
    doc = "Exports a Keras model as a TensorFlow SavedModel in one build action. " +
          "Use the keras_saved_model macro, which also makes the `<name>.deps` library.",
    attrs = dict(
        deps = attr.label_list(
            providers = [PyInfo],
            cfg = "exec",
            doc = "py_library targets the builder or the model's custom objects import.",
        ),
        private_library = attr.label(
            providers = [PyInfo],
            doc = "Set by the macro: `<name>.deps`, with which the tests rebuild the model.",
        ),
        private_stamp_detect = attr.bool(
            default = False,
            doc = "Set by the macro: whether the build runs with --stamp.",
        ),
        stamp = attr.int(
            default = 0,
            doc = "0: use `version`; 1: the build time (BUILD_TIMESTAMP of the " +
                  "workspace status); -1: follow --stamp. As in rules_pkg.",
        ),
        **PROVENANCE_ATTRS
    ),
    toolchains = [PYTHON_TOOLCHAIN],
)

def keras_saved_model(name, deps = [], contract = None, visibility = None, tags = None, testonly = None, **kwargs):
    """Exports a Keras model as a TensorFlow SavedModel in one build action.

    The output is a folder `<name>/` in TF Serving's layout, holding `<version>/` with
    `saved_model.pb` (or `.pbtxt`), `variables/`, `assets/saved_model.json` (the Keras
    config) and `fingerprint.pb`, byte-identical for the same inputs and seed, and
    `<name>.signatures.json`. Signatures: `serving_default` always; `eval` and `train`
    when the model can be evaluated and trained (docs/rules.md). Provides `DefaultInfo`
    (the folder) and `SavedModelInfo`.

    Besides `<name>`, the macro makes `<name>.deps`, a py_library of the exporter's
    library plus `deps`, which keras_saved_model_test reuses. With `contract`, it also
    makes `<name>.contract_test`, which fails when the export's serving API (every
    signature's method, inputs and outputs with dtype and shape, read from its
    saved_model.pb) differs from that checked-in file, saying which changes break a
    client built against it, and `<name>.update_contract`, which `bazel run` runs to
    write the file from the export (docs/rules.md, "The serving contract"), and
    `<name>.benchmark`, which `bazel run` runs to print the serving signature's latency
    percentiles and throughput per batch size through TensorFlow's C++ loader
    (docs/rules.md, "Consuming an export from C and C++"). For a release, `bazel run`
    runs `<name>.sign`, `<name>.verify` and `<name>.push`, which sign the export and its
    `<name>.provenance.json`, check a folder against them, and copy the export into a TF
    Serving model base path (docs/rules.md, "Releasing an export").

    The action runs the shared `@rules_keras//export:exporter` with those deps'
    folders on its Python path, as a persistent worker by default
    (`--strategy=KerasSavedModel=sandboxed` turns workers off).

    Args:
      name: the target, and the name of the output folder.
      deps: py_library targets the builder (or the model's custom objects) imports.
      contract: a file of the package (e.g. "my_export.contract.json") holding the
        export's serving contract; None: no contract targets.
      visibility: as usual, also applied to the `<name>.deps` library.
      tags: as usual, also applied to the `<name>.deps` library.
      testonly: as usual, also applied to the `<name>.deps` library.
      **kwargs: the attributes of the rule, each documented once, in
        export/settings.bzl and docs/rules.md (`builder` or `src`, `weights`,
        `custom_objects`, `modes`, `label_specs`, `version`, `stamp`, `seed`, ...),
        and Bazel's common attributes.
    """

    # The exporter's library plus the user's: what the action imports, and what
    # keras_saved_model_test needs to rebuild the model.
    py_library(
        name = name + ".deps",
        deps = [Label("//export:lib")] + deps,
        visibility = visibility,
        tags = tags,
        testonly = testonly,
    )
    keras_saved_model_rule(
        name = name,
        deps = [":%s.deps" % name],
        private_library = ":%s.deps" % name,
        private_stamp_detect = select({
            str(Label("//rules/private:stamp_detect")): True,
            "//conditions:default": False,
        }),
        visibility = visibility,
        tags = tags,
        testonly = testonly,
        **kwargs
    )
    if contract:
        serving_contract(name, contract, tags = tags, visibility = visibility, testonly = testonly)
    release_targets(name, tags = tags, visibility = visibility, testonly = testonly)
    saved_model_benchmark(
        name = name + ".benchmark",
        saved_model = ":" + name,
        tags = tags,
        visibility = visibility,
        testonly = testonly,
    )
