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
import gc
import sys
import time
import warnings

from export.lib import (
    evaluation,
    label_probes,
    modes,
    options,
    packages,
    sample_inputs,
    serving,
    signatures,
    sources,
    verify,
    writer,
)
from export.lib.errors import ExportError
from export.lib.loader import load_keras_model
from export.lib.options import ExportRequest
from export.lib.tensor_specs import LabelSpec

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
        # A phase may run in parts (verify: the Keras call, then the reload).
        timings[phase] = round(timings.get(phase, 0.0) + time.perf_counter() - start, 3)


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
    timings: dict[str, float] = {}
    written = _write_from_keras(resolved, timings)
    with written.staging:
        max_diff = None
        if written.reference is not None:
            with _timed(timings, "verify"):
                # The Keras model, its optimizer and the traced functions are
                # unreachable now, but sit in reference cycles: collected here, their
                # memory is free before the SavedModel's own copy is loaded.
                gc.collect()
                result = verify.compare(
                    written.staging.tmp_dir,
                    written.reference,
                    resolved.verify_atol,
                    resolved.verify_rtol,
                )
            max_diff = result.max_abs_diff
        if resolved.manifest_out:
            writer.write_manifest(resolved.manifest_out, written.manifest)
            written.staging.manifest_path = resolved.manifest_out
        writer.commit(written.staging, resolved.final_dir)
    return ExportResult(
        path=resolved.final_dir,
        version=resolved.version,
        modes=written.modes,
        manifest=written.manifest,
        max_abs_diff=max_diff,
        notes=written.notes,
        timings=timings,
    )


@dataclasses.dataclass(frozen=True)
class _Written:
    """What outlives the Keras model: nothing here refers to it or its variables."""

    staging: writer.Staging
    modes: tuple[str, ...]
    manifest: dict
    notes: tuple[str, ...]
    reference: verify.KerasReference | None  # None without verify


def _write_from_keras(
    resolved: options.ResolvedRequest, timings: dict[str, float]
) -> _Written:
    """Loads the model, traces it and writes the SavedModel into a staging folder.

    With verify it then calls the model on the verify inputs (after the write, so the
    files never depend on it). The model and all that was traced from it are local to
    this call and unreachable once it returns; TensorFlow's own global reference to
    the traced train function is dropped on the way out.
    """
    with signatures.custom_gradients_scoped():
        return _load_trace_write(resolved, timings)


def _load_trace_write(
    resolved: options.ResolvedRequest, timings: dict[str, float]
) -> _Written:
    global _exports_in_process
    # An optional feature's missing package fails here, before any work is done.
    packages.require_requested(resolved.request)
    with _timed(timings, "load"):
        loaded = sources.load_model(resolved.source)
    model = loaded.model
    model_steps = modes.read_steps(model)
    chosen_modes = modes.choose_modes(model_steps, resolved.modes)
    # Every batch the stages below feed the model, made once and handed down.
    batches = sample_inputs.sample_batches(
        loaded.interface.inputs,
        loaded.interface.samples,
        chosen_modes,
        resolved.source.seed,
        resolved.request.warmup_requests,
        resolved.verify,
    )
    with _timed(timings, "trace"):
        labels, eval_probe = label_probes.prepare_training_state(
            model,
            loaded.interface,
            model_steps,
            chosen_modes,
            resolved.label_specs,
            batches,
        )
        built = signatures.build(model, loaded.interface, chosen_modes, labels)
    notes = list(loaded.warnings)
    notes += serving.check_batchable(
        built.inputs, resolved.request.require_batchable_inputs
    )
    warmup_records = serving.warmup_records(batches.warmup)
    if "eval" in chosen_modes:
        with _timed(timings, "trace"):
            try:
                evaluation.add(built, model, loaded.interface, eval_probe)
            except ExportError as e:
                # eval still answers per batch; the data-set signatures are left out
                # rather than give wrong numbers, and the note says why.
                note = f"no eval_state/eval_result: {e}"
                warnings.warn(note, stacklevel=2)
                notes.append(note)
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
    # Removed on an error here; export_resolved commits it after verify.
    with writer.begin(resolved.output_dir, resolved.version) as staging:
        with _timed(timings, "write"):
            writer.write(
                staging,
                built.root,
                built.functions,
                loaded.model_json,
                resolved,
                model=model,
                warmup_records=warmup_records,
            )
        reference = None
        if resolved.verify:
            with _timed(timings, "verify"):
                reference = verify.keras_reference(
                    model, loaded.interface, batches.verify
                )
    return _Written(staging, chosen_modes, manifest, tuple(notes), reference)
