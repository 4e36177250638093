#!/usr/bin/env python3
"""Scale benchmark: the exporter at 67 MB, 268 MB and 1 GB of weights, and model.export.

    python3 bench/scale.py [--repeat 2] [--models mlp,transformer]
                           [--sizes 67mb,268mb,1gb] [--baseline REV]

For each model (bench/models.py: `wide_mlp_*`, 4 Dense layers, and `transformer_*`, 4
encoder blocks; Adam) and size, interleaved within a repetition, each in a fresh
process of the Bazel-managed venv's python:
  keras_export     Keras's own `model.export` (bench/bare_export.py), serving only;
  serve, all       the exporter (bench/timed_exporter.py), --modes=serve or all three
                   modes, with --verify, and the same with --noverify;
  worker_*         the same exports (with --verify) as requests to a warm persistent
                   worker (`exporter --persistent_worker`), which forks a child each;
  test_*           keras_saved_model_test's program on the serve or all-modes export.
Wall time and peak RSS (wait4's rusage; for worker_* the forked child's VmHWM, polled)
and the bytes of the SavedModel folder. With --baseline REV, every exporter variant
also runs from the exporter as it was at git revision REV (its export/ and rules/,
the models from this workspace), next to this workspace's: the table before and after.

Prints a table per model and size with the ratios, and the goals of the exporter at
scale as pass/fail. Stdlib only; not part of the test run. See bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from compare import Bazel, run_child

MODELS = {"mlp": "wide_mlp", "transformer": "transformer"}
# The custom_objects a keras_saved_model target of each model names (the rule passes
# them to the exporter and to keras_saved_model_test).
CUSTOM_OBJECTS = {
    "transformer": {
        "TokenAndPositionEmbedding": "bench.models:TokenAndPositionEmbedding"
    },
}
SIZES = ("67mb", "268mb", "1gb")
MODES = {"serve": "serve", "all": "serve,eval,train"}
LARGEST = "1gb"
KERAS = "keras_export"

# The goals of an export at scale (the exporter's, checked on this workspace's code).
VERIFY_RSS_MAX = 1.15  # peak RSS with --verify / --noverify, at 1 GB, serve and all
VERIFY_WALL_MAX = 1.25  # wall time with --verify / --noverify, at 1 GB, all modes
DISK_MAX = 1.02  # SavedModel bytes / bytes of the variables it must hold, every size
SERVE_WALL_MAX = 1.0  # serve with --verify / model.export, every size

# Variable bytes of each model: built, its optimizer built, in a fresh process.
_COUNT_VARIABLES = """
import json, sys
import keras
from export.lib import interface
from bench import models
model = getattr(models, sys.argv[1])()
model.optimizer.build(model.trainable_variables)
def size(variables):
    return sum(v.numpy().nbytes for v in interface.tf_variables(variables))
print(json.dumps({"model": size(model.variables),
                  "optimizer": size(model.optimizer.variables)}))
