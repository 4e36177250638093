"""What the tables of the converted formats share (tflite_table.py, onnx_table.py).

A table converts each export with the format's program in a fresh process, as the
build action does (its wall time is what an action costs without the worker), and
measures the difference from the SavedModel as the format's test does
(rules/private/conversion_check.py: the export's sample inputs and serving_default's
answers on them).
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arguments(*extra: tuple[str, dict]) -> argparse.Namespace:
    """The table's command line: the export folders, --json, and `extra` flags."""
    parser = argparse.ArgumentParser()
    parser.add_argument("exports", nargs="+", help="keras_saved_model output folders")
    parser.add_argument("--json", help="also write the rows here")
    for flag, options in extra:
        parser.add_argument(flag, **options)
    args = parser.parse_args()
    # export_info resolves `src` files as runfiles paths of the workspace.
    os.environ.setdefault("TEST_SRCDIR", os.path.dirname(ROOT))
    os.environ.setdefault("TEST_WORKSPACE", os.path.basename(ROOT))
    return args


def convert(program: str, flags: list[str]) -> tuple[bool, float, str]:
    """Runs formats/<folder>/<program>.py with `flags`, in the action's environment;
    returns whether it succeeded, its wall time and its error line."""
    folder = program.removesuffix("_converter")
    command = [
        sys.executable,
        os.path.join(ROOT, "formats", folder, f"{program}.py"),
        *flags,
        "--quiet",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "PYTHONHASHSEED": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    start = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    error = [l for l in proc.stderr.splitlines() if f"{program}: error:" in l]
    return proc.returncode == 0, seconds, error[0] if error else proc.stderr[-300:]


def report(row: dict, rows: list[dict]) -> None:
    """Keeps the row and prints it as one JSON line."""
    rows.append(row)
    print(json.dumps(row), flush=True)


def write_json(rows: list[dict], path: str | None) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
