"""Library entry points: export_saved_model (what TF 1.12's
tf.contrib.saved_model.save_keras_model did, for Keras 3) and load_keras_model.

    from export.lib import api
    path = api.export_saved_model(api.ExportRequest(
        builder="my_pkg.models:build", output_dir="/tmp/out"))

Run one export per process: TensorFlow's function-name counters cannot be reset, so a
second export in the same process is valid but not byte-identical to a fresh one.
"""

import contextlib
import dataclasses
import sys
import time

from export.lib import options, signatures, sources, verify, writer
from export.lib.errors import ExportError
from export.lib.loader import load_keras_model
from export.lib.options import ExportRequest, LabelSpec

__all__ = [
    "ExportError",
    "ExportRequest",
    "ExportResult",
    "LabelSpec",
    "export_saved_model",
    "export_with_result",
    "load_keras_model",
]

_exports_in_process = 0


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: str
    version: int
    modes: tuple[str, ...]
    manifest: dict
    max_abs_diff: float | None  # from verify, None when skipped
    notes: tuple[str, ...]
    # Wall seconds of each phase: load (build or load the model, checks), trace,
    # write, verify. The exporter prints them on success; bench/timed_exporter.py
    # records them.
    timings: dict[str, float]


@contextlib.contextmanager
def _timed(timings: dict[str, float], phase: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = round(time.perf_counter() - start, 3)


def export_saved_model(request: ExportRequest) -> str:
    """Exports and returns the version folder's path; raises ExportError on bad input."""
    return export_with_result(request).path


def export_with_result(request: ExportRequest) -> ExportResult:
    """Exports and returns what was written; raises ExportError on bad input."""
    return export_resolved(options.resolve(request))


# Internal, not in __all__: the exporter's entry point, taking the internal
# ResolvedRequest.
def export_resolved(resolved: options.ResolvedRequest) -> ExportResult:
    """Exports a request already checked by options.resolve (once: it reads the clock).

    The exporter resolves before importing this module, so that bad flags fail before
    the seconds TensorFlow takes to import.
    """
    global _exports_in_process
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        loaded = sources.load_model(resolved.source)
    model = loaded.model
    modes = signatures.choose_modes(model, resolved.modes)
    with _timed(timings, "trace"):
        built = signatures.build(model, loaded.interface, modes, resolved.label_specs)
    manifest = {
        "version": resolved.version,
        "source": resolved.source.description,
        "signatures": signatures.describe_signatures(built),
    }
    _exports_in_process += 1
    if _exports_in_process > 1:
        print(
            "note: more than one export in this process; the files are valid but not"
            " byte-identical to a fresh-process export",
            file=sys.stderr,
        )
    staging = None
    try:
        staging = writer.begin(resolved.output_dir, resolved.version)
        with _timed(timings, "write"):
            writer.write(
                staging,
                built.root,
                built.functions,
                loaded.model_json,
                resolved,
                model=model,
            )
        max_diff = None
        if resolved.verify:
            with _timed(timings, "verify"):
                result = verify.verify(
                    staging.tmp_dir,
                    model,
                    loaded.interface,
                    resolved.source.seed,
                    resolved.verify_atol,
                    resolved.verify_rtol,
                )
            max_diff = result.max_abs_diff
        if resolved.manifest_out:
            writer.write_manifest(resolved.manifest_out, manifest)
            staging.manifest_path = resolved.manifest_out
        writer.commit(staging, resolved.final_dir)
    except BaseException:
        # Nothing half-written: no temporary folder, no manifest for a missing export.
        writer.abort(staging)
        raise
    return ExportResult(
        path=resolved.final_dir,
        version=resolved.version,
        modes=modes,
        manifest=manifest,
        max_abs_diff=max_diff,
        notes=tuple(loaded.warnings),
        timings=timings,
    )
