"""`//models:predict`, run as a program, prints the export's predictions.

They are compared with the Keras model that load_keras_model rebuilds from the same
export: a second, independent path from the files to the numbers.
"""

import glob
import json
import os
import re
import subprocess

import numpy as np
from absl.testing import absltest

from export.lib.loader import load_keras_model
from models.layers import ChannelScale

_RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])


# A log line of TensorFlow's C++ or absl's Python logging: "I0000 00:00:...", "W1201 ...".
_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")


def run_predict(*args: str) -> subprocess.CompletedProcess:
    binary = os.path.join(_RUNFILES, "models", "predict")
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as in a user's shell
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, check=False, env=env
    )
    if result.returncode != 0:
        raise AssertionError(f"predict failed ({result.returncode}):\n{result.stderr}")
    return result


class PredictTest(absltest.TestCase):
    def test_prints_the_models_predictions(self):
        printed = json.loads(run_predict("--seed=3").stdout)
        (version_dir,) = glob.glob(os.path.join(_RUNFILES, "models", "my_export", "*"))
        model = load_keras_model(
            version_dir, custom_objects={"ChannelScale": ChannelScale}
        )
        image = np.random.default_rng(3).random((1, 28, 28, 1), dtype=np.float32)
        expected = model.predict(image, verbose=0)[0]
        np.testing.assert_allclose(printed["probs"], expected, atol=1e-5)
        self.assertEqual(printed["class"], int(np.argmax(expected)))
        self.assertAlmostEqual(sum(printed["probs"]), 1.0, places=4)

    def test_prints_no_tensorflow_logs(self):
        result = run_predict()
        self.assertLen(result.stdout.splitlines(), 1, result.stdout)
        logs = [
            line
            for line in result.stderr.splitlines()
            if _LOG_LINE.match(line) or "absl::InitializeLog" in line
        ]
        self.assertEmpty(logs, result.stderr)


if __name__ == "__main__":
    absltest.main()
