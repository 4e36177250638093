#!/usr/bin/env python3
"""Benchmark: the exporter and the keras_saved_model action against a bare model.export().

    python3 bench/compare.py [--repeat 3] [--models mlp,two_inputs,mobilenet_v2] [--quick]

For each model and repetition, interleaved (a, b, c, a, b, c, ...), it measures wall
time and peak RSS of:
  (a) bench/bare_export.py in a fresh process: build the model, model.export(path);
      and, for all modes, (a2) the plain TensorFlow way to the same serve, eval and
      train signatures (bare_export.py --all_modes: no checks, no verify), the floor
      that TensorFlow and Keras set, printed as a second ratio;
  (b) the exporter (export/exporter.py's main, via bench/timed_exporter.py) in a fresh
      process, default flags (--verify on), with --modes=serve and with all modes;
  (c) the KerasSavedModel action of //bench:<model>_serve and //bench:<model>_all, one
      `bazel build` each, under each --strategies entry ("sandboxed": a fresh process;
      "worker": a request to a warm persistent worker). Its wall time is the action's
      duration in Bazel's --profile; its peak RSS is the largest VmHWM of the exporter
      processes the build started (polled from /proc, as Bazel 4.2.3 logs no memory).
Re-execution is forced by deleting the target's outputs before each build: Bazel then
re-runs only that action, with analysis, toolchain and (for workers) the worker warm.

Everything runs with the Bazel-managed venv's python (<output_base>/external/
rules_keras_python/python3) and the action's fixed environment. Prints tables (medians
over repetitions) and writes every number to a JSON file. Stdlib only: any python3 runs
this script. Not part of the test run. See bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.dirname(BENCH_DIR)
# The end-to-end tests' reader of Bazel's execution log (standard library only).
sys.path.insert(0, os.path.join(WORKSPACE, "tests", "e2e"))
import e2e_tools

DEFAULT_MODELS = ("mlp", "two_inputs", "mobilenet_v2")
ALL_MODELS = DEFAULT_MODELS + ("mobilenet_v2_128",)
SLOW_MODELS = ("mobilenet_v2", "mobilenet_v2_128")
MODES = {"serve": "serve", "all": "serve,eval,train"}
MNEMONIC = "KerasSavedModel"

# The peers' variant names: (a) and, for all modes, (a2).
BARE, PLAIN_ALL = "a_bare", "a2_plain_all"

# The targets the project set for an export through rules_keras.
SERVE_MAX_RATIO = 1.0  # serve only, with verify, vs the bare export, every model
ALL_MODES_MAX_RATIO = 1.5  # serve+eval+train on MobileNetV2 vs the bare export
RSS_MAX_RATIO = 1.2  # peak RSS vs the bare export


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bazel:
    """Runs ./bazelw in the workspace, optionally on its own output base."""

    def __init__(self, output_base: str | None, extra_flags: list[str]):
        self.startup = [f"--output_base={output_base}"] if output_base else []
        # No convenience symlinks (another output base may own them), no cache that
        # could answer instead of running the action.
        self.flags = [
            "--symlink_prefix=/",
            "--disk_cache=",
            "--noremote_accept_cached",
            *extra_flags,
        ]

    def command(self, verb: str, *args: str) -> list[str]:
        return [
            os.path.join(WORKSPACE, "bazelw"),
            *self.startup,
            verb,
            *self.flags,
            *args,
        ]

    def info(self, key: str) -> str:
        out = subprocess.run(
            self.command("info", key),
            cwd=WORKSPACE,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def action_env(self, target: str) -> dict[str, str]:
        """The environment of `target`'s KerasSavedModel action, as Bazel has it."""
        out = subprocess.run(
            self.command(
                "aquery", "--output=jsonproto", f"mnemonic({MNEMONIC}, {target})"
            ),
            cwd=WORKSPACE,
            check=True,
            capture_output=True,
            text=True,
        )
        (action,) = json.loads(out.stdout)["actions"]
        return {
            v["key"]: v.get("value", "") for v in action.get("environmentVariables", [])
        }

    def build(self, targets: list[str], flags: list[str], log_path: str) -> int:
        with open(log_path, "ab") as out:
            return subprocess.run(
                self.command("build", *flags, *targets),
                check=False,
                cwd=WORKSPACE,
                stdout=out,
                stderr=subprocess.STDOUT,
            ).returncode


