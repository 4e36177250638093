"""What TF Serving needs of an export besides the SavedModel itself.

- Batchable inputs: TF Serving's batcher joins requests along the first dimension of
  every input, so an input whose first dimension is fixed (or that has none) cannot be
  batched. The export says so (a note, or an error with require_batchable_inputs).
- Warmup requests: when it loads a version, TF Serving first runs the records of
  `<version>/assets.extra/tf_serving_warmup_requests` (a TFRecord file of
  tensorflow.serving.PredictionLog, at most 1000), so that the first real requests do
  not pay for the graph's warm-up. The records hold the seeded sample inputs made
  with verify's (sample_inputs.warmup_feeds), so they hold values the model knows
  (tokens of its vocabularies).
"""

import os
import types
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from export.lib import interface, packages, signatures
from export.lib.errors import ExportError, setting

if TYPE_CHECKING:
    # An optional feature's package: imported by _serving_apis, when a target asks
    # for warmup records (export/lib/packages.py).
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def unbatchable_inputs(
    signature_inputs: Mapping[str, Sequence[interface.TensorDesc]],
) -> dict[str, tuple[tuple[int | None, ...], list[str]]]:
    """Inputs without a dynamic leading dimension: name -> (shape, signature keys)."""
    found: dict[str, tuple[tuple[int | None, ...], list[str]]] = {}
    for key, descs in signature_inputs.items():
        for desc in descs:
            if desc.shape and desc.shape[0] is None:
                continue
            found.setdefault(desc.name, (desc.shape, []))[1].append(key)
    return found


def check_batchable(
    signature_inputs: Mapping[str, Sequence[interface.TensorDesc]], required: bool
) -> list[str]:
    """Notes naming the inputs TF Serving's batcher cannot batch; with `required`, an
    ExportError instead."""
    found = unbatchable_inputs(signature_inputs)
    if not found:
        return []
    listed = ", ".join(
        f"'{name}' (shape {list(shape)}, in {', '.join(keys)})"
        for name, (shape, keys) in found.items()
    )
    cause = (
        f"TF Serving's batcher cannot batch the input(s) {listed}: it joins requests"
        " along the first dimension, which must be dynamic (None)"
    )
    fix = (
        "declare the inputs without a fixed batch size (keras.Input(shape=...), not"
        " batch_shape or batch_size; a label spec's first dimension None)"
    )
    if required:
        raise ExportError(
            "require_batchable_inputs",
            cause,
            [fix, ", or set ", setting("require_batchable_inputs", False)],
        )
    note = f"{cause}; {fix}. require_batchable_inputs makes this an error."
    # As the export's other notes: a Python warning too, which the exporter holds back
    # under --quiet and then prints as a note.
    warnings.warn(note, stacklevel=2)
    return [note]


def warmup_records(feeds: Sequence[Mapping[str, np.ndarray]]) -> tuple[bytes, ...]:
    """A PredictionLog of a PredictRequest on serving_default for each of `feeds` (each
    request's inputs by name, sample_inputs.SampleBatches.warmup), serialized: the
    records writer.write puts in the export's WARMUP_DIR/WARMUP_FILE.

    The model name of each request is left empty: it is the deployment's choice, and
    TF Serving's warmup runs the request on the version it loads whatever the name.
    """
    return tuple(
        _prediction_log(request_feeds).SerializeToString(deterministic=True)
        for request_feeds in feeds
    )


def _serving_apis() -> tuple[types.ModuleType, ...]:
    """tensorflow_serving.apis' model_pb2, predict_pb2 and prediction_log_pb2; without
    tensorflow-serving-api, the ExportError of its feature."""
    return tuple(
        packages.import_module(
            packages.WARMUP_RECORDS, f"tensorflow_serving.apis.{name}"
        )
        for name in ("model_pb2", "predict_pb2", "prediction_log_pb2")
    )


def _prediction_log(
    feeds: Mapping[str, np.ndarray],
) -> "prediction_log_pb2.PredictionLog":
    model_pb2, predict_pb2, prediction_log_pb2 = _serving_apis()
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(signature_name=signatures.SERVING_KEY)
    )
    for name, value in feeds.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def read_warmup_requests(export_dir: str) -> list["predict_pb2.PredictRequest"]:
    """The PredictRequests of an export's warmup file, in order (none without one).

    Raises ValueError for a record that is not a PredictionLog of a predict request.
    """
    path = os.path.join(export_dir, WARMUP_DIR, WARMUP_FILE)
    if not os.path.exists(path):
        return []
    prediction_log_pb2 = _serving_apis()[2]
    requests = []
    for index, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(
                f"{path}: record {index} is a {log.WhichOneof('log_type')}, not a"
                " predict_log"
            )
        requests.append(log.predict_log.request)
    return requests
