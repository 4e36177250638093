"""zoo_model: one zoo model's export in every mode and its check."""

load("@rules_python//python:defs.bzl", "py_test")
load("//rules:defs.bzl", "keras_saved_model", "keras_tflite_model")

# The zoo's checks take the same --artifact_files as keras_tflite_model_test.
# buildifier: disable=bzl-visibility
load("//rules/private:artifact_rule.bzl", "artifact_files")

def zoo_model(
        name,
        data,
        deps,
        builder = None,
        src = None,
        input_specs = {},
        slow = False,
        custom_objects = {},
        allow_unsafe_deserialization = False,
        contract = None,
        warmup_requests = 0,
        tolerance = None,
        modes = ["serve", "eval", "train"],
        env = {},
        tflite = [],
        tflite_select_tf_ops = False,
        label_shapes = None,
        data_set_eval_refused = None,
        size = "medium"):
    """Exports `builder` in every mode Keras runs it in and checks it with zoo_check.py.

    Args:
      name: the export; its check is `<name>_test`.
      builder: "module:function" returning the compiled keras.Model.
      src: a `.keras` file instead of `builder`, as in keras_saved_model.
      input_specs: as in keras_saved_model.
      data: "module:function" returning a sample batch (x, y) for the model.
      deps: the py_library holding both.
      slow: tag both targets `manual`, so `//...` skips them; the `all_slow` suite runs them.
      custom_objects: as in keras_saved_model.
      allow_unsafe_deserialization: as in keras_saved_model (load_keras_model in the
        test then runs Lambda code).
      contract: as in keras_saved_model: the checked-in serving contract.
      warmup_requests: as in keras_saved_model (the test replays them).
      tolerance: max abs difference between served and Keras outputs (default 1e-5).
      modes: the modes Keras runs the model in (a model trained with fit(x) and no
        loss Keras can evaluate: serve and train).
      env: the check's environment variables.
      tflite: optimizations (`none`, `dynamic_range`, `float16`) to convert the export
        with, builtin ops only, as `<name>_tflite` (`none`) or `<name>_tflite_<opt>`;
        the check runs each against the SavedModel (keras_tflite_model_test's checks).
      tflite_select_tf_ops: convert it as `<name>_tflite` with allow_select_tf_ops,
        build only: the Python interpreter here has no Flex delegate to run it.
      label_shapes: each label eval and train take (`<output>_target`) and the
        shapes they must accept it in, as in label_specs (`None` for any size), e.g.
        `{"probs_target": ["None", "None,1"]}`: what Keras's losses take, stated here
        rather than read from the export; `{}` for a model without labels.
      data_set_eval_refused: why the export legitimately has eval but no
        eval_state/eval_result (its metric states do not add up over batches); the
        check then asserts they are absent. Unset, an export with eval must have them.
      size: the test's size.
    """
    tags = ["manual"] if slow else []
    keras_saved_model(
        name = name,
        builder = builder,
        src = src,
        input_specs = input_specs,
        allow_unsafe_deserialization = allow_unsafe_deserialization,
        contract = contract,
        custom_objects = custom_objects,
        modes = modes,
        warmup_requests = warmup_requests,
        tags = tags,
        deps = deps,
    )
    args = [
        "--saved_model=$(rootpath :%s)" % name,
        "--checker=$(rootpath //cc:saved_model_checker)",
        "--data=" + data,
    ]
    if tolerance != None:
        args.append("--tolerance=%s" % tolerance)
    if data_set_eval_refused != None:
        args.append("--data_set_eval_refused='%s'" % data_set_eval_refused)
    if label_shapes != None:
        # Quoted: Bazel splits `args` as a shell would, dropping bare double quotes.
        args.append("--label_shapes='%s'" % json.encode(label_shapes))
    data = [
        ":" + name,
        "//cc:saved_model_checker",
        "//export:exporter",
    ]
    if src:
        # The rebuilt model is loaded from the same file.
        data.append(src)
    for optimization in tflite:
        tflite_name = name + "_tflite" + ("" if optimization == "none" else "_" + optimization)
        keras_tflite_model(
            name = tflite_name,
            saved_model = ":" + name,
            optimization = optimization,
            tags = tags,
        )
        artifact_files(
            name = tflite_name + ".files",
            target = ":" + tflite_name,
            testonly = True,
            tags = tags,
        )
        args.append("--artifact_files=$(rootpath :%s.files)" % tflite_name)
        data.append(":%s.files" % tflite_name)
    if tflite_select_tf_ops:
        keras_tflite_model(
            name = name + "_tflite",
            saved_model = ":" + name,
            allow_select_tf_ops = True,
            tags = tags,
        )
    py_test(
        name = name + "_test",
        size = size,
        srcs = [
            "zoo_check.py",
            "//formats/tflite:keras_tflite_model_test_main.py",
            "//rules/private:artifact_files.py",
            "//rules/private:conversion_check.py",
            "//rules/private:export_info.py",
            "//rules/private:keras_saved_model_test_main.py",
            "//rules/private:tensors_file.py",
        ],
        main = "zoo_check.py",
        args = args,
        env = env,
        data = data,
        tags = tags,
        deps = [
            ":%s.deps" % name,
            "//export:lib",
            "//formats/tflite",
            "//tests/export:testmodels",
        ],
    )
