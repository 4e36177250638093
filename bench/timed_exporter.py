"""Benchmark child (b): the exporter's own main(), with its phases timed.

    BENCH_TIMINGS_OUT=t.json python3 bench/timed_exporter.py EXPORTER_FLAGS...

Runs export/exporter.py's run() unchanged, with the same flags, in this fresh process.
First it imports what the exporter imports anyway (TensorFlow, Keras, absl and
export.lib.api), timing that as "import"; it then wraps api.export_resolved to keep
the ExportResult's per-phase timings (load, trace, write, verify) and writes them, plus
time.time() stamps of this script's start and end, to $BENCH_TIMINGS_OUT. Needs the
workspace root on PYTHONPATH. bench/compare.py runs it.
"""

import time

_START = time.time()
_T0 = time.perf_counter()

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    timings_path = os.environ.pop("BENCH_TIMINGS_OUT")
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    from export.lib import api

    timings = {"import": time.perf_counter() - _T0}
    real_export = api.export_resolved

    def export_and_keep_timings(resolved):
        result = real_export(resolved)
        timings.update(result.timings)
        # Written here: the exporter's run() ends the process with os._exit.
        with open(timings_path, "w", encoding="utf-8") as f:
            json.dump({"timings": timings, "start": _START, "end": time.time()}, f)
        return result

    # Before export.exporter is imported, so any way it refers to the function sees this.
    api.export_resolved = export_and_keep_timings
    from export import exporter

    exporter.run(argv=[exporter.__file__, *sys.argv[1:]])


if __name__ == "__main__":
    main()
