"""Benchmark child (a): the bare Keras way to a SavedModel, in a fresh process.

    python3 bench/bare_export.py BUILDER OUTPUT_DIR TIMINGS_JSON

Imports TensorFlow and Keras, builds the model from BUILDER ("module:function", found
on PYTHONPATH) after keras.utils.set_random_seed(0), and calls `model.export(path)`
(serving only). Writes wall seconds per phase, and time.time() stamps of its start and
end, to TIMINGS_JSON. Not part of the test run; bench/compare.py runs it.
"""

import time

_START = time.time()
_T0 = time.perf_counter()

import importlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    builder, output_dir, timings_path = sys.argv[1:4]
    timings = {}
    import keras
    import tensorflow  # noqa: F401

    t1 = time.perf_counter()
    timings["import"] = t1 - _T0
    module_name, function = builder.split(":")
    keras.utils.set_random_seed(0)
    model = getattr(importlib.import_module(module_name), function)()
    t2 = time.perf_counter()
    timings["load"] = t2 - t1
    model.export(output_dir, verbose=False)
    t3 = time.perf_counter()
    timings["export"] = t3 - t2
    with open(timings_path, "w", encoding="utf-8") as f:
        json.dump({"timings": timings, "start": _START, "end": time.time()}, f)


if __name__ == "__main__":
    main()
