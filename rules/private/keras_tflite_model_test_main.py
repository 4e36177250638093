"""The program of keras_tflite_model_test: checks one .tflite file in a fresh process.

It rebuilds the Keras model the export was made from (through the export's own deps)
only to get its sample inputs (interface.random_for with the model's SampleValues:
tokens of its vocabularies for string inputs), runs them through the SavedModel's
`serving_default` and through the TFLite interpreter, and compares: within a bound that
depends on the optimization (TOLERANCES). It also checks that the .tflite file's
signature has the SavedModel's inputs and outputs, that its manifest describes it, and
that its weights are stored as the optimization stores them (optimization_problems).
"""

import collections
import dataclasses
import json
import unittest

import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import absltest

from export.lib import interface, sources, tflite
from rules.private import artifact_files, export_info

_TOLERANCE = flags.DEFINE_float(
    "tflite_tolerance",
    None,
    "Largest difference allowed, as a fraction of the output's largest magnitude (at"
    " least 1); default: the optimization's (TOLERANCES).",
)

# Largest |TFLite - SavedModel| allowed per output, as a fraction of max(1, the
# output's largest magnitude), by optimization: docs/rules.md (keras_tflite_model_test)
# says why each and the largest difference seen (bench/tflite_table.py).
TOLERANCES = {"none": 1e-5, "float16": 5e-3, "dynamic_range": 5e-2}

# The same inputs as keras_saved_model_test's.
BATCH = 3

# TFLite's dynamic range quantization stores the weights of these ops as int8 when
# they have at least this many elements (smaller ones stay float32).
QUANTIZED_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
QUANTIZED_MIN_ELEMENTS = 1024


@dataclasses.dataclass(frozen=True)
class Constant:
    """A tensor whose value the flatbuffer holds: a weight, a bias, a shape."""

    dtype: str  # the flatbuffer's TensorType name: FLOAT32, FLOAT16, INT8...
    elements: int
    nbytes: int  # of its buffer
    consumers: tuple[str, ...]  # the builtin ops that read it


def constants(content: bytes) -> list[Constant]:
    """Every constant tensor of every subgraph, read with TFLite's own flatbuffer schema
    (not with export/lib/tflite.py, which the checks below are about)."""
    from tensorflow.lite.python import schema_py_generated as schema

    type_names = {v: k for k, v in vars(schema.TensorType).items() if k.isupper()}
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    result = []
    for subgraph in model.subgraphs:
        readers = collections.defaultdict(set)
        for op in subgraph.operators if subgraph.operators is not None else []:
            code = model.operatorCodes[op.opcodeIndex]
            name = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
            for index in op.inputs if op.inputs is not None else []:
                readers[int(index)].add(name)
        for index, tensor in enumerate(subgraph.tensors):
            buffer = model.buffers[tensor.buffer]
            nbytes = len(buffer.data) if buffer.data is not None else 0
            nbytes = nbytes or int(buffer.size or 0)  # large models: past the end
            if not nbytes:
                continue
            shape = tensor.shape if tensor.shape is not None else []
            result.append(
                Constant(
                    type_names[tensor.type],
                    int(np.prod(shape, dtype=np.int64)),
                    nbytes,
                    tuple(sorted(readers[index])),
                )
            )
    return result


def _quantizable(constant: Constant) -> bool:
    return constant.elements >= QUANTIZED_MIN_ELEMENTS and any(
        op in QUANTIZED_WEIGHT_OPS for op in constant.consumers
    )


def optimization_problems(
    content: bytes, optimization: str, none_content: bytes | None = None
) -> list[str]:
    """What in the file contradicts `optimization`, or []: for `float16`, every float
    constant is float16 and read only by DEQUANTIZE ops; for `dynamic_range`, every
    weight of CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED with 1024+ elements is int8;
    for `none`, every float constant is float32. Given the same export's `none`
    conversion, also: the weights take the bytes the optimization stores them in
    (half of float32's for float16, a quarter for the int8 weights) and the file is
    smaller by at least half of what the weights shrank (the rest pays for the
    DEQUANTIZE ops and the per-channel scales: 6-16% measured in the zoo)."""
    found = constants(content)
    problems = []
    floats = [c for c in found if c.dtype in ("FLOAT32", "FLOAT16")]
    if optimization == "none":
        problems += [
            f"a {c.dtype} constant of {c.elements}"
            for c in floats
            if c.dtype != "FLOAT32"
        ]
    elif optimization == "float16":
        if not floats:
            problems.append("no float constant at all")
        for c in floats:
            if c.dtype != "FLOAT16":
                problems.append(
                    f"a {c.dtype} constant of {c.elements} (read by {c.consumers})"
                )
            elif c.consumers != ("DEQUANTIZE",):
                problems.append(
                    f"a FLOAT16 constant read by {c.consumers}, not DEQUANTIZE"
                )
    elif optimization == "dynamic_range":
        for c in found:
            if _quantizable(c) and c.dtype != "INT8":
                problems.append(
                    f"a {c.dtype} weight of {c.elements} read by {c.consumers}"
                )
    else:
        problems.append(f"unknown optimization {optimization!r}")
    if none_content is None or optimization == "none" or problems:
        return problems
    plain = constants(none_content)
    if optimization == "float16":
        shrunk = sum(c.nbytes for c in plain if c.dtype == "FLOAT32")
        stored = sum(c.nbytes for c in found if c.dtype == "FLOAT16")
        if stored != shrunk // 2:
            problems.append(f"float16 constants of {stored} bytes, not {shrunk // 2}")
    else:
        shrunk = sum(c.nbytes for c in plain if _quantizable(c))
        stored = sum(c.nbytes for c in found if _quantizable(c))
        if stored != shrunk // 4:
            problems.append(f"int8 weights of {stored} bytes, not {shrunk // 4}")
    saved = len(none_content) - len(content)
    if saved < (shrunk - stored) / 2:
        problems.append(
            f"{len(content)} bytes, against {len(none_content)} for `none`: weights"
            f" {shrunk - stored} bytes smaller should have saved at least half that"
        )
    return problems


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def flex_delegate_error(model: tflite.TfliteModel) -> str | None:
    """Why this process cannot run the model, or None: tensorflow-cpu's interpreter has
    no Flex delegate, so a model with TensorFlow ops converts but does not run here."""
    if not model.select_tf_ops:
        return None
    return (
        f"the model runs TensorFlow ops through the Flex delegate"
        f" ({', '.join(model.select_tf_ops)}), which the Python TFLite interpreter of"
        " tensorflow-cpu does not have: it cannot be run, so not checked, here; test it"
        " where the app links TFLite's Select TF ops"
    )


