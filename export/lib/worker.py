"""Bazel persistent worker for the exporter: import TensorFlow once, fork per request.

A build of many models would otherwise pay TensorFlow's import (seconds) once per
action. The worker process imports TensorFlow, Keras and the exporter library, and runs
no TensorFlow op; each WorkRequest is served by a forked child, which starts from that
state exactly as a fresh process would, and so writes the same bytes (TensorFlow's
function-name counters, which nothing resets, advance in the child only). A failing
or hanging request dies with its child and leaves the worker as it was.

A worker that cannot start (a package missing, a bad flag) does not die: Bazel would
report only "Worker process quit or closed its stdin stream ... Broken pipe" and keep
the cause in a log it does not show. Instead it answers every request with the cause
(explain_startup_failures), which Bazel prints as the action's error.

The protocol is Bazel's protobuf one (Bazel 4.2.3 puts JSON behind an experimental
flag): length-prefixed WorkRequest messages on stdin, WorkResponse messages on stdout.
The few fields needed are decoded here by hand, which needs no generated code.
"""

import io
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import BinaryIO

# Bazel starts a persistent worker with this flag (and sends each request's own flags).
PERSISTENT_WORKER_FLAG = "--persistent_worker"
# How much of what a worker printed while starting its error shows (the end).
_STARTUP_OUTPUT_CHARS = 4000

# WorkRequest: arguments = 1 (string), request_id = 3 (int32).
# WorkResponse: exit_code = 1 (int32), output = 2 (string), request_id = 3 (int32).
_REQUEST_ARGUMENTS = 1
_REQUEST_ID = 3
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_POLL_SECONDS = 0.02


def _read_varint(stream: BinaryIO) -> int | None:
    """Reads a base-128 varint; None at a clean end of stream."""
    result = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if shift:
                raise EOFError("stream ended inside a varint")
            return None
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7


