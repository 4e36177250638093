"""The program of keras_onnx_model_test: checks one .onnx file in a fresh process.

It rebuilds the Keras model the export was made from (through the export's own deps)
only to get its sample inputs (sample_inputs.random_for with the model's SampleValues:
tokens of its vocabularies for string inputs), runs them through the SavedModel's
`serving_default` and through onnxruntime, and compares them within a bound
(--onnx_tolerance). It also checks that the graph's inputs and outputs are the
signature's, that its manifest describes the file, and that ONNX's checker accepts it.
"""

import numpy as np
from absl import flags
from absl.testing import absltest

from export.lib import packages
from formats.onnx import onnx_model
from rules.private import conversion_check

_TOLERANCE = flags.DEFINE_float(
    "onnx_tolerance",
    1e-5,
    "Largest difference allowed, as a fraction of the output's largest magnitude (at"
    " least 1). tf2onnx maps each op to its ONNX equivalent: the zoo's float32 models"
    " differ by at most 3.8e-7, its mixed_float16 one by 2.0e-4 (tests/zoo/README.md).",
)


def run_onnx(content: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's outputs on `feeds`, from onnxruntime on the CPU (strings as numpy
    object arrays of str, as onnxruntime takes them)."""
    onnxruntime = packages.import_module(onnx_model.RUNTIME, "onnxruntime")
    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    inputs = {
        name: value.astype(str).astype(object) if value.dtype.kind in "OSU" else value
        for name, value in feeds.items()
    }
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


class OnnxModelTest(conversion_check.ConversionTest):
    RULE = "keras_onnx_model"
    ROLE = "onnx"
    describe = staticmethod(onnx_model.describe)

    def test_manifest_describes_the_file(self):
        for files, model, manifest in self.conversions:
            with self.subTest(onnx=files["onnx"]):
                self.assertEqual(manifest, model.manifest())

    def test_onnx_checker_accepts_it(self):
        onnx = packages.import_module(onnx_model.CONVERTER, "onnx")
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
                differences = conversion_check.max_differences(
                    self.served, run_onnx(model.content, self.feeds), "ONNX"
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
