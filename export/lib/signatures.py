"""The tf.Module that is saved, and its serve/eval/train functions and signatures.

TF 1.12's `save_keras_model` wrote one MetaGraph per mode, tagged `serve` (predict),
`eval` and `train`. `tf.saved_model.save` writes a single MetaGraph tagged `serve`;
the modes become signatures in it instead:

| TF 1.12 MetaGraph tag | signature key here | inputs                   | outputs |
|-----------------------|--------------------|--------------------------|---------|
| `serve`            | `serving_default`  | model inputs, by input name | model outputs, by output name |
| `eval`             | `eval`             | inputs + `<output>_target`  | `loss` and each compiled metric |
| `train`            | `train`            | inputs + `<output>_target`  | as eval; applies one optimizer step |

A model that Keras trains with `fit(x)` (its own train_step takes the inputs alone, as
keras.io's VAE) has no `<output>_target`. See `labels.Label` for the label shapes a
signature takes and how it checks them; the labels come here already chosen
(label_probes).

Load with `tf.saved_model.load(path).signatures[key]` (or `saved_model_cli --tag_set
serve --signature_def KEY`). The root module also exposes the functions as `serve`,
`eval` and `train`.

The root tracks ordered lists of the *underlying* tf.Variables (model, then metric, then
optimizer variables), never the Keras objects, so checkpoint keys are stable
(`model_variables/3/...`) and TF1-style loaders find every variable. Other TensorFlow
resources the functions use (see resources.py) are tracked in `model_resources`, in the
order the functions capture them; a model without any has no such attribute, so its
files are as before. eval and train wrap the model's own `test_step`/`train_step`,
resetting the metrics first so each call reports one batch.
"""

import contextlib
import dataclasses
from collections.abc import Iterator

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from export.lib import interface, resources, settings, step_data
from export.lib.errors import (
    ExportError,
    describe_exception,
    format_traceback,
    setting,
)
from export.lib.labels import Label

SERVING_KEY = settings.SERVING_KEY
SIGNATURE_KEYS = dict(settings.SIGNATURE_OF_MODE)
# How tf.custom_gradient names the gradient it registers for a traced graph.
_CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


class ExportModule(tf.Module):
    """Saved root: variables in a fixed order plus the signature functions."""

    def __init__(self, model_variables, metric_variables, optimizer_variables):
        super().__init__(name=None)
        self.model_variables = list(model_variables)
        self.metric_variables = list(metric_variables)
        self.optimizer_variables = list(optimizer_variables)

    def track_resources(self, resources) -> None:
        """Tracks lookup tables and other resources the functions capture."""
        if resources:
            self.model_resources = list(resources)

    def tracked_variables(self) -> list[tf.Variable]:
        return self.model_variables + self.metric_variables + self.optimizer_variables


@dataclasses.dataclass
class BuiltSignatures:
    root: ExportModule
    # Signature key -> concrete function, in MODES order.
    functions: dict[str, tf.types.experimental.ConcreteFunction]
    inputs: dict[str, tuple[interface.TensorDesc, ...]]
    # The labels eval and train take; empty when they take the inputs alone.
    labels: tuple[Label, ...] = ()


