"""Prints the example export's predictions for one image.

`bazel run //models:predict` (optionally `-- --seed=N`) finds the SavedModel in its
runfiles, the way any consumer of a keras_saved_model target does, and prints the top
class and the class probabilities for a seeded random image.
"""

import contextlib
import glob
import json
import os
import re
import sys
import tempfile

import numpy as np
from absl import app, flags, logging
from runfiles import runfiles

# What TensorFlow prints at import before its logging is set up, so that
# TF_CPP_MIN_LOG_LEVEL cannot hide it: INFO lines such as "I0000 ... oneDNN custom
# operations are on", and absl's banner before them.
_STARTUP_NOTICE = re.compile(
    r"^(I\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog)"
)


@contextlib.contextmanager
def _startup_notices_dropped():
    """Holds back stderr (the file descriptor, as C++ writes it) and passes on all but
    TensorFlow's start-up notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines(keepends=True):
                if not _STARTUP_NOTICE.match(line):
                    sys.stderr.write(line)


# The logs TensorFlow makes once it is set up (CPU features...) follow this; set
# TF_CPP_MIN_LOG_LEVEL=0 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with _startup_notices_dropped():
    import tensorflow as tf

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
    if not flags.FLAGS["verbosity"].present:
        # TensorFlow warns at load time about restored functions' custom gradients.
        logging.set_verbosity(logging.ERROR)
    print(json.dumps(predict(find_export(), _SEED.value)))


if __name__ == "__main__":
    app.run(main)
