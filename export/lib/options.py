"""The export request and the syntax checks of its fields.

Nothing here imports TensorFlow, so bad flags fail in milliseconds instead of after the
seconds TensorFlow takes to import.
"""

import dataclasses
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from export.lib.errors import ExportError

MODES = ("serve", "eval", "train")

# Dtype names accepted in --label_spec (TensorFlow's canonical names).
LABEL_DTYPES = (
    "bool",
    "bfloat16",
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "string",
)

# The syntax rules/private/symbol_reference.bzl checks too (tests/docs pins the two):
# a dotted name of ASCII identifiers, and a custom-object name as a Keras config gives
# it, `MyLayer` or the registered `my_package>MyLayer`.
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", re.ASCII)
CUSTOM_OBJECT_NAME = re.compile(r"^([\w.\-]+>)?[A-Za-z_]\w*$", re.ASCII)


@dataclasses.dataclass
class ExportRequest:
    """Everything one export needs; the CLI flags map one to one onto these fields.

    `custom_objects` takes `name=module:symbol` strings or a mapping of names to the
    objects themselves; `label_specs` takes `OUTPUT=SHAPE:DTYPE` strings or a mapping of
    output names to `SHAPE:DTYPE` strings or `LabelSpec`s; `modes` takes a comma-separated
    string or a sequence (None: every mode the model supports).
    """

    output_dir: str
    builder: str | None = None
    model_file: str | None = None
    weights: str | None = None
    version: str | int = 1
    workspace_status_file: str | None = None
    custom_objects: Sequence[str] | Mapping[str, Any] = ()
    as_text: bool = False
    modes: str | Sequence[str] | None = None
    seed: int = 0
    label_specs: Sequence[str] | Mapping[str, Any] = ()
    safe_mode: bool = True
    verify: bool = True
    verify_atol: float = 1e-5
    verify_rtol: float = 1e-5
    manifest_out: str | None = None


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    shape: tuple[int | None, ...]
    dtype: str


@dataclasses.dataclass(frozen=True)
class CustomObjectSpec:
    name: str
    module: str
    attr: str


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where the model comes from; also what tests use to rebuild the same model."""

    builder: str | None = None
    model_file: str | None = None
    weights: str | None = None
    custom_objects: tuple[CustomObjectSpec, ...] = ()
    custom_object_values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    safe_mode: bool = True
    seed: int = 0

    @property
    def flag(self) -> str:
        return "--builder" if self.builder else "--model_file"

    @property
    def description(self) -> str:
        """Builder string or model file basename: never a path (keeps outputs portable)."""
        return self.builder or os.path.basename(self.model_file or "")


@dataclasses.dataclass(frozen=True)
class ResolvedRequest:
    source: ModelSource
    output_dir: str
    version: int
    final_dir: str
    modes: tuple[str, ...] | None
    label_specs: Mapping[str, LabelSpec]
    as_text: bool
    verify: bool
    verify_atol: float
    verify_rtol: float
    manifest_out: str | None


def parse_symbol_reference(flag: str, text: str, example: str) -> tuple[str, str]:
    """Splits `package.module:attr` (attr may be dotted) into its two halves."""
    module, sep, attr = (text or "").partition(":")
    if not sep or not _DOTTED.match(module) or not _DOTTED.match(attr):
        raise ExportError(
            flag,
            f"'{text}' is not of the form package.module:symbol",
            f"write it like {example}, with the module importable from the Python path",
        )
    return module, attr


def parse_custom_object(text: str) -> CustomObjectSpec:
    name, sep, target = text.partition("=")
    example = "--custom_objects=MyLayer=my_pkg.layers:MyLayer"
    if not sep or not CUSTOM_OBJECT_NAME.match(name):
        raise ExportError(
            "--custom_objects",
            f"'{text}' is not of the form NAME=package.module:symbol",
            f"write it like {example}, where NAME is the class name the model config uses"
            " (or its registered name, my_package>MyLayer)",
        )
    module, attr = parse_symbol_reference("--custom_objects", target, example)
    return CustomObjectSpec(name, module, attr)


def parse_custom_objects(
    values: Sequence[str] | Mapping[str, Any],
) -> tuple[tuple[CustomObjectSpec, ...], dict[str, Any]]:
    """Returns (specs to import, objects given directly by library callers)."""
    if isinstance(values, Mapping):
        direct = dict(values)
        for name in direct:
            if not isinstance(name, str) or not CUSTOM_OBJECT_NAME.match(name):
                raise ExportError(
                    "--custom_objects",
                    f"custom object name {name!r} is not a valid name",
                    "use the class or function name the model config refers to, or its"
                    " registered name (my_package>MyLayer)",
                )
        return (), direct
    if isinstance(values, str):
        values = [values]
    specs = tuple(parse_custom_object(v) for v in values)
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise ExportError(
                "--custom_objects",
                f"the name '{spec.name}' is given more than once",
                "give each custom object name once",
            )
        seen.add(spec.name)
    return specs, {}


def parse_modes(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """None or empty means: every mode the model supports."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    if isinstance(value, str) and not value.strip():
        return None
    modes = []
    for item in items:
        mode = item.strip() if isinstance(item, str) else item
        if mode not in MODES:
            raise ExportError(
                "--modes",
                f"{mode!r} is not a mode",
                "give a comma-separated subset of serve,eval,train, or omit --modes to export"
                " every mode the model supports",
            )
        if mode not in modes:
            modes.append(mode)
    if "serve" not in modes:
        # TF Serving and the manifest need a serving signature; keep it always.
        modes.insert(0, "serve")
    return tuple(m for m in MODES if m in modes)


