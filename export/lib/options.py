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

from export.lib import settings
from export.lib.errors import ExportError, setting
from export.lib.tensor_specs import LabelSpec, parse_input_specs, parse_label_specs

MODES = ("serve", "eval", "train")

# TF Serving reads at most this many warmup records (export/settings.bzl, which
# rules/private/keras_saved_model.bzl checks the attribute against).
MAX_WARMUP_REQUESTS = settings.MAX_WARMUP_REQUESTS

# The syntax rules/private/symbol_reference.bzl checks too (tests/docs pins the two):
# a dotted name of ASCII identifiers, and a custom-object name as a Keras config gives
# it, `MyLayer` or the registered `my_package>MyLayer`.
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", re.ASCII)
CUSTOM_OBJECT_NAME = re.compile(r"^([\w.\-]+>)?[A-Za-z_]\w*$", re.ASCII)


# The request of one export; its fields are the settings of export/settings.bzl.
ExportRequest = settings.make_request_class()


@dataclasses.dataclass(frozen=True)
class CustomObjectSpec:
    name: str
    module: str
    attr: str


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where the model comes from; also what tests use to rebuild the same model."""

    builder: str | None = None
    src: str | None = None
    weights: str | None = None
    custom_objects: tuple[CustomObjectSpec, ...] = ()
    custom_object_values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    allow_unsafe_deserialization: bool = False
    seed: int = 0
    # Input name -> declared shape and dtype (input_specs): what the model is called on.
    input_specs: Mapping[str, LabelSpec] = dataclasses.field(default_factory=dict)

    @property
    def setting(self) -> str:
        """The setting the model comes from: builder or src."""
        return "builder" if self.builder else "src"

    @property
    def description(self) -> str:
        """Builder string or model file basename: never a path (keeps outputs portable)."""
        return self.builder or os.path.basename(self.src or "")


@dataclasses.dataclass(frozen=True)
class ResolvedRequest:
    """The request as given, and its fields checked and parsed.

    A plain setting (one the exporter uses as it is given) is read from `request`.
    """

    request: Any  # the ExportRequest
    source: ModelSource
    output_dir: str
    version: int
    final_dir: str
    modes: tuple[str, ...] | None
    label_specs: Mapping[str, LabelSpec]
    verify: bool
    verify_atol: float
    verify_rtol: float
    manifest_out: str | None


def parse_symbol_reference(name: str, text: str, example: Any) -> tuple[str, str]:
    """Splits `package.module:attr` (attr may be dotted) into its two halves.

    `name` is the setting it comes from; `example` a value of it written right.
    """
    module, sep, attr = (text or "").partition(":")
    if not sep or not _DOTTED.match(module) or not _DOTTED.match(attr):
        raise ExportError(
            name,
            f"'{text}' is not of the form package.module:symbol",
            [
                "write it like ",
                setting(name, example),
                ", with the module importable from the Python path",
            ],
        )
    return module, attr


_CUSTOM_OBJECT_EXAMPLE = {"MyLayer": "my_pkg.layers:MyLayer"}


def parse_custom_object(text: str) -> CustomObjectSpec:
    name, sep, target = text.partition("=")
    if not sep or not CUSTOM_OBJECT_NAME.match(name):
        raise ExportError(
            "custom_objects",
            f"'{text}' is not of the form NAME=package.module:symbol",
            [
                "write it like ",
                setting("custom_objects", _CUSTOM_OBJECT_EXAMPLE),
                (
                    ", where NAME is the class name the model config uses (or its"
                    " registered name, my_package>MyLayer)"
                ),
            ],
        )
    module, attr = parse_symbol_reference(
        "custom_objects", target, _CUSTOM_OBJECT_EXAMPLE
    )
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
                    "custom_objects",
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
                "custom_objects",
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
    items = [i.strip() if isinstance(i, str) else i for i in items]
    if not [i for i in items if i != ""]:
        return None
    modes = []
    for mode in items:
        if mode not in MODES:
            raise ExportError(
                "modes",
                f"{mode!r} is not a mode",
                [
                    "give a subset of serve, eval and train (",
                    setting("modes", list(MODES)),
                    "), or leave ",
                    setting("modes"),
                    " unset to export every mode the model supports",
                ],
            )
        if mode not in modes:
            modes.append(mode)
    if "serve" not in modes:
        # TF Serving and the manifest need a serving signature; keep it always.
        modes.insert(0, "serve")
    return tuple(m for m in MODES if m in modes)


def read_build_timestamp(path: str) -> int:
    """Reads BUILD_TIMESTAMP from a Bazel workspace status file (`KEY value` lines)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ExportError(
            "workspace_status_file",
            f"cannot read '{path}' ({e.strerror or e})",
            [
                (
                    "pass Bazel's volatile status file (bazel-out/volatile-status.txt), or"
                    " leave "
                ),
                setting("workspace_status_file"),
                " unset to take the timestamp from the clock",
            ],
        ) from None
    for line in lines:
        key, _, value = line.partition(" ")
        if key == "BUILD_TIMESTAMP":
            value = value.strip()
            if value.isdigit():
                return int(value)
            raise ExportError(
                "workspace_status_file",
                f"BUILD_TIMESTAMP in '{path}' is '{value}', not whole seconds since the epoch",
                "pass the volatile status file Bazel writes, unedited",
            )
    raise ExportError(
        "workspace_status_file",
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
        "version",
        f"'{value}' is not a version",
        [
            (
                "give a non-negative integer (TensorFlow Serving orders versions"
                " numerically), or "
            ),
            setting("version", "timestamp"),
            " for the seconds since the epoch",
        ],
    )


