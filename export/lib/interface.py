"""How a Keras model's (possibly nested) inputs and outputs map to flat, named tensors.

Signatures need flat, named tensors; Keras models take and return lists, dicts or single
tensors. Functional and Sequential models carry their input/output structure and names;
subclassed models only record the shape they were built with, so they are called once on
zeros here to create their variables and learn their outputs (named output_1, output_2...
as Keras 2 did, or by their dict keys). What their sample inputs hold (vocabularies,
the size of unknown dimensions) is found on the way: sample_inputs.SampleValues.
"""

import contextlib
import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf

from export.lib import errors, sample_inputs
from export.lib.errors import setting
from export.lib.sample_inputs import SampleValues


@dataclasses.dataclass(frozen=True)
class TensorDesc:
    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def spec(self, name: str | None = None) -> tf.TensorSpec:
        return tf.TensorSpec(
            self.shape, tf.as_dtype(self.dtype), name=name or self.name
        )


@dataclasses.dataclass(frozen=True)
class ModelInterface:
    """Flat named inputs/outputs plus the structures to pack them into for the model."""

    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]
    input_struct: Any
    output_struct: Any
    subclassed: bool
    samples: SampleValues = dataclasses.field(default_factory=SampleValues)
    # call() takes the inputs as separate arguments (`call(self, x, y)`): input_struct
    # is a tuple of them, and the model is called as model(x, y).
    separate_arguments: bool = False

    def pack_inputs(self, flat: Sequence[Any]) -> Any:
        return keras.tree.pack_sequence_as(self.input_struct, list(flat))

    def call(self, model: keras.Model, x: Any, training: bool = False) -> Any:
        """Calls the model on inputs packed by pack_inputs, as Keras users call it."""
        if self.separate_arguments:
            return model(*x, training=training)
        return model(x, training=training)

    def pack_targets(self, flat: Sequence[Any]) -> Any:
        # Targets mirror the model's output structure so compiled losses line up.
        return keras.tree.pack_sequence_as(self.output_struct, list(flat))

    def name_outputs(self, outputs: Any) -> dict[str, Any]:
        flat = keras.tree.flatten(outputs)
        if len(flat) != len(self.outputs):
            raise ValueError(
                f"model returned {len(flat)} tensors, expected {len(self.outputs)}"
            )
        return {
            desc.name: value for desc, value in zip(self.outputs, flat, strict=True)
        }


# Stands for the setting the model comes from (builder or src) in InterfaceError.
SOURCE = "source"


class InterfaceError(Exception):
    """The model's inputs or outputs cannot be described; carries the cause and a fix.

    `settings` are the settings at fault: SOURCE (the model's builder or src), and
    input_specs where declaring the inputs is the fix.
    """

    def __init__(
        self,
        cause: str,
        fix: Any,
        details: str | None = None,
        settings: tuple[str, ...] = (SOURCE,),
    ):
        super().__init__(cause)
        self.cause, self.fix, self.details = cause, fix, details
        self.settings = settings


def is_subclassed(model: keras.Model) -> bool:
    """True when the model has no symbolic graph (no Input tensors) to describe it."""
    if isinstance(model, keras.Sequential):
        return False
    return not hasattr(model, "_inputs_struct")


def describe_model(
    model: keras.Model, input_specs: Mapping[str, Any] | None = None
) -> ModelInterface:
    """Describes inputs/outputs; calls a subclassed model once (creating its variables).

    input_specs: input name -> declared shape and dtype (tensor_specs.LabelSpec), which a
    subclassed model does not record; checked against what the model does record.

    Calling the model advances its seed generators (a VAE's sampling layer) and other
    non-trainable state: what existed before is put back, so the export holds the
    state the builder left."""
    kept = [(v, v.numpy()) for v in tf_variables(model.non_trainable_variables)]
    try:
        return _describe(model, dict(input_specs or {}))
    finally:
        for variable, value in kept:
            variable.assign(value)