def parse_shape(text: str) -> tuple[int | None, ...]:
    """Parses `None,10` into (None, 10); the empty string is a scalar."""
    if not text.strip():
        return ()
    dims: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part in ("None", "?", "-1"):
            dims.append(None)
        elif part.isdigit():
            dims.append(int(part))
        else:
            raise ValueError(part)
    return tuple(dims)


def parse_label_spec(text: str) -> tuple[str, LabelSpec]:
    name, sep, rest = text.partition("=")
    shape_text, colon, dtype = rest.rpartition(":")
    fix = (
        "write it like --label_spec=probs=None,10:float32 or --label_spec=probs=None:int64"
        " (the output's name, its shape as comma-separated dims with None for the batch"
        " dim, and a dtype)"
    )
    if not sep or not colon or not name:
        raise ExportError(
            "--label_spec", f"'{text}' is not of the form OUTPUT_NAME=SHAPE:DTYPE", fix
        )
    try:
        shape = parse_shape(shape_text)
    except ValueError as e:
        raise ExportError(
            "--label_spec",
            f"'{text}' has the dimension '{e}', which is not an integer or None",
            fix,
        ) from None
    if dtype not in LABEL_DTYPES:
        raise ExportError(
            "--label_spec",
            f"'{text}' has the dtype '{dtype}', which is not one of {', '.join(LABEL_DTYPES)}",
            fix,
        )
    return name, LabelSpec(shape, dtype)


def parse_label_specs(
    values: Sequence[str] | Mapping[str, Any],
) -> dict[str, LabelSpec]:
    if isinstance(values, Mapping):
        result = {}
        for name, spec in values.items():
            if isinstance(spec, LabelSpec):
                result[name] = spec
            else:
                result.update([parse_label_spec(f"{name}={spec}")])
        return result
    if isinstance(values, str):
        values = [values]
    result = {}
    for text in values:
        name, spec = parse_label_spec(text)
        if name in result:
            raise ExportError(
                "--label_spec",
                f"output '{name}' has more than one label spec",
                "give one per output",
            )
        result[name] = spec
    return result