def _varint_bytes(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32s are sign-extended to 64 bits
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def parse_work_request(data: bytes) -> tuple[list[str], int]:
    """Returns (arguments, request_id) of a serialized WorkRequest."""
    arguments: list[str] = []
    request_id = 0
    pos = 0
    while pos < len(data):
        key, pos = _decode_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _decode_varint(data, pos)
            if field == _REQUEST_ID:
                request_id = value if value < 1 << 31 else value - (1 << 64)
        elif wire_type == _LENGTH_DELIMITED:
            size, pos = _decode_varint(data, pos)
            if field == _REQUEST_ARGUMENTS:
                arguments.append(data[pos : pos + size].decode("utf-8"))
            pos += size  # inputs, sandbox_dir: not needed
        elif wire_type == _FIXED64:
            pos += 8
        elif wire_type == _FIXED32:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    return arguments, request_id


def encode_work_response(exit_code: int, output: str, request_id: int) -> bytes:
    """Serializes a WorkResponse (fields at their default value are omitted)."""
    message = bytearray()
    if exit_code:
        message += _varint_bytes(1 << 3 | _VARINT) + _varint_bytes(exit_code)
    if output:
        text = output.encode("utf-8")
        message += _varint_bytes(2 << 3 | _LENGTH_DELIMITED) + _varint_bytes(len(text))
        message += text
    if request_id:
        message += _varint_bytes(3 << 3 | _VARINT) + _varint_bytes(request_id)
    return _varint_bytes(len(message)) + bytes(message)


def run_in_child(
    run_request: Callable[[list[str]], int], arguments: list[str], timeout: float
) -> tuple[int, str]:
    """Runs `run_request(arguments)` in a forked child; returns (exit code, output)."""
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                code = run_request(arguments)
            except BaseException:  # noqa: BLE001 - the child must always exit below
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        code = _wait(pid, timeout)
        log.seek(0)
        output = log.read().decode("utf-8", errors="replace")
    if code is None:
        return (
            1,
            output + f"\nexporter worker: the export timed out after {timeout:g} s",
        )
    if code < 0:
        return 1, output + f"\nexporter worker: the export died of signal {-code}"
    return code, output


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit code (negative: killed by that signal), None if it timed out."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(_POLL_SECONDS)


def serve(run_request: Callable[[list[str]], int], timeout: float) -> int:
    """Answers WorkRequests from stdin until Bazel closes it."""
    _started()
    return _answer_requests(
        lambda arguments: run_in_child(run_request, arguments, timeout)
    )


def _answer_requests(answer: Callable[[list[str]], tuple[int, str]]) -> int:
    """Answers each WorkRequest on stdin with answer(arguments) -> (exit code, output)
    until Bazel closes stdin."""
    requests = sys.stdin.buffer
    # Only WorkResponses may reach stdout: keep a private handle on it and point fd 1
    # (print, TensorFlow's C++ logging) at stderr, which Bazel keeps in the worker log.
    responses = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    while True:
        size = _read_varint(requests)
        if size is None:
            return 0
        data = requests.read(size)
        if len(data) != size:
            raise EOFError("stream ended inside a WorkRequest")
        arguments, request_id = parse_work_request(data)
        code, output = answer(arguments)
        responses.write(encode_work_response(code, output, request_id))
        responses.flush()


class _StartupLog(io.TextIOBase):
    """sys.stderr while a worker starts: written through, and kept for its error."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.kept = io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return self.stream.encoding

    @property
    def buffer(self):
        return self.stream.buffer


_starting: tuple[str, _StartupLog] | None = None  # (program, log) until serve()


def explain_startup_failures(program: str, argv: list[str] | None = None) -> None:
    """In a persistent worker (Bazel's flag in `argv`), until serve() starts: an
    uncaught exception, or an exit with an error (an absl flag error), makes the
    process answer every WorkRequest with exit code 1 and the cause, instead of dying.

    Call it first, before importing what may be missing; the program's exit path
    calls answer_startup_failure (program.run_and_exit does). Imports nothing new.
    """
    global _starting
    if PERSISTENT_WORKER_FLAG not in (sys.argv if argv is None else argv):
        return
    log = _StartupLog(sys.stderr)
    _starting = (program, log)
    sys.stderr = log
    print_exception = sys.excepthook

    def answer_instead_of_dying(kind, error, trace) -> None:
        print_exception(kind, error, trace)
        answer_startup_failure(error)

    sys.excepthook = answer_instead_of_dying


def _started() -> None:
    """The worker's loop begins: its stderr is its own again."""
    global _starting
    if _starting is not None:
        sys.stderr = _starting[1].stream
        _starting = None


def answer_startup_failure(error: BaseException | None = None) -> None:
    """If this is a persistent worker that stopped before its loop: answers every
    WorkRequest with exit code 1 and why (`error`, or the last line it printed, e.g.
    absl's flag error), until Bazel closes stdin; then exits with 1. Else returns."""
    if _starting is None:
        return
    program, log = _starting
    _started()
    sys.stderr.flush()
    printed = log.kept.getvalue().strip()
    if error is not None:
        cause = "".join(traceback.format_exception_only(error)).strip()
    else:
        lines = printed.splitlines() or ["it exited"]
        cause = next((x for x in lines if "error" in x.lower()), lines[-1])
    message = (
        f"{program}: error: the persistent worker could not start, so it ran no"
        f" request: {' '.join(cause.split()).rstrip('.')}."
    )
    # Which packages the programs need (the core), for an import that failed.
    from export.lib import packages

    hint = packages.missing_core_hint(error) if error is not None else None
    if hint:
        message += f" {hint}"
    if printed:
        message += (
            f"\n\nWhat it printed while starting:\n{printed[-_STARTUP_OUTPUT_CHARS:]}"
        )
    _answer_requests(lambda arguments: (1, message + "\n"))
    sys.stdout.flush()
    os._exit(1)
