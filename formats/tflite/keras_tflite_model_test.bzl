"""Implementation of keras_tflite_model_test: a py_test that checks a TFLite model."""

# A format's folder is rules_keras's own: it builds on the shared rule machinery.
# buildifier: disable=bzl-visibility
load("//rules/private:artifact_rule.bzl", "artifact_test")
load(":keras_tflite_model.bzl", "TFLITE_FORMAT")

def keras_tflite_model_test(name, tflite_model, tolerance = None, deps = [], **kwargs):
    """A py_test that runs a keras_tflite_model in its own process and checks it.

    It checks that the TFLite interpreter's outputs on the export's own sample inputs
    (seeded, strings from the model's vocabularies, batch 3) equal the SavedModel's
    `serving_default` outputs within the optimization's bound, that the file's
    signature has the SavedModel's inputs and outputs, that the manifest describes
    the file, and that its weights are stored as the optimization stores them (float16
    with DEQUANTIZE ops, int8 for dynamic_range's large weights; docs/rules.md). A model with TensorFlow ops (`allow_select_tf_ops`) fails it: the Python
    interpreter here has no Flex delegate to run them.

    Args:
      name: the test.
      tflite_model: label of a keras_tflite_model target.
      tolerance: largest difference allowed, as a fraction of each output's largest
        magnitude (at least 1); default by `optimization`: `none` 1e-5,
        `float16` 5e-3, `dynamic_range` 5e-2 (docs/rules.md says why).
      deps: extra py_library deps for the test (the export's own deps are included).
      **kwargs: passed to py_test (size, tags, timeout, ...).
    """
    args = []
    if tolerance != None:
        args.append("--tflite_tolerance=%s" % tolerance)
    artifact_test(name, TFLITE_FORMAT, tflite_model, args = args, deps = deps, **kwargs)
