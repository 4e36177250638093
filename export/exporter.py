"""Exports a Keras 3 model to a TensorFlow SavedModel (serve, eval and train signatures).

Usage:
  exporter --builder=my_pkg.models:build --output_dir=out [--version=N|timestamp]
  exporter --src=model.keras --output_dir=out [--weights=w.weights.h5]

Writes OUTPUT_DIR/VERSION/ (saved_model.pb or .pbtxt, variables/, fingerprint.pb,
assets/saved_model.json), byte-identical for the same inputs and --seed. Bad input exits
with status 1 and a one-paragraph message on stderr naming the flag; nothing is written.
SIGTERM or SIGINT exits with 128 + the signal after one line saying so; nothing is
written either (docs/rules.md, "When an export fails or is stopped").
The flags are keras_saved_model's attributes, with the same names and meanings
(export/settings.bzl). See --helpfull for every flag. Run one export per process.
"""

import gc
import os
import sys

from export.lib import program

program.prepare("exporter")

from absl import flags

from export.lib import options, settings
from export.lib.errors import ExportError

# One flag per setting of export/settings.bzl, named as keras_saved_model's attributes.
_FLAGS = program.define_flags("exporter")
flags.adopt_module_key_flags(settings)


def _export_from_flags(notes: list[str] | None = None) -> int:
    """One export from the parsed flags; returns the process exit code. The export's
    notes (printed as Python warnings, which --quiet holds back) go to `notes`."""
    request = settings.request_from_flags(options.ExportRequest, _FLAGS)
    # Front of the path, in the order given, as absolute paths: a worker's requests
    # come relative to its working directory.
    sys.path[:0] = [os.path.abspath(p) for p in _FLAGS["import_path"].value]
    resolved = None
    try:
        # Syntax first: bad flags fail before the seconds TensorFlow takes to import.
        resolved = options.resolve(request)
        from export.lib import api

        _freeze_imported_objects()
        result = api.export_resolved(resolved)
    except ExportError as e:
        print(
            f"exporter: error: {e.render(_FLAGS['target_label'].value)}",
            file=sys.stderr,
        )
        return 1
    except program.Interrupted as e:
        # The library has removed what it wrote by now, unless the export was complete.
        done = resolved is not None and os.path.isdir(resolved.final_dir)
        outcome = (
            f"the export was complete: {resolved.final_dir}"
            if done
            else "nothing was written"
        )
        print(f"exporter: interrupted by {e.name}; {outcome}", file=sys.stderr)
        return 128 + e.signum
    detail = (
        ""
        if result.max_abs_diff is None
        else f", verified (max abs diff {result.max_abs_diff:g})"
    )
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())
    print(
        f"exporter: wrote {result.path} ({','.join(result.modes)}{detail}; {phases})",
        file=sys.stderr,
    )
    print(result.path)
    if notes is not None:
        notes.extend(result.notes)
    return 0


def _warm_up() -> None:
    # TensorFlow, Keras and the library, imported once in a persistent worker.
    from export.lib import api  # noqa: F401 - imported to warm up


def _freeze_imported_objects() -> None:
    """Keeps the garbage collector off the millions of objects TensorFlow's import made.

    Keras's clear_session() runs gc.collect(), which otherwise walks them all (a tenth
    of a small export: bench/README.md).
    """
    gc.freeze()


def run(argv: list[str] | None = None) -> None:
    """The program: parses flags, exports, and exits without tearing TensorFlow down."""
    program.run("exporter", _FLAGS, _export_from_flags, _warm_up, argv)


if __name__ == "__main__":
    run()
