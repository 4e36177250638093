"""The PyPI packages the exporter runs on: a required core, and optional features.

The core (TensorFlow, Keras, absl) is all that the exporter, the TFLite converter and
the test programs import to start. A feature that needs more is listed in
OPTIONAL_FEATURES and imports its package only when a target asks for it, through
`require` (or `import_module`), which turns a missing package into one paragraph
naming the target's attribute, the package and the line to add to the user's library.
docs/rules.md ("Optional features") lists the same table (//tests/export:test_packages
pins the two together, and checks that no program imports an optional package to
start).

Adding a feature: its row below (a format's, beside its settings table: export/
formats.bzl's `optional_features`), `packages.import_module(FEATURE, "module")` (or
`packages.require(FEATURE)` before a plain import) where the code first needs the
package, never an import at the top of a module; its row in docs/rules.md; its package
in requirements.in, so that rules_keras's own venv keeps it.

No import here but the standard library and `settings` (which imports only the
standard library): the persistent worker names a missing core package with it when it
cannot start.
"""

import dataclasses
import importlib
import types
from collections.abc import Mapping
from typing import Any

from export.lib import settings

# Import name -> the PyPI package that provides it. tensorflow-cpu or tensorflow.
CORE_PACKAGES = {
    "tensorflow": "tensorflow-cpu",
    "keras": "keras",
    "absl": "absl-py",
}

# The Bazel flag that points the exporter at the user's own library (export/BUILD).
LIBRARY_FLAG = "--@rules_keras//export:tensorflow"


# OptionalFeature.off_value when the setting's default asks for nothing.
_DEFAULT = object()


@dataclasses.dataclass(frozen=True)
class OptionalFeature:
    """What a feature does, the setting that asks for it and the package it needs."""

    # What the feature does, as the error's subject: "writing TF Serving warmup
    # records".
    what: str
    # The setting (of any format's table) whose value asks for it.
    setting: str
    # The PyPI package (one of requirements.in's lines).
    package: str
    # The module the feature imports: what `require` checks.
    module: str
    # The setting's value that asks for nothing (the error suggests it), or None for a
    # feature a whole rule needs: its setting's default, if left out.
    off_value: Any = dataclasses.field(default=_DEFAULT)

    @property
    def bazel_name(self) -> str:
        """The package's name in rules_python's labels (`@pypi//tensorflow_serving_api`)."""
        return self.package.replace("-", "_").replace(".", "_").lower()


WARMUP_RECORDS = "warmup_records"

OPTIONAL_FEATURES: Mapping[str, OptionalFeature] = {
    WARMUP_RECORDS: OptionalFeature(
        what="writing or reading TF Serving warmup records",
        setting="warmup_requests",
        package="tensorflow-serving-api",
        module="tensorflow_serving.apis.prediction_log_pb2",
    ),
    # Each format's own (formats/<format>/settings.bzl, export/formats.bzl's
    # optional_features).
    **{name: OptionalFeature(**row) for name, row in settings.FORMAT_FEATURES.items()},
}


def import_module(feature: str, module: str) -> types.ModuleType:
    """Imports `module` of the optional `feature`'s package, or raises the ExportError
    that names the feature's setting, its package and the line to add."""
    require(feature)
    return importlib.import_module(module)


def require(feature: str) -> None:
    """Raises the feature's ExportError unless its package can be imported."""
    wanted = OPTIONAL_FEATURES[feature]
    try:
        importlib.import_module(wanted.module)
    except ImportError as e:
        raise missing_package_error(wanted, e) from e


def require_requested(request: Any) -> None:
    """Checks, before any work, the package of every feature that `request` (an
    ExportRequest) asks for: those whose setting it sets (to a true value)."""
    for name, feature in OPTIONAL_FEATURES.items():
        if getattr(request, feature.setting, None):
            require(name)


def missing_package_error(feature: OptionalFeature, cause: ImportError):
    # Imported here: this module imports only the standard library (see above).
    from export.lib.errors import ExportError, setting

    fix = [
        (
            f"add {feature.package} to your lock and"
            f' requirement("{feature.package}") (bzlmod:'
            f' "@pypi//{feature.bazel_name}") to the deps of the py_library that'
            f" {LIBRARY_FLAG} points at (docs/rules.md, Optional features)"
        )
    ]
    off = _off_value(feature)
    if off is not None:
        fix += [", or set ", setting(feature.setting, off)]
    return ExportError(
        feature.setting,
        (
            f"{feature.what} needs the PyPI package {feature.package}, which the"
            f" exporter's Python cannot import ({type(cause).__name__}: {cause})"
        ),
        fix,
    )


def _off_value(feature: OptionalFeature) -> Any:
    """The value of the feature's setting that asks for nothing, or None."""
    if feature.off_value is not _DEFAULT:
        return feature.off_value
    return settings.get(feature.setting).default


def missing_core_hint(error: BaseException) -> str | None:
    """For an ImportError of a core package: which packages the exporter needs and
    where they come from; else None."""
    name = getattr(error, "name", None) or ""
    if not isinstance(error, ImportError) or name.split(".")[0] not in CORE_PACKAGES:
        return None
    needed = ", ".join(CORE_PACKAGES.values())
    return (
        f"The exporter's Python has no '{name}'. rules_keras runs on {needed}: from"
        " the registered Python toolchain (rules_keras_dependencies() installs them),"
        f" or, with a toolchain of your own, from the py_library that {LIBRARY_FLAG}"
        " points at (docs/rules.md, Where TensorFlow comes from)."
    )
