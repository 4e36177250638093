"""Analysis tests of keras_saved_model: its fail() messages, provider and action."""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts")
load("@rules_python//python:defs.bzl", "PyInfo")
load(
    "//rules:defs.bzl",
    "SavedModelInfo",
    "TfliteModelInfo",
    "keras_saved_model",
    "keras_saved_model_test",
    "keras_tflite_model",
)

# --- Bad attributes fail at analysis time, naming the attribute. ---

def _failure_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)

    # Bazel itself writes "attribute <name>: " before fail(attr = <name>)'s message, and
    # names the rule and the target before that: the message does not repeat them.
    expected = "attribute %s: %s" % (ctx.attr.attribute, ctx.attr.message_start)
    messages = [cause.message for cause in target[AnalysisFailureInfo].causes.to_list()]
    asserts.true(
        env,
        [m for m in messages if expected in m],
        "expected '%s' in the failure, got %s" % (expected, messages),
    )
    label_prefix = "keras_saved_model %s:" % target.label
    asserts.false(
        env,
        [m for m in messages if label_prefix in m],
        "the message repeats '%s': %s" % (label_prefix, messages),
    )
    return analysistest.end(env)

failure_test = analysistest.make(
    _failure_impl,
    expect_failure = True,
    attrs = {
        "attribute": attr.string(mandatory = True),
        "message_start": attr.string(mandatory = True),
    },
)

# --- A good target's provider and action. ---

def _export_actions(env):
    return [a for a in analysistest.target_actions(env) if a.mnemonic == "KerasSavedModel"]

def _provider_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    info = target[SavedModelInfo]
    asserts.equals(env, 3, info.version)
    asserts.equals(env, ["serving_default", "train"], info.signature_names)
    asserts.equals(env, "tests.rules.fake:build", info.builder)
    asserts.equals(env, None, info.src)
    asserts.equals(env, None, info.weights)
    asserts.true(env, info.base_dir.is_directory, "base_dir must be a tree artifact")
    asserts.equals(env, "good_export", info.base_dir.basename)
    asserts.equals(env, "good_export.signatures.json", info.signatures.basename)
    asserts.equals(env, "good_export.export.json", info.export_info.basename)
    asserts.equals(env, [info.base_dir], target[DefaultInfo].files.to_list())

    actions = _export_actions(env)
    asserts.equals(env, 1, len(actions))
    action = actions[0]
    argv = action.argv
    for flag in [
        "--builder=tests.rules.fake:build",
        "--version=3",
        "--modes=serve,train",
        "--seed=0",
        "--import_path=.",
        "--quiet",
        "--target_label=//tests/rules:good_export",
    ]:
        asserts.true(env, flag in argv, "missing %s in %s" % (flag, argv))
    asserts.true(env, argv[0].endswith("/export/exporter"), "the shared exporter runs: " + argv[0])
    asserts.equals(env, "0", action.env["PYTHONHASHSEED"])
    asserts.equals(env, "tensorflow", action.env["KERAS_BACKEND"])
    asserts.equals(
        env,
        sorted([info.base_dir.path, info.signatures.path]),
        sorted([f.path for f in action.outputs.to_list()]),
    )
    return analysistest.end(env)

provider_test = analysistest.make(_provider_impl)

def _stamped_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    asserts.equals(env, None, target[SavedModelInfo].version)
    action = _export_actions(env)[0]
    asserts.true(env, "--version=timestamp" in action.argv, str(action.argv))
    asserts.true(env, "--workspace_status_file=bazel-out/volatile-status.txt" in action.argv, str(action.argv))
    return analysistest.end(env)

stamped_test = analysistest.make(_stamped_impl)

def _signature_names_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)

    # serving_default is always written: the list says so, in the exporter's order.
    asserts.equals(env, ["serving_default", "eval", "train", "eval_state", "eval_result"], target[SavedModelInfo].signature_names)
    return analysistest.end(env)

signature_names_test = analysistest.make(_signature_names_impl)

def _runfile_paths(target):
    return sorted([f.short_path for f in target[DefaultInfo].default_runfiles.files.to_list()])

_EXPORT_RUNFILES = [
    "tests/rules/%s",
    "tests/rules/%s.export.json",
    "tests/rules/%s.provenance.json",
    "tests/rules/%s.signatures.json",
]

