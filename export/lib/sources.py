"""Getting the model to export: builder or model file, weights, custom objects, checks.

Every check here turns a bad input into an ExportError naming the setting, the cause and the
fix, before anything is written. The model is built after `keras.backend.clear_session()`
and `keras.utils.set_random_seed(seed)` so the same inputs give the same weights and
layer names in every fresh process.
"""

import dataclasses
import importlib
import os
import warnings
import zipfile
from typing import Any

import keras
import numpy as np

from export.lib import interface, options
from export.lib.errors import (
    ExportError,
    describe_exception,
    format_traceback,
    setting,
)
from export.lib.model_json import (
    MISSING_CLASS,
    checked_model_json,
    missing_custom_object,
    missing_name,
)


@dataclasses.dataclass
class LoadedModel:
    model: keras.Model
    interface: interface.ModelInterface
    model_json: str
    custom_objects: dict[str, Any]
    warnings: list[str]


def import_symbol(name: str, module_name: str, attr: str, text: str) -> Any:
    """Imports `module_name` and returns its (possibly dotted) attribute `attr`.

    `name` is the setting `text` comes from (builder or custom_objects)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise ExportError(
                name,
                f"cannot import module '{module_name}' of '{text}' ({describe_exception(e)})",
                "check the spelling and that the module is on the Python path (under Bazel: a"
                " py_library in the rule's deps)",
            ) from None
        raise ExportError(
            name,
            f"importing module '{module_name}' of '{text}' failed because it imports a module"
            f" that is missing ({describe_exception(e)})",
            "make that dependency available (under Bazel: add it to the deps); traceback below",
            format_traceback(e),
        ) from None
    except Exception as e:  # noqa: BLE001 - user code: report whatever it raised
        raise ExportError(
            name,
            f"importing module '{module_name}' of '{text}' raised {describe_exception(e)}",
            "fix the error in that module (traceback below)",
            format_traceback(e),
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ExportError(
                name,
                f"module '{module_name}' has no attribute '{attr}' (from '{text}')",
                f"check the name after the colon; '{module_name}' is {module.__file__}",
            )
        obj = getattr(obj, part)
    return obj


def load_custom_objects(source: options.ModelSource) -> dict[str, Any]:
    objects = dict(source.custom_object_values)
    for spec in source.custom_objects:
        text = f"{spec.name}={spec.module}:{spec.attr}"
        objects[spec.name] = import_symbol(
            "custom_objects", spec.module, spec.attr, text
        )
    return objects


def load_model(source: options.ModelSource) -> LoadedModel:
    """Builds or loads the model, applies weights and runs every input check."""
    custom_objects = load_custom_objects(source)
    # Fresh Keras name counters and RNG state: same inputs, same layer names and weights.
    keras.backend.clear_session()
    keras.utils.set_random_seed(source.seed)
    notes: list[str] = []
    if source.builder:
        model = _from_builder(source, custom_objects)
    else:
        model = _from_file(source, custom_objects, notes)
    if type(model).call is keras.Model.call:
        name = type(model).__name__
        raise ExportError(
            source.setting,
            f"the model class {name} defines no call(), so nothing can serve it (Keras's"
            " fit runs its train_step, which calls the model's parts instead, but every"
            " signature calls the model)",
            f"add call(self, inputs) to {name}, returning what serving should return"
            " (for a VAE, the decoder's reconstruction of the encoder's z_mean), or export"
            " its parts (such as the encoder and decoder) as models of their own",
        )
    if not model.built:
        raise ExportError(
            source.setting,
            f"the model '{model.name}' ({type(model).__name__}) was never built, so its input"
            " shape is unknown",
            "start it with keras.Input(shape=...) (functional or Sequential), or call"
            " model.build(input_shape) or the model itself on a batch in the builder",
        )
    try:
        model_interface = interface.describe_model(model, source.input_specs)
    except interface.InterfaceError as e:
        at_fault = tuple(
            source.setting if name == interface.SOURCE else name for name in e.settings
        )
        raise ExportError(
            at_fault[0] if len(at_fault) == 1 else at_fault, e.cause, e.fix, e.details
        ) from None
    if source.weights:
        _load_weights(model, source)
    _check_finite(model, source)
    model_json = checked_model_json(model, source, custom_objects, notes)
    return LoadedModel(model, model_interface, model_json, custom_objects, notes)


def _from_builder(
    source: options.ModelSource, custom_objects: dict[str, Any]
) -> keras.Model:
    module_name, attr = options.parse_symbol_reference(
        "builder", source.builder, "my_pkg.models:build_model"
    )
    builder = import_symbol("builder", module_name, attr, source.builder)
    if not callable(builder):
        raise ExportError(
            "builder",
            f"'{source.builder}' is a value of type {type(builder).__name__}, not a function",
            [
                "point ",
                setting("builder"),
                " at a function that takes no arguments and returns a keras.Model",
            ],
        )
    try:
        with keras.saving.custom_object_scope(custom_objects):
            model = builder()
    except Exception as e:  # noqa: BLE001 - user code: report whatever it raised
        raise ExportError(
            "builder",
            f"the builder '{source.builder}' raised {describe_exception(e)}",
            "fix the builder (its traceback follows); it is called with no arguments",
            format_traceback(e),
        ) from None
    if not isinstance(model, keras.Model):
        raise ExportError(
            "builder",
            f"the builder '{source.builder}' returned {type(model).__module__}."
            f"{type(model).__qualname__}, not a keras.Model",
            "return a Keras 3 keras.Model (functional, Sequential or subclassed); wrap a layer"
            " as keras.Sequential([keras.Input(shape), layer])",
        )
    return model


def _from_file(
    source: options.ModelSource, custom_objects: dict[str, Any], notes: list[str]
) -> keras.Model:
    path = source.src
    name = os.path.basename(path.rstrip("/"))
    lower = name.lower()
    if os.path.isdir(path):
        what = (
            "a SavedModel directory"
            if os.path.exists(os.path.join(path, "saved_model.pb"))
            else "a directory"
        )
        raise ExportError(
            "src",
            f"'{path}' is {what}; Keras 3 loads only .keras files (and legacy .h5)",
            [
                (
                    "save the model with model.save('model.keras'), or export from its code"
                    " with "
                ),
                setting("builder"),
            ],
        )
    if not os.path.isfile(path):
        raise ExportError(
            "src",
            f"'{path}' does not exist",
            ["check the path given to ", setting("src")],
        )
    if lower.endswith(".weights.h5"):
        raise ExportError(
            "src",
            f"'{name}' holds weights only, no architecture",
            [
                "give it as ",
                setting("weights"),
                " together with a ",
                setting("builder"),
                " that builds the architecture",
            ],
        )
    legacy = lower.endswith((".h5", ".hdf5"))
    if not legacy and not lower.endswith(".keras"):
        raise ExportError(
            "src",
            f"'{name}' has an unknown extension",
            "give a .keras file (model.save('model.keras')); legacy .h5 is accepted on a best"
            " effort basis",
        )
    if not legacy and not zipfile.is_zipfile(path):
        raise ExportError(
            "src",
            f"'{name}' is not a valid .keras file (not a zip archive; truncated or corrupt?)",
            "re-save the model with model.save('model.keras')",
        )
    try:
        return keras.saving.load_model(
            path,
            custom_objects=custom_objects,
            compile=True,
            safe_mode=not source.allow_unsafe_deserialization,
        )
    except Exception as e:  # noqa: BLE001 - classified below
        error = _file_error(e, name, source, legacy)
        if not legacy or _is_refusal(e):
            raise error from None
    # Legacy .h5 often fails only on its training config (e.g. a loss given as "mse"):
    # load the architecture and weights alone rather than fail.
    try:
        model = keras.saving.load_model(
            path,
            custom_objects=custom_objects,
            compile=False,
            safe_mode=not source.allow_unsafe_deserialization,
        )
    except Exception as e:  # noqa: BLE001
        raise _file_error(e, name, source, legacy) from None
    note = (
        f"src: '{name}' loaded without its training config (legacy .h5 compile"
        f" failed: {error.cause}); eval and train are unavailable"
    )
    notes.append(note)
    warnings.warn(note, stacklevel=2)
    return model


def _is_refusal(e: Exception) -> bool:
    text = str(e)
    return "safe_mode" in text or bool(MISSING_CLASS.search(text))


def _file_error(
    e: Exception, name: str, source: options.ModelSource, legacy: bool
) -> ExportError:
    text = str(e)
    if "safe_mode" in text:
        return ExportError(
            "allow_unsafe_deserialization",
            f"'{name}' contains Python code (a Lambda layer or function), which runs when"
            " loaded; Keras's safe mode refuses it",
            [
                "if you trust the file, set ",
                setting("allow_unsafe_deserialization", True),
                "; better, replace the Lambda by a custom layer class and give it in ",
                setting("custom_objects"),
            ],
        )
    missing = missing_name(text)
    if missing:
        return missing_custom_object(
            missing,
            f"'{name}' uses '{missing}', which is neither built into Keras nor given as a"
            " custom object",
        )
    if isinstance(e, (OSError, zipfile.BadZipFile, EOFError)):
        return ExportError(
            "src",
            f"'{name}' cannot be read ({describe_exception(e)}); it is corrupt or not a Keras file",
            "re-save the model with model.save('model.keras')",
        )
    kind = "legacy .h5 file (best effort)" if legacy else ".keras file"
    return ExportError(
        "src",
        f"loading the {kind} '{name}' failed: {describe_exception(e)}",
        [
            "re-save the model with Keras 3 as .keras, or export from its code with ",
            setting("builder"),
        ],
    )


def _load_weights(model: keras.Model, source: options.ModelSource) -> None:
    path = source.weights
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise ExportError(
            "weights",
            f"'{path}' does not exist",
            ["check the path given to ", setting("weights")],
        )
    if not name.lower().endswith((".weights.h5", ".h5", ".keras")):
        raise ExportError(
            "weights",
            f"'{name}' is not a Keras weights file",
            "give a file written by model.save_weights('name.weights.h5')",
        )
    try:
        model.load_weights(path)
    except OSError as e:
        raise ExportError(
            "weights",
            f"'{name}' cannot be read ({describe_exception(e)}); it is corrupt or not an HDF5 file",
            "re-save it with model.save_weights('name.weights.h5')",
        ) from None
    except Exception as e:  # noqa: BLE001 - Keras raises ValueError and others
        # Keras appends the variable's whole value; the shapes before it say enough.
        cause = describe_exception(e).split(" Target variable:")[0]
        raise ExportError(
            "weights",
            f"the weights in '{name}' do not fit the model '{model.name}': {cause}",
            [
                "give weights saved from the same architecture as ",
                setting(source.setting),
                " makes (same layers in the same order, same shapes)",
            ],
        ) from None


def _check_finite(model: keras.Model, source: options.ModelSource) -> None:
    bad = []
    for variable in model.variables:
        value = np.asarray(variable.numpy())
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            bad.append(variable.path)
    if bad:
        name = "weights" if source.weights else source.setting
        shown = ", ".join(bad[:5]) + (
            f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        )
        raise ExportError(
            name,
            f"the model's weights contain NaN or Inf in {shown}",
            "export weights from a healthy training run (check the learning rate and the data,"
            " or pick an earlier checkpoint)",
        )
