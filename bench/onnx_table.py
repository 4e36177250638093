"""The ONNX table: each export converted by keras_onnx_model's program, its size, ops,
conversion time, largest difference from the SavedModel, and whether repeated
conversions give the same bytes (tests/zoo/README.md, docs/rules.md).

Run with the Bazel-managed venv's interpreter after building the exports, from the
workspace root:

  ./bazelw build //models:my_export //tests/zoo:masked_lstm
  PYTHONPATH=. "$(./bazelw info output_base)/external/rules_keras_python/python3" \
      bench/onnx_table.py --repeat=3 bazel-bin/models/my_export bazel-bin/tests/zoo/masked_lstm

Each conversion runs `//formats/onnx:onnx_converter`'s program in a fresh process (its wall
time is what an action costs without the worker), with the action's PYTHONHASHSEED=0;
`--repeat=N` converts N times and reports how many different files came out. The
difference is measured as keras_onnx_model_test measures it (the export's sample
inputs, batch 3, each output's max |ONNX - SavedModel| divided by max(1, max
|SavedModel|)). Not a test.
"""

import hashlib
import os
import sys
import tempfile

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The workspace's `models` package, not bench/models.py next to this script.
sys.path[0] = _ROOT

from bench import conversion_table


def _convert(export: str, out: str) -> tuple:
    return conversion_table.convert(
        "onnx_converter",
        [f"--export={export}", f"--onnx_out={out}", f"--onnx_manifest_out={out}.json"],
    )


def main() -> None:
    args = conversion_table.arguments(
        ("--repeat", {"type": int, "default": 1, "help": "conversions per export"})
    )

    from formats.onnx import keras_onnx_model_test_main as check
    from formats.onnx import onnx_model
    from rules.private import conversion_check

    rows = []
    work = tempfile.mkdtemp(prefix="onnx_table.")
    for export in map(os.path.normpath, args.exports):
        name = os.path.basename(export)
        row = {"model": name}
        digests, times = set(), []
        for attempt in range(args.repeat):
            out = os.path.join(work, f"{name}.{attempt}.onnx")
            ok, seconds, error = _convert(export, out)
            times.append(seconds)
            if not ok:
                row["error"] = error
                break
            with open(out, "rb") as f:
                content = f.read()
            digests.add(hashlib.sha256(content).hexdigest())
        row["seconds"] = min(times)
        if "error" not in row:
            model = onnx_model.describe(content)
            row.update(
                size=len(content),
                ops=len(model.ops),
                files=f"{len(digests)} of {args.repeat}",
            )
            feeds, served = conversion_check.served_samples(export)
            got = check.run_onnx(content, feeds)
            row["max_diff"] = max(
                conversion_check.max_differences(served, got, "ONNX").values(),
                default=0.0,
            )
        conversion_table.report(row, rows)
    conversion_table.write_json(rows, args.json)


if __name__ == "__main__":
    main()