def run_tflite(content: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The serving_default signature's outputs on `feeds`, from the TFLite interpreter."""
    interpreter = tf.lite.Interpreter(model_content=content)
    runner = interpreter.get_signature_runner(tflite.SERVING_KEY)
    return {name: np.asarray(value) for name, value in runner(**feeds).items()}


def max_differences(
    served: dict[str, np.ndarray], got: dict[str, np.ndarray]
) -> dict[str, float]:
    """Per numeric output: max |got - served| / max(1, max |served|). Raises
    AssertionError on different names, shapes, or unequal non-numeric outputs."""
    if set(served) != set(got):
        raise AssertionError(
            f"TFLite returns {sorted(got)}, the SavedModel {sorted(served)}"
        )
    result = {}
    for name in sorted(served):
        want, have = np.asarray(served[name]), np.asarray(got[name])
        if want.shape != have.shape:
            raise AssertionError(
                f"output '{name}' has shape {have.shape} in TFLite, {want.shape} served"
            )
        if not np.issubdtype(want.dtype, np.number):
            np.testing.assert_array_equal(have, want, err_msg=name)
            continue
        want64, have64 = want.astype(np.float64), have.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(want64))) if want.size else 0.0)
        result[name] = (
            float(np.max(np.abs(have64 - want64))) / scale if want.size else 0.0
        )
    return result


class TfliteModelTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Each conversion's .tflite file, manifest and export (runfiles paths).
        conversions = artifact_files.of("keras_tflite_model")
        if not conversions:
            raise unittest.SkipTest("no keras_tflite_model given (--artifact_files)")
        cls.conversions = []
        for files in conversions:
            with open(files["tflite"], "rb") as f:
                model = tflite.describe(f.read())
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
            tflite.SERVING_KEY
        ]
        served = serve(**{k: tf.constant(v) for k, v in cls.feeds.items()})
        cls.served = {name: value.numpy() for name, value in served.items()}

    def test_manifest_describes_the_file(self):
        for files, model, manifest in self.conversions:
            with self.subTest(tflite=files["tflite"]):
                self.assertEqual(manifest, model.manifest(manifest["optimization"]))

    def test_weights_are_stored_as_the_optimization_says(self):
        """The optimization changes the file: float16 weights dequantized when read,
        int8 weights for dynamic_range, and a smaller file than `none`'s when the
        same export's `none` conversion is among the files."""
        plain = [
            m.content
            for _, m, manifest in self.conversions
            if manifest["optimization"] == "none"
        ]
        for files, model, manifest in self.conversions:
            with self.subTest(tflite=files["tflite"]):
                optimization = manifest["optimization"]
                problems = optimization_problems(
                    model.content, optimization, plain[0] if plain else None
                )
                self.assertEmpty(
                    problems,
                    f"{files['tflite']} is not what `{optimization}` converts to",
                )

    def test_signature_is_the_saved_models(self):
        serving = self.signatures[tflite.SERVING_KEY]
        for files, model, _ in self.conversions:
            for kind, tensors in (("inputs", model.inputs), ("outputs", model.outputs)):
                with self.subTest(tflite=files["tflite"], kind=kind):
                    self.assertEqual(
                        {
                            t.name: {"dtype": t.dtype, "shape": list(t.shape)}
                            for t in tensors
                        },
                        serving[kind],
                    )

    def test_outputs_equal_the_saved_model(self):
        for files, model, manifest in self.conversions:
            with self.subTest(tflite=files["tflite"]):
                reason = flex_delegate_error(model)
                if reason:
                    self.fail(reason)
                optimization = manifest["optimization"]
                bound = (
                    _TOLERANCE.value
                    if _TOLERANCE.value is not None
                    else TOLERANCES[optimization]
                )
                differences = max_differences(
                    self.served, run_tflite(model.content, self.feeds)
                )
                print(
                    f"{files['tflite']} ({optimization}): max |TFLite - SavedModel| /"
                    f" max(1, |SavedModel|) = {differences}"
                )
                for name, difference in differences.items():
                    self.assertLessEqual(
                        difference,
                        bound,
                        f"output '{name}': TFLite ({optimization}) differs from the"
                        f" SavedModel by {difference:.3g} of its scale, more than"
                        f" {bound:g}",
                    )


if __name__ == "__main__":
    absltest.main()
