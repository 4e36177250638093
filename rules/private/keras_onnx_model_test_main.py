"""The program of keras_onnx_model_test: checks one .onnx file in a fresh process.

It rebuilds the Keras model the export was made from (through the export's own deps)
only to get its sample inputs (interface.random_for with the model's SampleValues:
tokens of its vocabularies for string inputs), runs them through the SavedModel's
`serving_default` and through onnxruntime, and compares them within a bound
(--onnx_tolerance). It also checks that the graph's inputs and outputs are the
signature's, that its manifest describes the file, and that ONNX's checker accepts it.
"""

import json
import unittest

import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import absltest

from export.lib import interface, onnx_model, packages, sources, tflite
from rules.private import artifact_files, export_info

_TOLERANCE = flags.DEFINE_float(
    "onnx_tolerance",
    1e-5,
    "Largest difference allowed, as a fraction of the output's largest magnitude (at"
    " least 1). tf2onnx maps each op to its ONNX equivalent: the zoo's float32 models"
    " differ by at most 3.8e-7, its mixed_float16 one by 2.0e-4 (tests/zoo/README.md).",
)

# The same inputs as keras_saved_model_test's.
BATCH = 3


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_onnx(content: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's outputs on `feeds`, from onnxruntime on the CPU (strings as numpy
    object arrays of str, as onnxruntime takes them)."""
    onnxruntime = packages.import_module(packages.ONNX_RUNTIME, "onnxruntime")
    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    inputs = {
        name: value.astype(str).astype(object) if value.dtype.kind in "OSU" else value
        for name, value in feeds.items()
    }
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def max_differences(
    served: dict[str, np.ndarray], got: dict[str, np.ndarray]
) -> dict[str, float]:
    """Per numeric output: max |got - served| / max(1, max |served|). Raises
    AssertionError on different names, shapes, or unequal non-numeric outputs."""
    if set(served) != set(got):
        raise AssertionError(
            f"onnxruntime returns {sorted(got)}, the SavedModel {sorted(served)}"
        )
    result = {}
    for name in sorted(served):
        want, have = np.asarray(served[name]), np.asarray(got[name])
        if want.shape != have.shape:
            raise AssertionError(
                f"output '{name}' has shape {have.shape} in ONNX, {want.shape} served"
            )
        if not np.issubdtype(want.dtype, np.number):
            np.testing.assert_array_equal(
                have.astype(str), want.astype(str), err_msg=name
            )
            continue
        want64, have64 = want.astype(np.float64), have.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(want64))) if want.size else 0.0)
        result[name] = (
            float(np.max(np.abs(have64 - want64))) / scale if want.size else 0.0
        )
    return result


class OnnxModelTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        conversions = artifact_files.of("keras_onnx_model")
        if not conversions:
            raise unittest.SkipTest("no keras_onnx_model given (--artifact_files)")
        cls.conversions = []
        for files in conversions:
            with open(files["onnx"], "rb") as f:
                model = onnx_model.describe(f.read())
            cls.conversions.append((files, model, read_json(files["manifest"])))
        exports = {files["saved_model"] for files, _, _ in cls.conversions}
        if len(exports) != 1:
            raise AssertionError(f"conversions of several exports: {sorted(exports)}")
        base_dir = exports.pop()
        cls.signatures = read_json(base_dir + ".signatures.json")["signatures"]
        source = export_info.model_source(export_info.read(base_dir))
        # The Keras model only gives the sample inputs; it is dropped before the
        # SavedModel loads, so the two are never in memory together.
        model_interface = sources.load_model(source).interface
        arrays = interface.random_for(
            model_interface.inputs,
            export_info.INPUT_SEED,
            BATCH,
            model_interface.samples,
        )
        cls.feeds = {
            d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)
        }
        serve = tf.saved_model.load(tflite.find_saved_model(base_dir)).signatures[
            onnx_model.SERVING_KEY
        ]
        served = serve(**{k: tf.constant(v) for k, v in cls.feeds.items()})
        cls.served = {name: value.numpy() for name, value in served.items()}

    def test_manifest_describes_the_file(self):
        for files, model, manifest in self.conversions:
            with self.subTest(onnx=files["onnx"]):
                self.assertEqual(manifest, model.manifest())

    def test_onnx_checker_accepts_it(self):
        onnx = packages.import_module(packages.ONNX, "onnx")
        for files, model, _ in self.conversions:
            with self.subTest(onnx=files["onnx"]):
                onnx.checker.check_model(onnx.load_model_from_string(model.content))

    def test_graph_has_the_signatures_inputs_and_outputs(self):
        serving = self.signatures[onnx_model.SERVING_KEY]
        for files, model, _ in self.conversions:
            for kind, tensors in (("inputs", model.inputs), ("outputs", model.outputs)):
                with self.subTest(onnx=files["onnx"], kind=kind):
                    self.assertEqual(
                        {
                            t.name: {"dtype": t.dtype, "shape": list(t.shape)}
                            for t in tensors
                        },
                        serving[kind],
                    )

    def test_outputs_equal_the_saved_model(self):
        bound = _TOLERANCE.value
        for files, model, _ in self.conversions:
            with self.subTest(onnx=files["onnx"]):
                differences = max_differences(
                    self.served, run_onnx(model.content, self.feeds)
                )
                print(
                    f"{files['onnx']}: max |ONNX - SavedModel| / max(1, |SavedModel|)"
                    f" = {differences}"
                )
                for name, difference in differences.items():
                    self.assertLessEqual(
                        difference,
                        bound,
                        f"output '{name}': onnxruntime differs from the SavedModel by"
                        f" {difference:.3g} of its scale, more than {bound:g}",
                    )


if __name__ == "__main__":
    absltest.main()
