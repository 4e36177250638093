"""The labels eval and train take: one `<output>_target` per model output, its shape
and dtype stated by label_specs or guessed from the output and its loss.

Nothing here runs the model: label_probes tries these labels on it and settles the
shapes each takes (a `Label`), step_data checks them inside the signatures.
"""

import dataclasses
from collections.abc import Mapping

import keras
import tensorflow as tf

from export.lib import interface, tensor_specs
from export.lib.errors import ExportError

TARGET_SUFFIX = "_target"


@dataclasses.dataclass(frozen=True)
class Label:
    """The `<output>_target` input of eval and train.

    `desc` is the form the model's steps are traced with (the shape Keras's loss sees).
    `shapes` are the shapes a client may send, `desc.shape` first; a second one differs
    by a trailing dimension of 1 (labels (n,) for an output (n, 1); sparse class ids
    (n, 1) as well as (n,)), and is taken only where the model's own steps give the
    same logs for both (see label_probes.other_form). A loaded signature does not
    check the shapes it is fed, and TensorFlow may fold away a check against a
    declared shape, so the signature declares the label with unknown rank; the function
    checks its shape (the batch is the inputs') before anything runs, fails naming the
    label otherwise, and reshapes it to `desc.shape` (step_data).

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
    given: Mapping[str, tensor_specs.LabelSpec],
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
