"""Writing the SavedModel deterministically and atomically.

The export is written into a temporary sibling of the version folder and renamed into
place only once complete (and verified), so readers such as TensorFlow Serving, which
watch the parent folder, never see a half-written version; any failure removes it.

Determinism fixes: `fingerprint.pb` gets a random uuid on every save, which is cleared
(TensorFlow's read_fingerprint still works); variables are tracked in a fixed order by
`signatures.ExportModule`; no path is written into any file.
"""

import dataclasses
import json
import os
import shutil

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import fingerprint_pb2, saved_model_pb2

from export.lib import layer_state
from export.lib.errors import (
    ExportError,
    describe_exception,
    format_traceback,
    setting,
)

ASSETS_DIR = "assets"
MODEL_JSON = "saved_model.json"
FINGERPRINT = "fingerprint.pb"
SAVED_MODEL_PB = "saved_model.pb"
SAVED_MODEL_PBTXT = "saved_model.pbtxt"
_TMP_PREFIX = ".tmp-"


@dataclasses.dataclass
class Staging:
    tmp_dir: str
    output_dir: str
    created_output_dir: bool
    committed: bool = False
    manifest_path: str | None = None  # set once this export wrote its manifest


def begin(output_dir: str, version: int) -> Staging:
    """Creates an empty temporary folder beside the version folder."""
    created = not os.path.isdir(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
        tmp_dir = os.path.join(output_dir, f"{_TMP_PREFIX}{version}-{os.getpid()}")
        if os.path.lexists(tmp_dir):
            # Left by a killed process whose pid was reused; nothing else can own it.
            shutil.rmtree(tmp_dir)
        os.mkdir(tmp_dir)
    except OSError as e:
        raise ExportError(
            "output_dir",
            f"cannot create a folder in '{output_dir}' ({e.strerror or e})",
            ["choose a writable ", setting("output_dir")],
        ) from None
    return Staging(tmp_dir, output_dir, created)


def write(
    tmp_dir: str,
    root: tf.Module,
    functions: dict,
    model_json: str,
    as_text: bool,
    model=None,
) -> None:
    """Writes the SavedModel, the model JSON and (given `model`) its layers' assets."""
    try:
        tf.saved_model.save(root, tmp_dir, signatures=functions)
    except OSError as e:
        raise ExportError(
            "output_dir",
            f"writing the SavedModel into '{tmp_dir}' failed ({e.strerror or e})",
            ["choose a writable ", setting("output_dir"), " with enough free space"],
        ) from None
    except Exception as e:  # noqa: BLE001 - TensorFlow saving the model's objects
        raise ExportError(
            ("builder", "src"),
            f"TensorFlow could not save the traced model: {describe_exception(e)}",
            "keep every TensorFlow object the model's call uses (variables, lookup tables)"
            " as an attribute of one of its layers; the traceback below names the object",
            format_traceback(e),
        ) from None
    _clear_fingerprint_uuid(tmp_dir)
    assets = os.path.join(tmp_dir, ASSETS_DIR)
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, MODEL_JSON), "w", encoding="utf-8") as f:
        f.write(model_json)
    if model is not None:
        layer_state.write_layer_assets(model, assets)
    if as_text:
        _convert_to_text(tmp_dir)


def _clear_fingerprint_uuid(export_dir: str) -> None:
    path = os.path.join(export_dir, FINGERPRINT)
    if not os.path.exists(path):
        return
    fingerprint = fingerprint_pb2.FingerprintDef()
    with open(path, "rb") as f:
        fingerprint.ParseFromString(f.read())
    if "uuid" in fingerprint_pb2.FingerprintDef.DESCRIPTOR.fields_by_name:
        fingerprint.ClearField("uuid")
    with open(path, "wb") as f:
        f.write(fingerprint.SerializeToString(deterministic=True))


def _convert_to_text(export_dir: str) -> None:
    """Replaces saved_model.pb by saved_model.pbtxt (loaders accept either)."""
    binary = os.path.join(export_dir, SAVED_MODEL_PB)
    saved_model = saved_model_pb2.SavedModel()
    with open(binary, "rb") as f:
        saved_model.ParseFromString(f.read())
    with open(os.path.join(export_dir, SAVED_MODEL_PBTXT), "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(saved_model))
    os.remove(binary)


def commit(staging: Staging, final_dir: str) -> None:
    if os.path.lexists(final_dir):
        raise ExportError(
            "output_dir",
            f"the version folder '{final_dir}' appeared while exporting and is never"
            " overwritten",
            [
                "make sure only one export writes to this ",
                setting("output_dir"),
                " and ",
                setting("version"),
            ],
        )
    os.rename(staging.tmp_dir, final_dir)
    staging.committed = True


def abort(staging: Staging | None) -> None:
    """Removes whatever an unfinished export wrote."""
    if staging is None or staging.committed:
        return
    shutil.rmtree(staging.tmp_dir, ignore_errors=True)
    if staging.manifest_path and os.path.exists(staging.manifest_path):
        os.remove(staging.manifest_path)
    if staging.created_output_dir:
        try:
            os.rmdir(staging.output_dir)
        except OSError:
            pass  # not empty: something else lives there now.


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, sort_keys=True, indent=2) + "\n"


def write_manifest(path: str, manifest: dict) -> None:
    """Writes the manifest atomically (temporary file in the same folder, then rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(manifest_text(manifest))
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ExportError(
            "manifest_out",
            f"cannot write '{path}' ({e.strerror or e})",
            "choose a writable path for the manifest",
        ) from None
