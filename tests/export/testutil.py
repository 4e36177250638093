"""Helpers for the exporter tests: fresh processes, the exporter command, file trees."""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from absl.testing import absltest

# Path of //export:exporter under this workspace's runfiles folder, which is named by
# TEST_WORKSPACE: "rules_keras" under WORKSPACE, "_main" under bzlmod.
_EXPORTER_PATH = os.path.join("export", "exporter")
# Generous: a cold TensorFlow import plus an export on a busy 2-core machine.
TIMEOUT_S = 300


def flags_named(error) -> str:
    """The flags an ExportError names first on the command line, e.g. `--builder/--src`."""
    return "/".join(f"--{name}" for name in error.settings)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child processes: this process's import path, quiet TF logs."""
    env = dict(os.environ)
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def exporter_command() -> list[str]:
    """The exporter: $RULES_KERAS_EXPORTER, else //export:exporter from the runfiles.

    Under Bazel (TEST_SRCDIR set) a missing exporter is an error, never a silent switch
    to another way of running it. Outside Bazel, `python -m export.exporter`.
    """
    explicit = os.environ.get("RULES_KERAS_EXPORTER")
    if explicit:
        return [explicit]
    srcdir = os.environ.get("TEST_SRCDIR")
    if not srcdir:
        return [sys.executable, "-m", "export.exporter"]
    candidate = os.path.join(
        srcdir, os.environ.get("TEST_WORKSPACE", ""), _EXPORTER_PATH
    )
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        raise FileNotFoundError(
            f"//export:exporter is not in this test's runfiles at {candidate}: add "
            '"//export:exporter" to the test\'s `data`, or set RULES_KERAS_EXPORTER '
            "to an exporter to run."
        )
    return [candidate]


def run_exporter(
    args: list[str], cwd: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        exporter_command() + args,
        env=child_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def start_exporter(
    args: list[str], cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        exporter_command() + args,
        env=child_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_child(tasks: list[dict], workdir: str) -> None:
    """Runs tests.export.child on `tasks` in a fresh interpreter; raises on failure."""
    job = os.path.join(workdir, "job.json")
    with open(job, "w", encoding="utf-8") as f:
        json.dump({"tasks": tasks}, f)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.export.child", job],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"child process failed ({proc.returncode}):\n{proc.stderr[-6000:]}"
        )


def save_arrays(path: str, arrays: dict[str, np.ndarray]) -> str:
    # Strings as fixed-width bytes: object arrays would need pickle to load.
    np.savez(
        path,
        **{
            k: np.asarray(v).astype(bytes) if np.asarray(v).dtype == object else v
            for k, v in arrays.items()
        },
    )
    return path


def load_arrays(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def tree_bytes(root: str) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes), to compare whole exports."""
    result = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                result[os.path.relpath(path, root)] = f.read()
    return result


def make_tempdir() -> str:
    """A fresh folder under the test's TEST_TMPDIR (usable from setUpClass)."""
    base = absltest.TEST_TMPDIR.value
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(dir=base)
