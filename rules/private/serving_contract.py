"""A keras_saved_model's serving contract: the test that the export still matches the
checked-in file, and the program that writes the file (keras_saved_model's `contract`).

The contract is the serving API a client is built against, read from the export's own
saved_model.pb: each SignatureDef of the MetaGraph tagged `serve` (the one TF Serving
loads), with its method name and each input's and output's name, dtype and shape. An
eval or train label declares no rank (it takes more than one shape); the shapes it
accepts come from the exporter's `<name>.signatures.json` (`accepts`).

  bazel test //models:my_export.contract_test   # fails when the export differs from the file
  bazel run //models:my_export.update_contract  # writes the file from the export

A difference is listed change by change, each marked breaking (a client built against
the file can fail: a signature, input or output gone or renamed, a dtype changed, an
input that accepts less, a new required input, an output that may return other shapes)
or compatible (a new signature or output, an input that accepts more, an output whose
shape is now more precise).
"""

import dataclasses
import glob
import json
import os
import sys

from absl import app, flags

# TensorFlow's C++ logs would bury the program's own message (TensorFlow is imported
# later, when the export is read).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "The keras_saved_model folder `<name>/`."
)
_TARGET = flags.DEFINE_string(
    "target", None, "The keras_saved_model target, for messages."
)
_CONTRACT = flags.DEFINE_string(
    "contract", None, "Check: the contract file the export must match."
)
_UPDATE = flags.DEFINE_string(
    "update",
    None,
    "Write the contract to this path, relative to the workspace (under bazel run).",
)

SERVE_TAG = "serve"
# The SignatureDef TensorFlow adds to hold the init op: a loader runs it, no client
# calls it, so it is not part of the API.
INIT_OP_KEY = "__saved_model_init_op"


def read_contract(saved_model: str) -> dict:
    """The contract of the keras_saved_model folder `saved_model` (one version in it)."""
    # TensorFlow's protos; imported here so that bad flags fail fast.
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    found = sorted(glob.glob(os.path.join(saved_model, "*", "saved_model.pb*")))
    if len(found) != 1:
        raise ValueError(f"expected one version folder in {saved_model}, found {found}")
    proto = saved_model_pb2.SavedModel()
    if found[0].endswith(".pbtxt"):
        with open(found[0], encoding="utf-8") as f:
            text_format.Parse(f.read(), proto)
    else:
        with open(found[0], "rb") as f:
            proto.ParseFromString(f.read())
    served = [m for m in proto.meta_graphs if set(m.meta_info_def.tags) == {SERVE_TAG}]
    if len(served) != 1:
        raise ValueError(f"{found[0]} has {len(served)} MetaGraphs tagged only 'serve'")
    contract = {
        "signatures": {
            key: {
                "method_name": signature.method_name,
                "inputs": _tensors(signature.inputs),
                "outputs": _tensors(signature.outputs),
            }
            for key, signature in sorted(served[0].signature_def.items())
            if key != INIT_OP_KEY
        }
    }
    _add_accepted_shapes(contract, saved_model + ".signatures.json")
    return contract


def _add_accepted_shapes(contract: dict, manifest_path: str) -> None:
    """Adds `accepts` to each input the exporter's manifest lists accepted shapes for
    (the labels of eval and train)."""
    if not os.path.exists(manifest_path):
        return
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    for key, signature in contract["signatures"].items():
        described = manifest.get("signatures", {}).get(key, {}).get("inputs", {})
        for name, entry in signature["inputs"].items():
            accepted = described.get(name, {}).get("accepted_shapes")
            if accepted:
                entry["accepts"] = accepted


def _tensors(infos) -> dict:
    import tensorflow as tf

    result = {}
    for name, info in sorted(infos.items()):
        shape = info.tensor_shape
        entry = {
            "dtype": tf.as_dtype(info.dtype).name,
            "shape": None
            if shape.unknown_rank
            else [None if d.size < 0 else d.size for d in shape.dim],
        }
        encoding = info.WhichOneof("encoding")
        if encoding != "name":  # a sparse or composite tensor: its kind is its API
            entry["encoding"] = encoding
        result[name] = entry
    return result


