"""keras_onnx_model's conversion: its errors, and the canonical form that makes its
bytes the same on every run.

The outputs against the SavedModel are keras_onnx_model_test's (tests/onnx/BUILD);
the same bytes across output bases and under the worker, reproducible_test.sh's.
"""

import os
import subprocess
import sys

from absl.testing import absltest

from export.lib.errors import ExportError
from formats.onnx import onnx_model

TARGET = "//tests/onnx:review_classifier_onnx"


def _runfile(path: str) -> str:
    return os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"], path)


def _graph(order: list[int], suffix: int):
    """y = Relu(x @ W + b) then Softmax, as tf2onnx writes such graphs: the same nodes
    in the order `order`, its generated names numbered from `suffix` (as its global
    counter numbers them, differently from run to run)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(
        np.arange(6, dtype=np.float32).reshape(3, 2), f"W__{suffix}"
    )
    bias = numpy_helper.from_array(np.ones(2, np.float32), f"b__{suffix + 1}")
    nodes = [
        helper.make_node(
            "MatMul", ["x", weights.name], [f"mm__{suffix + 2}:0"], f"mm__{suffix + 2}"
        ),
        helper.make_node(
            "Add",
            [f"mm__{suffix + 2}:0", bias.name],
            [f"add__{suffix + 3}:0"],
            f"add__{suffix + 3}",
        ),
        helper.make_node(
            "Relu", [f"add__{suffix + 3}:0"], [f"relu__{suffix + 4}:0"], "relu"
        ),
        helper.make_node(
            "Softmax", [f"relu__{suffix + 4}:0"], ["probs"], f"softmax__{suffix + 5}"
        ),
    ]
    graph = helper.make_graph(
        [nodes[i] for i in order],
        "converted from /some/output/base",
        [
            helper.make_tensor_value_info(
                "x", TensorProto.FLOAT, [f"unk__{suffix + 6}", 3]
            )
        ],
        [
            helper.make_tensor_value_info(
                "probs", TensorProto.FLOAT, [f"unk__{suffix + 7}", 2]
            )
        ],
        initializer=[bias, weights] if suffix % 2 else [weights, bias],
    )
    graph.doc_string = f"run {suffix}"
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class CanonicalTest(absltest.TestCase):
    def test_the_same_graph_named_and_ordered_differently_gives_the_same_bytes(self):
        first = onnx_model.canonical(_graph([0, 1, 2, 3], 13))
        second = onnx_model.canonical(_graph([1, 0, 3, 2], 22))
        self.assertEqual(first.SerializeToString(), second.SerializeToString())

    def test_inputs_and_outputs_keep_their_names_and_the_graph_still_runs(self):
        import numpy as np
        import onnx
        import onnxruntime

        model = onnx_model.canonical(_graph([1, 0, 3, 2], 22))
        onnx.checker.check_model(model)
        self.assertEqual([t.name for t in model.graph.input], ["x"])
        self.assertEqual([t.name for t in model.graph.output], ["probs"])
        self.assertEqual(
            [n.op_type for n in model.graph.node], ["MatMul", "Add", "Relu", "Softmax"]
        )
        self.assertNotIn("__", str(model.graph))
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        want = onnxruntime.InferenceSession(
            _graph([0, 1, 2, 3], 13).SerializeToString(),
            providers=["CPUExecutionProvider"],
        ).run(None, {"x": x})
        got = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        ).run(None, {"x": x})
        np.testing.assert_array_equal(got[0], want[0])


def _convert_in_a_fresh_process(export: str, out: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            _runfile("formats/onnx/onnx_converter"),
            f"--export={_runfile(export)}",
            f"--onnx_out={out}",
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


class DeterminismTest(absltest.TestCase):
    def test_two_conversions_in_fresh_processes_give_the_same_bytes(self):
        """An LSTM over any length: without the fixes, tf2onnx wrote a different file
        on each of 5 runs (docs/rules.md, Same bytes every ONNX build)."""
        folder = self.create_tempdir().full_path
        outs = [os.path.join(folder, f"{i}.onnx") for i in range(2)]
        runs = [_convert_in_a_fresh_process("tests/onnx/masked_lstm", o) for o in outs]
        for run in runs:
            _, stderr = run.communicate(timeout=300)
            self.assertEqual(run.returncode, 0, stderr[-2000:])
        with open(outs[0], "rb") as f, open(outs[1], "rb") as g:
            self.assertEqual(f.read(), g.read(), "two conversions differ")


class ErrorsTest(absltest.TestCase):
    def test_an_opset_tf2onnx_does_not_write_names_the_attribute(self):
        with self.assertRaises(ExportError) as caught:
            onnx_model.convert("/nonexistent", opset=21)
        text = caught.exception.render(TARGET)
        self.assertStartsWith(text, f"{TARGET}: attribute opset:")
        self.assertIn("opsets 13 to 18, not 21", text)

    def test_ops_without_an_onnx_equivalent_are_named_and_nothing_is_written(self):
        out = os.path.join(self.create_tempdir().full_path, "model.onnx")
        result = subprocess.run(
            [
                _runfile("formats/onnx/onnx_converter"),
                f"--export={_runfile('tests/onnx/review_classifier')}",
                f"--onnx_out={out}",
                f"--target_label={TARGET}",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        self.assertEqual(result.returncode, 1, result.stderr[-2000:])
        errors = [
            line
            for line in result.stderr.splitlines()
            if "onnx_converter: error:" in line
        ]
        self.assertLen(errors, 1, result.stderr[-2000:])
        self.assertIn(f"{TARGET}: attribute export: tf2onnx cannot convert", errors[0])
        self.assertIn("ONNX opset 17", errors[0])
        self.assertIn("TensorFlow ops StaticRegexReplace, StringSplitV2.", errors[0])
        self.assertFalse(os.path.exists(out))
        self.assertEqual(os.listdir(os.path.dirname(out)), [])


if __name__ == "__main__":
    sys.exit(absltest.main())