def _describe(model: keras.Model, declared: dict) -> ModelInterface:
    if is_subclassed(model):
        return _describe_subclassed(model, declared)
    if isinstance(model, keras.Sequential):
        in_struct, out_struct = model.inputs[0], model.outputs[0]
        out_names = [model.layers[-1].name]
    else:
        in_struct, out_struct = model._inputs_struct, model._outputs_struct
        out_names = list(getattr(model, "output_names", []) or [])
    inputs = _descs(in_struct, lambda i, t: _input_layer_name(t) or f"input_{i + 1}")
    fallback = (
        out_names if len(out_names) == len(keras.tree.flatten(out_struct)) else []
    )
    outputs = _descs(
        out_struct, lambda i, t: fallback[i] if fallback else f"output_{i + 1}"
    )
    inputs = _declared(model, _unique(inputs), declared, dtypes_known=True)
    samples = sample_inputs.graph_sample_values(model, in_struct, inputs)
    if sample_inputs.has_unknown_dims(inputs):
        # A model that accepts no size fails later, when tracing says more about why.
        with contextlib.suppress(Exception):
            _, samples = sample_inputs.call_on_samples(
                model, in_struct, inputs, samples
            )
    return ModelInterface(
        inputs, _unique(outputs), in_struct, out_struct, False, samples
    )


def _describe_subclassed(
    model: keras.Model, declared: Mapping[str, Any]
) -> ModelInterface:
    name = type(model).__name__
    build_config = model.get_build_config() or {}
    shapes = build_config.get("input_shape")
    dtype = str(getattr(model, "input_dtype", None) or "float32")
    arguments = _tensor_arguments(model)
    separate = len(arguments) > 1
    if separate:
        struct: Any = tuple(range(len(arguments)))
        inputs = _argument_descs(model, arguments, build_config, declared, dtype)
    elif shapes is None and build_config.get("shapes_dict"):
        raise InterfaceError(
            f"the subclassed model {name} was built through build() with the shapes of"
            f" {', '.join(build_config['shapes_dict'])}, but its call() takes one tensor",
            "make call() take one tensor, one list or dict of tensors, or each tensor as"
            " an argument of its own, with build() taking their shapes",
        )
    elif shapes is None:
        raise InterfaceError(
            f"the subclassed model {name} records no input shape",
            "build it in the builder with model.build(input_shape) or by calling it once on a"
            " batch, so the exporter knows its input shape",
        )
    elif _is_shape(shapes):
        struct = 0
        inputs = (TensorDesc("input_1", _batch_polymorphic(shapes), dtype),)
    elif isinstance(shapes, dict):
        keys = list(keras.tree.flatten({k: k for k in shapes}))
        struct = {k: i for i, k in enumerate(keys)}
        inputs = tuple(
            TensorDesc(k, _batch_polymorphic(shapes[k]), dtype) for k in keys
        )
    elif isinstance(shapes, (list, tuple)) and all(_is_shape(s) for s in shapes):
        struct = list(range(len(shapes)))
        inputs = tuple(
            TensorDesc(f"input_{i + 1}", _batch_polymorphic(s), dtype)
            for i, s in enumerate(shapes)
        )
    else:
        raise InterfaceError(
            f"the subclassed model {name} was built with input shape"
            f" {shapes!r}, which is not a shape, a list of shapes or a dict of shapes",
            "make call() take a single tensor, a list or a dict of tensors",
        )
    guessed = [d for d in inputs if d.name not in declared]
    inputs = _declared(model, _unique(inputs), declared, dtypes_known=False)
    samples = sample_inputs.layer_sample_values(model, inputs)
    try:
        # Creates the variables (build() alone may not) and reveals the outputs.
        out_struct, samples = sample_inputs.call_on_samples(
            model, struct, inputs, samples, separate
        )
    except Exception as e:  # noqa: BLE001 - user code: report whatever it raised
        raise _call_error(model, inputs, guessed, e) from None
    outputs = _descs(
        out_struct,
        lambda i, t: f"output_{i + 1}",
        shape_of=lambda t: _batch_polymorphic(t.shape),
    )
    return ModelInterface(
        inputs,
        _unique(outputs),
        struct,
        out_struct,
        True,
        samples,
        separate_arguments=separate,
    )