def _src_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    info = target[SavedModelInfo]
    asserts.equals(env, "tests/rules/model.keras", info.src.short_path)
    asserts.equals(env, Label("//tests/rules:model.keras"), info.src.owner)
    asserts.equals(env, None, info.builder)
    asserts.equals(env, "tests/rules/model.weights.h5", info.weights.short_path)

    # modes left to the model: no list at analysis time (the signatures file has it).
    asserts.equals(env, None, info.signature_names)

    # A consumer's runfiles hold the SavedModel, not the files it was made from.
    asserts.equals(env, [p % "src_export" for p in _EXPORT_RUNFILES], _runfile_paths(target))
    action = _export_actions(env)[0]
    asserts.true(env, "--src=tests/rules/model.keras" in action.argv, str(action.argv))
    asserts.true(env, "--allow_unsafe_deserialization" in action.argv, str(action.argv))
    asserts.false(env, [a for a in action.argv if a.startswith("--modes")], str(action.argv))

    # The provenance: a separate action after the export that digests the model file
    # and the weights it was made from.
    asserts.equals(env, "tests/rules/src_export.provenance.json", info.provenance.short_path)
    provenance = [a for a in analysistest.target_actions(env) if a.mnemonic == "KerasProvenance"]
    asserts.equals(env, 1, len(provenance))
    inputs = [f.short_path for f in provenance[0].inputs.to_list()]
    for path in ["tests/rules/src_export", "tests/rules/model.keras", "tests/rules/model.weights.h5"]:
        asserts.true(env, path in inputs, "%s is no input of the provenance: %s" % (path, inputs))
    return analysistest.end(env)

src_test = analysistest.make(_src_impl)

def _imports_impl(ctx):
    env = analysistest.begin(ctx)
    argv = _export_actions(env)[0].argv
    import_paths = [a for a in argv if a.startswith("--import_path=")]

    # The source root, for `export.lib`, and the py_library's `imports = ["src"]` as a
    # folder of the execroot, for its package `tabular`: nothing guessed from a
    # repository's name.
    asserts.equals(env, ["--import_path=.", "--import_path=tests/imports/src"], import_paths)
    return analysistest.end(env)

imports_test = analysistest.make(_imports_impl)

def _test_model_files_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)

    # keras_saved_model_test rebuilds the model from them: its data has them, and the
    # JSON of their paths it reads (its --artifact_files).
    expected = [p % "src_export" for p in _EXPORT_RUNFILES] + [
        "tests/rules/model.keras",
        "tests/rules/model.weights.h5",
        "tests/rules/src_export_check.model_files.json",
    ]
    asserts.equals(env, sorted(expected), _runfile_paths(target))
    return analysistest.end(env)

test_model_files_test = analysistest.make(_test_model_files_impl)

def _contract_targets_impl(ctx):
    env = analysistest.begin(ctx)
    paths = _runfile_paths(analysistest.target_under_test(env))
    asserts.true(env, "tests/rules/contract_export" in paths, "the export: %s" % paths)

    # The test reads the file; the program that writes it does not, so it can write
    # the first one.
    asserts.equals(
        env,
        ctx.attr.reads_the_contract,
        "tests/rules/contract_export.contract.json" in paths,
        "the contract file in %s" % paths,
    )
    return analysistest.end(env)

contract_targets_test = analysistest.make(
    _contract_targets_impl,
    attrs = {"reads_the_contract": attr.bool(mandatory = True)},
)

