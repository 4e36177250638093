"""Runs in a fresh process: uses exports the way a consumer would, records the results.

Usage: python -m tests.export.child JOB.json, where JOB holds {"tasks": [...]}; each task
reads its inputs from an .npz file and writes its results to another:
  serve:      tf.saved_model.load, call serving_default.
  keras:      export.lib.loader.load_keras_model, call the model; also its weights.
  keras_fit:  load_keras_model, then model.fit on one batch (x, y): the loss, the variables.
  keras_error: load_keras_model, which must fail: the error's message.
A task's "import_path" folders go to the front of sys.path first (for the tasks after it
too: tasks share the process).
  train_eval: call eval (if exported), then train, then serving_default again; variables
              before/after.
  calls:      call signatures on several feeds, each from the exported state: their
              outputs or the error they raise, and whether the call changed a variable.
"""

import importlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from tests.export.testutil import load_arrays, save_arrays


def _import(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _call(function, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    outputs = function(**{k: tf.constant(v) for k, v in arrays.items()})
    return {k: np.asarray(v) for k, v in outputs.items()}


def serve(task: dict) -> dict[str, np.ndarray]:
    loaded = tf.saved_model.load(task["path"])
    return _call(loaded.signatures["serving_default"], load_arrays(task["inputs"]))


def _load_keras_model(task: dict):
    from export.lib import loader

    sys.path[:0] = task.get("import_path", [])
    custom = {k: _import(v) for k, v in task.get("custom_objects", {}).items()}
    return loader.load_keras_model(
        task["path"],
        custom_objects=custom,
        safe_mode=not task.get("allow_unsafe_deserialization", False),
    )


def keras_load(task: dict) -> dict[str, np.ndarray]:
    from export.lib import interface, tensor_specs

    model = _load_keras_model(task)
    arrays = load_arrays(task["inputs"])
    input_specs = tensor_specs.parse_input_specs(task.get("input_specs", {}))
    desc = interface.describe_model(model, input_specs)
    inputs = desc.pack_inputs([tf.constant(arrays[d.name]) for d in desc.inputs])
    outputs = desc.name_outputs(desc.call(model, inputs))
    result = {k: np.asarray(v) for k, v in outputs.items()}
    for i, variable in enumerate(model.variables):
        result[f"variable_{i}"] = np.asarray(variable.numpy())
    if getattr(model, "optimizer", None) is not None and model.optimizer.built:
        result["optimizer_iterations"] = np.asarray(model.optimizer.iterations.numpy())
        result["optimizer_class"] = np.asarray(type(model.optimizer).__name__)
    return result


def keras_fit(task: dict) -> dict[str, np.ndarray]:
    model = _load_keras_model(task)
    arrays = load_arrays(task["inputs"])
    x, y = arrays["x"], arrays["y"]
    history = model.fit(x, y, batch_size=len(x), shuffle=False, verbose=0).history
    result = {f"fit_{key}": np.asarray(values[-1]) for key, values in history.items()}
    for i, variable in enumerate(model.variables):
        result[f"variable_{i}"] = np.asarray(variable.numpy())
    return result


def keras_error(task: dict) -> dict[str, np.ndarray]:
    try:
        _load_keras_model(task)
    except Exception as e:  # noqa: BLE001 - the test reads whatever it raised
        return {"error": np.asarray(f"{type(e).__name__}: {e}")}
    return {"error": np.asarray("")}


def train_eval(task: dict) -> dict[str, np.ndarray]:
    loaded = tf.saved_model.load(task["path"])
    arrays = load_arrays(task["inputs"])
    serve_inputs = {k: v for k, v in arrays.items() if not k.endswith("_target")}
    result = {}
    for i, variable in enumerate(loaded.model_variables):
        result[f"before_{i}"] = variable.numpy()
    if "eval" in loaded.signatures:
        for key, value in _call(loaded.signatures["eval"], arrays).items():
            result[f"eval_{key}"] = value
    for key, value in _call(loaded.signatures["train"], arrays).items():
        result[f"train_{key}"] = value
    for i, variable in enumerate(loaded.model_variables):
        result[f"after_{i}"] = variable.numpy()
    for key, value in _call(loaded.signatures["serving_default"], serve_inputs).items():
        result[f"serve_after_{key}"] = value
    result["optimizer_iterations"] = loaded.optimizer_variables[0].numpy()
    return result


def calls(task: dict) -> dict[str, np.ndarray]:
    loaded = tf.saved_model.load(task["path"])
    variables = [
        *loaded.model_variables,
        *loaded.metric_variables,
        *loaded.optimizer_variables,
    ]
    exported = [v.numpy() for v in variables]
    result = {}
    for call in task["calls"]:
        name = call["name"]
        try:
            outputs = _call(
                loaded.signatures[call["signature"]], load_arrays(call["inputs"])
            )
        except Exception as e:  # noqa: BLE001 - the error is the result
            result[f"{name}/error"] = np.asarray(f"{type(e).__name__}: {e}")
        else:
            result.update({f"{name}/{k}": v for k, v in outputs.items()})
        changed = [
            not np.array_equal(v.numpy(), value)
            for v, value in zip(variables, exported, strict=True)
        ]
        result[f"{name}/changed"] = np.asarray(any(changed))
        for variable, value in zip(variables, exported, strict=True):
            variable.assign(value)
    return result


_TASKS = {
    "serve": serve,
    "keras": keras_load,
    "keras_fit": keras_fit,
    "keras_error": keras_error,
    "train_eval": train_eval,
    "calls": calls,
}


def main(job_path: str) -> None:
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    for task in job["tasks"]:
        save_arrays(task["out"], _TASKS[task["kind"]](task))


if __name__ == "__main__":
    main(sys.argv[1])
