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

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The workspace's `models` package, not bench/models.py next to this script.
sys.path[0] = _ROOT


def _convert(export: str, out: str) -> tuple:
    command = [
        sys.executable,
        os.path.join(_ROOT, "formats", "onnx", "onnx_converter.py"),
        f"--export={export}",
        f"--onnx_out={out}",
        f"--onnx_manifest_out={out}.json",
        "--quiet",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": _ROOT,
        "PYTHONHASHSEED": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    start = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    error = [l for l in proc.stderr.splitlines() if "onnx_converter: error:" in l]
    return proc.returncode == 0, seconds, error[0] if error else proc.stderr[-300:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("exports", nargs="+", help="keras_saved_model output folders")
    parser.add_argument("--repeat", type=int, default=1, help="conversions per export")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    # export_info resolves `src` files as runfiles paths of the workspace.
    os.environ.setdefault("TEST_SRCDIR", os.path.dirname(_ROOT))
    os.environ.setdefault("TEST_WORKSPACE", os.path.basename(_ROOT))

    import tensorflow as tf

    from export.lib import conversion, interface, sources
    from formats.onnx import keras_onnx_model_test_main as check
    from formats.onnx import onnx_model
    from rules.private import conversion_check, export_info

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
            model_interface = sources.load_model(
                export_info.model_source(export_info.read(export))
            ).interface
            arrays = interface.random_for(
                model_interface.inputs,
                export_info.INPUT_SEED,
                conversion_check.BATCH,
                model_interface.samples,
            )
            feeds = {
                d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)
            }
            serve = tf.saved_model.load(conversion.find_saved_model(export)).signatures[
                onnx_model.SERVING_KEY
            ]
            served = {
                k: v.numpy()
                for k, v in serve(
                    **{k: tf.constant(v) for k, v in feeds.items()}
                ).items()
            }
            got = check.run_onnx(content, feeds)
            row["max_diff"] = max(
                conversion_check.max_differences(served, got, "ONNX").values(),
                default=0.0,
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