def keras_saved_model_analysis_test_suite(name):
    """Declares the targets under test (manual: they are not meant to build) and tests.

    Args:
      name: the test_suite of every analysis test.
    """
    failures = {
        "bad_custom_object": ("custom_objects", "value \"models.layers.ChannelScale\" for \"ChannelScale\" is not of the form", dict(
            builder = "tests.rules.fake:build",
            custom_objects = {"ChannelScale": "models.layers.ChannelScale"},
        )),
        "bad_custom_object_name": ("custom_objects", "key \"my.Layer\" is not a Python identifier", dict(
            builder = "tests.rules.fake:build",
            custom_objects = {"my.Layer": "models.layers:ChannelScale"},
        )),
        "bad_stamp": ("stamp", "must be -1 (follow --stamp), 0 (use `version`) or 1", dict(builder = "tests.rules.fake:build", stamp = 2)),
        "both_sources": ("builder", "set exactly one model source", dict(builder = "tests.rules.fake:build", src = "model.keras")),
        "builder_without_function": ("builder", "\"tests.rules.fake\" is not of the form \"package.module:function\"", dict(builder = "tests.rules.fake")),
        "negative_version": ("version", "must be 0 or more", dict(builder = "tests.rules.fake:build", version = -1)),
        "neither_source": ("builder", "set exactly one model source", dict()),
        "too_many_warmup_requests": ("warmup_requests", "must be from 0 to 1000 (TF Serving reads at most 1000 warmup records; 0 writes none), got 1001.", dict(builder = "tests.rules.fake:build", warmup_requests = 1001)),
        "unknown_mode": ("modes", "unknown mode \"predict\"; choose among serve, eval, train", dict(builder = "tests.rules.fake:build", modes = ["predict"])),
    }
    successes = {
        "good_export": (provider_test, dict(builder = "tests.rules.fake:build", modes = ["serve", "train"], version = 3)),
        "all_modes_export": (signature_names_test, dict(builder = "tests.rules.fake:build", modes = ["train", "eval"])),
        "src_export": (src_test, dict(src = "model.keras", weights = "model.weights.h5", allow_unsafe_deserialization = True)),
        "stamped_export": (stamped_test, dict(builder = "tests.rules.fake:build", stamp = 1)),
    }
    tests = []
    for target, (attribute, message_start, attrs) in failures.items():
        keras_saved_model(name = target, tags = ["manual"], **attrs)
        failure_test(
            name = target + "_test",
            target_under_test = ":" + target,
            attribute = attribute,
            message_start = message_start,
        )
        tests.append(":%s_test" % target)
    for target, (test_rule, attrs) in successes.items():
        keras_saved_model(name = target, tags = ["manual"], **attrs)
        test_rule(name = target + "_test", target_under_test = ":" + target)
        tests.append(":%s_test" % target)
    imports_test(name = "imports_test", target_under_test = "//tests/imports:export")
    tests.append(":imports_test")

    keras_saved_model_test(name = "src_export_check", saved_model = ":src_export", tags = ["manual"])
    test_model_files_test(name = "test_model_files_test", target_under_test = ":src_export_check.model_files")
    tests.append(":test_model_files_test")
    keras_saved_model(
        name = "contract_export",
        builder = "tests.rules.fake:build",
        contract = "contract_export.contract.json",
        tags = ["manual"],
    )
    contract_targets_test(name = "contract_test_test", target_under_test = ":contract_export.contract_test", reads_the_contract = True)
    contract_targets_test(name = "update_contract_test", target_under_test = ":contract_export.update_contract", reads_the_contract = False)
    tests += [":contract_test_test", ":update_contract_test"]
    repointed_tensorflow_test(name = "repointed_tensorflow_test", target_under_test = ":good_export.deps")
    tests.append(":repointed_tensorflow_test")

    keras_tflite_model(
        name = "good_tflite",
        saved_model = ":good_export",
        optimization = "float16",
        allow_select_tf_ops = True,
        tags = ["manual"],
    )
    tflite_test(name = "good_tflite_test", target_under_test = ":good_tflite")
    tests.append(":good_tflite_test")
    native.test_suite(name = name, tests = tests)

# --- keras_tflite_model: its provider and its action. ---

def _tflite_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    info = target[TfliteModelInfo]
    asserts.equals(env, "good_tflite.tflite", info.tflite.basename)
    asserts.equals(env, "good_tflite.tflite.json", info.manifest.basename)
    asserts.equals(env, "float16", info.optimization)
    asserts.equals(env, ["TFLITE_BUILTINS", "SELECT_TF_OPS"], info.supported_ops)
    asserts.equals(env, "good_export", info.saved_model.base_dir.basename)
    asserts.equals(env, [info.tflite], target[DefaultInfo].files.to_list())

    actions = [a for a in analysistest.target_actions(env) if a.mnemonic == "KerasTfliteModel"]
    asserts.equals(env, 1, len(actions))
    action = actions[0]
    for flag in [
        "--saved_model=" + info.saved_model.base_dir.path,
        "--optimization=float16",
        "--allow_select_tf_ops",
        "--tflite_out=" + info.tflite.path,
        "--tflite_manifest_out=" + info.manifest.path,
        "--quiet",
        "--target_label=//tests/rules:good_tflite",
    ]:
        asserts.true(env, flag in action.argv, "missing %s in %s" % (flag, action.argv))
    asserts.true(env, action.argv[0].endswith("/formats/tflite/tflite_converter"), action.argv[0])
    asserts.true(env, info.saved_model.base_dir in action.inputs.to_list(), "the export is an input")
    asserts.equals(env, "0", action.env["PYTHONHASHSEED"])
    asserts.equals(
        env,
        sorted([info.tflite.path, info.manifest.path]),
        sorted([f.path for f in action.outputs.to_list()]),
    )
    return analysistest.end(env)

tflite_test = analysistest.make(_tflite_impl)

# --- TensorFlow comes from the label_flag //export:tensorflow, which a user repoints. ---

def _repointed_tensorflow_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    sources = [f.short_path for f in target[PyInfo].transitive_sources.to_list()]
    asserts.true(env, "tests/rules/fake_tensorflow.py" in sources, str(sources))
    return analysistest.end(env)

repointed_tensorflow_test = analysistest.make(
    _repointed_tensorflow_impl,
    config_settings = {str(Label("//export:tensorflow")): str(Label("//tests/rules:fake_tensorflow"))},
)
