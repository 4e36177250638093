"""The labels eval and train take: one `<output>_target` per model output, its shape
and dtype stated by label_specs or guessed from the output and its loss, the other
forms Keras's losses take as well, and sample values of them.

Nothing here runs a step: label_probes tries these on the model, label_checks checks
them inside the signatures.
"""

import dataclasses
from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from export.lib import interface, options
from export.lib.errors import ExportError

TARGET_SUFFIX = "_target"


@dataclasses.dataclass(frozen=True)
class Label:
    """The `<output>_target` input of eval and train.

    `desc` is the form the model's steps are traced with (the shape Keras's loss sees).
    `shapes` are the shapes a client may send, `desc.shape` first; a second one differs
    by a trailing dimension of 1 (labels (n,) for an output (n, 1); sparse class ids
    (n, 1) as well as (n,)), and is taken only where the model's own steps give the
    same logs for both (see other_form). A loaded signature does not check the shapes
    it is fed, and TensorFlow may fold away a check against a declared shape, so the
    signature declares the label with unknown rank; the function checks its shape (the
    batch is the inputs') before anything runs, fails naming the label otherwise, and
    reshapes it to `desc.shape`.

    `open_dims` hold, for a dimension the label leaves open (a sequence length), the
    input dimension the model's output follows there: (label dim, input index, input
    dim). That size is checked too, as labels one step short would broadcast.
    """

    desc: interface.TensorDesc
    shapes: tuple[tuple[int | None, ...], ...]
    open_dims: tuple[tuple[int, int, int], ...] = ()

    @property
    def name(self) -> str:
        return self.desc.name

    def spec(self) -> tf.TensorSpec:
        return tf.TensorSpec(None, tf.as_dtype(self.desc.dtype), name=self.desc.name)


def label_descs(
    model: keras.Model,
    model_interface: interface.ModelInterface,
    given: Mapping[str, options.LabelSpec],
) -> tuple[interface.TensorDesc, ...]:
    """One target per output: from label_specs, else guessed from the output's loss."""
    names = [o.name for o in model_interface.outputs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ExportError(
            "label_specs",
            f"{', '.join(unknown)} is not an output of the model (its outputs: {', '.join(names)})",
            "name the label spec after the model output it belongs to",
        )
    input_names = {i.name for i in model_interface.inputs}
    descs = []
    for index, output in enumerate(model_interface.outputs):
        target = output.name + TARGET_SUFFIX
        if target in input_names:
            raise ExportError(
                "label_specs",
                f"the target name '{target}' clashes with a model input of the same name",
                "rename that model input",
            )
        if output.name in given:
            spec = given[output.name]
            descs.append(interface.TensorDesc(target, spec.shape, spec.dtype))
        elif _is_sparse(_loss_for(model.loss, output.name, index)):
            # Sparse losses take class ids: integer labels without the class dimension.
            descs.append(interface.TensorDesc(target, output.shape[:-1], "int64"))
        else:
            descs.append(interface.TensorDesc(target, output.shape, output.dtype))
    return tuple(descs)


def _loss_for(loss, name: str, index: int):
    if isinstance(loss, Mapping):
        return loss.get(name)
    if isinstance(loss, (list, tuple)) or (
        hasattr(loss, "__len__")
        and hasattr(loss, "__getitem__")
        and not isinstance(loss, str)
    ):
        return loss[index] if index < len(loss) else None
    return loss


def _is_sparse(loss) -> bool:
    if loss is None:
        return False
    name = (
        loss
        if isinstance(loss, str)
        else getattr(loss, "name", None)
        or getattr(loss, "__name__", type(loss).__name__)
    )
    return "sparse" in str(name).lower() or "sparse" in type(loss).__name__.lower()


def output_name(desc) -> str:
    return desc.name.removesuffix(TARGET_SUFFIX)


def other_form(shape, output_shape):
    """The label shape Keras's losses take as well as `shape`, or None: `shape` without
    its trailing 1 when it is as long as the output's (labels (n,) for an output (n, 1);
    sparse ids (n,) for ids given as (n, 1)), or with a trailing 1 when it is the
    output's without its last dimension (sparse ids (n, 1), masks (n, H, W, 1)). Keras
    picks the same loss and metrics ("accuracy") for both."""
    if len(shape) == len(output_shape) and len(shape) > 1 and shape[-1] == 1:
        return tuple(shape[:-1])
    if len(shape) == len(output_shape) - 1:
        return (*shape, 1)
    return None


def random_labels(rng, desc, output, batch: int) -> np.ndarray:
    """Random labels of `desc`: class ids below the output's class count for integer
    labels that are ids, 0/1 for other integers and booleans, [0, 1) for floats."""
    shape = interface.concrete_shape(desc.shape, batch)
    dtype = tf.as_dtype(desc.dtype)
    if dtype.is_integer:
        classes = output.shape[-1] if output.shape else None
        are_ids = len(desc.shape) < len(output.shape) or desc.shape[-1:] == (1,)
        high = classes if are_ids and classes and classes > 1 else 2
        return rng.integers(0, high, shape).astype(dtype.as_numpy_dtype)
    if dtype.is_bool:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.random(shape).astype(dtype.as_numpy_dtype)


def label_specs_text(descs) -> dict[str, str]:
    """label_specs stating `descs`, as the user would write them."""
    return {
        output_name(d): ",".join(str(n) for n in d.shape) + f":{d.dtype}" for d in descs
    }


def descs_text(descs) -> str:
    """`(name: [shape] dtype, ...)` of inputs or labels, as the errors show them."""
    return "(" + ", ".join(f"{d.name}: {list(d.shape)} {d.dtype}" for d in descs) + ")"


def label_alternatives(model_interface, outputs, targets):
    """Label descs of the usual forms other than `targets`: dense (each output's own
    shape and dtype), then sparse (class ids: int64, without the last dimension)."""
    dense, sparse = [], []
    for target, output, value in zip(
        targets, model_interface.outputs, keras.tree.flatten(outputs), strict=True
    ):
        dtype = tf.as_dtype(value.dtype).name
        dense.append(interface.TensorDesc(target.name, output.shape, dtype))
        sparse.append(interface.TensorDesc(target.name, output.shape[:-1], "int64"))
    kinds = [tuple(dense)]
    if all(len(d.shape) > 1 for d in dense):
        kinds.append(tuple(sparse))
    return [kind for kind in kinds if kind != tuple(targets)]


def concrete_targets(model, model_interface, x, targets):
    """Targets with their unknown non-batch dims sized like the model's outputs on x
    (a sequence model's labels are as long as its input)."""
    if not any(d is None for t in targets for d in t.shape[1:]):
        return targets
    outputs = keras.tree.flatten(model_interface.call(model, x))
    result = []
    for target, output in zip(targets, outputs, strict=True):
        known = tuple(output.shape)
        shape = tuple(
            known[i] if d is None and 0 < i < len(known) else d
            for i, d in enumerate(target.shape)
        )
        result.append(dataclasses.replace(target, shape=shape))
    return result
