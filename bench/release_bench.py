#!/usr/bin/env python3
"""Release benchmark: provenance, sign, verify and push of a 67 MB and a 1 GB export.

    python3 bench/release_bench.py [--sizes 67mb,1gb] [--keep DIR]

Exports `bench.models:wide_mlp_<size>` (serving only, --noverify) with the exporter in
the Bazel-managed venv, then times, each in a fresh process of that venv's python, as
`bazel run` would run them (without Bazel's own start-up):
  provenance   rules/private/provenance.py, the action after the export;
  sign         release.py sign (model-signing, P-256 key; the export and provenance);
  verify       release.py verify of the export;
  push         release.py push with --signature and --public_key: verify, copy under a
               hidden name with fsync, rename;
and their peers: `sha256sum` of every file (provenance), the `model_signing` command
line on the version folder alone (sign, verify), and `cp -r` plus `sync` (push).
One run each; prints a table with the ratios. Stdlib only; not part of the test run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.dirname(BENCH_DIR)
RELEASE = os.path.join(WORKSPACE, "rules", "private", "release.py")
PROVENANCE = os.path.join(WORKSPACE, "rules", "private", "provenance.py")


def venv_python():
    output_base = subprocess.run(
        [os.path.join(WORKSPACE, "bazelw"), "info", "output_base"],
        cwd=WORKSPACE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return os.path.join(output_base, "external", "rules_keras_python", "python3")


def timed(command, **kwargs):
    start = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, **kwargs
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(
            f"failed: {' '.join(command)}\n{result.stdout}\n{result.stderr}"
        )
    return seconds


def size_of(folder):
    return sum(
        os.path.getsize(os.path.join(r, f))
        for r, _, files in os.walk(folder)
        for f in files
    )


def bench(python, size, scratch):
    name = f"wide_mlp_{size}"
    export = os.path.join(scratch, name)
    env = dict(
        os.environ,
        PYTHONPATH=WORKSPACE,
        TF_CPP_MIN_LOG_LEVEL="2",
        KERAS_BACKEND="tensorflow",
    )
    export_s = timed(
        [
            python,
            os.path.join(WORKSPACE, "export", "exporter.py"),
            f"--builder=bench.models:{name}",
            "--modes=serve",
            "--noverify",
            "--version=1",
            f"--output_dir={export}",
            f"--import_path={WORKSPACE}",
            "--quiet",
        ],
        env=env,
        cwd=WORKSPACE,
    )
    folder = os.path.join(export, "1")
    info = os.path.join(scratch, f"{name}.export.json")
    with open(info, "w") as f:
        json.dump({"label": f"//bench:{name}"}, f)
    rows = {"export": (export_s, None)}
    files = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs]
    rows["provenance"] = (
        timed(
            [
                python,
                PROVENANCE,
                f"--export_dir={export}",
                f"--export_info={info}",
                f"--target=//bench:{name}",
                f"--interpreter={python}",
                "--interpreter_name=python3",
                f"--output={export}.provenance.json",
            ]
        ),
        timed(["sha256sum", *files]),
    )
    key, pub = os.path.join(scratch, "key.pem"), os.path.join(scratch, "pub.pem")
    if not os.path.exists(key):
        subprocess.run(
            [
                "openssl",
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                key,
            ],
            check=True,
        )
        subprocess.run(
            ["openssl", "ec", "-in", key, "-pubout", "-out", pub],
            check=True,
            capture_output=True,
        )
    release = [python, RELEASE]
    common = [f"--saved_model={export}", f"--target=//bench:{name}"]
    signature = os.path.join(scratch, f"{name}.sig")
    peer_signature = os.path.join(scratch, f"{name}.peer.sig")
    cli = [python, "-m", "model_signing"]
    rows["sign"] = (
        timed(
            release
            + ["sign", *common, f"--private_key={key}", f"--signature={signature}"]
        ),
        timed(
            cli
            + [
                "sign",
                "key",
                folder,
                "--private_key",
                key,
                "--signature",
                peer_signature,
            ]
        ),
    )
    rows["verify"] = (
        timed(
            release
            + ["verify", *common, f"--public_key={pub}", f"--signature={signature}"]
        ),
        timed(
            cli
            + [
                "verify",
                "key",
                folder,
                "--public_key",
                pub,
                "--signature",
                peer_signature,
            ]
        ),
    )
    base = os.path.join(scratch, "base")
    peer = os.path.join(scratch, "peer")
    rows["push"] = (
        timed(
            release
            + [
                "push",
                *common,
                f"--model_base_path={base}",
                "--next_version",
                f"--signature={signature}",
                f"--public_key={pub}",
            ]
        ),
        timed(
            [
                "sh",
                "-c",
                'mkdir -p "$2" && cp -r "$1" "$2/1" && sync -f "$2"',
                "sh",
                folder,
                peer,
            ]
        ),
    )
    shutil.rmtree(base)
    shutil.rmtree(peer)
    return name, size_of(folder), rows


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="67mb,1gb")
    parser.add_argument(
        "--keep", help="a scratch folder to keep (default: a temporary one, removed)"
    )
    args = parser.parse_args()
    python = venv_python()
    scratch = args.keep or tempfile.mkdtemp(prefix="release-bench-")
    os.makedirs(scratch, exist_ok=True)
    print(f"python: {python}\nscratch: {scratch}")
    print("| export | step | rules_keras s | peer | peer s | ratio |")
    print("|---|---|---|---|---|---|")
    peers = {
        "provenance": "sha256sum",
        "sign": "model_signing CLI",
        "verify": "model_signing CLI",
        "push": "cp -r + sync",
    }
    try:
        for size in args.sizes.split(","):
            name, total, rows = bench(python, size, scratch)
            label = f"{name} ({total / 1e6:.0f} MB)"
            for step, (ours, peer) in rows.items():
                if peer is None:
                    print(f"| {label} | {step} | {ours:.2f} | | | |")
                else:
                    print(
                        f"| {label} | {step} | {ours:.2f} | {peers[step]} | {peer:.2f} | {ours / peer:.2f} |"
                    )
            sys.stdout.flush()
            shutil.rmtree(os.path.join(scratch, name))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
