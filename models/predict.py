"""Prints the example export's predictions for one image.

`bazel run //models:predict` (optionally `-- --seed=N`) finds the SavedModel in its
runfiles, the way any consumer of a keras_saved_model target does, and prints the top
class and the class probabilities for a seeded random image.
"""

import glob
import json
import os

import numpy as np
import tensorflow as tf
from absl import app, flags
from runfiles import runfiles

_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random input image.")
# "rules_keras" is this repository's name as this file sees it; the runfiles library
# maps it to the runfiles folder ("rules_keras" under WORKSPACE, "_main" under bzlmod)
# through Bazel's repository mapping.
_EXPORT = "rules_keras/models/my_export"


def find_export() -> str:
    """The version folder of //models:my_export, located through the runfiles."""
    base = runfiles.Create().Rlocation(_EXPORT)
    versions = sorted(glob.glob(os.path.join(base, "*", "saved_model.pb")))
    if not versions:
        raise FileNotFoundError(f"no SavedModel version under {base}")
    return os.path.dirname(versions[-1])


def predict(export_dir: str, seed: int) -> dict:
    model = tf.saved_model.load(export_dir)
    serve = model.signatures["serving_default"]
    image = np.random.default_rng(seed).random((1, 28, 28, 1), dtype=np.float32)
    probs = serve(image=tf.constant(image))["probs"].numpy()[0]
    return {
        "class": int(np.argmax(probs)),
        "probs": [round(float(p), 6) for p in probs],
    }


def main(argv):
    del argv
    print(json.dumps(predict(find_export(), _SEED.value)))


if __name__ == "__main__":
    app.run(main)