"""


# The rule's attributes and their defaults, as export/settings.bzl declares them.
_ATTRIBUTE_DEFAULTS = """
import json
from export.lib import settings
print(json.dumps({s.name: s.default for s in settings.SETTINGS if s.is_attribute}))
"""
# `<name>.export.json` before export/settings.bzl (a --baseline of that time).
_EXPORT_INFO_BEFORE = {
    "builder": None,
    "custom_objects": {},
    "label_specs": {},
    "model_file": None,
    "modes": [],
    "safe_mode": True,
    "seed": 0,
    "weights": None,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def settle() -> None:
    """Writes out what earlier runs left in the page cache before the next one starts:
    otherwise a run that follows a run that wrote gigabytes waits for their writeback
    (measured: the write phase of the same 1 GB export took 0.5 s or 2 s by its turn)."""
    os.sync()


def folder_bytes(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def work_request(arguments: list[str], request_id: int) -> bytes:
    """A length-prefixed WorkRequest: arguments (field 1), request_id (field 3)."""
    message = bytearray()
    for argument in arguments:
        data = argument.encode()
        message += b"\x0a" + _varint(len(data)) + data
    message += b"\x18" + _varint(request_id)
    return _varint(len(message)) + bytes(message)


def read_work_response(stream) -> bytes:
    size = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise EOFError("the worker closed stdout")
        size |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            return stream.read(size)


def _exit_code(response: bytes) -> int:
    """WorkResponse field 1 (exit_code) if present, else 0."""
    if response[:1] == b"\x08":
        code = shift = 0
        for byte in response[1:]:
            code |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return code
    return 0


class Worker:
    """A persistent exporter worker of one code version; measures each request's child."""

    def __init__(self, python: str, env: dict, cwd: str, log_path: str):
        self.log = open(log_path, "ab")  # noqa: SIM115 - open for the worker's life
        self.proc = subprocess.Popen(
            [python, "-m", "export.exporter", "--persistent_worker"],
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.requests = 0

    def _children(self) -> list[int]:
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def run(self, arguments: list[str]) -> dict:
        """Sends one request; returns wall seconds, the child's peak RSS, exit code."""
        self.requests += 1
        peak_kb = 0
        start = time.perf_counter()
        self.proc.stdin.write(work_request(arguments, self.requests))
        self.proc.stdin.flush()
        while not select.select([self.proc.stdout], [], [], 0.05)[0]:
            for child in self._children():
                peak_kb = max(peak_kb, _status_kb(child, "VmHWM"))
        response = read_work_response(self.proc.stdout)
        return {
            "wall_s": time.perf_counter() - start,
            "rss_mb": peak_kb / 1024.0 or None,
            "exit_code": _exit_code(response),
        }

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Code:
    """One version of the exporter: this workspace ("after") or a baseline ("before")."""

    def __init__(self, name: str, root: str, env: dict):
        self.name = name
        self.root = root
        # root holds only export/ and rules/: its exporter is imported first, the
        # models (and the bench's own scripts) come from this workspace's bench/.
        self.env = dict(env, PYTHONPATH=os.pathsep.join([root, WORKSPACE]))
        self.worker: Worker | None = None
        self._export_info: dict | None = None

    def export_info_defaults(self, python: str) -> dict:
        """`<name>.export.json` of a keras_saved_model target left at its defaults, as
        this version's keras_saved_model_test reads it: the rule's attributes from
        export/settings.bzl, or the fixed keys of the versions before that table."""
        if self._export_info is None:
            out = subprocess.run(
                [python, "-c", _ATTRIBUTE_DEFAULTS],
                env=self.env,
                cwd=self.root,  # `python -c` imports from its working folder first
                capture_output=True,
                text=True,
                check=False,
            )
            self._export_info = (
                json.loads(out.stdout) if out.returncode == 0 else _EXPORT_INFO_BEFORE
            )
        return self._export_info


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="rules_keras_scale.", dir=args.workdir)
        self.log_path = os.path.join(self.work, "children.log")
        self.runs: list[dict] = []
        self.variable_bytes: dict[str, dict] = {}

    # --- setup -------------------------------------------------------------------

    def setup(self) -> None:
        bazel = Bazel(self.args.output_base, [])
        log(
            "building //export:exporter (the venv) and reading the action's environment"
        )
        if bazel.build(["//export:exporter"], [], self.log_path) != 0:
            sys.exit(
                f"scale: `bazel build //export:exporter` failed; see {self.log_path}"
            )
        self.python = os.path.join(
            bazel.info("output_base"), "external/rules_keras_python/python3"
        )
        env = bazel.action_env("//bench:mlp_serve")
        env["KERAS_HOME"] = os.path.join(self.work, "keras_home")
        # Copies of the exporter (export/ and rules/), so that editing the workspace
        # during a run changes nothing measured: the workspace as it is (uncommitted
        # changes included) and, with --baseline, the revision given.
        after = os.path.join(self.work, "after")
        for folder in ("export", "rules"):
            shutil.copytree(
                os.path.join(WORKSPACE, folder),
                os.path.join(after, folder),
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        self.codes = [Code("after", after, env)]
        if self.args.baseline:
            root = os.path.join(self.work, "baseline")
            os.makedirs(root)
            archive = subprocess.run(
                ["git", "archive", self.args.baseline, "export", "rules"],
                cwd=WORKSPACE,
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
            self.codes.insert(0, Code("before", root, env))
        self.versions = json.loads(
            subprocess.run(
                [
                    self.python,
                    "-c",
                    (
                        "import json, sys, tensorflow as tf, keras; print(json.dumps("
                        "{'tensorflow': tf.__version__, 'keras': keras.__version__,"
                        " 'python': sys.version.split()[0]}))"
                    ),
                ],
                env=self.codes[-1].env,
                cwd=self.codes[-1].root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        log(f"python {self.python}: {self.versions}")
        if not self.args.no_worker:
            for code in self.codes:
                code.worker = Worker(
                    self.python,
                    code.env,
                    self.work,
                    os.path.join(self.work, f"worker-{code.name}.log"),
                )
        # Page cache, .pyc files and the workers' imports, not recorded.
        for code in self.codes:
            self.run_exporter(code, "mlp", "", "serve", True, record=False)
            if code.worker:
                self.run_worker(code, "mlp", "", "serve", record=False)
        for model in self.args.models:
            for size in self.args.sizes:
                builder = f"{MODELS[model]}_{size}"
                out = subprocess.run(
                    [self.python, "-c", _COUNT_VARIABLES, builder],
                    env=self.codes[-1].env,
                    cwd=self.codes[-1].root,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                self.variable_bytes[builder] = json.loads(out.stdout.splitlines()[-1])
                log(f"{builder}: {self.variable_bytes[builder]} bytes of variables")

    def close(self) -> None:
        for code in getattr(self, "codes", []):
            if code.worker:
                code.worker.close()

    # --- one run of each kind ----------------------------------------------------

    def _builder(self, model: str, size: str) -> str:
        return (
            f"bench.models:{MODELS[model]}_{size}" if size else f"bench.models:{model}"
        )

    def _record(self, result: dict, record: bool, **keys) -> dict:
        result.update(keys)
        result["loadavg_1m"] = os.getloadavg()[0]
        if result.get("exit_code"):
            result["failed_wall_s"], result["wall_s"] = result.get("wall_s"), None
        if record:
            self.runs.append(result)
            why = result.get("error") or f"exit code {result['exit_code']}"
            shown = (
                f"failed ({why})"
                if result["wall_s"] is None
                else f"{result['wall_s']:.1f}s"
            )
            rss = f", {result['rss_mb']:.0f} MB" if result.get("rss_mb") else ""
            disk = (
                f", {result['disk_bytes'] / 1e6:.0f} MB on disk"
                if result.get("disk_bytes")
                else ""
            )
            log(
                f"  {keys['model']} {keys['size']} {keys['code']:<6}"
                f" {keys['variant']:<15} {shown}{rss}{disk}"
            )
        return result

    @staticmethod
    def _custom_object_flags(model: str) -> list[str]:
        return [
            f"--custom_objects={name}={ref}"
            for name, ref in CUSTOM_OBJECTS.get(model, {}).items()
        ]

    def run_keras(self, model: str, size: str, rep: int) -> dict:
        out = os.path.join(self.work, f"keras-{model}-{size}")
        timings = out + ".timings.json"
        argv = [
            self.python,
            os.path.join(BENCH_DIR, "bare_export.py"),
            self._builder(model, size),
            out,
            timings,
        ]
        settle()
        result = run_child(argv, self.codes[-1].env, self.log_path)
        result["disk_bytes"] = folder_bytes(out) if os.path.isdir(out) else None
        shutil.rmtree(out, ignore_errors=True)
        return self._record(
            result, True, model=model, size=size, code="keras", variant=KERAS, rep=rep
        )

    def _export_dir(self, code: Code, model: str, size: str, kind: str) -> str:
        return os.path.join(self.work, f"{code.name}-{model}-{size}-{kind}", "export")

    def run_exporter(
        self,
        code: Code,
        model: str,
        size: str,
        kind: str,
        verify: bool,
        rep: int = 0,
        record: bool = True,
    ) -> dict:
        """A fresh-process export; with --verify its output is kept for run_test."""
        variant = kind if verify else f"{kind}_noverify"
        base = self._export_dir(code, model, size, variant)
        shutil.rmtree(os.path.dirname(base), ignore_errors=True)
        timings = base + ".timings.json"
        os.makedirs(os.path.dirname(base))
        argv = [
            self.python,
            os.path.join(BENCH_DIR, "timed_exporter.py"),
            f"--builder={self._builder(model, size)}",
            *self._custom_object_flags(model),
            f"--output_dir={base}",
            f"--manifest_out={base}.signatures.json",
            f"--modes={MODES[kind]}",
            "--seed=0",
            "--verify" if verify else "--noverify",
        ]
        env = dict(code.env, BENCH_TIMINGS_OUT=timings)
        settle()
        result = run_child(argv, env, self.log_path)
        version = os.path.join(base, "1")
        result["disk_bytes"] = folder_bytes(version) if os.path.isdir(version) else None
        result["variables_bytes"] = (
            folder_bytes(os.path.join(version, "variables"))
            if os.path.isdir(version)
            else None
        )
        try:
            with open(timings, encoding="utf-8") as f:
                result["phases"] = json.load(f)["timings"]
        except (OSError, ValueError, KeyError):
            pass
        if not verify or not record:
            shutil.rmtree(os.path.dirname(base), ignore_errors=True)
        return self._record(
            result,
            record,
            model=model,
            size=size,
            code=code.name,
            variant=variant,
            rep=rep,
        )

    def run_worker(
        self, code: Code, model: str, size: str, kind: str, rep: int = 0, record=True
    ) -> dict:
        out = os.path.join(self.work, f"worker-{code.name}-{model}-{size}-{kind}")
        shutil.rmtree(out, ignore_errors=True)
        settle()
        result = code.worker.run(
            [
                f"--builder={self._builder(model, size)}",
                *self._custom_object_flags(model),
                f"--output_dir={out}",
                f"--modes={MODES[kind]}",
                "--seed=0",
                "--quiet",
            ]
        )
        version = os.path.join(out, "1")
        result["disk_bytes"] = folder_bytes(version) if os.path.isdir(version) else None
        shutil.rmtree(out, ignore_errors=True)
        return self._record(
            result,
            record,
            model=model,
            size=size,
            code=code.name,
            variant=f"worker_{kind}",
            rep=rep,
        )

    def run_test(self, code: Code, model: str, size: str, kind: str, rep: int) -> dict:
        """keras_saved_model_test's program on the export run_exporter kept."""
        base = self._export_dir(code, model, size, kind)
        info = dict(
            code.export_info_defaults(self.python),
            label=f"//bench:{model}_{size}_{kind}",
            builder=self._builder(model, size),
            custom_objects=CUSTOM_OBJECTS.get(model, {}),
            modes=MODES[kind].split(","),
        )
        result = {"exit_code": 1, "wall_s": None, "error": "no export to test"}
        if os.path.isdir(os.path.join(base, "1")):
            with open(base + ".export.json", "w", encoding="utf-8") as f:
                json.dump(info, f)
            env = dict(
                code.env,
                TEST_SRCDIR=self.work,
                TEST_WORKSPACE="unused",
                TEST_TMPDIR=os.path.dirname(base),
            )
            main = os.path.join(
                code.root, "rules/private/keras_saved_model_test_main.py"
            )
            settle()
            result = run_child(
                [self.python, main, f"--saved_model={base}"], env, self.log_path
            )
        shutil.rmtree(os.path.dirname(base), ignore_errors=True)
        return self._record(
            result,
            True,
            model=model,
            size=size,
            code=code.name,
            variant=f"test_{kind}",
            rep=rep,
        )

    # --- driver ------------------------------------------------------------------

    def run(self) -> None:
        self.setup()
        self.loads = [os.getloadavg()]
        for rep in range(self.args.repeat):
            for model in self.args.models:
                for size in self.args.sizes:
                    repeats = (
                        self.args.repeat if size == LARGEST else self.args.repeat_small
                    )
                    if rep >= repeats:
                        continue
                    log(f"repetition {rep + 1}: {model} {size}")
                    self.one_round(model, size, rep)
            self.loads.append(os.getloadavg())

    def one_round(self, model: str, size: str, rep: int) -> None:
        """Every variant once, each code right after the other, in turns (before
        first in even repetitions, after first in odd ones)."""
        codes = self.codes if rep % 2 == 0 else self.codes[::-1]
        self.run_keras(model, size, rep)
        for kind in MODES:
            for verify in (True, False):
                for code in codes:
                    self.run_exporter(code, model, size, kind, verify, rep)
            if not self.args.no_worker:
                for code in codes:
                    self.run_worker(code, model, size, kind, rep)
            for code in codes:
                if self.args.no_test:
                    shutil.rmtree(
                        os.path.dirname(self._export_dir(code, model, size, kind)),
                        ignore_errors=True,
                    )
                else:
                    self.run_test(code, model, size, kind, rep)

    # --- summary -----------------------------------------------------------------

    def summary(self) -> dict:
        table: dict = {}
        for r in self.runs:
            key = (r["model"], r["size"], r["code"], r["variant"])
            table.setdefault(key, []).append(r)
        result = {}
        for (model, size, code, variant), runs in table.items():
            walls = [r["wall_s"] for r in runs if r.get("wall_s") is not None]
            rsses = [r["rss_mb"] for r in runs if r.get("rss_mb")]
            cpus = [
                r["user_s"] + r["sys_s"]
                for r in runs
                if r.get("wall_s") is not None and "user_s" in r
            ]
            disks = [r["disk_bytes"] for r in runs if r.get("disk_bytes")]
            phases = [r["phases"] for r in runs if r.get("phases")]
            entry = {
                "n": len(runs),
                "failed": sum(r.get("wall_s") is None for r in runs),
                "wall_s": statistics.median(walls) if walls else None,
                "wall_min_s": min(walls) if walls else None,
                "wall_max_s": max(walls) if walls else None,
                # CPU seconds (user + sys): less swayed than wall time by other
                # processes on a shared machine, blind to waiting on the disk.
                "cpu_s": statistics.median(cpus) if cpus else None,
                "rss_mb": statistics.median(rsses) if rsses else None,
                "rss_max_mb": max(rsses) if rsses else None,
                "disk_bytes": max(disks) if disks else None,
                "loadavg_1m": [round(r["loadavg_1m"], 2) for r in runs],
            }
            if phases:
                entry["phases_s"] = {
                    k: statistics.median(p.get(k, 0.0) for p in phases)
                    for k in sorted({k for p in phases for k in p})
                }
            # The run against itself without its verify phase: what --verify costs,
            # free of the drift between two runs on a shared machine.
            within = [
                r["wall_s"] / (r["wall_s"] - r["phases"]["verify"])
                for r in runs
                if r.get("wall_s") and "verify" in r.get("phases", {})
            ]
            if within:
                entry["verify_within_run"] = statistics.median(within)
            result.setdefault(f"{model} {size}", {})[f"{code} {variant}"] = entry
        return result

    def goals(self, summary: dict) -> list[dict]:
        """Each goal per model and size, for each code: ratio, limit, pass."""
        checks = []
        for model in self.args.models:
            for size in self.args.sizes:
                per = summary.get(f"{model} {size}", {})
                counts = self.variable_bytes.get(f"{MODELS[model]}_{size}", {})
                keras = per.get(f"keras {KERAS}", {})
                keras_wall = keras.get("wall_s")
                for code in self.codes:
                    ours = {
                        variant: per.get(f"{code.name} {variant}", {})
                        for variant in (
                            "serve",
                            "serve_noverify",
                            "all",
                            "all_noverify",
                        )
                    }
                    rows = []
                    if size == LARGEST:
                        rows += [
                            (
                                f"peak RSS {kind}: verify / noverify",
                                ours[kind].get("rss_mb"),
                                ours[f"{kind}_noverify"].get("rss_mb"),
                                VERIFY_RSS_MAX,
                            )
                            for kind in MODES
                        ]
                        rows.append(
                            (
                                "wall all: verify / noverify",
                                ours["all"].get("wall_s"),
                                ours["all_noverify"].get("wall_s"),
                                VERIFY_WALL_MAX,
                                _note(
                                    "within-run", ours["all"].get("verify_within_run")
                                ),
                            )
                        )
                    rows += [
                        (
                            "disk serve / model variables",
                            ours["serve"].get("disk_bytes"),
                            counts.get("model"),
                            DISK_MAX,
                        ),
                        (
                            "disk all / model + optimizer variables",
                            ours["all"].get("disk_bytes"),
                            counts.get("model", 0) + counts.get("optimizer", 0),
                            DISK_MAX,
                        ),
                        (
                            "wall serve (verify) / model.export",
                            ours["serve"].get("wall_s"),
                            keras_wall,
                            SERVE_WALL_MAX,
                            _note(
                                "cpu",
                                _ratio(ours["serve"].get("cpu_s"), keras.get("cpu_s")),
                            ),
                        ),
                    ]
                    for goal, value, base, limit, *note in rows:
                        ratio = _ratio(value, base)
                        checks.append(
                            {
                                "model": model,
                                "size": size,
                                "code": code.name,
                                "goal": goal,
                                "ratio": ratio,
                                "limit": limit,
                                "pass": None if ratio is None else ratio <= limit,
                                "note": note[0] if note else None,
                            }
                        )
        return checks


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_tables(bench: Bench, summary: dict, goals: list[dict]) -> None:
    args = bench.args
    loads = bench.loads
    print()
    print(
        f"rules_keras scale benchmark: TF {bench.versions.get('tensorflow')}, Keras"
        f" {bench.versions.get('keras')}, {os.cpu_count()} CPUs; medians of"
        f" {args.repeat} repetitions at {LARGEST}, {args.repeat_small} below; load"
        f" average (1, 5, 15 min) at start {_load(loads[0])}, at end {_load(loads[-1])}"
    )
    for key, per in summary.items():
        keras = per.get(f"keras {KERAS}", {})
        loads_here = [x for e in per.values() for x in e["loadavg_1m"]]
        print()
        print(
            f"{key}: load average (1 min) during these runs"
            f" {min(loads_here):.2f}-{max(loads_here):.2f}"
        )
        header = (
            f"  {'code':<6} {'variant':<15} {'wall s':>7} {'min-max':>11} {'cpu s':>6}"
            f" {'RSS MB':>7}"
            f" {'max':>6} {'disk MB':>8} {'wall x(keras)':>13} {'RSS x(keras)':>12}"
            f" {'x(noverify) wall':>16} {'RSS':>5}"
        )
        print(header)
        for name, e in per.items():
            code, variant = name.split(" ", 1)
            span = (
                f"{e['wall_min_s']:.1f}-{e['wall_max_s']:.1f}"
                if e["wall_min_s"] is not None
                else "failed"
            )
            noverify = per.get(f"{code} {variant}_noverify", {})
            print(
                f"  {code:<6} {variant:<15} {_fmt(e['wall_s'], '7.1f')} {span:>11}"
                f" {_fmt(e['cpu_s'], '6.1f')} {_fmt(e['rss_mb'], '7.0f')} {_fmt(e['rss_max_mb'], '6.0f')}"
                f" {_fmt(e['disk_bytes'] and e['disk_bytes'] / 1e6, '8.0f')}"
                f" {_fmt(_ratio(e['wall_s'], keras.get('wall_s')), '13.2f')}"
                f" {_fmt(_ratio(e['rss_mb'], keras.get('rss_mb')), '12.2f')}"
                f" {_fmt(_ratio(e['wall_s'], noverify.get('wall_s')), '16.2f')}"
                f" {_fmt(_ratio(e['rss_mb'], noverify.get('rss_mb')), '5.2f')}"
            )
    print()
    print("Phases of the fresh-process exports (s, medians)")
    for key, per in summary.items():
        for name, e in per.items():
            if "phases_s" in e:
                phases = " ".join(f"{k} {v:.2f}" for k, v in e["phases_s"].items())
                print(f"  {key:<16} {name:<22} {phases}")
    print()
    print(
        "Goals (this workspace's exporter decides pass/fail; the baseline's for reference)"
    )
    for g in goals:
        verdict = {True: "pass", False: "FAIL", None: "n/a"}[g["pass"]]
        note = f"  ({g['note']})" if g.get("note") else ""
        print(
            f"  {g['model']:<11} {g['size']:<6} {g['code']:<6} {g['goal']:<40}"
            f" {_fmt(g['ratio'], '5.2f')} <= {g['limit']:.2f}  {verdict}{note}"
        )
    print(
        "Beside the wall-time ratios of medians of separate runs, which other work on a"
        " shared machine sways: within-run, each --verify run's wall time over the same"
        " run without its verify phase (median); cpu, the ratio of CPU seconds."
    )


def _note(label: str, value) -> str | None:
    return None if value is None else f"{label} {value:.2f}"


def _ratio(x, y):
    return x / y if x is not None and y else None


def _load(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="repetitions at 1 GB (default %(default)s)",
    )
    parser.add_argument(
        "--repeat-small",
        type=int,
        default=1,
        help="repetitions below 1 GB (default %(default)s)",
    )
    parser.add_argument("--models", default=",".join(MODELS), help="%(default)s")
    parser.add_argument("--sizes", default=",".join(SIZES), help="%(default)s")
    parser.add_argument(
        "--baseline",
        help="a git revision whose exporter also runs, next to this workspace's",
    )
    parser.add_argument("--no-worker", action="store_true", help="skip worker_*")
    parser.add_argument("--no-test", action="store_true", help="skip test_*")
    parser.add_argument(
        "--output-base", help="Bazel output base (default: the workspace's)"
    )
    parser.add_argument("--workdir", help="where the exports go (default: $TMPDIR)")
    parser.add_argument("--json", help="default: bench/out/scale-<time>.json")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (logs)"
    )
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.sizes = [s for s in args.sizes.split(",") if s]
    if set(args.models) - set(MODELS) or not args.models:
        parser.error(f"--models takes {','.join(MODELS)}")
    if set(args.sizes) - set(SIZES) or not args.sizes:
        parser.error(f"--sizes takes {','.join(SIZES)}")
    if args.repeat < 1 or args.repeat_small < 1:
        parser.error("--repeat and --repeat-small must be 1 or more")
    args.repeat = max(args.repeat, args.repeat_small)
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # A stopped run still closes its workers, and prints and saves what it measured.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    bench = Bench(args)
    started = datetime.datetime.now().astimezone()
    try:
        bench.run()
    finally:
        bench.close()
        summary = bench.summary()
        goals = bench.goals(summary) if summary else []
        out = args.json or os.path.join(
            BENCH_DIR, "out", f"scale-{started.strftime('%Y%m%d-%H%M%S')}.json"
        )
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        meta = {
            "started": started.isoformat(),
            "finished": datetime.datetime.now().astimezone().isoformat(),
            "argv": sys.argv[1:] if argv is None else argv,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg": getattr(bench, "loads", []),
            "versions": getattr(bench, "versions", {}),
            "variable_bytes": bench.variable_bytes,
            "baseline": args.baseline,
            "git_head": subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=WORKSPACE,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip(),
        }
        with open(out, "w", encoding="utf-8") as f:
            json.dump(
                {"meta": meta, "summary": summary, "goals": goals, "runs": bench.runs},
                f,
                indent=1,
            )
        if summary:
            print_tables(bench, summary, goals)
        print(f"\nJSON: {out}")
        if args.keep:
            print(f"scratch: {bench.work}")
        else:
            shutil.rmtree(bench.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
