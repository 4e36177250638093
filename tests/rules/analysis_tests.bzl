"""Analysis tests of keras_saved_model: its fail() messages, provider and action."""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts")
load("//rules:defs.bzl", "SavedModelInfo", "keras_saved_model")

# --- Bad attributes fail at analysis time, naming the attribute. ---

def _failure_impl(ctx):
    env = analysistest.begin(ctx)
    asserts.expect_failure(env, ctx.attr.expected_message)
    return analysistest.end(env)

failure_test = analysistest.make(
    _failure_impl,
    expect_failure = True,
    attrs = {"expected_message": attr.string(mandatory = True)},
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
    asserts.equals(env, "tests.rules.fake:build", info.source)
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

def _src_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    info = target[SavedModelInfo]
    asserts.equals(env, Label("//tests/rules:model.keras"), info.source)
    asserts.equals(env, [], info.signature_names)
    action = _export_actions(env)[0]
    asserts.true(env, "--model_file=tests/rules/model.keras" in action.argv, str(action.argv))
    asserts.true(env, "--nosafe_mode" in action.argv, str(action.argv))
    asserts.false(env, [a for a in action.argv if a.startswith("--modes")], str(action.argv))
    return analysistest.end(env)

src_test = analysistest.make(_src_impl)

def keras_saved_model_analysis_test_suite(name):
    """Declares the targets under test (manual: they are not meant to build) and tests.

    Args:
      name: the test_suite of every analysis test.
    """
    failures = {
        "bad_custom_object": ("value \"models.layers.ChannelScale\" for \"ChannelScale\" is not of the form", dict(
            builder = "tests.rules.fake:build",
            custom_objects = {"ChannelScale": "models.layers.ChannelScale"},
        )),
        "bad_custom_object_name": ("key \"my.Layer\" is not a Python identifier", dict(
            builder = "tests.rules.fake:build",
            custom_objects = {"my.Layer": "models.layers:ChannelScale"},
        )),
        "bad_stamp": ("stamp: must be -1 (follow --stamp), 0 (use `version`) or 1", dict(builder = "tests.rules.fake:build", stamp = 2)),
        "both_sources": ("set exactly one model source", dict(builder = "tests.rules.fake:build", src = "model.keras")),
        "builder_without_function": ("is not of the form \"package.module:function\"", dict(builder = "tests.rules.fake")),
        "negative_version": ("version: must be 0 or more", dict(builder = "tests.rules.fake:build", version = -1)),
        "neither_source": ("set exactly one model source", dict()),
        "unknown_mode": ("unknown mode \"predict\"; choose among serve, eval, train", dict(builder = "tests.rules.fake:build", modes = ["predict"])),
    }
    successes = {
        "good_export": (provider_test, dict(builder = "tests.rules.fake:build", modes = ["serve", "train"], version = 3)),
        "src_export": (src_test, dict(src = "model.keras", allow_unsafe_deserialization = True)),
        "stamped_export": (stamped_test, dict(builder = "tests.rules.fake:build", stamp = 1)),
    }
    tests = []
    for target, (expected_message, attrs) in failures.items():
        keras_saved_model(name = target, tags = ["manual"], **attrs)
        failure_test(name = target + "_test", target_under_test = ":" + target, expected_message = expected_message)
        tests.append(":%s_test" % target)
    for target, (test_rule, attrs) in successes.items():
        keras_saved_model(name = target, tags = ["manual"], **attrs)
        test_rule(name = target + "_test", target_under_test = ":" + target)
        tests.append(":%s_test" % target)
    repointed_tensorflow_test(name = "repointed_tensorflow_test", target_under_test = ":good_export.deps")
    tests.append(":repointed_tensorflow_test")
    native.test_suite(name = name, tests = tests)

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
