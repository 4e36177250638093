"""The TFLite converter (formats/tflite/tflite.py, //formats/tflite:tflite_converter).

Same bytes: converting one SavedModel with TensorFlow ops in two fresh processes gives
the same file, and the rewrite of the Flex ops' NodeDefs (the one part that varied) makes
any order of their attributes the same bytes. Errors: a model needing TensorFlow ops
without allow_select_tf_ops names the ops and the setting; a folder that is no
SavedModel names saved_model; a bad optimization is refused by the flag.
"""

import os
import signal
import subprocess
import time

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from flatbuffers import flexbuffers
from tensorflow.core.framework import node_def_pb2
from tensorflow.lite.tools import flatbuffer_utils

from export.lib import api
from export.lib.errors import ExportError
from formats.tflite import tflite
from formats.tflite.keras_tflite_model_test_main import optimization_problems
from tests.export import testmodels, testutil

_CONVERTER_PATH = os.path.join("formats", "tflite", "tflite_converter")


def _converter_command() -> list[str]:
    return [
        os.path.join(
            os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"], _CONVERTER_PATH
        )
    ]


def _wait_until_tensorflow_loads(child: subprocess.Popen) -> None:
    """Waits until `child` maps TensorFlow's library: it is importing TensorFlow, which
    it does only once its flags are parsed and it runs the conversion."""
    deadline = time.monotonic() + testutil.TIMEOUT_S
    while time.monotonic() < deadline and child.poll() is None:
        with open(f"/proc/{child.pid}/maps", encoding="utf-8") as f:
            if "libtensorflow" in f.read():
                return
        time.sleep(0.02)
    raise AssertionError(f"the converter never loaded TensorFlow ({child.poll()})")


def _export(builder: str, folder: str) -> str:
    return api.export_saved_model(
        api.ExportRequest(
            builder=builder if ":" in builder else f"{testmodels.MODULE}:{builder}",
            output_dir=folder,
            modes="serve",
            verify=False,
        )
    )


def _wire_fields(data: bytes) -> list[tuple[int, bytes]]:
    """A serialized protobuf message as (field number, the field's raw bytes), in order."""
    fields, pos = [], 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        wire_type = key & 7
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type == 2:
            size, pos = _varint(data, pos)
            pos += size
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            raise AssertionError(f"wire type {wire_type}")
        fields.append((key >> 3, data[start:pos]))
    return fields


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _with_attrs_reversed(content: bytes) -> bytes:
    """The model with each Flex op's NodeDef attributes serialized in reverse order: what
    another process's converter may write."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    flex = {
        i
        for i, code in enumerate(model.operatorCodes)
        if code.customCode and code.customCode.startswith(b"Flex")
    }
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex not in flex:
                continue
            options = bytearray(bytes(op.customOptions))
            ref = flexbuffers.GetRoot(options).AsVector[1]
            node_def = flexbuffers.String(ref._Indirect(), ref._byte_width)
            fields = _wire_fields(bytes(node_def.Bytes))
            attrs = [raw for number, raw in fields if number == 5]
            others = [raw for number, raw in fields if number != 5]
            reordered = b"".join(others[:2] + attrs[::-1] + others[2:])
            node_def._buf[0 : len(reordered)] = reordered
            op.customOptions = list(options)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _tensor_dtypes(content: bytes) -> set:
    """The types of the tensors, as TFLite's interpreter reports them."""
    interpreter = tf.lite.Interpreter(model_content=content)
    return {detail["dtype"] for detail in interpreter.get_tensor_details()}


class TfliteTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tmp = testutil.make_tempdir()
        cls.text_export = _export("review_text", os.path.join(tmp, "text"))
        cls.mlp_export = _export("mlp", os.path.join(tmp, "mlp"))
        # Dense layers of 1024+ weights: what dynamic_range quantizes.
        cls.dense_export = _export(
            "tests.zoo.basics:ops_layers", os.path.join(tmp, "dense")
        )

    def _convert_in_fresh_process(self, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            _converter_command() + list(flags),
            env=testutil.child_env(),
            capture_output=True,
            text=True,
            timeout=testutil.TIMEOUT_S,
            check=False,
        )

    def test_fresh_processes_write_the_same_flex_ops(self):
        tmp = self.create_tempdir().full_path
        files = []
        for run in ("a", "b"):
            out = os.path.join(tmp, run, "text.tflite")
            proc = self._convert_in_fresh_process(
                f"--saved_model={self.text_export}",
                "--allow_select_tf_ops",
                f"--tflite_out={out}",
            )
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            with open(out, "rb") as f:
                files.append(f.read())
        self.assertNotEmpty(tflite.describe(files[0]).select_tf_ops)
        self.assertEqual(files[0], files[1])

    def test_any_attribute_order_gives_the_same_bytes(self):
        converted = tflite.convert(self.text_export, "none", allow_select_tf_ops=True)
        reordered = _with_attrs_reversed(converted.content)
        # Not vacuous: the reordered model differs, and only in its bytes.
        self.assertNotEqual(reordered, converted.content)
        self.assertLen(reordered, len(converted.content))
        self.assertEqual(tflite.canonical_flex_ops(reordered), converted.content)

    def test_node_defs_keep_their_meaning(self):
        converted = tflite.convert(self.text_export, "none", allow_select_tf_ops=True)
        model = flatbuffer_utils.convert_bytearray_to_object(
            bytearray(converted.content)
        )
        ops = []
        for op in model.subgraphs[0].operators:
            custom = model.operatorCodes[op.opcodeIndex].customCode
            if custom and custom.startswith(b"Flex"):
                vector = flexbuffers.GetRoot(
                    bytearray(bytes(op.customOptions))
                ).AsVector
                node = node_def_pb2.NodeDef.FromString(
                    bytes(flexbuffers.String(vector[1]._Indirect(), 1).Bytes)
                )
                self.assertEqual(custom.decode(), "Flex" + node.op)
                self.assertEqual(vector[0].AsString, node.op)
                ops.append(node.op)
        self.assertContainsSubset({"StringLower", "StringSplitV2"}, ops)

    def test_builtin_only_models_are_described(self):
        converted = tflite.convert(self.mlp_export, "none", allow_select_tf_ops=False)
        self.assertEqual(converted.select_tf_ops, ())
        self.assertEqual(converted.ops_sets, ["TFLITE_BUILTINS"])
        self.assertIn("FULLY_CONNECTED", converted.ops)
        self.assertEqual([t.dtype for t in converted.inputs], ["float32"])
        self.assertIsNone(converted.inputs[0].shape[0])

    def test_float16_stores_the_weights_as_float16(self):
        plain = tflite.convert(self.dense_export, "none", allow_select_tf_ops=False)
        half = tflite.convert(self.dense_export, "float16", allow_select_tf_ops=False)
        self.assertEqual(optimization_problems(plain.content, "none"), [])
        self.assertEqual(
            optimization_problems(half.content, "float16", plain.content), []
        )
        self.assertIn("DEQUANTIZE", half.ops)
        self.assertLess(len(half.content), 0.75 * len(plain.content))
        # The interpreter reads float16 weights where `none` has float32 ones.
        self.assertIn(np.float16, _tensor_dtypes(half.content))
        self.assertNotIn(np.float16, _tensor_dtypes(plain.content))

    def test_dynamic_range_stores_large_weights_as_int8(self):
        plain = tflite.convert(self.dense_export, "none", allow_select_tf_ops=False)
        quantized = tflite.convert(
            self.dense_export, "dynamic_range", allow_select_tf_ops=False
        )
        self.assertEqual(
            optimization_problems(quantized.content, "dynamic_range", plain.content), []
        )
        self.assertLess(len(quantized.content), 0.75 * len(plain.content))
        self.assertIn(np.int8, _tensor_dtypes(quantized.content))
        self.assertNotIn(np.int8, _tensor_dtypes(plain.content))

    def test_tensorflow_ops_need_the_setting(self):
        with self.assertRaises(ExportError) as raised:
            tflite.convert(self.text_export, "none", allow_select_tf_ops=False)
        error = raised.exception
        self.assertEqual(testutil.flags_named(error), "--allow_select_tf_ops")
        self.assertIn("StringLower", error.cause)
        self.assertIn("StringSplitV2", error.cause)
        rendered = error.render("//pkg:text_tflite")
        self.assertStartsWith(
            rendered, "//pkg:text_tflite: attribute allow_select_tf_ops: the model"
        )
        self.assertIn("Set allow_select_tf_ops = True", rendered)
        self.assertNotIn("--", rendered)
        self.assertNotIn("\n", rendered)

    def test_a_folder_without_a_saved_model(self):
        empty = self.create_tempdir().full_path
        with self.assertRaises(ExportError) as raised:
            tflite.convert(empty, "none", allow_select_tf_ops=False)
        self.assertEqual(testutil.flags_named(raised.exception), "--saved_model")
        self.assertIn("no SavedModel", raised.exception.cause)

    def test_a_bad_optimization_is_refused_before_converting(self):
        out = os.path.join(self.create_tempdir().full_path, "m.tflite")
        proc = self._convert_in_fresh_process(
            f"--saved_model={self.mlp_export}",
            "--optimization=int8",
            f"--tflite_out={out}",
        )
        self.assertEqual(proc.returncode, 1)
        self.assertIn("optimization", proc.stderr)
        self.assertIn("dynamic_range", proc.stderr)
        self.assertFalse(os.path.exists(out))

    def test_sigterm_stops_it_with_one_line_and_no_file(self):
        # As the exporter: program.run turns the signal into 128 + it and one line.
        folder = self.create_tempdir().full_path
        child = subprocess.Popen(
            _converter_command()
            + [
                f"--saved_model={self.dense_export}",
                f"--tflite_out={folder}/m.tflite",
                f"--tflite_manifest_out={folder}/m.tflite.json",
            ],
            env=testutil.child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_until_tensorflow_loads(child)
            child.send_signal(signal.SIGTERM)
            _, stderr = child.communicate(timeout=testutil.TIMEOUT_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        self.assertEqual(child.returncode, 128 + signal.SIGTERM, stderr[-3000:])
        self.assertEqual(
            stderr.rstrip("\n").splitlines()[-1],
            "tflite_converter: interrupted by SIGTERM",
        )
        self.assertEqual(os.listdir(folder), [])


if __name__ == "__main__":
    absltest.main()