def contract_text(contract: dict) -> str:
    """The file's text: JSON with one line per input and output, to read in review."""

    def tensors(specs: dict) -> list[str]:
        lines = [
            f"        {json.dumps(name)}: {json.dumps(spec, sort_keys=True)},"
            for name, spec in sorted(specs.items())
        ]
        if lines:
            lines[-1] = lines[-1].rstrip(",")
        return lines

    lines = ["{", '  "signatures": {']
    for index, (key, signature) in enumerate(sorted(contract["signatures"].items())):
        lines += [
            f"    {json.dumps(key)}: {{",
            f'      "method_name": {json.dumps(signature["method_name"])},',
            '      "inputs": {',
            *tensors(signature["inputs"]),
            "      },",
            '      "outputs": {',
            *tensors(signature["outputs"]),
            "      }",
            "    }" + ("," if index < len(contract["signatures"]) - 1 else ""),
        ]
    lines += ["  }", "}"]
    text = "\n".join(lines) + "\n"
    if json.loads(text) != contract:
        raise AssertionError(
            "contract_text lost something"
        )  # a bug here, not the user's
    return text


@dataclasses.dataclass(frozen=True)
class Change:
    breaking: bool
    text: str


def _shape_text(shape) -> str:
    if shape is None:
        return "unknown rank"
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def _spec_text(spec: dict) -> str:
    return f"{spec['dtype']} {_accepted_text(spec)}"


def _accepted(spec: dict) -> list:
    """The shapes an input accepts: its `accepts` list, else its one shape."""
    return spec.get("accepts") or [spec["shape"]]


def _same_shapes(spec: dict) -> set:
    """The accepted shapes, in any order."""
    return {None if s is None else tuple(s) for s in _accepted(spec)}


def _accepted_text(spec: dict) -> str:
    return " or ".join(_shape_text(shape) for shape in _accepted(spec))


def _fits(shape, into) -> bool:
    """Whether every tensor of `shape` also has the shape `into` (None: unknown rank)."""
    if into is None:
        return True
    if shape is None or len(shape) != len(into):
        return False
    return all(
        want is None or want == have for have, want in zip(shape, into, strict=True)
    )


def _tensor_changes(key: str, kind: str, old: dict, new: dict) -> list[Change]:
    """Changes of the inputs (kind "input") or outputs ("output") of signature `key`."""
    changes = []
    removed = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    # A name gone and one new with the same spec: most likely a rename.
    for gone in list(removed):
        twin = next((n for n in added if new[n] == old[gone]), None)
        if twin is not None:
            removed.remove(gone)
            added.remove(twin)
            changes.append(
                Change(
                    True,
                    f"{key}: {kind} '{gone}' renamed to '{twin}' ({_spec_text(old[gone])})",
                )
            )
    for name in removed:
        changes.append(
            Change(True, f"{key}: {kind} '{name}' removed ({_spec_text(old[name])})")
        )
    for name in added:
        if kind == "input":
            changes.append(
                Change(
                    True,
                    f"{key}: new required input '{name}' ({_spec_text(new[name])})",
                )
            )
        else:
            changes.append(
                Change(False, f"{key}: new output '{name}' ({_spec_text(new[name])})")
            )
    for name in sorted(set(old) & set(new)):
        was, now = old[name], new[name]
        if was.get("encoding") != now.get("encoding"):
            changes.append(
                Change(
                    True,
                    f"{key}: {kind} '{name}' encoding {was.get('encoding', 'dense')}"
                    f" -> {now.get('encoding', 'dense')}",
                )
            )
        if was["dtype"] != now["dtype"]:
            changes.append(
                Change(
                    True,
                    f"{key}: {kind} '{name}' dtype {was['dtype']} -> {now['dtype']}",
                )
            )
        if kind == "input" and _same_shapes(was) != _same_shapes(now):
            shapes = f"{_accepted_text(was)} -> {_accepted_text(now)}"
            wider = all(
                any(_fits(shape, into) for into in _accepted(now))
                for shape in _accepted(was)
            )
            why = (
                "accepts every shape it accepted"
                if wider
                else "refuses shapes it accepted"
            )
            changes.append(
                Change(not wider, f"{key}: {kind} '{name}' shape {shapes} ({why})")
            )
        elif kind == "output" and was["shape"] != now["shape"]:
            shapes = f"{_shape_text(was['shape'])} -> {_shape_text(now['shape'])}"
            narrower = _fits(now["shape"], was["shape"])
            why = (
                "returns only shapes it returned"
                if narrower
                else "may return shapes it did not"
            )
            changes.append(
                Change(not narrower, f"{key}: {kind} '{name}' shape {shapes} ({why})")
            )
    return changes


