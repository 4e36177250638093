"""The TFLite table: each export converted with each optimization, its size, ops, time
and largest difference from the SavedModel (tests/zoo/README.md, docs/rules.md).

Run with the Bazel-managed venv's interpreter after building the exports, from the
workspace root:

  ./bazelw build //models:my_export //tests/zoo/...
  PYTHONPATH=. "$(./bazelw info output_base)/external/rules_keras_python/python3" \
      bench/tflite_table.py bazel-bin/models/my_export bazel-bin/tests/zoo/mobilenet_v2

Each conversion runs `//formats/tflite:tflite_converter`'s program in a fresh process (its wall
time, less nothing: that is what an action costs); the difference is measured as
keras_tflite_model_test measures it (the export's sample inputs, batch 3, each output's
max |TFLite - SavedModel| divided by max(1, max |SavedModel|)). Not a test.
"""

import os
import sys
import tempfile

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The workspace's `models` package, not bench/models.py next to this script.
sys.path[0] = _ROOT

from bench import conversion_table

_OPTIMIZATIONS = ("none", "dynamic_range", "float16")


def _convert(export: str, optimization: str, select: bool, out: str) -> tuple:
    return conversion_table.convert(
        "tflite_converter",
        [
            f"--saved_model={export}",
            f"--optimization={optimization}",
            f"--tflite_out={out}",
            f"--tflite_manifest_out={out}.json",
            "--allow_select_tf_ops" if select else "--noallow_select_tf_ops",
        ],
    )


def main() -> None:
    args = conversion_table.arguments()

    from formats.tflite import keras_tflite_model_test_main as check
    from formats.tflite import tflite
    from rules.private import conversion_check

    rows = []
    work = tempfile.mkdtemp(prefix="tflite_table.")
    for export in map(os.path.normpath, args.exports):
        name = os.path.basename(export)
        feeds, served = conversion_check.served_samples(export)
        for optimization in _OPTIMIZATIONS:
            out = os.path.join(work, f"{name}.{optimization}.tflite")
            ok, seconds, error = _convert(export, optimization, False, out)
            select = False
            if not ok:
                select = True
                ok, seconds, error = _convert(export, optimization, True, out)
            row = {"model": name, "optimization": optimization, "seconds": seconds}
            if not ok:
                row["error"] = error
            else:
                with open(out, "rb") as f:
                    model = tflite.describe(f.read())
                row.update(
                    size=len(model.content),
                    ops=len(model.ops),
                    select_tf_ops=list(model.select_tf_ops),
                    needs_select_tf_ops=select,
                )
                if not model.select_tf_ops:
                    got = check.run_tflite(model.content, feeds)
                    row["max_diff"] = max(
                        conversion_check.max_differences(
                            served, got, "TFLite"
                        ).values(),
                        default=0.0,
                    )
            conversion_table.report(row, rows)
    conversion_table.write_json(rows, args.json)


if __name__ == "__main__":
    main()
