"""Reloads a written SavedModel and compares its serving outputs with the Keras model's."""

import dataclasses

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


def verify(
    export_dir: str,
    model: keras.Model,
    model_interface: interface.ModelInterface,
    seed: int,
    atol: float,
    rtol: float,
    batch: int = 1,
) -> VerifyResult:
    """Compares the reloaded serving signature with the Keras model on seeded inputs.

    The default batch of one keeps the eager Keras call's memory small (measured in
    bench/README.md); keras_saved_model_test checks larger batches, and so the
    polymorphic batch dimension, in its own process.
    """
    samples = model_interface.samples
    arrays = interface.random_for(model_interface.inputs, seed, batch, samples)
    tensors = [tf.constant(a) for a in arrays]
    try:
        expected = model_interface.name_outputs(
            model(model_interface.pack_inputs(tensors), training=False)
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
    try:
        tf.saved_model.experimental.read_fingerprint(export_dir)
        loaded = tf.saved_model.load(export_dir)
        serve = loaded.signatures[signatures.SERVING_KEY]
        got = serve(
            **{d.name: t for d, t in zip(model_interface.inputs, tensors, strict=True)}
        )
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
