"""What every format converted from an export shares (formats/<format>/).

The export to convert (`find_saved_model`, `check_serving_signature`) and how a
converted format describes its inputs and outputs (`Tensor`, `tensors_manifest`). A
format imports these from here, never from another format's folder. No TensorFlow
until a SavedModel is read.
"""

import dataclasses
import os

from export.lib import settings
from export.lib.errors import ExportError

SERVING_KEY = settings.SERVING_KEY


@dataclasses.dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # TensorFlow's name of the type: float32, int64, string...
    shape: tuple[int | None, ...]  # None for a dimension of any size


def tensors_manifest(tensors: tuple[Tensor, ...]) -> dict:
    """How a converted format's manifest lists its inputs or outputs: by name."""
    return {t.name: {"dtype": t.dtype, "shape": list(t.shape)} for t in tensors}


def find_saved_model(path: str, setting_name: str = "saved_model") -> str:
    """The SavedModel folder `path` names: itself, or its one version folder. Errors
    name `setting_name`, the format's setting that names the export."""
    if _is_saved_model(path):
        return path
    versions = (
        sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if _is_saved_model(os.path.join(path, name))
        )
        if os.path.isdir(path)
        else []
    )
    if len(versions) != 1:
        found = f"{len(versions)} version folders" if versions else "no SavedModel"
        raise ExportError(
            setting_name,
            f"'{path}' holds {found}",
            "point it at a SavedModel folder (holding saved_model.pb) or at an export"
            " holding exactly one version folder",
        )
    return versions[0]


def _is_saved_model(path: str) -> bool:
    return any(
        os.path.isfile(os.path.join(path, name))
        for name in ("saved_model.pb", "saved_model.pbtxt")
    )


def check_serving_signature(export_dir: str, setting_name: str = "saved_model") -> None:
    """Raises the error naming `setting_name` unless the SavedModel has the serving
    signature."""
    from tensorflow.python.saved_model import loader_impl

    saved_model = loader_impl.parse_saved_model(export_dir)
    keys = sorted(
        key for graph in saved_model.meta_graphs for key in graph.signature_def
    )
    if SERVING_KEY not in keys:
        raise ExportError(
            setting_name,
            f"'{export_dir}' has no '{SERVING_KEY}' signature (it has {keys})",
            f"convert an export whose serving signature is '{SERVING_KEY}'",
        )