def build(
    model: keras.Model,
    model_interface: interface.ModelInterface,
    modes: tuple[str, ...],
    labels: tuple[Label, ...],
) -> BuiltSignatures:
    """Traces the functions of `modes`; eval and train take `labels` (from
    label_probes, which also built the state they capture) after the inputs."""
    training = [m for m in modes if m != "serve"]

    root = ExportModule(
        interface.tf_variables(model.variables),
        interface.tf_variables(model.metrics_variables) if training else [],
        interface.tf_variables(model.optimizer.variables) if "train" in modes else [],
    )
    inputs = model_interface.inputs
    input_specs = [d.spec() for d in inputs]
    train_specs = input_specs + [label.spec() for label in labels]

    def serve(*args):
        outputs = model_interface.call(model, model_interface.pack_inputs(args))
        return model_interface.name_outputs(outputs)

    def run_step(mode, step, args):
        with step_data.checked_step_data(model_interface, labels, mode, args) as data:
            for metric in model.metrics:
                metric.reset_state()
            return step_data.log_tensors(step.__name__, step(data))

    def eval_step(*args):
        return run_step("eval", model.test_step, args)

    def train_step(*args):
        return run_step("train", model.train_step, args)

    # No autograph, as in Keras itself: model.export and fit/evaluate never convert the
    # model's call or train_step/test_step, so a model that trains with fit exports here
    # too; converting this glue code would only cost time (bench/README.md).
    root.serve = tf.function(serve, input_signature=input_specs, autograph=False)
    if "eval" in modes:
        root.eval = tf.function(eval_step, input_signature=train_specs, autograph=False)
    if "train" in modes:
        root.train = tf.function(
            train_step, input_signature=train_specs, autograph=False
        )

    functions = {}
    signature_inputs = {}
    targets = tuple(label.desc for label in labels)
    for mode in modes:
        key = SIGNATURE_KEYS[mode]
        try:
            functions[key] = getattr(root, mode).get_concrete_function()
        except ExportError:
            raise  # the step's logs, already explained
        except Exception as e:  # noqa: BLE001 - tracing runs user code
            # The labels are not blamed here: the model's steps already ran on labels
            # of these specs (label_probes), so the step itself failed.
            step = {"eval": "test_step", "train": "train_step"}.get(mode)
            what = f"the model's {step}" if step else "the model"
            fix = (
                "make the model callable on a batch of its declared input shape"
                if mode == "serve"
                else [
                    (
                        f"make {step} run in a tf.function, as Keras's fit and evaluate run"
                        " it (tensor ops, no Python conditions on tensor values), or drop"
                        f" '{mode}' from "
                    ),
                    setting("modes"),
                ]
            )
            raise ExportError(
                ("builder", "src"),
                f"tracing {what} for the '{key}' signature failed: {describe_exception(e)}",
                fix,
                format_traceback(e),
            ) from None
        signature_inputs[key] = tuple(inputs) + (targets if mode != "serve" else ())
    root.track_resources(
        resources.captured_resources(
            model, functions.values(), root.tracked_variables()
        )
    )
    # tf.saved_model.save traces tf.function attributes again; the traced concrete
    # functions are saved as they are, so each graph is traced and stored once (fewer
    # functions and a faster write, measured in bench/README.md).
    for mode in modes:
        setattr(root, mode, functions[SIGNATURE_KEYS[mode]])
    return BuiltSignatures(root, functions, signature_inputs, labels)


@contextlib.contextmanager
def custom_gradients_scoped() -> Iterator[None]:
    """Forgets, on exit, the custom gradients that TensorFlow registered inside.

    Tracing a tf.custom_gradient (Keras's train_step has one: the optimizer's
    all-reduce of the gradients) registers its gradient function in TensorFlow's
    global gradient registry for the life of the process, and through its closure the
    traced train function and every variable that function captures: without this,
    the model and its optimizer could never be freed; loading a SavedModel does the
    same for the gradients it saved. Each such entry's name is made up for the one
    graph that uses it (`CustomGradient-<uid>`), which needs it only while it lives.
    Gradients registered by name for an op type (a user module's
    tf.RegisterGradient("MyOp"), imported meanwhile) stay.
    """
    # TensorFlow has no public way to remove a registration.
    registry = tf_ops.gradient_registry._registry
    before = set(registry)
    try:
        yield
    finally:
        for name in set(registry) - before:
            if name.startswith(_CUSTOM_GRADIENT_PREFIX):
                del registry[name]


def describe_signatures(built: BuiltSignatures) -> dict:
    """Manifest-style description: {key: {inputs: {name: {shape, dtype}}, outputs: ...}}.

    A label's `shape` is the one to send; its `accepted_shapes` are every shape the
    signature takes (the signature itself declares labels with unknown rank, see Label);
    `sizes_from_inputs` says which of its open dimensions must be as long as which
    input's.
    """
    labels = {label.name: label for label in built.labels}
    input_names = [d.name for d in built.inputs[SERVING_KEY]]
    result = {}
    for key, function in built.functions.items():
        outputs = function.structured_outputs
        result[key] = {
            "inputs": {
                d.name: _input_description(d, labels.get(d.name), input_names)
                for d in built.inputs[key]
            },
            "outputs": {
                name: {
                    "dtype": tensor.dtype.name,
                    "shape": list(tensor.shape.as_list())
                    if tensor.shape.rank is not None
                    else None,
                }
                for name, tensor in sorted(outputs.items())
            },
        }
    return result


def _input_description(
    desc: interface.TensorDesc, label: Label | None, input_names: list[str]
) -> dict:
    description = {"dtype": desc.dtype, "shape": list(desc.shape)}
    if label is not None:
        description["accepted_shapes"] = [list(shape) for shape in label.shapes]
        if label.open_dims:
            description["sizes_from_inputs"] = [
                {"dim": dim, "input": input_names[index], "input_dim": input_dim}
                for dim, index, input_dim in label.open_dims
            ]
    return description
