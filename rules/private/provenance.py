"""Writes `<name>.provenance.json`: where a keras_saved_model export came from.

An in-toto Statement v1 whose predicate is SLSA v1 provenance: the subject is every file
of the export's version folder with its SHA-256 (named relative to that folder, so the
statement still matches after a push renumbers the version); the predicate names the
target, the settings it was built with, and the SHA-256 of every file the export was
built from, the requirements lock and the Python toolchain.

The same inputs give the same bytes: nothing here reads the clock, the host or the
output base (a stamped export's build time is its version, read from the tree).
Standard library only, so the action needs no TensorFlow. Internal to rules_keras.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import sys

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:rules_keras:keras_saved_model:v1"
BUILDER_ID = "urn:rules_keras:exporter"

# What rules_keras's interpreter wrapper says of itself (rules/private/python_venv.bzl).
_PYTHON_LINE = re.compile(r"^# Python: (\S+)$", re.MULTILINE)
_LOCK_LINE = re.compile(r"^# Lock: (.+), sha256 ([0-9a-f]{64})$", re.MULTILINE)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_folder(export_dir):
    """The one `<version>/` folder of an export, as (name, path)."""
    versions = sorted(n for n in os.listdir(export_dir) if n.isdigit())
    if len(versions) != 1:
        raise SystemExit(
            f"provenance: {export_dir} holds {len(versions)} version folders "
            f"({', '.join(versions) or 'none'}), expected exactly one."
        )
    return versions[0], os.path.join(export_dir, versions[0])


def files_of(folder):
    """Every file under `folder`, as sorted '/'-separated relative paths."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            found.append(
                os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
            )
    return sorted(found)


def subject(folder):
    return [
        {"name": name, "digest": {"sha256": sha256_of(os.path.join(folder, name))}}
        for name in files_of(folder)
    ]


def read_pairs(pairs):
    """`name=path` arguments as a sorted list of (name, path), without repeats."""
    return sorted({tuple(p.split("=", 1)) for p in pairs})


def toolchain_dependencies(interpreter_name, interpreter_path):
    """The interpreter wrapper, and the lock and Python version it names, if it does."""
    with open(interpreter_path, encoding="utf-8", errors="replace") as f:
        text = f.read(4096)
    interpreter = {
        "name": interpreter_name,
        "digest": {"sha256": sha256_of(interpreter_path)},
    }
    python = _PYTHON_LINE.search(text)
    if python:
        interpreter["annotations"] = {"python_version": python.group(1)}
    lock = _LOCK_LINE.search(text)
    lock_entry = None
    if lock:
        lock_entry = {"name": lock.group(1), "digest": {"sha256": lock.group(2)}}
    return interpreter, lock_entry


def statement(args):
    version, folder = version_folder(args.export_dir)
    with open(args.export_info, encoding="utf-8") as f:
        settings = json.load(f)
    settings.pop("label", None)
    materials = [
        {"name": name, "digest": {"sha256": sha256_of(path)}}
        for name, path in read_pairs(args.material)
    ]
    interpreter, lock = toolchain_dependencies(args.interpreter_name, args.interpreter)
    if lock:
        materials.append(lock)
    materials.sort(key=lambda m: m["name"])
    run_details = {
        "builder": {
            "id": BUILDER_ID,
            "builderDependencies": [interpreter],
        },
        "metadata": {},
    }
    if args.stamped:
        # The only time in the statement, and only when `stamp` asked for it.
        started = datetime.datetime.fromtimestamp(int(version), tz=datetime.UTC)
        run_details["metadata"]["startedOn"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject(folder),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "target": args.target,
                    "version": int(version),
                    "stamped": args.stamped,
                    "settings": settings,
                },
                "internalParameters": {"action_env": json.loads(args.action_env)},
                "resolvedDependencies": materials,
            },
            "runDetails": run_details,
        },
    }


def main(argv):
    parser = argparse.ArgumentParser(fromfile_prefix_chars="@", description=__doc__)
    parser.add_argument("--export_dir", required=True)
    parser.add_argument("--export_info", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument(
        "--material", action="append", default=[], help="name=path of an input"
    )
    parser.add_argument("--interpreter", required=True)
    parser.add_argument("--interpreter_name", required=True)
    parser.add_argument("--action_env", default="{}")
    parser.add_argument("--stamped", action="store_true")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    text = json.dumps(statement(args), indent=2, sort_keys=True) + "\n"
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
