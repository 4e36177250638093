"""load_keras_model: rebuild the Keras model from an export (the counterpart of TF 1.12's
tf.contrib.saved_model.load_keras_model).

The architecture comes from `assets/saved_model.json`, the weights from the checkpoint in
`variables/`, matched positionally: the export tracks `model.variables` in Keras's own
(deterministic) order, and a model re-created from the same config lists them the same way.
When the JSON carries a training config, the model comes back compiled; when the export
has optimizer state (train mode) the optimizer is rebuilt and restored too, so training
can continue, and otherwise its variables are created when training first needs them,
as for a model just compiled. Then each layer's own loading hooks run (layer_state): an
adapted Normalization recomputes its mean and variance from its restored variables, an
adapted lookup layer reads its vocabulary.
A lambda that uses its module's globals (`ops`, `np`, a constant) is re-created with
the globals of the module the export names for it (lambda_code), not Keras's own.
"""

import collections
import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf
from keras.src.backend.common import global_state
from tensorflow.python.saved_model import loader_impl

from export.lib import (
    interface,
    lambda_code,
    layer_state,
    model_json,
    signatures,
    tensor_specs,
    writer,
)

_MODEL_KEY = "model_variables/"
_OPTIMIZER_KEY = "optimizer_variables/"


def load_keras_model(
    export_dir: str,
    custom_objects: Mapping[str, Any] | None = None,
    *,
    safe_mode: bool = True,
) -> keras.Model:
    """Returns the Keras model saved by export_saved_model in `export_dir`.

    custom_objects: classes and functions the model config names but Keras does not know.
    safe_mode: as in keras.saving.load_model; False allows Lambda layers' Python code,
      and imports the modules whose globals the lambdas use.
    The model is compiled as it was exported (if it was); its optimizer's state is
    restored from a train export, and created by the first training step otherwise.
    Raises ValueError when the export does not match the re-created model, or a lambda
    cannot be re-created (its module cannot be imported, or lacks a name it uses).
    """
    json_path = os.path.join(export_dir, writer.ASSETS_DIR, writer.MODEL_JSON)
    with open(json_path, encoding="utf-8") as f:
        config = json.load(f)
    objects = dict(custom_objects or {})
    if not safe_mode:  # in safe mode Keras refuses lambdas itself
        try:
            objects.update(lambda_code.recreate(config))
        except lambda_code.LambdaError as e:
            raise ValueError(
                f"cannot re-create the model in {export_dir}: {e}"
            ) from None
    with _names_of_a_fresh_session():
        model = model_json.deserialize_model(config, objects, safe_mode)
    assets_dir = os.path.join(export_dir, writer.ASSETS_DIR)
    subclassed = interface.is_subclassed(model)
    if subclassed:
        # Re-created subclassed models are built but have not created all variables:
        # called once on inputs of the serving signature's shapes and dtypes, which
        # the model's config does not record (strings, ids), with the vocabularies
        # their lookups need to run.
        layer_state.load_layer_assets(model, assets_dir)
        interface.describe_model(model, _serving_input_specs(export_dir))

    prefix = os.path.join(export_dir, "variables", "variables")
    saved = [name for name, _ in tf.train.list_variables(prefix)]
    objects = {"model_variables": interface.tf_variables(model.variables)}
    expected = {"model_variables": _count(saved, _MODEL_KEY)}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and _count(saved, _OPTIMIZER_KEY):
        optimizer = _restorable_optimizer(model, _count(saved, _OPTIMIZER_KEY))
        objects["optimizer_variables"] = interface.tf_variables(optimizer.variables)
        expected["optimizer_variables"] = _count(saved, _OPTIMIZER_KEY)
    for key, variables in objects.items():
        if len(variables) != expected[key]:
            raise ValueError(
                f"{export_dir} holds {expected[key]} {key} but the model re-created from"
                f" {writer.MODEL_JSON} has {len(variables)}; was it exported by a different"
                " version of the model code?"
            )
    # Metric variables are not restored into the Keras model.
    _restore_one_by_one(export_dir, prefix, objects)
    layer_state.restore_layer_state(model, assets_dir, with_assets=not subclassed)
    return model


@contextlib.contextmanager
def _names_of_a_fresh_session():
    """Names the layers re-created without a name in the config (a subclassed model's
    own sublayers) as the export named them, in the fresh Keras session it built the
    model in: `text_vectorization`, not `text_vectorization_1` after another model
    made one in this process. Their assets are found by those names (layer_state).
    Keras keeps its name counters in this global attribute (keras.utils.get_uid)."""
    counters = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", counters)


def _serving_input_specs(export_dir: str) -> dict[str, tensor_specs.LabelSpec]:
    """The serving signature's inputs, read from saved_model.pb (or .pbtxt)."""
    meta_graph = loader_impl.parse_saved_model(export_dir).meta_graphs[0]
    inputs = meta_graph.signature_def[signatures.SERVING_KEY].inputs
    return {
        name: tensor_specs.LabelSpec(
            tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim),
            tf.as_dtype(info.dtype).name,
        )
        for name, info in inputs.items()
    }


def _restore_one_by_one(
    export_dir: str, prefix: str, objects: dict[str, list[tf.Variable]]
) -> None:
    """Assigns each variable its saved value, one variable at a time.

    tf.train.Checkpoint.read would read every saved value before assigning any, and so
    hold a second copy of the model and its optimizer until the last one is assigned
    (peak RSS 7.0 GB instead of 4.6 GB for 1 GB of weights and Adam's slots:
    bench/README.md).
    """
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    for key, variables in objects.items():
        for index, variable in enumerate(variables):
            name = f"{key}/{index}/.ATTRIBUTES/VARIABLE_VALUE"
            saved = (tuple(shapes[name]), dtypes[name].name) if name in shapes else None
            if saved != (tuple(variable.shape), variable.dtype.name):
                held = f"{saved[1]} {list(saved[0])}" if saved else "nothing"
                raise ValueError(
                    f"{export_dir} holds {held} as {key} {index}, but the model"
                    f" re-created from {writer.MODEL_JSON} has {variable.dtype.name}"
                    f" {variable.shape.as_list()} there ({variable.name}); was it"
                    " exported by a different version of the model code?"
                )
            variable.assign(reader.get_tensor(name))


def _restorable_optimizer(model: keras.Model, saved_count: int):
    """The model's optimizer, built, as it was when exported.

    Compiling under the mixed_float16 policy wraps the optimizer in a
    LossScaleOptimizer, but the model's own policy is not in its config: a model
    re-created under the default policy gets the bare optimizer. When the export's
    optimizer state is that of the wrapped one, the optimizer is wrapped again, as
    compile() does, so its state restores and training scales the loss as before.
    """
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    uses_float16 = any(
        layer.dtype_policy.name == "mixed_float16"
        for _, layer in layer_state.named_layers(model)
    )
    if (
        _variable_count(optimizer) == saved_count
        or isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        or not uses_float16
    ):
        return optimizer
    wrapped = keras.optimizers.LossScaleOptimizer(
        optimizer, name="loss_scale_optimizer"
    )
    wrapped.build(model.trainable_variables)
    if _variable_count(wrapped) != saved_count:
        return optimizer  # not what was exported: the count check reports it
    model.optimizer = wrapped
    return wrapped


def _variable_count(optimizer) -> int:
    return len(interface.tf_variables(optimizer.variables))


def _count(names: list[str], key: str) -> int:
    indices = {
        name[len(key) :].split("/", 1)[0] for name in names if name.startswith(key)
    }
    return len(indices)