def compare(old: dict, new: dict) -> list[Change]:
    """What changed from the contract `old` (the file) to `new` (the export)."""
    changes = []
    old_signatures, new_signatures = old["signatures"], new["signatures"]
    for key in sorted(set(old_signatures) - set(new_signatures)):
        changes.append(Change(True, f"signature '{key}' removed"))
    for key in sorted(set(new_signatures) - set(old_signatures)):
        changes.append(Change(False, f"new signature '{key}'"))
    for key in sorted(set(old_signatures) & set(new_signatures)):
        was, now = old_signatures[key], new_signatures[key]
        if was["method_name"] != now["method_name"]:
            changes.append(
                Change(
                    True,
                    f"{key}: method {was['method_name']} -> {now['method_name']}",
                )
            )
        changes += _tensor_changes(key, "input", was["inputs"], now["inputs"])
        changes += _tensor_changes(key, "output", was["outputs"], now["outputs"])
    return changes


def describe_changes(changes: list[Change], contract_path: str) -> str:
    lines = []
    breaking = [c for c in changes if c.breaking]
    compatible = [c for c in changes if not c.breaking]
    if breaking:
        lines.append(f"Breaking: a client built against {contract_path} can fail:")
        lines += [f"  - {c.text}" for c in breaking]
    if compatible:
        lines.append(
            "Compatible: a client built against the file keeps working:"
            if breaking
            else f"Compatible: a client built against {contract_path} keeps working:"
        )
        lines += [f"  + {c.text}" for c in compatible]
    return "\n".join(lines)


def _update_command(target: str) -> str:
    return f"bazel run {target}.update_contract"


def _parse_contract(path: str) -> dict:
    """The contract in the file `path`; ValueError when it is not one."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        contract = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"it is not JSON ({e})") from None
    signatures = contract.get("signatures") if isinstance(contract, dict) else None
    if not isinstance(signatures, dict) or not all(
        isinstance(s, dict) and {"method_name", "inputs", "outputs"} <= set(s)
        for s in signatures.values()
    ):
        raise ValueError('it has no "signatures" of method_name, inputs and outputs')
    return contract


def check(saved_model: str, contract_path: str, target: str) -> int:
    """0 when the export matches the file; else prints what changed and returns 1."""
    try:
        expected = _parse_contract(contract_path)
    except ValueError as e:
        print(
            f"{target}: {contract_path} is not a serving contract: {e}. Write it from"
            f" the export with:\n  {_update_command(target)}",
            file=sys.stderr,
        )
        return 1
    actual = read_contract(saved_model)
    changes = compare(expected, actual)
    if not changes:
        print(f"{target} matches {contract_path}", file=sys.stderr)
        return 0
    verdict = (
        "a breaking change"
        if any(c.breaking for c in changes)
        else "a compatible change"
    )
    print(
        f"{target}: the export's serving API no longer matches {contract_path}"
        f" ({verdict}).\n\n{describe_changes(changes, contract_path)}\n\n"
        "If the change is intended, write the contract from the export and commit it"
        f" with the change:\n  {_update_command(target)}",
        file=sys.stderr,
    )
    return 1


def update(saved_model: str, path: str, target: str) -> int:
    """Writes the export's contract to `path` in the workspace (run by bazel run)."""
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not workspace:
        print(
            f"{target}: run this with `{_update_command(target)}`, which says where the"
            " workspace is (BUILD_WORKSPACE_DIRECTORY)",
            file=sys.stderr,
        )
        return 1
    destination = os.path.join(workspace, path)
    contract = read_contract(saved_model)
    text = contract_text(contract)
    changes = None
    if os.path.exists(destination):
        with open(destination, encoding="utf-8") as f:
            if f.read() == text:
                print(f"{path}: already up to date", file=sys.stderr)
                return 0
        try:
            changes = compare(_parse_contract(destination), contract)
        except ValueError:
            changes = None  # not a contract yet: replaced whole
    tmp = f"{destination}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, destination)
    if changes == []:
        print(f"rewrote {path} (the same contract)", file=sys.stderr)
    elif changes:
        print(
            f"wrote {path}:\n{describe_changes(changes, 'the old file')}",
            file=sys.stderr,
        )
    else:
        print(
            f"wrote {path} ({len(contract['signatures'])} signatures)", file=sys.stderr
        )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if bool(_CONTRACT.value) == bool(_UPDATE.value):
        raise app.UsageError(
            "give exactly one of --contract (check) and --update (write)"
        )
    if _UPDATE.value:
        return update(_SAVED_MODEL.value, _UPDATE.value, _TARGET.value)
    return check(_SAVED_MODEL.value, _CONTRACT.value, _TARGET.value)


if __name__ == "__main__":
    # Required of the program only: tests import this module into programs of their own.
    flags.mark_flags_as_required(["saved_model", "target"])
    app.run(main)
