"""Reloads a written SavedModel and compares its serving outputs with the Keras model's.

In two steps, so that the Keras model and the reloaded SavedModel are never in memory
together (at 1 GB of weights, all modes, the pair took 1.8x the memory of the export
itself: bench/README.md): keras_reference calls the model on seeded inputs (made by
sample_inputs with the export's other batches) and keeps
only arrays; the caller releases the model; compare loads the SavedModel and checks it.
"""

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from export.lib import interface, signatures
from export.lib.errors import (
    ExportError,
    describe_exception,
    format_traceback,
    setting,
)

_FIX_BUG = [
    "this is likely an exporter bug, please report it; ",
    setting("verify", False),
    " skips the check",
]


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    max_abs_diff: float
    outputs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class KerasReference:
    """Seeded serving inputs and the Keras model's outputs on them, by name, as arrays.

    It holds no reference to the model, so the model can be released before the
    SavedModel is loaded and the two never take memory at the same time.
    """

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


def keras_reference(
    model: keras.Model,
    model_interface: interface.ModelInterface,
    arrays: Sequence[np.ndarray],
) -> KerasReference:
    """Calls the Keras model on `arrays`, one per input (seeded samples): what the
    SavedModel must reproduce.

    The export's batch of one (sample_inputs.VERIFY_BATCH) keeps the eager Keras
    call's memory small (measured in bench/README.md); keras_saved_model_test checks
    larger batches, and so the polymorphic batch dimension, in its own process.
    """
    samples = model_interface.samples
    tensors = [tf.constant(a) for a in arrays]
    try:
        outputs = model_interface.name_outputs(
            model_interface.call(model, model_interface.pack_inputs(tensors))
        )
    except Exception as e:  # noqa: BLE001 - user code: report whatever it raised
        shown = ", ".join(
            f"{d.name}: {list(a.shape)}"
            for d, a in zip(model_interface.inputs, arrays, strict=True)
        )
        raise ExportError(
            "verify",
            f"calling the Keras model on seeded sample inputs ({shown}) to compare it with"
            f" the SavedModel failed: {describe_exception(e)}",
            [
                (
                    "make the model accept a batch of its declared input shape (unknown"
                    f" dimensions get size {samples.unknown_dim} here), or set "
                ),
                setting("verify", False),
                " to skip the comparison",
            ],
            format_traceback(e),
        ) from None
    return KerasReference(
        inputs={d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)},
        outputs={name: np.asarray(value) for name, value in outputs.items()},
    )


def compare(
    export_dir: str, reference: KerasReference, atol: float, rtol: float
) -> VerifyResult:
    """Reloads the SavedModel and compares its serving outputs with `reference`."""
    expected = reference.outputs
    try:
        tf.saved_model.experimental.read_fingerprint(export_dir)
        # Loading registers the saved gradients of the train function globally, which
        # would keep the loaded SavedModel alive after this returns.
        with signatures.custom_gradients_scoped():
            loaded = tf.saved_model.load(export_dir)
        serve = loaded.signatures[signatures.SERVING_KEY]
        got = serve(**{name: tf.constant(a) for name, a in reference.inputs.items()})
    except Exception as e:  # noqa: BLE001 - anything here means a broken export
        raise ExportError(
            "verify",
            f"reloading the written SavedModel and calling '{signatures.SERVING_KEY}' failed:"
            f" {describe_exception(e)}",
            _FIX_BUG,
            format_traceback(e),
        ) from None
    if set(got) != set(expected):
        raise ExportError(
            "verify",
            f"the reloaded SavedModel returns {sorted(got)}, the Keras model {sorted(expected)}",
            _FIX_BUG,
        )
    worst = 0.0
    for name in sorted(expected):
        want = np.asarray(expected[name])
        have = np.asarray(got[name])
        if want.shape != have.shape:
            raise ExportError(
                "verify",
                f"output '{name}' has shape {have.shape} after reloading, {want.shape} in Keras",
                _FIX_BUG,
            )
        if not np.issubdtype(want.dtype, np.number):
            if not np.array_equal(want, have):
                raise ExportError(
                    "verify", f"output '{name}' differs after reloading", _FIX_BUG
                )
            continue
        want64, have64 = want.astype(np.float64), have.astype(np.float64)
        diff = np.abs(want64 - have64)
        max_diff = float(np.max(diff)) if diff.size else 0.0
        worst = max(worst, max_diff)
        if not np.all(diff <= atol + rtol * np.abs(want64)):
            raise ExportError(
                "verify",
                f"output '{name}' of the reloaded SavedModel differs from the Keras model's on"
                f" seeded random inputs: max abs diff {max_diff:.6g} exceeds the tolerance"
                f" {atol:g} + {rtol:g} * |expected|",
                [
                    (
                        "check that the model is deterministic with training=False (no"
                        " random ops at inference); set "
                    ),
                    setting("verify", False),
                    " to export anyway",
                ],
            )
    return VerifyResult(worst, tuple(sorted(expected)))
