"""Writes tests/e2e_targets/mlp.keras, the `src` of //tests/e2e_targets:mlp_export.

The file is committed; it was made once with the toolchain's Keras. To regenerate it
(only needed when its model should change), run from the workspace root:

    ./bazelw run //tests/e2e_targets:make_keras_file

which writes tests/e2e_targets/mlp.keras in the source tree (or pass another path). A .keras
file is a zip that records the time it was saved, so a regenerated file differs from the
committed one in bytes even when the weights are equal; the exports made from one file
are byte-identical.
"""

import os
import sys

import keras


def build() -> keras.Model:
    keras.utils.set_random_seed(1234)
    model = keras.Sequential(
        [
            keras.Input(shape=(4,), name="measurements"),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="species"),
        ],
        name="mlp",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    # Saved with its slot variables, so that loading it matches the optimizer the
    # exporter builds (else Keras warns that it skips the optimizer's variables).
    model.optimizer.build(model.trainable_variables)
    return model


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        out = argv[1]
    else:
        workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
        if not workspace:
            print(
                "usage: make_keras_file.py OUT.keras (or run it with bazel run)",
                file=sys.stderr,
            )
            return 2
        out = os.path.join(workspace, "tests", "e2e_targets", "mlp.keras")
    build().save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
