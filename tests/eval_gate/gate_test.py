"""The eval gate's program (keras_model_eval_test) on the fraud exports: its metrics
equal model.evaluate's in every data format, a worse model fails the gate naming the
metric, and each bad input fails with one paragraph naming what to fix."""

import contextlib
import io
import json
import os
import subprocess
import sys
from unittest import mock

import numpy as np
from absl.testing import absltest

from export.lib import api
from rules.private import keras_model_eval_test_main as gate
from tests.export import testutil

_HERE = "tests/eval_gate"
_TESTDATA = os.path.join(_HERE, "testdata")
_MAIN = "rules/private/keras_model_eval_test_main.py"
_CSV_MAP = {
    "features": [f"f{i}" for i in range(6)],
    "fraud_target": "is_fraud",
}


def _run(*flags, export="fraud", data=("fraud.npz",), out=None):
    args = [
        sys.executable,
        _MAIN,
        "--target=//tests/eval_gate:under_test",
        f"--saved_model={os.path.join(_HERE, export)}",
        *[f"--data={os.path.join(_TESTDATA, d)}" for d in data],
        *flags,
    ]
    env = testutil.child_env()
    if out:
        env["TEST_UNDECLARED_OUTPUTS_DIR"] = out
    return subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        timeout=testutil.TIMEOUT_S,
        check=False,
    )


def _gate_here(*flag_args, data=("fraud.npz",), out=None):
    """The gate's run() in this process, sparing a TensorFlow import per case:
    (passed, what it printed), or the GateError it raised."""
    values = {
        "target": "//tests/eval_gate:under_test",
        "saved_model": os.path.join(_HERE, "fraud"),
        "data": [os.path.join(_TESTDATA, d) for d in data],
        "bounds": "{}",
        "change_bounds": "{}",
        "feature_map": "{}",
        "baseline_metrics": None,
        "baseline_saved_model": None,
        "batch_size": 32,
    }
    for arg in flag_args:
        name, _, value = arg.removeprefix("--").partition("=")
        values[name] = value
    for name, value in values.items():
        setattr(gate.FLAGS, name, value)
    printed = io.StringIO()
    with (
        mock.patch.dict(os.environ, {"TEST_UNDECLARED_OUTPUTS_DIR": out or ""}),
        contextlib.redirect_stdout(printed),
    ):
        try:
            passed = gate.run()
        except gate.GateError as e:
            return e
    return passed, printed.getvalue()


def _run_here(*flag_args, data=("fraud.npz",)) -> str:
    """The paragraph of the GateError the gate raises in this process, or fails."""
    result = _gate_here(*flag_args, data=data)
    if isinstance(result, gate.GateError):
        return str(result)
    raise AssertionError(f"no error for {flag_args} on {data}: {result}")


class GateTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        path = os.path.join(_HERE, "fraud", "1")
        data = np.load(os.path.join(_TESTDATA, "fraud.npz"))
        model = api.load_keras_model(path)
        cls.keras_logs = model.evaluate(
            data["features"],
            data["fraud_target"],
            batch_size=32,
            return_dict=True,
            verbose=0,
        )

    def _metrics(self, *flags, data=("fraud.npz",)):
        out = self.create_tempdir().full_path
        result = _gate_here(*flags, data=data, out=out)
        self.assertNotIsInstance(result, gate.GateError)
        with open(os.path.join(out, "metrics.json")) as f:
            written = json.load(f)
        with open(os.path.join(out, "report.html")) as f:
            self.assertIn("<svg", f.read())  # the ROC curve of `auc`
        return written

    def test_the_program_in_a_fresh_process_gives_model_evaluate(self):
        out = self.create_tempdir().full_path
        proc = _run('--bounds={"auc": ">= 0.95"}', out=out)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr[-3000:])
        self.assertRegex(proc.stdout, r"auc .* >= 0.95 +PASS")
        with open(os.path.join(out, "metrics.json")) as f:
            written = json.load(f)
        for name, want in self.keras_logs.items():
            self.assertAlmostEqual(written["metrics"][name], want, delta=1e-5, msg=name)

    def test_metrics_equal_model_evaluate_in_every_format(self):
        for data, flags in (
            ("fraud.npz", ()),
            ("fraud.tfrecord.gz", ()),
            ("fraud_columns.csv", (f"--feature_map={json.dumps(_CSV_MAP)}",)),
        ):
            with self.subTest(data=data):
                written = self._metrics(*flags, data=(data,))
                self.assertEqual(written["examples"], 203)
                self.assertEqual(set(written["metrics"]), set(self.keras_logs))
                for name, want in self.keras_logs.items():
                    self.assertAlmostEqual(
                        written["metrics"][name], want, delta=1e-5, msg=name
                    )

    def test_worse_model_fails_against_its_baseline_naming_the_metric(self):
        passed, printed = _gate_here(
            '--change_bounds={"auc": ">= -0.01", "loss": "<= +10%"}',
            f"--baseline_saved_model={os.path.join(_HERE, 'fraud')}",
            f"--saved_model={os.path.join(_HERE, 'fraud_perturbed')}",
        )
        self.assertFalse(passed, printed)
        table = {line.split()[0]: line for line in printed.splitlines() if line.strip()}
        self.assertIn("FAIL", table["auc"])
        self.assertIn("FAIL", table["loss"])
        self.assertIn("FAILED on auc, loss", printed)

    def test_good_model_passes_against_a_metrics_file_baseline(self):
        out = self.create_tempdir().full_path
        path = os.path.join(out, "baseline.json")
        with open(path, "w") as f:
            json.dump(self._metrics(), f)
        passed, printed = _gate_here(
            '--bounds={"auc": ">= 0.95"}',
            '--change_bounds={"auc": ">= -0.01"}',
            f"--baseline_metrics={path}",
        )
        self.assertTrue(passed, printed)

    def test_a_bound_that_does_not_hold_fails(self):
        passed, printed = _gate_here('--bounds={"auc": ">= 0.9999"}')
        self.assertFalse(passed, printed)
        self.assertRegex(printed, r"auc .* >= 0.9999 +FAIL")

    def test_bad_inputs_fail_with_one_paragraph(self):
        cases = {
            "missing label": (
                {"data": ("missing_label.npz",)},
                "fraud_target that the export's eval_state takes",
            ),
            "extra feature": (
                {"data": ("extra_feature.npz",)},
                "holds the feature(s) customer_id, which the export's eval_state",
            ),
            "empty": ({"data": ("empty.npz",)}, "holds no example"),
            "NaN metric": ({"data": ("nan_feature.npz",)}, "is NaN on this data"),
            "label shape": (
                {"data": ("wrong_label_shape.npz",)},
                "eval_state refused a batch",
            ),
            "unreadable": ({"data": ("truncated.tfrecord.gz",)}, "cannot be read"),
            "missing file": ({"data": ("nowhere.npz",)}, "cannot be read"),
            "unknown metric": (
                {"flags": ('--bounds={"f1_score": ">= 0.5"}',)},
                "`bounds` names f1_score, which the export does not report",
            ),
            "bad bound": (
                {"flags": ('--bounds={"auc": "at least 0.5"}',)},
                "is not a comparison",
            ),
            "wrong dtype": (
                {
                    "data": ("text_in_a_number_column.csv",),
                    "flags": (f"--feature_map={json.dumps(_CSV_MAP)}",),
                },
                "the feature 'f3' in",
            ),
        }
        for name, (kwargs, words) in cases.items():
            with self.subTest(case=name):
                message = _run_here(
                    *kwargs.get("flags", ()), data=kwargs.get("data", ("fraud.npz",))
                )
                self.assertTrue(
                    message.startswith("//tests/eval_gate:under_test: "), message
                )
                self.assertIn(words, message)
                self.assertNotIn("\n", message)

    def test_bad_input_exits_with_its_paragraph_on_stderr(self):
        proc = _run("--bounds={}", data=("empty.npz",))
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr[-3000:])
        self.assertIn("holds no example", proc.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    absltest.main()
