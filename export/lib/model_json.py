"""The model's JSON, which the export carries for load_keras_model: written with its
lambdas portable (lambda_code), checked to re-create the model as load_keras_model
does (`checked_model_json`), and read back (`deserialize_model`); and what a Keras
deserialization error says it could not find by name (`missing_name`).
"""

import json
import re
import warnings
from typing import Any

import keras

from export.lib import lambda_code, options
from export.lib.errors import ExportError, describe_exception, setting

# A Keras deserialization error naming a class or function it could not find.
MISSING_CLASS = re.compile(
    r"Could not locate (?:class|function) '([^']+)'|Unknown \w+: '([^']+)'"
)
# Keras re-creates a layer or model as cls(**config); a class whose __init__ takes no
# **kwargs rejects the base config's name/trainable/dtype.
_UNEXPECTED_ARGUMENT = re.compile(
    r"([\w.]+)\.__init__\(\) got an unexpected keyword argument '(\w+)'"
)


def checked_model_json(
    model: keras.Model,
    source: options.ModelSource,
    custom_objects: dict[str, Any],
    notes: list[str],
) -> str:
    """Returns model.to_json() after checking that it can re-create the model.

    load_keras_model depends on that, and a missing get_config() only shows at load time.
    """
    cls = type(model).__name__
    fix = (
        f"implement get_config() in {cls} (and in each custom layer) returning every"
        " __init__ argument as plain Python values, and from_config(cls, config) if __init__"
        " needs objects rebuilt from them"
    )
    try:
        text = model.to_json()
    except Exception as e:  # noqa: BLE001 - NotImplementedError, TypeError...
        # Keras appends a long code example; the fix below says the same in one line.
        cause = (
            describe_exception(e).split(" Please implement")[0].split(" Example:")[0]
        )
        raise ExportError(
            source.setting, f"the model cannot be serialized to JSON: {cause}", fix
        ) from None
    text = lambda_code.portable_lambda_code(text, record_modules=bool(source.builder))
    config = json.loads(text)
    unloadable = _note_unloadable_lambdas(config, notes)
    try:
        # A file was just deserialized by Keras; a builder's model is checked here, when
        # it uses code from outside Keras (Keras tests the round trip of its own classes,
        # and the check costs a large model's load time again: bench/README.md), as
        # load_keras_model re-creates it (lambdas with their modules' globals). A model
        # with a lambda that cannot be re-created was noted above instead.
        if source.builder and not unloadable and uses_code_outside_keras(config):
            lambdas = lambda_code.recreate(config)
            deserialize_model(
                config, custom_objects={**custom_objects, **lambdas}, safe_mode=False
            )
    except lambda_code.LambdaError as e:
        raise ExportError(source.setting, e.cause, e.fix) from None
    except Exception as e:  # noqa: BLE001 - classified below
        missing = missing_name(str(e))
        if missing:
            raise missing_custom_object(
                missing,
                f"the model uses '{missing}', which Keras cannot find by name, so the"
                " exported model JSON could not be loaded again",
            ) from None
        unexpected = _UNEXPECTED_ARGUMENT.search(str(e))
        if unexpected:
            owner, argument = unexpected.groups()
            fix = (
                f"let {owner}.__init__ take **kwargs and pass them on with"
                " super().__init__(**kwargs), since Keras's config of every layer and model"
                " carries name, trainable and dtype; or implement get_config() and"
                f" from_config(cls, config) in {owner.split('.')[-1]}"
            )
            raise ExportError(
                source.setting,
                f"the model cannot be re-created from its own config (as load_keras_model"
                f" does): Keras calls {owner}(**config) and {owner}.__init__() does not"
                f" accept the keyword argument '{argument}'",
                fix,
            ) from None
        raise ExportError(
            source.setting,
            f"the model cannot be re-created from its own config: {describe_exception(e)}",
            fix,
        ) from None
    return text


def deserialize_model(
    config: dict[str, Any], custom_objects: dict[str, Any], safe_mode: bool
) -> keras.Model:
    """keras.saving.deserialize_keras_object for a model's config, compiled as Keras
    compiles it, except that the optimizer's variables are left for when they are first
    needed (restoring its state, or training).

    Keras creates them right away: for Adam, two more copies of the weights, which a
    model re-created to check its config or to serve does not need (bench/README.md).
    """
    compile_config = config.get("compile_config")
    model = keras.saving.deserialize_keras_object(
        {key: value for key, value in config.items() if key != "compile_config"},
        custom_objects=custom_objects,
        safe_mode=safe_mode,
    )
    if not compile_config:
        return model
    cls = type(model)
    if (
        cls.compile is keras.Model.compile
        and cls.compile_from_config is keras.Model.compile_from_config
    ):
        # What keras.Model.compile_from_config does, without building the optimizer.
        model.compile(
            **keras.saving.deserialize_keras_object(
                compile_config, custom_objects=custom_objects, safe_mode=safe_mode
            )
        )
    else:  # the model's own compile: Keras's way (it skips an overridden compile)
        with keras.saving.custom_object_scope(custom_objects):
            model.compile_from_config(compile_config)
    model.compiled = (
        True  # as Keras marks a model it deserialized with a compile config
    )
    return model


def _note_unloadable_lambdas(config: Any, notes: list[str]) -> bool:
    """Notes each lambda that load_keras_model cannot re-create (it uses globals of a
    module no other process can import); True if there is one. Serving, eval and train
    run the model's own functions, so the export goes on."""
    unloadable = False
    for found in lambda_code.find_lambdas(config):
        missing = lambda_code.missing_globals(found)
        if missing:
            unloadable = True
            note = lambda_code.note_for(found, missing)
            notes.append(note)
            warnings.warn(note, stacklevel=2)
    return unloadable


def uses_code_outside_keras(config: Any) -> bool:
    """True when a serialized object in the config (a layer, model, function, loss...)
    is not one of Keras's own: a custom class or function, or a lambda."""
    if isinstance(config, dict):
        module = config.get("module")
        if module is not None and module != "keras" and not module.startswith("keras."):
            return True
        if config.get("class_name") == "__lambda__":
            return True
        return any(uses_code_outside_keras(v) for v in config.values())
    if isinstance(config, list):
        return any(uses_code_outside_keras(v) for v in config)
    return False


def missing_name(text: str) -> str | None:
    """The class or function a Keras deserialization error says it could not find."""
    match = MISSING_CLASS.search(text)
    return (match.group(1) or match.group(2)) if match else None


def missing_custom_object(missing: str, cause: str) -> ExportError:
    return ExportError(
        "custom_objects",
        cause,
        [
            "give ",
            setting("custom_objects", {missing: f"package.module:{missing}"}),
            (
                " (or register the class with @keras.saving.register_keras_serializable()"
                " in a module the builder imports)"
            ),
        ],
    )
