"""Writing the SavedModel deterministically and atomically.

The export is written into a temporary sibling of the version folder (the staging
folder) and renamed into place only once complete (and verified), so readers such as
TensorFlow Serving, which watch the parent folder, never see a half-written version;
any failure removes it.

A staging folder that a killed exporter left behind is removed by the next export into
the same folder, once that export knows its owner is gone (`staging_owner`).

A write that fails for a reason of the output folder's filesystem (no space left,
quota, file size limit, read-only, permissions, I/O) names that folder and the system's
error, never the model: `_system_errno` recognises them, from Python or TensorFlow.

Determinism fixes: `fingerprint.pb` gets a random uuid on every save, which is cleared
(TensorFlow's read_fingerprint still works); variables are tracked in a fixed order by
`signatures.ExportModule`; no path is written into any file.
"""

import contextlib
import dataclasses
import errno
import os
import re
import resource
import shutil
from typing import Self

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import fingerprint_pb2, saved_model_pb2

from export.lib import layer_state, options, outputs, serving, staging_owner
from export.lib.errors import (
    ExportError,
    Text,
    describe_exception,
    format_traceback,
    setting,
)

ASSETS_DIR = "assets"
MODEL_JSON = "saved_model.json"
FINGERPRINT = "fingerprint.pb"
SAVED_MODEL_PB = "saved_model.pb"
SAVED_MODEL_PBTXT = "saved_model.pbtxt"


@dataclasses.dataclass
class Staging:
    """The staging folder of one export; `with` it, an error aborts the export."""

    tmp_dir: str
    output_dir: str
    created_output_dir: bool
    free_bytes: int | None = None  # free space of output_dir's filesystem at begin
    committed: bool = False
    manifest_path: str | None = None  # set once this export wrote its manifest

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        # Nothing half-written: no temporary folder, no manifest for a missing export.
        if exc_type is not None:
            abort(self)


def begin(output_dir: str, version: int) -> Staging:
    """Creates an empty staging folder beside the version folder, after removing those
    of exporters that are no longer running."""
    created = not os.path.isdir(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
        staging_owner.remove_abandoned(output_dir)
        tmp_dir = os.path.join(output_dir, staging_owner.name_for(version))
        if os.path.lexists(tmp_dir):
            # This very process's, from an earlier export that could not remove it.
            shutil.rmtree(tmp_dir)
        os.mkdir(tmp_dir)
    except OSError as e:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(output_dir)
        raise _write_error(
            "output_dir",
            e,
            _system_errno(e),
            f"creating the export's temporary folder in '{output_dir}'",
        ) from None
    return Staging(tmp_dir, output_dir, created, _free_bytes(output_dir))


def write(
    staging: Staging,
    root: tf.Module,
    functions: dict,
    model_json: str,
    resolved: options.ResolvedRequest,
    model=None,
    warmup_records: tuple[bytes, ...] = (),
) -> None:
    """Writes the SavedModel, the model JSON, (given `model`) its layers' assets and
    (given `warmup_records`, serving.warmup_records) TF Serving's warmup file."""
    tmp_dir = staging.tmp_dir
    try:
        tf.saved_model.save(root, tmp_dir, signatures=functions)
    except Exception as e:  # noqa: BLE001 - TensorFlow saving the model's objects
        code = _system_errno(e, staging.output_dir)
        if code is not None:
            raise _write_error(
                "output_dir", e, code, _writing(staging), staging, root
            ) from None
        raise ExportError(
            ("builder", "src"),
            f"TensorFlow could not save the traced model: {describe_exception(e)}",
            "keep every TensorFlow object the model's call uses (variables, lookup tables)"
            " as an attribute of one of its layers; the traceback below names the object",
            format_traceback(e),
        ) from None
    try:
        _clear_fingerprint_uuid(tmp_dir)
        assets = os.path.join(tmp_dir, ASSETS_DIR)
        os.makedirs(assets, exist_ok=True)
        with open(os.path.join(assets, MODEL_JSON), "w", encoding="utf-8") as f:
            f.write(model_json)
        if model is not None:
            layer_state.write_layer_assets(model, assets)
        if warmup_records:
            warmup = os.path.join(tmp_dir, serving.WARMUP_DIR)
            os.makedirs(warmup, exist_ok=True)
            with tf.io.TFRecordWriter(os.path.join(warmup, serving.WARMUP_FILE)) as f:
                for record in warmup_records:
                    f.write(record)
        if resolved.request.as_text:
            _convert_to_text(tmp_dir)
    except (OSError, tf.errors.OpError) as e:
        code = _system_errno(e, staging.output_dir)
        if code is None:
            raise
        raise _write_error(
            "output_dir", e, code, _writing(staging), staging, root
        ) from None


def _writing(staging: Staging) -> str:
    return f"writing the export into '{staging.output_dir}'"


# The system errors of writing a file: the output folder's filesystem, not the model, is
# what needs fixing. TensorFlow raises them from C++ as its own error types
# (ResourceExhaustedError, OutOfRangeError, PermissionDeniedError, ...), whose message
# ends in `<path>; <the system's message>` (tsl's IOError), so they are told by the
# system's message, never by the type: ResourceExhaustedError is also what running out
# of memory raises.
_WRITE_ERRNOS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
)
# Errors that only a write gives; the others count only on a path in the output folder
# (TensorFlow also reads files while saving: a lookup table's vocabulary file).
_ONLY_ON_WRITE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
_ERRNO_OF_MESSAGE = {os.strerror(code): code for code in _WRITE_ERRNOS}
_TENSORFLOW_SYSTEM_ERROR = re.compile(
    "; (" + "|".join(re.escape(text) for text in _ERRNO_OF_MESSAGE) + r")\b"
)


