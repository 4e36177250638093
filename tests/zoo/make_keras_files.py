"""Writes the zoo's committed `.keras` files, the `src` of its `*_file` exports.

review_model.keras and pair_scorer.keras hold tests/zoo/subclassed.py's models as
model.save() writes them. They were made once with the toolchain's Keras; to
regenerate them (only needed when those models should change), run from the
workspace root:

    ./bazelw run //tests/zoo:make_keras_files

which writes them into tests/zoo/ in the source tree (or pass another folder). A
.keras file records the time it was saved, so regenerated files differ from the
committed ones in bytes even when their weights are equal.
"""

import os
import sys

import keras

from tests.zoo import subclassed

BUILDERS = {
    "review_model.keras": subclassed.review_model,
    "pair_scorer.keras": subclassed.pair_scorer,
}


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        folder = argv[1]
    else:
        workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
        if not workspace:
            print(
                "usage: make_keras_files.py FOLDER (or run it with bazel run)",
                file=sys.stderr,
            )
            return 2
        folder = os.path.join(workspace, "tests", "zoo")
    for name, build in BUILDERS.items():
        keras.backend.clear_session()
        keras.utils.set_random_seed(1234)
        model = build()
        # Saved with its slot variables, so that loading it matches the optimizer the
        # exporter builds (else Keras warns that it skips the optimizer's variables).
        model.optimizer.build(model.trainable_variables)
        path = os.path.join(folder, name)
        model.save(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