def _tensor_arguments(model: keras.Model) -> tuple[str, ...]:
    """The names of the arguments call() requires (`call(self, x, y)`: x and y), which
    Keras's own export passes positionally; `training` and `mask` are Keras's."""
    try:
        parameters = inspect.signature(model.call).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
        and p.name not in ("training", "mask")
    )


def _argument_descs(model, arguments, build_config, declared, dtype):
    """The inputs of a call() taking several tensors: shapes from build()'s record
    (`x_shape`, `y_shape`: Keras's own names for them) or, for the first argument
    alone, Keras's default build; the others must be declared."""
    shapes_dict = build_config.get("shapes_dict") or {}
    recorded = {a: shapes_dict.get(f"{a}_shape") for a in arguments}
    if not shapes_dict and build_config.get("input_shape") is not None:
        recorded[arguments[0]] = build_config["input_shape"]
    missing = [a for a in arguments if recorded[a] is None and a not in declared]
    if missing:
        known = [a for a in arguments if recorded[a] is not None]
        raise InterfaceError(
            f"the subclassed model {type(model).__name__} takes {', '.join(arguments)} in"
            " call(), but Keras recorded the shape of"
            f" {' and '.join(known) + ' alone' if known else 'none of them'} (its default"
            " build() records the first argument's only)",
            [
                "declare the shape and dtype of each, e.g. ",
                setting("input_specs", {a: "None,8:float32" for a in missing}),
                (
                    ", or give the model a build() taking the shape of each,"
                    f" build(self, {', '.join(a + '_shape' for a in arguments)})"
                ),
            ],
            settings=(SOURCE, "input_specs"),
        )
    descs = []
    for argument in arguments:
        shape = recorded[argument]
        if shape is not None and not _is_shape(shape):
            raise InterfaceError(
                f"the subclassed model {type(model).__name__} takes a nested structure"
                f" as the argument {argument} of call(), which a signature cannot map",
                "make each argument of call() one tensor, or take one list or dict of"
                " tensors",
            )
        shape = _batch_polymorphic(shape) if shape is not None else None
        descs.append(TensorDesc(argument, shape, dtype))
    return tuple(descs)


def _declared(model, inputs, declared, dtypes_known: bool) -> tuple[TensorDesc, ...]:
    """`inputs` with the shapes and dtypes of input_specs, which must name inputs of
    the model and agree with the shapes it records (and dtypes, where it has them)."""
    names = [d.name for d in inputs]
    unknown = sorted(set(declared) - set(names))
    model_name = f"{type(model).__name__} '{model.name}'"
    if unknown:
        raise InterfaceError(
            f"{', '.join(unknown)} is not an input of the model {model_name} (its"
            f" inputs, as the serving signature names them: {', '.join(names)})",
            [
                "name each input spec after one of those inputs, e.g. ",
                setting("input_specs", {names[0]: _spec_text(declared[unknown[0]])}),
            ],
            settings=("input_specs",),
        )
    result = []
    for desc in inputs:
        spec = declared.get(desc.name)
        if spec is None:
            result.append(desc)
            continue
        agrees = desc.shape is None or (
            len(spec.shape) == len(desc.shape)
            and all(
                a is None or b is None or a == b
                for a, b in zip(spec.shape, desc.shape, strict=True)
            )
        )
        if dtypes_known and spec.dtype != desc.dtype:
            agrees = False
        if not agrees:
            told = desc if dtypes_known else dataclasses.replace(desc, dtype=spec.dtype)
            recorded = "takes" if dtypes_known else "was called on the shape"
            what = (
                f"{_shape_text(desc.shape)}:{desc.dtype}"
                if dtypes_known
                else (_shape_text(desc.shape))
            )
            raise InterfaceError(
                f"the input spec '{_shape_text(spec.shape)}:{spec.dtype}' of"
                f" '{desc.name}' contradicts the model {model_name}, which {recorded}"
                f" {what} there",
                [
                    "declare what the model takes (None for a size that varies), e.g. ",
                    setting("input_specs", {desc.name: _spec_text(told)}),
                    ", or leave the input out of ",
                    setting("input_specs"),
                ],
                settings=("input_specs",),
            )
        result.append(TensorDesc(desc.name, tuple(spec.shape), spec.dtype))
    return tuple(result)