def resolve(request: ExportRequest) -> ResolvedRequest:
    """Checks everything that can be checked without TensorFlow; writes nothing."""
    if bool(request.builder) == bool(request.src):
        which = "both were given" if request.builder else "neither was given"
        raise ExportError(
            ("builder", "src"),
            f"exactly one model source is needed but {which}",
            [
                "give either ",
                setting("builder", "my_pkg.models:build_model"),
                " or ",
                setting("src", "model.keras"),
            ],
        )
    if request.builder:
        parse_symbol_reference("builder", request.builder, "my_pkg.models:build_model")
    if (
        not isinstance(request.seed, int)
        or isinstance(request.seed, bool)
        or request.seed < 0
    ):
        raise ExportError(
            "seed",
            f"'{request.seed}' is not a non-negative integer",
            ["give e.g. ", setting("seed", 0)],
        )
    warmup = request.warmup_requests
    if (
        not isinstance(warmup, int)
        or isinstance(warmup, bool)
        or not 0 <= warmup <= MAX_WARMUP_REQUESTS
    ):
        raise ExportError(
            "warmup_requests",
            f"'{warmup}' is not a number of requests from 0 to {MAX_WARMUP_REQUESTS}",
            [
                f"TF Serving reads at most {MAX_WARMUP_REQUESTS} warmup records; give e.g. ",
                setting("warmup_requests", 4),
                ", or 0 for none",
            ],
        )
    specs, direct = parse_custom_objects(request.custom_objects)
    modes = parse_modes(request.modes)
    label_specs = parse_label_specs(request.label_specs)
    input_specs = parse_input_specs(request.input_specs)
    version = parse_version(request.version, request.workspace_status_file)
    if not request.output_dir:
        raise ExportError(
            "output_dir",
            "no output directory was given",
            ["give ", setting("output_dir", "DIR")],
        )
    output_dir = request.output_dir
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ExportError(
            "output_dir",
            f"'{output_dir}' exists and is not a directory",
            [
                "point ",
                setting("output_dir"),
                (
                    " at a directory (it may exist already; the version folder is created"
                    " inside it)"
                ),
            ],
        )
    final_dir = os.path.join(output_dir, str(version))
    if os.path.lexists(final_dir):
        raise ExportError(
            "output_dir",
            f"the version folder '{final_dir}' already exists and is never overwritten",
            [
                "remove it, or pick another ",
                setting("version"),
                " (e.g. ",
                setting("version", "timestamp"),
                ")",
            ],
        )
    if request.manifest_out and os.path.isdir(request.manifest_out):
        raise ExportError(
            "manifest_out",
            f"'{request.manifest_out}' is a directory",
            "give the path of the JSON file to write",
        )
    source = ModelSource(
        builder=request.builder or None,
        src=request.src or None,
        weights=request.weights or None,
        custom_objects=specs,
        custom_object_values=direct,
        allow_unsafe_deserialization=bool(request.allow_unsafe_deserialization),
        seed=request.seed,
        input_specs=input_specs,
    )
    return ResolvedRequest(
        request=request,
        source=source,
        output_dir=output_dir,
        version=version,
        final_dir=final_dir,
        modes=modes,
        label_specs=label_specs,
        verify=bool(request.verify),
        verify_atol=float(request.verify_atol),
        verify_rtol=float(request.verify_rtol),
        manifest_out=request.manifest_out or None,
    )
