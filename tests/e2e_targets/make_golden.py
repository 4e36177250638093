"""Writes tests/e2e_targets/mlp_golden.npz, the golden of //tests/e2e_targets:mlp_export_golden_test.

Computed with Keras itself from the committed mlp.keras, independently of the exporter:
five seeded inputs (`input:measurements`) and the model's outputs (`output:species`).
Regenerate it (only when mlp.keras changes) from the workspace root with:

    ./bazelw run //tests/e2e_targets:make_golden
"""

import os
import sys

import keras
import numpy as np


def main(argv: list[str]) -> int:
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", ".")
    here = os.path.join(workspace, "tests", "e2e_targets")
    out = argv[1] if len(argv) > 1 else os.path.join(here, "mlp_golden.npz")
    model = keras.saving.load_model(os.path.join(here, "mlp.keras"))
    inputs = np.random.default_rng(7).standard_normal((5, 4)).astype(np.float32)
    outputs = np.asarray(model(inputs, training=False))
    np.savez(out, **{"input:measurements": inputs, "output:species": outputs})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