def _system_errno(error: BaseException, folder: str | None = None) -> int | None:
    """The system error (errno) of a failed write, None for other errors; given
    `folder`, those that may also come from a read count only on a path inside it."""
    if isinstance(error, OSError):
        code = error.errno
        paths = " ".join(str(p) for p in (error.filename, error.filename2) if p)
    elif isinstance(error, tf.errors.OpError):
        match = _TENSORFLOW_SYSTEM_ERROR.search(error.message or "")
        if not match:
            return None
        code, paths = _ERRNO_OF_MESSAGE[match[1]], error.message
    else:
        return None
    if code not in _WRITE_ERRNOS:
        return None
    if folder is None or code in _ONLY_ON_WRITE or folder in paths:
        return code
    return None


def _write_error(
    name: str,
    error: BaseException,
    code: int | None,
    doing: str,
    staging: Staging | None = None,
    root: tf.Module | None = None,
) -> ExportError:
    """The error of a failed write whose system error is `code`: the system's message,
    what the export needs where that is the cause, and the fix, for the setting `name`."""
    if code is None:
        reason = getattr(error, "strerror", None) or describe_exception(error)
        return ExportError(
            name, f"{doing} failed: {reason}", ["choose a writable ", setting(name)]
        )
    cause: list[str] = [f"{doing} failed: {os.strerror(code)}"]
    needed = _variables_bytes(root) if root is not None else 0
    estimate = f"{_size(needed)} (an estimate: the size of its variables)"
    fix: Text
    if code in (errno.ENOSPC, errno.EDQUOT):
        if needed:
            cause.append(f"; the export needs at least {estimate}")
        if code == errno.ENOSPC and staging and staging.free_bytes is not None:
            cause.append(
                f", and the filesystem had {_size(staging.free_bytes)} free when the"
                " export began"
            )
        where = (
            "within your disk quota" if code == errno.EDQUOT else "on that filesystem"
        )
        fix = [f"free space {where}, or choose another ", setting(name), " with room"]
    elif code == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            cause.append(
                f"; this process may write no file larger than {_size(limit)} (its"
                " file size limit, ulimit -f)"
            )
            fix = "raise the file size limit (ulimit -f unlimited) and export again"
        else:
            cause.append("; the filesystem holds no file that large")
            fix = [
                "choose another ",
                setting(name),
                " on a filesystem that holds files that large",
            ]
        if needed:
            cause.append(f", and the variables' data file takes {estimate}")
    elif code == errno.EROFS:
        fix = ["choose another ", setting(name), " on a writable filesystem"]
    elif code == errno.EIO:
        fix = [
            "check the disk (the system log names it), or choose another ",
            setting(name),
        ]
    else:  # EACCES, EPERM
        fix = [
            "give this user write permission there, or choose another ",
            setting(name),
        ]
    return ExportError(name, cause, fix)


def _variables_bytes(root: tf.Module) -> int:
    """What the variables of `root` take as numbers: the bulk of a SavedModel's bytes."""
    total = 0
    for variable in {id(v): v for v in root.variables}.values():
        count = variable.shape.num_elements()
        if count is not None and variable.dtype != tf.string:
            total += count * variable.dtype.size
    return total


def _free_bytes(folder: str) -> int | None:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def _size(count: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


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
    return outputs.json_text(manifest)


def write_manifest(path: str, manifest: dict) -> None:
    """Writes the manifest atomically (outputs.write_atomically)."""
    text = manifest_text(manifest).encode()
    try:
        outputs.write_atomically(path, text)
    except OSError as e:
        raise _write_error(
            "manifest_out", e, _system_errno(e), f"writing the manifest '{path}'"
        ) from None
