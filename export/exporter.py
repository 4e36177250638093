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
import signal
import sys

from export.lib import worker

# Before anything that can fail to import: a persistent worker that cannot start
# answers Bazel's requests with the cause instead of dying unexplained.
worker.explain_startup_failures("exporter")

# TensorFlow's C++ info logs would bury the exporter's own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

from export.lib import options, program, settings
from export.lib.errors import ExportError

# One flag per setting of export/settings.bzl, named as keras_saved_model's attributes.
_FLAGS = settings.define_flags(flags.FLAGS)
flags.adopt_module_key_flags(settings)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(
            f"exporter: unexpected arguments {argv[1:]}; every input is a --flag (see"
            " --helpfull)",
            file=sys.stderr,
        )
        return 1
    if not flags.FLAGS["verbosity"].present:
        # TensorFlow logs every save step at INFO; --verbosity=0 brings them back.
        logging.set_verbosity(logging.WARNING)
    if _FLAGS["persistent_worker"].value:
        return _serve_as_worker()
    # The exception unwinds through the library's cleanup, so an interrupted export
    # leaves no temporary folder or manifest behind.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt)
    try:
        return _export()
    except _Interrupted as e:  # outside the export itself: before or after it
        print(f"exporter: interrupted by {e.name}", file=sys.stderr)
        return 128 + e.signum


class _Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; a BaseException, so that no `except Exception` of the
    library or of user code stops it on its way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


def _interrupt(signum: int, frame) -> None:
    # A second signal must not cut the cleanup the first one started short.
    for other in (signal.SIGTERM, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    raise _Interrupted(signum)


def _export() -> int:
    """One export from the parsed flags, its output held back under --quiet but for
    its notes (what the export could not do as asked), which a successful build shows."""
    if not _FLAGS["quiet"].value:
        return _export_from_flags()
    notes: list[str] = []
    code = program.quietly(lambda: _export_from_flags(notes))
    for note in notes:
        print(f"exporter: note: {note}", file=sys.stderr)
    return code


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
    except _Interrupted as e:
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


def _serve_as_worker() -> int:
    # Import (never run) TensorFlow, Keras and the library in the worker itself, so each
    # forked request starts warm; running any op here would change every output.
    from export.lib import api  # noqa: F401 - imported to warm up

    _freeze_imported_objects()
    return worker.serve(_run_request, _FLAGS["worker_request_timeout"].value)


def _freeze_imported_objects() -> None:
    """Keeps the garbage collector off the millions of objects TensorFlow's import made.

    Keras's clear_session() runs gc.collect(), which otherwise walks them all (a tenth
    of a small export: bench/README.md); in the worker, forked children also stop
    touching (and so copying) the parent's pages.
    """
    gc.freeze()


def _run_request(arguments: list[str]) -> int:
    """Serves one WorkRequest in the worker's forked child: its flags, then the export."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["exporter", *arguments])
    except flags.Error as e:
        print(f"exporter: error: {e}", file=sys.stderr)
        return 1
    return _export()


def run(argv: list[str] | None = None) -> None:
    """The program: parses flags, exports, and exits without tearing TensorFlow down."""
    program.run_and_exit(lambda: app.run(main, argv=argv))


if __name__ == "__main__":
    run()
