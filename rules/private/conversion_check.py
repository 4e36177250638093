"""What the test programs of the converted formats (formats/<format>/) share: internal.

Each such test reads its conversions' files (artifact_files), feeds the export's own
sample inputs to the SavedModel's `serving_default` and to the format's runtime, and
compares the two within a bound. The sample inputs are keras_saved_model_test's: the
Keras model the export was made from, rebuilt through the export's own deps, gives them
(sample_inputs.random_for with the model's SampleValues: tokens of its vocabularies for
string inputs), seeded, batch 3.
"""

import dataclasses
import json
import unittest
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from export.lib import conversion, sample_inputs, settings, sources
from rules.private import artifact_files, export_info

# The same inputs as keras_saved_model_test's.
BATCH = 3


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclasses.dataclass(frozen=True)
class Conversions:
    """A test's conversions of one export, and that export's answers on its samples.

    conversions: (files by role, the described file, its manifest), one per target.
    signatures: the export's `.signatures.json` "signatures".
    feeds: the sample inputs by name; served: serving_default's outputs on them.
    """

    conversions: list[tuple[dict[str, str], Any, dict]]
    signatures: dict
    feeds: dict[str, np.ndarray]
    served: dict[str, np.ndarray]


def read_conversions(
    rule: str, role: str, describe: Callable[[bytes], Any]
) -> Conversions | None:
    """The test's conversions by `rule` (their files under `role`, read by `describe`),
    or None when the test was given none."""
    found = artifact_files.of(rule)
    if not found:
        return None
    conversions = []
    for files in found:
        with open(files[role], "rb") as f:
            model = describe(f.read())
        conversions.append((files, model, read_json(files["manifest"])))
    exports = {files["saved_model"] for files, _, _ in conversions}
    if len(exports) != 1:
        raise AssertionError(f"conversions of several exports: {sorted(exports)}")
    base_dir = exports.pop()
    signatures = read_json(base_dir + ".signatures.json")["signatures"]
    feeds, served = served_samples(base_dir)
    return Conversions(conversions, signatures, feeds, served)


def served_samples(
    base_dir: str,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The export's sample inputs by name, and its serving_default's outputs on them.

    `base_dir` is a keras_saved_model's output folder (its `.export.json` beside it).
    """
    source = export_info.model_source(export_info.read(base_dir))
    # The Keras model only gives the sample inputs; it is dropped before the
    # SavedModel loads, so the two are never in memory together.
    model_interface = sources.load_model(source).interface
    arrays = sample_inputs.random_for(
        model_interface.inputs,
        export_info.INPUT_SEED,
        BATCH,
        model_interface.samples,
    )
    feeds = {d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)}
    serve = tf.saved_model.load(conversion.find_saved_model(base_dir)).signatures[
        settings.SERVING_KEY
    ]
    served = serve(**{k: tf.constant(v) for k, v in feeds.items()})
    return feeds, {name: value.numpy() for name, value in served.items()}


class ConversionTest(absltest.TestCase):
    """A converted format's test, set up with its conversions of one export and that
    export's answers on the sample inputs (read_conversions). A subclass names its
    RULE, the ROLE of its file in ArtifactInfo.files, and how to describe the file."""

    RULE: str
    ROLE: str

    @staticmethod
    def describe(content: bytes) -> Any:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        found = read_conversions(cls.RULE, cls.ROLE, cls.describe)
        if found is None:
            raise unittest.SkipTest(f"no {cls.RULE} given (--artifact_files)")
        cls.conversions = found.conversions
        cls.signatures = found.signatures
        cls.feeds = found.feeds
        cls.served = found.served


def _text(values: np.ndarray) -> np.ndarray:
    # A runtime may give strings as bytes (TF, TFLite) or as str (onnxruntime).
    return np.vectorize(
        lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v), otypes=[str]
    )(values)


def max_differences(
    served: dict[str, np.ndarray], got: dict[str, np.ndarray], runtime: str
) -> dict[str, float]:
    """Per numeric output: max |got - served| / max(1, max |served|). Raises
    AssertionError on different names, shapes, or unequal non-numeric outputs, naming
    `runtime` (what gave `got`)."""
    if set(served) != set(got):
        raise AssertionError(
            f"{runtime} returns {sorted(got)}, the SavedModel {sorted(served)}"
        )
    result = {}
    for name in sorted(served):
        want, have = np.asarray(served[name]), np.asarray(got[name])
        if want.shape != have.shape:
            raise AssertionError(
                f"output '{name}' has shape {have.shape} in {runtime},"
                f" {want.shape} served"
            )
        if not np.issubdtype(want.dtype, np.number):
            np.testing.assert_array_equal(_text(have), _text(want), err_msg=name)
            continue
        want64, have64 = want.astype(np.float64), have.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(want64))) if want.size else 0.0)
        result[name] = (
            float(np.max(np.abs(have64 - want64))) / scale if want.size else 0.0
        )
    return result