def run_child(argv: list[str], env: dict, log_path: str) -> dict:
    """Runs argv to completion; returns its wall seconds, peak RSS (MB) and exit code."""
    with open(log_path, "ab") as out:
        start_wall = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would keep the largest
        # child of the whole benchmark).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        end_wall = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        log(f"  exit code {proc.returncode}: {' '.join(argv)} (see {log_path})")
    return {
        "wall_s": wall,
        "rss_mb": usage.ru_maxrss / 1024.0,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "exit_code": proc.returncode,
        "spawned_at": start_wall,
        "ended_at": end_wall,
    }


def _child_timings(path: str, result: dict) -> None:
    """Adds the child's phase timings and its startup/exit overheads to result."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return
    phases = {k: float(v) for k, v in data["timings"].items()}
    phases["startup"] = max(0.0, data["start"] - result["spawned_at"])
    phases["exit"] = max(0.0, result["ended_at"] - data["end"])
    phases["other"] = max(0.0, result["wall_s"] - sum(phases.values()))
    result["phases"] = phases


class RssMonitor:
    """Polls /proc for exporter processes a build starts; keeps their largest VmHWM.

    Processes already alive when it starts (a warm persistent worker) are left out, so
    under the worker strategy this is the forked request child's peak (its VmHWM counts
    the pages it shares with the worker, like any process's RSS).
    """

    def __init__(self, marker: str, interval: float = 0.2):
        self.marker = marker.encode()
        self.interval = interval
        self.existing = set(self._pids())
        # Exporter processes already running: a warm worker, whose RSS is reported too.
        self.resident = [p for p in self.existing if self._matches(p)]
        self.peak_kb: dict[int, int] = {}
        self.resident_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pids() -> list[int]:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]

    def _matches(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            if b"exporter" not in cmdline:
                return False
            if self.marker in cmdline:
                return True
            return os.readlink(f"/proc/{pid}/cwd").encode().startswith(self.marker)
        except OSError:
            return False

    @staticmethod
    def _status_kb(pid: int, field: str) -> int | None:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None

    @staticmethod
    def _keep_max(table: dict[int, int], pid: int, kb: int | None) -> None:
        if kb is not None:
            table[pid] = max(table.get(pid, 0), kb)

    def _poll(self) -> None:
        for pid in self.resident:
            self._keep_max(self.resident_kb, pid, self._status_kb(pid, "VmRSS"))
        for pid in self._pids():
            if pid in self.existing or not self._matches(pid):
                continue
            self._keep_max(self.peak_kb, pid, self._status_kb(pid, "VmHWM"))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak_mb(self) -> float | None:
        return max(self.peak_kb.values()) / 1024.0 if self.peak_kb else None

    def resident_mb(self) -> float | None:
        return sum(self.resident_kb.values()) / 1024.0 if self.resident_kb else None


def _remove_tree(path: str) -> None:
    """Removes a Bazel output (read-only tree artifacts included)."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(path, 0o755)
        shutil.rmtree(path)
    else:
        os.remove(path)


