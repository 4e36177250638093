"""The tf.Module that is saved, and its serve/eval/train functions and signatures.

TF 1.12's `save_keras_model` wrote one MetaGraph per mode, tagged `serve` (predict),
`eval` and `train`. `tf.saved_model.save` writes a single MetaGraph tagged `serve`;
the modes become signatures in it instead:

| TF 1.12 MetaGraph tag | signature key here | inputs                   | outputs |
|-----------------------|--------------------|--------------------------|---------|
| `serve`            | `serving_default`  | model inputs, by input name | model outputs, by output name |
| `eval`             | `eval`             | inputs + `<output>_target`  | `loss` and each compiled metric |
| `train`            | `train`            | inputs + `<output>_target`  | as eval; applies one optimizer step |

Load with `tf.saved_model.load(path).signatures[key]` (or `saved_model_cli --tag_set
serve --signature_def KEY`). The root module also exposes the functions as `serve`,
`eval` and `train`.

The root tracks ordered lists of the *underlying* tf.Variables (model, then metric, then
optimizer variables), never the Keras objects, so checkpoint keys are stable
(`model_variables/3/...`) and TF1-style loaders find every variable. eval and train wrap
the model's own `test_step`/`train_step`, resetting the metrics first so each call reports
one batch.
"""

import dataclasses
from collections.abc import Mapping

import keras
import tensorflow as tf

from export.lib import interface, options
from export.lib.errors import ExportError, describe, format_traceback

SERVING_KEY = "serving_default"
SIGNATURE_KEYS = {"serve": SERVING_KEY, "eval": "eval", "train": "train"}
TARGET_SUFFIX = "_target"


class ExportModule(tf.Module):
    """Saved root: variables in a fixed order plus the signature functions."""

    def __init__(self, model_variables, metric_variables, optimizer_variables):
        super().__init__(name=None)
        self.model_variables = list(model_variables)
        self.metric_variables = list(metric_variables)
        self.optimizer_variables = list(optimizer_variables)


@dataclasses.dataclass
class BuiltSignatures:
    root: ExportModule
    # Signature key -> concrete function, in MODES order.
    functions: dict[str, tf.types.experimental.ConcreteFunction]
    inputs: dict[str, tuple[interface.TensorDesc, ...]]


def supported_modes(model: keras.Model) -> tuple[str, ...]:
    modes = ["serve"]
    if getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        modes.append("eval")
        if getattr(model, "optimizer", None) is not None:
            modes.append("train")
    return tuple(modes)


def choose_modes(
    model: keras.Model, requested: tuple[str, ...] | None
) -> tuple[str, ...]:
    available = supported_modes(model)
    if requested is None:
        return available
    for mode in requested:
        if mode not in available:
            why = (
                "the model was not compiled with a loss"
                if mode == "eval" or "eval" not in available
                else "the model was compiled without an optimizer"
            )
            raise ExportError(
                "--modes",
                f"'{mode}' was requested but {why}, so it only supports {','.join(available)}",
                "compile the model in the builder (model.compile(optimizer=..., loss=...)) or"
                f" drop '{mode}' from --modes",
            )
    return requested


