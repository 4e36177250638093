"""Benchmark child (a): the bare Keras way to a SavedModel, in a fresh process.

    python3 bench/bare_export.py BUILDER OUTPUT_DIR TIMINGS_JSON [--all_modes]

Imports TensorFlow and Keras, builds the model from BUILDER ("module:function", found
on PYTHONPATH) after keras.utils.set_random_seed(0), and calls `model.export(path)`
(serving only). With --all_modes it instead writes the same serve, eval and train
signatures as the exporter, the plain TensorFlow way (export_all_modes below): the
floor that TensorFlow and Keras set for an all-modes export, with no checks and no
verify. Writes wall seconds per phase, and time.time() stamps of its start and end, to
TIMINGS_JSON. Not part of the test run; bench/compare.py runs it.
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
    all_modes = sys.argv[4:] == ["--all_modes"]
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
    if all_modes:
        export_all_modes(model, output_dir)
    else:
        model.export(output_dir, verbose=False)
    t3 = time.perf_counter()
    timings["export"] = t3 - t2
    with open(timings_path, "w", encoding="utf-8") as f:
        json.dump({"timings": timings, "start": _START, "end": time.time()}, f)


def export_all_modes(model, output_dir: str) -> None:
    """serve, eval (the model's test_step) and train (its train_step) in one SavedModel.

    What a user would write without the exporter, for the bench models (single-output
    classifiers and regressors): the variables, optimizer slots included, tracked on a
    tf.Module, three tf.functions, one tf.saved_model.save.
    """
    import tensorflow as tf

    x_specs = [tf.TensorSpec(x.shape, x.dtype, name=x.name) for x in model.inputs]
    (output,) = model.outputs
    sparse = "Sparse" in type(model.loss).__name__
    y_spec = tf.TensorSpec(
        output.shape[:-1] if sparse else output.shape,
        "int64" if sparse else output.dtype,
        name="target",
    )

    def pack(inputs):
        return inputs[0] if len(inputs) == 1 else list(inputs)

    def zeros(spec):
        return tf.zeros([1 if d is None else d for d in spec.shape], spec.dtype)

    # The compiled loss and metrics, and the optimizer slots, exist before tracing.
    model.test_step((pack([zeros(s) for s in x_specs]), zeros(y_spec)))
    model.optimizer.build(model.trainable_variables)
    module = tf.Module()
    module.tracked = [
        v.value
        for v in model.variables + model.metrics_variables + model.optimizer.variables
    ]

    def serve(*x):
        return {"output": model(pack(x), training=False)}

    def evaluate(*xy):
        return model.test_step((pack(xy[:-1]), xy[-1]))

    def train(*xy):
        return model.train_step((pack(xy[:-1]), xy[-1]))

    signatures = {}
    for key, fn, specs in [
        ("serving_default", serve, x_specs),
        ("eval", evaluate, x_specs + [y_spec]),
        ("train", train, x_specs + [y_spec]),
    ]:
        traced = tf.function(fn, input_signature=specs, autograph=False)
        signatures[key] = traced.get_concrete_function()
        setattr(module, key, signatures[key])
    tf.saved_model.save(module, output_dir, signatures=signatures)


if __name__ == "__main__":
    main()
