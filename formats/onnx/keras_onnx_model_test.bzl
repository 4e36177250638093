"""Implementation of keras_onnx_model_test: a py_test that checks an ONNX model."""

# A format's folder is rules_keras's own: it builds on the shared rule machinery.
# buildifier: disable=bzl-visibility
load("//rules/private:artifact_rule.bzl", "artifact_test")
load(":keras_onnx_model.bzl", "ONNX_FORMAT")

def keras_onnx_model_test(name, onnx_model, tolerance = None, deps = [], **kwargs):
    """A py_test that runs a keras_onnx_model in its own process and checks it.

    It checks that onnxruntime's outputs on the export's own sample inputs (seeded,
    strings from the model's vocabularies, batch 3) equal the SavedModel's
    `serving_default` outputs within `tolerance`, that the graph's inputs and outputs
    are the signature's (names, dtypes, shapes), that the manifest describes the file,
    and that ONNX's checker accepts it. Needs the PyPI package onnxruntime.

    Args:
      name: the test.
      onnx_model: label of a keras_onnx_model target.
      tolerance: largest difference allowed, as a fraction of each output's largest
        magnitude (at least 1); default 1e-5 (docs/rules.md says why).
      deps: extra py_library deps for the test (the export's own deps are included).
      **kwargs: passed to py_test (size, tags, timeout, ...).
    """
    args = []
    if tolerance != None:
        args.append("--onnx_tolerance=%s" % tolerance)
    artifact_test(name, ONNX_FORMAT, onnx_model, args = args, deps = deps, **kwargs)
