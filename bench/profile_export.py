"""Profiles one exporter run (export_with_result) phase by phase, in a fresh process.

    PYTHONPATH=. KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0 \\
      $VENV_PYTHON bench/profile_export.py --builder=bench.models:mobilenet_v2 \\
      --modes=serve,eval,train --out=/tmp/profile [--pyinstrument]

Times the imports, then runs api.export_with_result under cProfile (or pyinstrument,
if importable and --pyinstrument is given) and writes OUT.pstats (or OUT.txt / OUT.html)
and a summary of the top functions by cumulative and own time to stdout. Not part of
the test run; see bench/README.md.
"""

import argparse
import os
import sys
import tempfile
import time

_T0 = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--builder", required=True)
    parser.add_argument("--modes", default="serve,eval,train")
    parser.add_argument("--out", required=True, help="output path prefix")
    parser.add_argument("--pyinstrument", action="store_true")
    parser.add_argument("--noverify", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    from export.lib import api

    print(f"import: {time.perf_counter() - _T0:.2f}s", flush=True)
    request = api.ExportRequest(
        output_dir=tempfile.mkdtemp(prefix="profile_export."),
        builder=args.builder,
        modes=args.modes,
        verify=not args.noverify,
    )
    if args.pyinstrument:
        import pyinstrument

        profiler = pyinstrument.Profiler(interval=0.005)
        profiler.start()
        result = api.export_with_result(request)
        profiler.stop()
        with open(args.out + ".txt", "w", encoding="utf-8") as f:
            f.write(profiler.output_text(unicode=False, color=False, show_all=False))
        with open(args.out + ".html", "w", encoding="utf-8") as f:
            f.write(profiler.output_html())
        print(f"wrote {args.out}.txt and {args.out}.html")
    else:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        result = api.export_with_result(request)
        profiler.disable()
        profiler.dump_stats(args.out + ".pstats")
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
    print(f"phases: {result.timings} (profiler overhead included)")
    print(f"wrote {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
