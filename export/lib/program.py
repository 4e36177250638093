"""What the exporter and the TFLite converter programs share: quiet runs and exiting.

Both run one request per process (or per forked worker child), print nothing on
success under --quiet, and exit without tearing TensorFlow down. No TensorFlow here.
"""

import os
import sys
import tempfile
from collections.abc import Callable

from export.lib import worker


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
