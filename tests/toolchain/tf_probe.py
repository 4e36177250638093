"""Build-action tool: runs a TensorFlow op and writes what it ran on as JSON."""

import argparse
import json
import sys

import keras
import tensorflow as tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    product = tf.linalg.matmul(tf.constant([[1.0, 2.0]]), tf.constant([[3.0], [4.0]]))
    report = {
        "keras": keras.__version__,
        "matmul": float(product.numpy()[0, 0]),
        # From the toolchain repository's name on, so the file is the same on every
        # machine, whether the prefix is seen in the execroot (external/...), in a
        # runfiles tree or in a remote input root.
        "python_prefix": sys.prefix[sys.prefix.index("rules_keras_python") :],
        "tensorflow": tf.__version__,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