def read_build_timestamp(path: str) -> int:
    """Reads BUILD_TIMESTAMP from a Bazel workspace status file (`KEY value` lines)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ExportError(
            "--workspace_status_file",
            f"cannot read '{path}' ({e.strerror or e})",
            "pass Bazel's volatile status file (bazel-out/volatile-status.txt), or drop the flag"
            " to take the timestamp from the clock",
        ) from None
    for line in lines:
        key, _, value = line.partition(" ")
        if key == "BUILD_TIMESTAMP":
            value = value.strip()
            if value.isdigit():
                return int(value)
            raise ExportError(
                "--workspace_status_file",
                f"BUILD_TIMESTAMP in '{path}' is '{value}', not whole seconds since the epoch",
                "pass the volatile status file Bazel writes, unedited",
            )
    raise ExportError(
        "--workspace_status_file",
        f"'{path}' has no BUILD_TIMESTAMP line",
        "pass Bazel's volatile status file (it holds BUILD_TIMESTAMP), not the stable one",
    )


def parse_version(value: str | int, workspace_status_file: str | None = None) -> int:
    """A non-negative integer, or `timestamp` (status file's BUILD_TIMESTAMP, else the clock)."""
    text = str(value).strip()  # a bool gives "True"/"False": not a version
    if text == "timestamp":
        if workspace_status_file:
            return read_build_timestamp(workspace_status_file)
        return int(time.time())
    if text.isdigit():
        return int(text)
    raise ExportError(
        "--version",
        f"'{value}' is not a version",
        "give a non-negative integer (TensorFlow Serving orders versions numerically) or"
        " 'timestamp' for seconds since the epoch",
    )


def resolve(request: ExportRequest) -> ResolvedRequest:
    """Checks everything that can be checked without TensorFlow; writes nothing."""
    if bool(request.builder) == bool(request.model_file):
        which = "both were given" if request.builder else "neither was given"
        raise ExportError(
            "--builder/--model_file",
            f"exactly one model source is needed but {which}",
            "pass either --builder=package.module:function or --model_file=PATH.keras",
        )
    if request.builder:
        parse_symbol_reference(
            "--builder", request.builder, "--builder=my_pkg.models:build_model"
        )
    if (
        not isinstance(request.seed, int)
        or isinstance(request.seed, bool)
        or request.seed < 0
    ):
        raise ExportError(
            "--seed",
            f"'{request.seed}' is not a non-negative integer",
            "pass e.g. --seed=0",
        )
    specs, direct = parse_custom_objects(request.custom_objects)
    modes = parse_modes(request.modes)
    label_specs = parse_label_specs(request.label_specs)
    version = parse_version(request.version, request.workspace_status_file)
    if not request.output_dir:
        raise ExportError(
            "--output_dir", "no output directory was given", "pass --output_dir=DIR"
        )
    output_dir = request.output_dir
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ExportError(
            "--output_dir",
            f"'{output_dir}' exists and is not a directory",
            "point --output_dir at a directory (it may exist already; the version folder is"
            " created inside it)",
        )
    final_dir = os.path.join(output_dir, str(version))
    if os.path.lexists(final_dir):
        raise ExportError(
            "--output_dir",
            f"the version folder '{final_dir}' already exists and is never overwritten",
            "remove it, or pick another --version (e.g. --version=timestamp)",
        )
    if request.manifest_out and os.path.isdir(request.manifest_out):
        raise ExportError(
            "--manifest_out",
            f"'{request.manifest_out}' is a directory",
            "give the path of the JSON file to write",
        )
    source = ModelSource(
        builder=request.builder or None,
        model_file=request.model_file or None,
        weights=request.weights or None,
        custom_objects=specs,
        custom_object_values=direct,
        safe_mode=bool(request.safe_mode),
        seed=request.seed,
    )
    return ResolvedRequest(
        source=source,
        output_dir=output_dir,
        version=version,
        final_dir=final_dir,
        modes=modes,
        label_specs=label_specs,
        as_text=bool(request.as_text),
        verify=bool(request.verify),
        verify_atol=float(request.verify_atol),
        verify_rtol=float(request.verify_rtol),
        manifest_out=request.manifest_out or None,
    )
