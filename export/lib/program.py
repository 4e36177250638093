"""The shape of every artifact format's program (the exporter, the TFLite converter).

A program is named in export/formats.bzl; its flags are its settings table's
(settings.program_settings). It runs one request per process, or as Bazel's persistent
worker one per forked child; prints nothing on success under --quiet but its notes
(what it could not do as asked); stops on SIGTERM or SIGINT with 128 + the signal after
one line saying so; and exits without tearing TensorFlow down. A program is:

    from export.lib import program

    program.prepare("my_converter")  # first: before anything that can fail to import

    from absl import flags
    from export.lib import settings

    _FLAGS = program.define_flags("my_converter")
    flags.adopt_module_key_flags(settings)  # --help lists them as this program's

    def _convert(notes: list[str]) -> int: ...  # one request from _FLAGS; exit code

    if __name__ == "__main__":
        program.run("my_converter", _FLAGS, _convert, warm_up=lambda: ...)

No TensorFlow here, nor absl until a program runs: a worker that cannot import it
answers Bazel's requests with the cause.
"""

import gc
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from export.lib import settings, worker

# One request: reads the parsed flags, appends its notes, returns the exit code.
Request = Callable[[list[str]], int]


def prepare(name: str) -> None:
    """What a program does before any other import: a persistent worker that cannot
    start answers Bazel's requests with the cause instead of dying unexplained, and
    TensorFlow's C++ info logs will not bury the program's own messages."""
    worker.explain_startup_failures(name)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def define_flags(name: str) -> dict[str, Any]:
    """One absl flag per setting of the program's table, named as the rule's
    attributes; returns their holders by name."""
    from absl import flags

    return settings.define_flags(flags.FLAGS, settings.program_settings(name))


def convert(
    name: str, flags: dict[str, Any], required: tuple[str, ...], run: Callable[[], str]
) -> int:
    """One request of a converter program (a format made from an export): fails
    naming the `required` flags left empty, else calls `run`, which writes the files
    and returns what it wrote, in words; prints that, or the error's paragraph naming
    the target; returns the exit code."""
    from export.lib.errors import ExportError

    missing = tuple(n for n in required if not flags[n].value)
    try:
        if missing:
            raise ExportError(
                missing, "no SavedModel to convert or no file to write", "give both"
            )
        wrote = run()
    except ExportError as e:
        print(
            f"{name}: error: {e.render(flags['target_label'].value)}", file=sys.stderr
        )
        return 1
    print(f"{name}: wrote {wrote}", file=sys.stderr)
    return 0


class Interrupted(BaseException):
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
    raise Interrupted(signum)


def run(
    name: str,
    holders: dict[str, Any],
    request: Request,
    warm_up: Callable[[], None],
    argv: list[str] | None = None,
) -> None:
    """The program: parses flags, serves one request (or a persistent worker's), and
    exits without tearing TensorFlow down.

    `request(notes)` runs one request from the parsed flags; `warm_up()` imports (never
    runs) what requests need, once, in a persistent worker.
    """
    from absl import app, flags, logging

    def main(args: list[str]) -> int:
        if len(args) > 1:
            print(
                f"{name}: unexpected arguments {args[1:]}; every input is a --flag"
                " (see --helpfull)",
                file=sys.stderr,
            )
            return 1
        if not flags.FLAGS["verbosity"].present:
            # TensorFlow logs every save step at INFO; --verbosity=0 brings them back.
            logging.set_verbosity(logging.WARNING)
        if holders["persistent_worker"].value:
            return _serve_as_worker(name, holders, request, warm_up)
        # The exception unwinds through the library's cleanup, so an interrupted
        # request leaves nothing half-written behind.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _interrupt)
        try:
            return _one_request(name, holders, request)
        except Interrupted as e:  # outside the request itself: before or after it
            print(f"{name}: interrupted by {e.name}", file=sys.stderr)
            return 128 + e.signum

    run_and_exit(lambda: app.run(main, argv=argv))


def _one_request(name: str, holders: dict[str, Any], request: Request) -> int:
    """One request from the parsed flags, its output held back under --quiet but for
    its notes (printed as Python warnings otherwise), which a successful build shows."""
    notes: list[str] = []
    if not holders["quiet"].value:
        return request(notes)
    code = quietly(lambda: request(notes))
    for note in notes:
        print(f"{name}: note: {note}", file=sys.stderr)
    return code


def _serve_as_worker(
    name: str, holders: dict[str, Any], request: Request, warm_up: Callable[[], None]
) -> int:
    from absl import flags

    # Imported (never run) in the worker itself, so each forked request starts warm
    # from the state of a fresh process; running any op here would change outputs.
    warm_up()
    # Keeps the garbage collector off the millions of objects TensorFlow's import
    # made; forked children also stop touching (and so copying) the parent's pages.
    gc.freeze()

    def run_request(arguments: list[str]) -> int:
        """One WorkRequest in the worker's forked child: its flags, then the request."""
        flags.FLAGS.unparse_flags()
        try:
            flags.FLAGS([name, *arguments])
        except flags.Error as e:
            print(f"{name}: error: {e}", file=sys.stderr)
            return 1
        return _one_request(name, holders, request)

    return worker.serve(run_request, holders["worker_request_timeout"].value)


def quietly(run: Callable[[], int]) -> int:
    """Runs `run()` with stdout and stderr captured; replays them only if it fails."""
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            code = run()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        if code != 0:
            log.seek(0)
            sys.stderr.buffer.write(log.read())
            sys.stderr.flush()
    return code


def run_and_exit(app_run: Callable[[], None]) -> None:
    """Runs an absl program and exits without the interpreter's teardown of TensorFlow,
    which would only cost seconds per run (bench/README.md): everything is written and
    closed by then. A persistent worker that exits with an error before its loop (a
    flag error) answers Bazel's requests with it instead."""
    try:
        app_run()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
        if code:
            worker.answer_startup_failure()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