def label_descs(
    model: keras.Model,
    model_interface: interface.ModelInterface,
    given: Mapping[str, options.LabelSpec],
) -> tuple[interface.TensorDesc, ...]:
    """One target per output: from --label_spec, else guessed from the output's loss."""
    names = [o.name for o in model_interface.outputs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ExportError(
            "--label_spec",
            f"{', '.join(unknown)} is not an output of the model (its outputs: {', '.join(names)})",
            "name the label spec after the model output it belongs to",
        )
    input_names = {i.name for i in model_interface.inputs}
    descs = []
    for index, output in enumerate(model_interface.outputs):
        target = output.name + TARGET_SUFFIX
        if target in input_names:
            raise ExportError(
                "--label_spec",
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


def build(
    model: keras.Model,
    model_interface: interface.ModelInterface,
    modes: tuple[str, ...],
    label_specs: Mapping[str, options.LabelSpec],
) -> BuiltSignatures:
    training = [m for m in modes if m != "serve"]
    targets: tuple[interface.TensorDesc, ...] = ()
    if training:
        targets = label_descs(model, model_interface, label_specs)
        _prepare_training_state(model, model_interface, targets, "train" in modes)

    root = ExportModule(
        interface.tf_variables(model.variables),
        interface.tf_variables(model.metrics_variables) if training else [],
        interface.tf_variables(model.optimizer.variables) if "train" in modes else [],
    )
    inputs = model_interface.inputs
    n_inputs = len(inputs)
    input_specs = [d.spec() for d in inputs]
    train_specs = input_specs + [d.spec() for d in targets]

    def serve(*args):
        outputs = model(model_interface.pack_inputs(args), training=False)
        return model_interface.name_outputs(outputs)

    def run_step(step, args):
        for metric in model.metrics:
            metric.reset_state()
        x = model_interface.pack_inputs(args[:n_inputs])
        y = model_interface.pack_targets(args[n_inputs:])
        logs = step((x, y))
        return {str(k): tf.convert_to_tensor(v) for k, v in logs.items()}

    def eval_step(*args):
        return run_step(model.test_step, args)

    def train_step(*args):
        return run_step(model.train_step, args)

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
    for mode in modes:
        key = SIGNATURE_KEYS[mode]
        try:
            functions[key] = getattr(root, mode).get_concrete_function()
        except Exception as e:  # noqa: BLE001 - tracing runs user code
            flag = "--builder/--model_file" if mode == "serve" else "--label_spec"
            fix = (
                "make the model callable on a batch of its declared input shape"
                if mode == "serve"
                else "state the labels with --label_spec=OUTPUT=SHAPE:DTYPE, or drop"
                f" '{mode}' from --modes"
            )
            raise ExportError(
                flag,
                f"tracing the '{key}' signature failed: {describe(e)}",
                fix,
                format_traceback(e),
            ) from None
        signature_inputs[key] = tuple(inputs) + (targets if mode != "serve" else ())
    # tf.saved_model.save traces tf.function attributes again; the traced concrete
    # functions are saved as they are, so each graph is traced and stored once (fewer
    # functions and a faster write, measured in bench/README.md).
    for mode in modes:
        setattr(root, mode, functions[SIGNATURE_KEYS[mode]])
    return BuiltSignatures(root, functions, signature_inputs)


def _prepare_training_state(model, model_interface, targets, train: bool) -> None:
    """Creates lazily-built state eagerly, so tracing captures variables that exist."""
    x = model_interface.pack_inputs(
        [tf.constant(z) for z in interface.zeros_for(model_interface.inputs)]
    )
    y = model_interface.pack_targets(
        [tf.constant(z) for z in interface.zeros_for(targets)]
    )
    try:
        # Builds the compiled loss and metrics (their variables appear on first use).
        model.test_step((x, y))
    except Exception as e:  # noqa: BLE001 - user losses/metrics
        shown = ", ".join(f"{t.name}: {list(t.shape)} {t.dtype}" for t in targets)
        raise ExportError(
            "--label_spec",
            f"running the compiled loss and metrics on zero labels ({shown}) failed:"
            f" {describe(e)}",
            "state each output's labels with --label_spec=OUTPUT=SHAPE:DTYPE (e.g."
            " --label_spec=probs=None:int64 for a sparse loss)",
            format_traceback(e),
        ) from None
    for metric in model.metrics:
        metric.reset_state()
    if train and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def describe_signatures(built: BuiltSignatures) -> dict:
    """Manifest-style description: {key: {inputs: {name: {shape, dtype}}, outputs: ...}}."""
    result = {}
    for key, function in built.functions.items():
        outputs = function.structured_outputs
        result[key] = {
            "inputs": {
                d.name: {"dtype": d.dtype, "shape": list(d.shape)}
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