class Bench:
    def __init__(self, args):
        self.args = args
        self.bazel = Bazel(args.output_base, args.bazel_flag)
        self.work = tempfile.mkdtemp(prefix="rules_keras_bench.")
        self.log_path = os.path.join(self.work, "children.log")
        self.runs: list[dict] = []

    # --- setup -------------------------------------------------------------------

    def setup(self) -> None:
        # Analyses every target and builds the exporter (creating the venv if missing);
        # one small export under each strategy starts the persistent worker, if used.
        log("warm-up: analysis of the targets, one small export per strategy")
        self.bazel_bin = self.bazel.info("bazel-bin")
        steps = [(["//export:exporter"], [])]
        if not self.args.no_bazel:
            steps.append((self.targets(), ["--nobuild"]))
            for strategy in self.args.strategies:
                steps.append(
                    (["//bench:mlp_serve"], [f"--strategy={MNEMONIC}={strategy}"])
                )
        for targets, flags in steps:
            if targets == ["//bench:mlp_serve"]:
                self.remove_outputs("mlp_serve")
            if self.bazel.build(targets, flags, self.log_path) != 0:
                sys.exit(
                    f"bench: warm-up `bazel build {' '.join(flags + targets)}` failed;"
                    f" see {self.log_path}"
                )
        self.output_base = self.bazel.info("output_base")
        self.python = os.path.join(
            self.output_base, "external/rules_keras_python/python3"
        )
        # The KerasSavedModel action's own environment, for (a) and (b) as well, so
        # the three run TensorFlow the same way; KERAS_HOME outside the sandbox.
        env = self.bazel.action_env("//bench:mlp_serve")
        env["KERAS_HOME"] = os.path.join(self.work, "keras_home")
        env["PYTHONPATH"] = WORKSPACE
        self.env = env
        versions = subprocess.run(
            [
                self.python,
                "-c",
                (
                    "import sys, tensorflow as tf, keras;"
                    "print(tf.__version__, keras.__version__, sys.version.split()[0])"
                ),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        self.versions = dict(
            zip(("tensorflow", "keras", "python"), versions, strict=False)
        )
        log(f"python {self.python}: {self.versions}")
        # Page cache and pyc warm-up for (a) and (b), not recorded.
        self.run_a("mlp", record=False)
        self.run_b("mlp", "serve", record=False)

    def remove_outputs(self, target: str) -> None:
        """Deleting its outputs makes Bazel re-run the action on the next build."""
        for path in (target, f"{target}.signatures.json"):
            _remove_tree(os.path.join(self.bazel_bin, "bench", path))

    def targets(self) -> list[str]:
        return [f"//bench:{m}_{k}" for m in self.args.models for k in self.args.modes]

    # --- the three ways ----------------------------------------------------------

    def _record(self, result: dict, record: bool) -> dict:
        if result.get("exit_code"):
            result["failed_wall_s"], result["wall_s"] = result.get("wall_s"), None
            result.setdefault("error", f"exit code {result['exit_code']}")
        result["loadavg_1m"] = os.getloadavg()[0]
        if record:
            self.runs.append(result)
            shown = (
                f"{result['wall_s']:.2f}s"
                if result.get("wall_s") is not None
                else "failed"
            )
            rss = f", {result['rss_mb']:.0f} MB" if result.get("rss_mb") else ""
            log(f"  {result['model']:<17} {result['variant']:<22} {shown}{rss}")
        return result

    def run_a(
        self, model: str, rep: int = 0, record: bool = True, all_modes: bool = False
    ) -> dict:
        variant = PLAIN_ALL if all_modes else BARE
        out = os.path.join(self.work, f"{variant}-{model}-{rep}")
        timings = out + ".timings.json"
        argv = [
            self.python,
            os.path.join(BENCH_DIR, "bare_export.py"),
            f"bench.models:{model}",
            out,
            timings,
            *(["--all_modes"] if all_modes else []),
        ]
        result = run_child(argv, self.env, self.log_path)
        _child_timings(timings, result)
        result.update(model=model, variant=variant, rep=rep)
        shutil.rmtree(out, ignore_errors=True)
        return self._record(result, record)

    def run_b(self, model: str, kind: str, rep: int = 0, record: bool = True) -> dict:
        out = os.path.join(self.work, f"b-{model}-{kind}-{rep}")
        env = dict(self.env, BENCH_TIMINGS_OUT=out + ".timings.json")
        argv = [
            self.python,
            os.path.join(BENCH_DIR, "timed_exporter.py"),
            f"--builder=bench.models:{model}",
            f"--output_dir={out}",
            f"--modes={MODES[kind]}",
            "--seed=0",
            *self.args.exporter_flag,
        ]
        result = run_child(argv, env, self.log_path)
        _child_timings(env["BENCH_TIMINGS_OUT"], result)
        result.update(model=model, variant=f"b_exporter_{kind}", rep=rep)
        shutil.rmtree(out, ignore_errors=True)
        return self._record(result, record)

    def run_c(self, model: str, kind: str, strategy: str, rep: int = 0) -> dict:
        target = f"{model}_{kind}"
        label = f"//bench:{target}"
        self.remove_outputs(target)
        profile = os.path.join(self.work, f"c-{target}-{strategy}-{rep}.profile")
        exec_log = os.path.join(self.work, f"c-{target}-{strategy}-{rep}.exec.json")
        flags = [
            f"--strategy={MNEMONIC}={strategy}",
            f"--profile={profile}",
            f"--execution_log_json_file={exec_log}",
        ]
        start = time.perf_counter()
        with RssMonitor(self.output_base) as monitor:
            rc = self.bazel.build([label], flags, self.log_path)
        client_wall = time.perf_counter() - start
        result = {
            "model": model,
            "variant": f"c_bazel_{strategy}_{kind}",
            "rep": rep,
            "exit_code": rc,
            "bazel_client_wall_s": client_wall,
            "rss_mb": monitor.peak_mb(),
            "rss_processes": len(monitor.peak_kb),
            # Under `worker`: the RSS of the warm worker process(es) the request forks.
            "resident_exporters_rss_mb": monitor.resident_mb(),
            "wall_s": None,
        }
        try:
            with open(profile, encoding="utf-8") as f:
                events = json.load(f)
            events = events["traceEvents"] if isinstance(events, dict) else events
            for event in events:
                if event.get("cat") == "action processing" and event.get(
                    "name", ""
                ).endswith(f"Keras SavedModel {label}"):
                    result["wall_s"] = event["dur"] / 1e6
            spawns = [
                s
                for s in e2e_tools.read_spawns(exec_log)
                if s.get("mnemonic") == MNEMONIC
            ]
            result["runner"] = ",".join(s.get("runner", "?") for s in spawns)
            result["spawns"] = len(spawns)
        except (OSError, ValueError, KeyError) as e:
            result["error"] = str(e)
        if rc != 0 or result.get("spawns") != 1:
            result["wall_s"] = None
            result.setdefault(
                "error", f"bazel exit {rc}, {result.get('spawns')} spawns"
            )
        return self._record(result, True)

    # --- driver ------------------------------------------------------------------

    def run(self) -> None:
        self.setup()
        self.loads = [os.getloadavg()]
        for rep in range(self.args.repeat):
            log(f"repetition {rep + 1}/{self.args.repeat}")
            for model in self.args.models:
                self.run_a(model, rep)
                if "all" in self.args.modes:
                    self.run_a(model, rep, all_modes=True)
                for kind in self.args.modes:
                    self.run_b(model, kind, rep)
                    if not self.args.no_bazel:
                        for strategy in self.args.strategies:
                            self.run_c(model, kind, strategy, rep)
            self.loads.append(os.getloadavg())

    def variants(self) -> list[str]:
        names = [PLAIN_ALL] if "all" in self.args.modes else []
        for kind in self.args.modes:
            names.append(f"b_exporter_{kind}")
            if not self.args.no_bazel:
                names += [f"c_bazel_{s}_{kind}" for s in self.args.strategies]
        return names

    def summary(self) -> dict:
        summary: dict = {}
        for model in self.args.models:
            per = {}
            for variant in [BARE, *self.variants()]:
                runs = [
                    r
                    for r in self.runs
                    if r["model"] == model and r["variant"] == variant
                ]
                walls = [r["wall_s"] for r in runs if r.get("wall_s") is not None]
                rsses = [r["rss_mb"] for r in runs if r.get("rss_mb") is not None]
                entry = {
                    "n": len(walls),
                    "wall_s": statistics.median(walls) if walls else None,
                    "wall_min_s": min(walls) if walls else None,
                    "wall_max_s": max(walls) if walls else None,
                    "rss_mb": statistics.median(rsses) if rsses else None,
                }
                phase_runs = [r["phases"] for r in runs if "phases" in r]
                if phase_runs:
                    keys = sorted({k for p in phase_runs for k in p})
                    entry["phases_s"] = {
                        k: statistics.median([p.get(k, 0.0) for p in phase_runs])
                        for k in keys
                    }
                per[variant] = entry
            base, plain = per[BARE], per.get(PLAIN_ALL)
            for variant, entry in per.items():
                if variant == BARE:
                    continue
                entry["wall_ratio"] = _ratio(entry["wall_s"], base["wall_s"])
                entry["rss_ratio"] = _ratio(entry["rss_mb"], base["rss_mb"])
                if plain and variant.endswith("_all") and variant != PLAIN_ALL:
                    entry["wall_ratio_a2"] = _ratio(entry["wall_s"], plain["wall_s"])
                    entry["rss_ratio_a2"] = _ratio(entry["rss_mb"], plain["rss_mb"])
                entry["targets"] = self._targets(model, variant, entry)
            summary[model] = per
        return summary

    @staticmethod
    def _targets(model: str, variant: str, entry: dict) -> dict:
        checks = {}
        if variant == PLAIN_ALL:
            return checks  # a peer, not ours: no targets
        if variant.endswith("_serve"):
            checks["wall<=1.0x"] = _check(entry["wall_ratio"], SERVE_MAX_RATIO)
        elif model.startswith("mobilenet_v2"):
            checks["wall<=1.5x"] = _check(entry["wall_ratio"], ALL_MODES_MAX_RATIO)
        checks["rss<=1.2x"] = _check(entry["rss_ratio"], RSS_MAX_RATIO)
        return checks


def _ratio(x, y):
    return x / y if x is not None and y else None


def _check(ratio, limit):
    return None if ratio is None else ratio <= limit


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _verdict(value) -> str:
    return {True: "pass", False: "FAIL", None: "n/a"}[value]


def print_tables(bench: Bench, summary: dict) -> None:
    args = bench.args
    print()
    print(
        f"rules_keras export benchmark: repeat {args.repeat}, medians;"
        f" TF {bench.versions.get('tensorflow')}, Keras {bench.versions.get('keras')},"
        f" {os.cpu_count()} CPUs, load avg (1 min) start {bench.loads[0][0]:.2f}"
        f" end {bench.loads[-1][0]:.2f}"
    )
    print(
        "(a) bare model.export  (a2) plain TF all modes, no verify"
        "  (b) exporter, fresh process, --verify  (c) Bazel KerasSavedModel action"
    )
    header = (
        f"{'model':<17} {'variant':<24} {'wall s':>7} {'min-max':>13} {'RSS MB':>7}"
        f" {'x(a)':>6} {'RSS x(a)':>8}  targets"
    )
    print(header)
    print("-" * len(header) + "-" * 22)
    for model, per in summary.items():
        for variant, e in per.items():
            span = (
                f"{e['wall_min_s']:.1f}-{e['wall_max_s']:.1f}"
                if e["wall_min_s"] is not None
                else "-"
            )
            targets = " ".join(
                f"{k} {_verdict(v)}" for k, v in e.get("targets", {}).items()
            )
            print(
                f"{model:<17} {variant:<24} {_fmt(e['wall_s'], '7.2f'):>7} {span:>13}"
                f" {_fmt(e['rss_mb'], '7.0f'):>7} {_fmt(e.get('wall_ratio'), '6.2f'):>6}"
                f" {_fmt(e.get('rss_ratio'), '8.2f'):>8}  {targets}"
            )
    print()
    print(
        "Where (a), (a2) and (b) spend their wall time (s, medians; other = the rest of"
        " main)"
    )
    phases = [
        "startup",
        "import",
        "load",
        "trace",
        "write",
        "verify",
        "export",
        "other",
        "exit",
    ]
    print(f"{'model':<17} {'variant':<20} " + " ".join(f"{p:>7}" for p in phases))
    for model, per in summary.items():
        for variant, e in per.items():
            if "phases_s" not in e:
                continue
            cells = " ".join(f"{_fmt(e['phases_s'].get(p), '7.2f'):>7}" for p in phases)
            print(f"{model:<17} {variant:<20} {cells}")
    against_plain = [
        (model, variant, e)
        for model, per in summary.items()
        for variant, e in per.items()
        if "wall_ratio_a2" in e
    ]
    if against_plain:
        print()
        print("All modes against (a2), the plain TensorFlow way to the same signatures")
        print(f"{'model':<17} {'variant':<24} {'x(a2)':>6} {'RSS x(a2)':>9}")
        for model, variant, e in against_plain:
            print(
                f"{model:<17} {variant:<24} {_fmt(e['wall_ratio_a2'], '6.2f'):>6}"
                f" {_fmt(e['rss_ratio_a2'], '9.2f'):>9}"
            )
    print()
    print(
        "Targets: serve (with verify) <= 1.0x (a) on every model; all modes on MobileNetV2"
        " <= 1.5x (a); peak RSS <= 1.2x (a).\n(c)'s RSS is the largest VmHWM of the"
        " exporter processes the build started, polled every 0.2 s (Bazel 4.2.3 logs no"
        " memory); under `worker` it is the forked request child's."
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated subset of {','.join(ALL_MODELS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the MobileNetV2 models"
    )
    parser.add_argument(
        "--modes",
        default="serve,all",
        help="which exports: serve (--modes=serve) and/or all (serve,eval,train)",
    )
    parser.add_argument(
        "--strategies",
        default="sandboxed,worker",
        help="Bazel strategies for the KerasSavedModel action in (c) (default: %(default)s)",
    )
    parser.add_argument("--no-bazel", action="store_true", help="skip (c)")
    parser.add_argument(
        "--output-base",
        help="Bazel output base (default: the workspace's); a separate one avoids waiting"
        " on other builds' server lock, at the cost of its own venv",
    )
    parser.add_argument(
        "--bazel-flag", action="append", default=[], help="extra `bazel build` flag"
    )
    parser.add_argument(
        "--exporter-flag", action="append", default=[], help="extra flag for (b)"
    )
    parser.add_argument(
        "--json", help="output JSON (default: bench/out/bench-<time>.json)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    if args.quick:
        args.models = [m for m in args.models if m not in SLOW_MODELS]
    unknown = set(args.models) - set(ALL_MODELS)
    if unknown or not args.models:
        parser.error(f"unknown or no models: {sorted(unknown)}")
    args.modes = [m for m in args.modes.split(",") if m]
    if not args.modes or set(args.modes) - set(MODES):
        parser.error("--modes takes serve and/or all")
    args.strategies = [s for s in args.strategies.split(",") if s]
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    return args


def _git(*argv: str) -> str:
    out = subprocess.run(
        ["git", *argv], check=False, cwd=WORKSPACE, capture_output=True, text=True
    )
    return out.stdout.strip()


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench = Bench(args)
    started = datetime.datetime.now().astimezone()
    try:
        bench.run()
    finally:
        summary = bench.summary() if bench.runs else {}
        out = args.json or os.path.join(
            BENCH_DIR, "out", f"bench-{started.strftime('%Y%m%d-%H%M%S')}.json"
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
            "python": getattr(bench, "python", None),
            "output_base": getattr(bench, "output_base", None),
            "git_head": _git("rev-parse", "HEAD"),
            "git_dirty": _git(
                "status", "--porcelain", "--untracked-files=no"
            ).splitlines(),
            "mobilenet_v2_input": "224x224x3 (mobilenet_v2_128: 128x128x3)",
        }
        with open(out, "w", encoding="utf-8") as f:
            json.dump(
                {"meta": meta, "summary": summary, "runs": bench.runs}, f, indent=1
            )
        if summary:
            print_tables(bench, summary)
        print(f"\nJSON: {out}")
        if args.keep:
            print(f"scratch: {bench.work}")
        else:
            shutil.rmtree(bench.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
