"""How a Keras model's (possibly nested) inputs and outputs map to flat, named tensors.

Signatures need flat, named tensors; Keras models take and return lists, dicts or single
tensors. Functional and Sequential models carry their input/output structure and names;
subclassed models only record the shape they were built with, so they are called once on
zeros here to create their variables and learn their outputs (named output_1, output_2...
as Keras 2 did, or by their dict keys).
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from export.lib import errors

# Size used for unknown non-batch dims when a concrete tensor is needed (zeros, random
# verification inputs): big enough for typical convolution strides and pooling.
UNKNOWN_DIM = 32


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

    def pack_inputs(self, flat: Sequence[Any]) -> Any:
        return keras.tree.pack_sequence_as(self.input_struct, list(flat))

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


class InterfaceError(Exception):
    """The model's inputs or outputs cannot be described; carries the cause and a fix."""

    def __init__(self, cause: str, fix: str, details: str | None = None):
        super().__init__(cause)
        self.cause, self.fix, self.details = cause, fix, details


def is_subclassed(model: keras.Model) -> bool:
    """True when the model has no symbolic graph (no Input tensors) to describe it."""
    if isinstance(model, keras.Sequential):
        return False
    return not hasattr(model, "_inputs_struct")


def describe(model: keras.Model) -> ModelInterface:
    """Describes inputs/outputs; calls a subclassed model once (creating its variables)."""
    if is_subclassed(model):
        return _describe_subclassed(model)
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
    return ModelInterface(
        _unique(inputs), _unique(outputs), in_struct, out_struct, subclassed=False
    )


def _describe_subclassed(model: keras.Model) -> ModelInterface:
    build_config = model.get_build_config() or {}
    shapes = build_config.get("input_shape")
    if shapes is None and build_config.get("shapes_dict"):
        raise InterfaceError(
            f"the subclassed model {type(model).__name__} takes several tensor arguments"
            " in call(), which a signature cannot map",
            "make call() take one tensor, or one list or dict of tensors",
        )
    if shapes is None:
        raise InterfaceError(
            f"the subclassed model {type(model).__name__} records no input shape",
            "build it in the builder with model.build(input_shape) or by calling it once on a"
            " batch, so the exporter knows its input shape",
        )
    dtype = str(getattr(model, "input_dtype", None) or "float32")
    if _is_shape(shapes):
        struct: Any = 0
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
            f"the subclassed model {type(model).__name__} was built with input shape"
            f" {shapes!r}, which is not a shape, a list of shapes or a dict of shapes",
            "make call() take a single tensor, a list or a dict of tensors",
        )
    zeros = [tf.constant(z) for z in zeros_for(inputs)]
    try:
        # Creates the variables (build() alone may not) and reveals the outputs.
        out_struct = model(keras.tree.pack_sequence_as(struct, zeros), training=False)
    except Exception as e:  # noqa: BLE001 - user code: report whatever it raised
        raise InterfaceError(
            f"calling the subclassed model {type(model).__name__} on zeros shaped like its"
            f" recorded input shape {shapes!r} failed ({errors.describe(e)})",
            "make call() accept one tensor, a list or a dict of tensors of that shape",
            errors.format_traceback(e),
        ) from None
    outputs = _descs(
        out_struct,
        lambda i, t: f"output_{i + 1}",
        shape_of=lambda t: _batch_polymorphic(t.shape),
    )
    return ModelInterface(
        _unique(inputs), _unique(outputs), struct, out_struct, subclassed=True
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


def concrete_shape(shape: Sequence[int | None], batch: int) -> tuple[int, ...]:
    if not shape:
        return ()
    return (batch,) + tuple(UNKNOWN_DIM if d is None else d for d in shape[1:])


def zeros_for(descs: Sequence[TensorDesc], batch: int = 1) -> list[np.ndarray]:
    arrays = []
    for desc in descs:
        shape = concrete_shape(desc.shape, batch)
        if desc.dtype == "string":
            arrays.append(np.full(shape, b"", dtype=object))
        else:
            arrays.append(np.zeros(shape, dtype=tf.as_dtype(desc.dtype).as_numpy_dtype))
    return arrays


def random_for(
    descs: Sequence[TensorDesc], seed: int, batch: int = 2
) -> list[np.ndarray]:
    """Seeded inputs: normal floats, small non-negative ints (safe for Embedding)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for desc in descs:
        shape = concrete_shape(desc.shape, batch)
        dtype = tf.as_dtype(desc.dtype)
        if dtype.is_floating:
            arrays.append(rng.standard_normal(shape).astype(dtype.as_numpy_dtype))
        elif dtype.is_bool:
            arrays.append(rng.integers(0, 2, shape).astype(bool))
        elif dtype.is_integer:
            arrays.append(rng.integers(0, 2, shape).astype(dtype.as_numpy_dtype))
        else:
            arrays.append(np.full(shape, b"", dtype=object))
    return arrays


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