def _shape_text(shape) -> str:
    """A shape as input_specs and label_specs spell it: `None,16`."""
    return ",".join("None" if d is None else str(d) for d in shape)


def _spec_text(spec) -> str:
    """A TensorDesc or LabelSpec as input_specs spells it: `None,16:float32`."""
    return f"{_shape_text(spec.shape)}:{spec.dtype}"


def _call_error(model, inputs, guessed, error) -> InterfaceError:
    """Why calling a subclassed model on sample inputs failed: on guessed float inputs,
    most likely their dtype (strings, ids), which input_specs declares."""
    name = type(model).__name__
    shown = ", ".join(f"{d.name} {_shape_text(d.shape)}:{d.dtype}" for d in inputs)
    cause = errors.describe_exception(error)
    details = errors.format_traceback(error)
    if guessed:
        example = {d.name: f"{_shape_text(d.shape)}:string" for d in guessed[:1]}
        return InterfaceError(
            f"calling the subclassed model {name} on zeros shaped like its recorded"
            f" inputs ({shown}) failed ({cause}); Keras records a subclassed model's"
            " input shapes but not their dtypes, so the exporter took them as"
            f" {guessed[0].dtype}, which they may not be",
            [
                "declare each input's shape and dtype, e.g. ",
                setting("input_specs", example),
                (
                    " for a text input; or, if they are float, make call() accept a"
                    " batch of that shape"
                ),
            ],
            details,
            settings=(SOURCE, "input_specs"),
        )
    return InterfaceError(
        f"calling the subclassed model {name} on sample inputs of its input specs"
        f" ({shown}) failed ({cause})",
        [
            "declare in ",
            setting("input_specs"),
            " the shapes and dtypes call() takes, or make call() accept them",
        ],
        details,
        settings=(SOURCE, "input_specs"),
    )


def _descs(struct, default_name, shape_of=None) -> tuple[TensorDesc, ...]:
    result = []
    for i, (path, leaf) in enumerate(keras.tree.flatten_with_path(struct)):
        # Dict structures name their tensors by key; others by layer or position.
        name = path[-1] if path and isinstance(path[-1], str) else default_name(i, leaf)
        shape = shape_of(leaf) if shape_of else tuple(leaf.shape)
        result.append(TensorDesc(str(name), tuple(shape), _dtype_name(leaf.dtype)))
    return tuple(result)


def _input_layer_name(tensor) -> str | None:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return getattr(operation, "name", None)


def _unique(descs: tuple[TensorDesc, ...]) -> tuple[TensorDesc, ...]:
    seen: dict[str, int] = {}
    result = []
    for desc in descs:
        name = desc.name
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        result.append(dataclasses.replace(desc, name=name))
    return tuple(result)


def _is_shape(value) -> bool:
    return isinstance(value, (list, tuple)) and all(
        d is None or isinstance(d, int) for d in value
    )


def _batch_polymorphic(shape) -> tuple[int | None, ...]:
    dims = tuple(None if d is None else int(d) for d in shape)
    return (None,) + dims[1:] if dims else dims


def _dtype_name(dtype) -> str:
    return tf.as_dtype(dtype).name


def tf_variables(variables) -> list[tf.Variable]:
    """Underlying tf.Variables of Keras variables, in the given order, without duplicates.

    Tracking these (not the Keras wrappers) keeps checkpoint keys simple and lets TF1-style
    loaders such as `saved_model_cli run` find every variable.
    """
    result, seen = [], set()
    for variable in variables:
        value = variable if isinstance(variable, tf.Variable) else variable.value
        if not isinstance(value, tf.Variable):
            raise TypeError(f"{variable!r} is not backed by a tf.Variable")
        if id(value) not in seen:
            seen.add(id(value))
            result.append(value)
    return result
