"""The program of keras_tflite_model_test: checks one .tflite file in a fresh process.

It rebuilds the Keras model the export was made from (through the export's own deps)
only to get its sample inputs (sample_inputs.random_for with the model's SampleValues:
tokens of its vocabularies for string inputs), runs them through the SavedModel's
`serving_default` and through the TFLite interpreter, and compares: within a bound that
depends on the optimization (TOLERANCES). It also checks that the .tflite file's
signature has the SavedModel's inputs and outputs, that its manifest describes it, and
that its weights are stored as the optimization stores them (optimization_problems).
"""

import collections
import dataclasses

import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import absltest

from formats.tflite import tflite
from rules.private import conversion_check

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
    (not with formats/tflite/tflite.py, which the checks below are about)."""
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


class TfliteModelTest(conversion_check.ConversionTest):
    RULE = "keras_tflite_model"
    ROLE = "tflite"
    describe = staticmethod(tflite.describe)

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
                differences = conversion_check.max_differences(
                    self.served, run_tflite(model.content, self.feeds), "TFLite"
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
