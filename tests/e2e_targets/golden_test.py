"""keras_saved_model_test's golden check passes on the true golden and fails on a wrong one.

Runs the test program of keras_saved_model_test (as //tests/e2e_targets:mlp_export_golden_test
does) against //tests/e2e_targets:mlp_export twice: with mlp_golden.npz, and with a copy whose
outputs are shifted by 1e-3, which must fail naming the output.
"""

import os
import subprocess
import sys

import numpy as np
from absl.testing import absltest

_WORKSPACE = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])
_MAIN = os.path.join(_WORKSPACE, "rules", "private", "keras_saved_model_test_main.py")
_GOLDEN = os.path.join(_WORKSPACE, "tests", "e2e_targets", "mlp_golden.npz")


def _run_check(golden: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    env.pop("XML_OUTPUT_FILE", None)  # the report file is this test's, not the child's
    return subprocess.run(
        [
            sys.executable,
            _MAIN,
            "--saved_model=tests/e2e_targets/mlp_export",
            "--checker=cc/saved_model_checker",
            f"--golden={golden}",
        ],
        cwd=_WORKSPACE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


class GoldenTest(absltest.TestCase):
    def test_true_golden_passes(self):
        result = _run_check(_GOLDEN)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

    def test_wrong_golden_fails_naming_the_output(self):
        with np.load(_GOLDEN) as golden:
            arrays = {key: golden[key] for key in golden.files}
        arrays["output:species"] = arrays["output:species"] + 1e-3
        wrong = os.path.join(self.create_tempdir().full_path, "wrong.npz")
        np.savez(wrong, **arrays)
        result = _run_check(wrong)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("output:species differs", result.stderr)


if __name__ == "__main__":
    absltest.main()
