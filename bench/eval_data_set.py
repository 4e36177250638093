"""Evaluating a data set through the export (eval_state summed, eval_result) against
Keras's model.evaluate on the same data and batch size: examples/s and peak RSS, each
in a fresh process, at N and 10 N examples (the export's memory must not grow with the
data).

    bench/eval_data_set.py [--examples 100000] [--batch_size 256]

Run it with the Bazel-managed venv's interpreter
(`<output_base>/external/rules_keras_python/venv/bin/python3`) from the repository
root. The data is generated a batch at a time (seeded) in both paths, so neither holds
the data set; the export is the fraud classifier of tests/export/evaluation_models.py
(AUC, PR AUC, precision, recall, confusion counts, accuracy).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

FEATURES = 6


def _batches(examples: int, batch_size: int):
    import numpy as np

    rng = np.random.default_rng(0)
    for start in range(0, examples, batch_size):
        n = min(batch_size, examples - start)
        x = rng.normal(size=(n, FEATURES)).astype("float32")
        y = (x @ np.linspace(-1, 1, FEATURES) > 1.2).astype("float32")[:, None]
        yield x, y


def _child(args) -> dict:
    import numpy as np
    import tensorflow as tf

    if args.mode == "export":
        loaded = tf.saved_model.load(args.export)
        state_fn = loaded.signatures["eval_state"]
        result_fn = loaded.signatures["eval_result"]
        start = time.perf_counter()
        total = None
        for x, y in _batches(args.examples, args.batch_size):
            state = state_fn(features=tf.constant(x), fraud_target=tf.constant(y))
            state = {k: v.numpy() for k, v in state.items()}
            total = state if total is None else {k: total[k] + state[k] for k in state}
        logs = {k: float(v) for k, v in result_fn(**total).items()}
    else:
        from export.lib import api

        model = api.load_keras_model(args.export)
        data = tf.data.Dataset.from_generator(
            lambda: _batches(args.examples, args.batch_size),
            output_signature=(
                tf.TensorSpec((None, FEATURES), tf.float32),
                tf.TensorSpec((None, 1), tf.float32),
            ),
        )
        start = time.perf_counter()
        logs = model.evaluate(data, verbose=0, return_dict=True)
    seconds = time.perf_counter() - start
    del np
    return {
        "seconds": seconds,
        "examples_per_s": args.examples / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "auc": logs["auc"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--mode", choices=["export", "keras"])
    parser.add_argument("--export")
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(_child(args)))
        return
    sys.path.insert(0, os.getcwd())
    from export.lib import api

    tmp = tempfile.mkdtemp()
    export = api.export_saved_model(
        api.ExportRequest(
            builder="tests.export.evaluation_models:fraud_classifier",
            output_dir=os.path.join(tmp, "fraud"),
            modes=("serve", "eval"),
            verify=False,
        )
    )
    rows = []
    for examples in (args.examples, 10 * args.examples):
        for mode in ("keras", "export"):
            proc = subprocess.run(
                [sys.executable, __file__, f"--mode={mode}", f"--export={export}"]
                + [f"--examples={examples}", f"--batch_size={args.batch_size}"],
                capture_output=True,
                text=True,
                check=True,
                env={
                    **os.environ,
                    "PYTHONPATH": os.getcwd(),
                    "TF_CPP_MIN_LOG_LEVEL": "2",
                },
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((examples, mode, result))
            print(
                f"{examples:>9} {mode:>6}  {result['examples_per_s']:>10.0f} ex/s"
                f"  {result['seconds']:>7.2f} s  peak RSS {result['peak_rss_mb']:>6.0f} MB"
                f"  auc {result['auc']:.6f}",
                flush=True,
            )
    by = {(n, m): r for n, m, r in rows}
    for examples in (args.examples, 10 * args.examples):
        ratio = by[(examples, "export")]["seconds"] / by[(examples, "keras")]["seconds"]
        print(f"{examples:>9} export/keras time ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
