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

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The workspace's `models` package, not bench/models.py next to this script.
sys.path[0] = _ROOT
_OPTIMIZATIONS = ("none", "dynamic_range", "float16")


def _convert(export: str, optimization: str, select: bool, out: str) -> tuple:
    command = [
        sys.executable,
        os.path.join(_ROOT, "formats", "tflite", "tflite_converter.py"),
        f"--saved_model={export}",
        f"--optimization={optimization}",
        f"--tflite_out={out}",
        f"--tflite_manifest_out={out}.json",
        "--allow_select_tf_ops" if select else "--noallow_select_tf_ops",
        "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": _ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    error = [l for l in proc.stderr.splitlines() if "tflite_converter: error:" in l]
    return proc.returncode == 0, seconds, error[0] if error else proc.stderr[-300:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("exports", nargs="+", help="keras_saved_model output folders")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    # export_info resolves `src` files as runfiles paths of the workspace.
    os.environ.setdefault("TEST_SRCDIR", os.path.dirname(_ROOT))
    os.environ.setdefault("TEST_WORKSPACE", os.path.basename(_ROOT))

    import tensorflow as tf

    from export.lib import conversion, interface, sources
    from formats.tflite import keras_tflite_model_test_main as check
    from formats.tflite import tflite
    from rules.private import conversion_check, export_info

    rows = []
    work = tempfile.mkdtemp(prefix="tflite_table.")
    for export in map(os.path.normpath, args.exports):
        name = os.path.basename(export)
        model_interface = sources.load_model(
            export_info.model_source(export_info.read(export))
        ).interface
        arrays = interface.random_for(
            model_interface.inputs,
            export_info.INPUT_SEED,
            conversion_check.BATCH,
            model_interface.samples,
        )
        feeds = {d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)}
        serve = tf.saved_model.load(conversion.find_saved_model(export)).signatures[
            tflite.SERVING_KEY
        ]
        served = {
            k: v.numpy()
            for k, v in serve(**{k: tf.constant(v) for k, v in feeds.items()}).items()
        }
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
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
