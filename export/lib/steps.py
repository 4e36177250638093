"""The model's own steps: which modes Keras can run it in, the logs its steps return,
and running a step eagerly with its changes undone.

A mode needs what Keras needs to run it: `evaluate` a compiled loss or the model's own
compute_loss or test_step; `fit` an optimizer besides a compiled loss or the model's own
compute_loss or train_step.
"""

import contextlib
from collections.abc import Mapping

import keras
import tensorflow as tf

from export.lib import interface
from export.lib.errors import ExportError, describe_exception, setting


def supported_modes(model: keras.Model) -> tuple[str, ...]:
    """The modes Keras itself can run: evaluate needs a compiled loss, or the model's
    own compute_loss or test_step; fit an optimizer and a compiled loss, or the model's
    own compute_loss or train_step."""
    modes = ["serve"]
    if not getattr(model, "compiled", False):
        return tuple(modes)
    if evaluates(model):
        modes.append("eval")
    if getattr(model, "optimizer", None) is not None and (
        _computes_loss(model) or defines_step(model, "train_step")
    ):
        modes.append("train")
    return tuple(modes)


def has_loss(model: keras.Model) -> bool:
    return getattr(model, "loss", None) is not None


def _computes_loss(model: keras.Model) -> bool:
    """A compiled loss, or a compute_loss of the model's own (keras.io's Distiller)."""
    return has_loss(model) or defines_step(model, "compute_loss")


def evaluates(model: keras.Model) -> bool:
    """True when Keras's own evaluate runs the model (compiled)."""
    return _computes_loss(model) or defines_step(model, "test_step")


def defines_step(model: keras.Model, step: str) -> bool:
    """True when the model's class replaces Keras's own train_step, test_step or
    compute_loss."""
    return getattr(type(model), step, None) is not getattr(keras.Model, step)


def choose_modes(
    model: keras.Model, requested: tuple[str, ...] | None
) -> tuple[str, ...]:
    available = supported_modes(model)
    if requested is None:
        return available
    for mode in requested:
        if mode not in available:
            step = "test_step" if mode == "eval" else "train_step"
            why = (
                "the model was not compiled with a loss and has no compute_loss or"
                f" {step} of its own"
                if mode == "eval"
                or not (_computes_loss(model) or defines_step(model, "train_step"))
                else "the model was compiled without an optimizer"
            )
            raise ExportError(
                "modes",
                f"'{mode}' was requested but {why}, so it only supports {','.join(available)}",
                [
                    (
                        "compile the model in the builder (model.compile(optimizer=...,"
                        f" loss=...)) or drop '{mode}' from "
                    ),
                    setting("modes"),
                ],
            )
    return requested


def log_tensors(step_name: str, logs) -> dict[str, tf.Tensor]:
    """The step's logs as one flat dict of tensors, keyed as Keras's fit reports them.

    Keras flattens nested dicts (`{m.name: m.result() for m in self.metrics}` nests the
    compiled metrics' results under `compile_metrics`) into one level, in sorted key
    order, a later key replacing an earlier one of the same name; so does this.
    """
    if not isinstance(logs, Mapping):
        raise ExportError(
            ("builder", "src"),
            f"the model's {step_name} returned {type(logs).__name__}, not a dict of logs",
            f"return a dict of metric names to scalar tensors from {step_name}, as Keras's"
            " fit expects (e.g. {m.name: m.result() for m in self.metrics})",
        )
    flat = {}
    for key, value in sorted(logs.items(), key=lambda item: str(item[0])):
        if isinstance(value, Mapping):
            flat.update(log_tensors(step_name, value))
            continue
        try:
            flat[str(key)] = tf.convert_to_tensor(value)
        except (TypeError, ValueError) as e:
            raise ExportError(
                ("builder", "src"),
                f"the model's {step_name} returned the log '{key}' as"
                f" {type(value).__name__} ({describe_exception(e)}), which is not a tensor",
                f"make every value {step_name} returns a number or a tensor (nested dicts"
                " of them are flattened as Keras's fit does)",
            ) from None
    return flat


@contextlib.contextmanager
def put_back_variables(variables):
    """Gives `variables` back, on exit, the values they had on entry."""
    saved = [v.numpy() for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)


@contextlib.contextmanager
def undone(model, step):
    """Runs a step eagerly without trace: train_step's changes to the model's and the
    optimizer's variables (weights, seed generators, slots, step count) are undone, and
    every metric is reset."""
    variables = []
    if step.__name__ == "train_step":
        variables = interface.tf_variables(model.variables) + interface.tf_variables(
            model.optimizer.variables
        )
    try:
        with put_back_variables(variables):
            yield
    finally:
        for metric in model.metrics:
            metric.reset_state()
