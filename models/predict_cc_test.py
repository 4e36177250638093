"""`//models:predict_cc`, the C++ consumer, prints what `//models:predict` prints.

Both find the export in their runfiles and predict the seeded image's classes; the
C++ one loads it with TensorFlow's C API. A missing export folder, signature or input
exits with one line naming it.
"""

import json
import os
import subprocess

import numpy as np
from absl.testing import absltest

_RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])


def run(program: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as in a user's shell
    return subprocess.run(
        [os.path.join(_RUNFILES, "models", program), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def predictions(program: str, seed: int) -> dict:
    result = run(program, f"--seed={seed}")
    if result.returncode != 0:
        raise AssertionError(
            f"{program} failed ({result.returncode}):\n{result.stderr}"
        )
    return json.loads(result.stdout)


class PredictCcTest(absltest.TestCase):
    def test_prints_what_predict_py_prints(self):
        for seed in (3, 11):
            python, cc = predictions("predict", seed), predictions("predict_cc", seed)
            self.assertEqual(cc["class"], python["class"], f"seed {seed}")
            # Both print six decimals of the same float32 outputs.
            np.testing.assert_allclose(
                cc["probs"],
                python["probs"],
                rtol=0,
                atol=1.5e-6,
                err_msg=f"seed {seed}",
            )

    def test_what_is_missing_is_named_in_one_line(self):
        cases = {
            "no export folder at /no/such/export": ["--export_dir=/no/such/export"],
            # The example's modes (models/BUILD): eval brings eval_state and eval_result.
            "has no signature 'serve'; it has: eval, eval_result, eval_state,"
            " serving_default, train": ["--signature=serve"],
            "signature 'serving_default' has no input 'img'; its inputs are: image": [
                "--input=img"
            ],
        }
        for message, args in cases.items():
            result = run("predict_cc", *args)
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertEqual(result.stdout, "")
            (line,) = result.stderr.splitlines()
            self.assertTrue(line.startswith("predict_cc: "), line)
            self.assertIn(message, line)


if __name__ == "__main__":
    absltest.main()
