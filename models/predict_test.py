"""`//models:predict`, run as a program, prints the export's predictions.

They are compared with the Keras model that load_keras_model rebuilds from the same
export: a second, independent path from the files to the numbers.
"""

import glob
import json
import os
import subprocess

import numpy as np
from absl.testing import absltest

from export.lib.loader import load_keras_model
from models.layers import ChannelScale

_RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])


def run_predict(*args: str) -> dict:
    binary = os.path.join(_RUNFILES, "models", "predict")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"predict failed ({result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class PredictTest(absltest.TestCase):
    def test_prints_the_models_predictions(self):
        printed = run_predict("--seed=3")
        (version_dir,) = glob.glob(os.path.join(_RUNFILES, "models", "my_export", "*"))
        model = load_keras_model(
            version_dir, custom_objects={"ChannelScale": ChannelScale}
        )
        image = np.random.default_rng(3).random((1, 28, 28, 1), dtype=np.float32)
        expected = model.predict(image, verbose=0)[0]
        np.testing.assert_allclose(printed["probs"], expected, atol=1e-5)
        self.assertEqual(printed["class"], int(np.argmax(expected)))
        self.assertAlmostEqual(sum(printed["probs"]), 1.0, places=4)


if __name__ == "__main__":
    absltest.main()
