"""Which of serve, eval and train a model supports: what Keras itself can run.

Keras's evaluate needs a compiled loss, or the model's own compute_loss or test_step;
its fit an optimizer besides a compiled loss or the model's own compute_loss or
train_step. `read_steps` reads that from the model once; the label probes and the
mode check take what it read.
"""

import dataclasses

import keras

from export.lib.errors import ExportError, setting


@dataclasses.dataclass(frozen=True)
class ModelSteps:
    """What Keras knows of how to evaluate and train the model."""

    compiled: bool
    has_loss: bool  # compiled with a loss
    has_optimizer: bool
    own_compute_loss: bool  # the model's class replaces Keras's compute_loss
    own_test_step: bool
    own_train_step: bool

    @property
    def computes_loss(self) -> bool:
        """A compiled loss, or a compute_loss of the model's own (keras.io's
        Distiller)."""
        return self.has_loss or self.own_compute_loss

    @property
    def evaluates(self) -> bool:
        """True when Keras's own evaluate runs the model (compiled)."""
        return self.computes_loss or self.own_test_step

    def supported_modes(self) -> tuple[str, ...]:
        """The modes Keras itself can run."""
        modes = ["serve"]
        if not self.compiled:
            return tuple(modes)
        if self.evaluates:
            modes.append("eval")
        if self.has_optimizer and (self.computes_loss or self.own_train_step):
            modes.append("train")
        return tuple(modes)


def read_steps(model: keras.Model) -> ModelSteps:
    return ModelSteps(
        compiled=bool(getattr(model, "compiled", False)),
        has_loss=getattr(model, "loss", None) is not None,
        has_optimizer=getattr(model, "optimizer", None) is not None,
        own_compute_loss=_replaces(model, "compute_loss"),
        own_test_step=_replaces(model, "test_step"),
        own_train_step=_replaces(model, "train_step"),
    )


def _replaces(model: keras.Model, step: str) -> bool:
    """True when the model's class replaces Keras's own train_step, test_step or
    compute_loss."""
    return getattr(type(model), step, None) is not getattr(keras.Model, step)


def choose_modes(
    steps: ModelSteps, requested: tuple[str, ...] | None
) -> tuple[str, ...]:
    available = steps.supported_modes()
    if requested is None:
        return available
    for mode in requested:
        if mode not in available:
            step = "test_step" if mode == "eval" else "train_step"
            why = (
                "the model was not compiled with a loss and has no compute_loss or"
                f" {step} of its own"
                if mode == "eval" or not (steps.computes_loss or steps.own_train_step)
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
