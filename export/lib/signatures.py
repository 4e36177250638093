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
(`model_variables/3/...`) and TF1-style loaders find every variable. Other TensorFlow
resources the functions use (the hash tables of StringLookup, IntegerLookup and
TextVectorization, with their initializers and vocabulary files) are tracked in
`model_resources`, in the order the functions capture them; a model without any has no
such attribute, so its files are as before. eval and train wrap
the model's own `test_step`/`train_step`, resetting the metrics first so each call reports
one batch.
"""

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Iterator, Mapping

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from export.lib import interface, options
from export.lib.errors import (
    ExportError,
    describe_exception,
    format_traceback,
    setting,
)

SERVING_KEY = "serving_default"
SIGNATURE_KEYS = {"serve": SERVING_KEY, "eval": "eval", "train": "train"}
TARGET_SUFFIX = "_target"
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


def supported_modes(model: keras.Model) -> tuple[str, ...]:
    """The modes Keras itself can run: evaluate needs a compiled loss or the model's own
    test_step, fit an optimizer and a compiled loss or the model's own train_step."""
    modes = ["serve"]
    if not getattr(model, "compiled", False):
        return tuple(modes)
    if _has_loss(model) or _defines_step(model, "test_step"):
        modes.append("eval")
    if getattr(model, "optimizer", None) is not None and (
        _has_loss(model) or _defines_step(model, "train_step")
    ):
        modes.append("train")
    return tuple(modes)


def _has_loss(model: keras.Model) -> bool:
    return getattr(model, "loss", None) is not None


def _defines_step(model: keras.Model, step: str) -> bool:
    """True when the model's class replaces Keras's own train_step or test_step."""
    return getattr(type(model), step, None) is not getattr(keras.Model, step)


def choose_modes(
    model: keras.Model, requested: tuple[str, ...] | None
) -> tuple[str, ...]:
    available = supported_modes(model)
    if requested is None:
        return available
    for mode in requested:
        if mode not in available:
            step = "test_step" if mode == "eval" else "train_step"
            why = (
                f"the model was not compiled with a loss and has no {step} of its own"
                if mode == "eval" or not _has_loss(model)
                else "the model was compiled without an optimizer"
            )
            raise ExportError(
                "modes",
                f"'{mode}' was requested but {why}, so it only supports {','.join(available)}",
                [
                    (
                        "compile the model in the builder (model.compile(optimizer=...,"
                        f" loss=...)) or drop '{mode}' from "
                    ),
                    setting("modes"),
                ],
            )
    return requested


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
        return _log_tensors(step.__name__, step((x, y)))

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
        except ExportError:
            raise  # the step's logs, already explained
        except Exception as e:  # noqa: BLE001 - tracing runs user code
            # The labels are not blamed here: the compiled loss and metrics already ran on
            # labels of these specs (_prepare_training_state), so the step itself failed.
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
        captured_resources(model, functions.values(), root.tracked_variables())
    )
    # tf.saved_model.save traces tf.function attributes again; the traced concrete
    # functions are saved as they are, so each graph is traced and stored once (fewer
    # functions and a faster write, measured in bench/README.md).
    for mode in modes:
        setattr(root, mode, functions[SIGNATURE_KEYS[mode]])
    return BuiltSignatures(root, functions, signature_inputs)


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


def _log_tensors(step_name: str, logs) -> dict[str, tf.Tensor]:
    """The step's logs as one flat dict of tensors, keyed as Keras's fit reports them.

    Keras flattens nested dicts (`{m.name: m.result() for m in self.metrics}` nests the
    compiled metrics' results under `compile_metrics`) into one level, in sorted key
    order, a later key replacing an earlier one of the same name; so does this.
    """
    if not isinstance(logs, Mapping):
        raise ExportError(
            ("builder", "src"),
            f"the model's {step_name} returned {type(logs).__name__}, not a dict of logs",
            f"return a dict of metric names to scalar tensors from {step_name}, as Keras's"
            " fit expects (e.g. {m.name: m.result() for m in self.metrics})",
        )
    flat = {}
    for key, value in sorted(logs.items(), key=lambda item: str(item[0])):
        if isinstance(value, Mapping):
            flat.update(_log_tensors(step_name, value))
            continue
        try:
            flat[str(key)] = tf.convert_to_tensor(value)
        except (TypeError, ValueError) as e:
            raise ExportError(
                ("builder", "src"),
                f"the model's {step_name} returned the log '{key}' as"
                f" {type(value).__name__} ({describe_exception(e)}), which is not a tensor",
                f"make every value {step_name} returns a number or a tensor (nested dicts"
                " of them are flattened as Keras's fit does)",
            ) from None
    return flat


def captured_resources(model, functions, tracked_variables) -> list:
    """The TensorFlow resources `functions` capture besides `tracked_variables`.

    Keras keeps lookup tables (StringLookup, IntegerLookup, TextVectorization) and the
    odd plain tf.Variable outside model.variables; a SavedModel must track every resource
    its functions use. They are found among the objects the model tracks and returned in
    the order the functions first capture them, which is the same in every process.
    Raises ExportError for a resource nothing in the model holds.
    """
    known = {id(v.handle) for v in tracked_variables}
    needed = []
    for function in functions:
        for tensor in function.captured_inputs:
            if tensor.dtype == tf.resource and id(tensor) not in known:
                known.add(id(tensor))
                needed.append(tensor)
    if not needed:
        return []
    owners = {}
    for trackable in tf.train.TrackableView(model).descendants():
        if isinstance(trackable, tf.saved_model.experimental.TrackableResource):
            owners.setdefault(id(trackable.resource_handle), trackable)
        elif isinstance(trackable, tf.Variable):
            owners.setdefault(id(trackable.handle), trackable)
    missing = [t for t in needed if id(t) not in owners]
    if missing:
        # TensorFlow notes on a resource's handle which object made it.
        makers = [getattr(t, "_parent_trackable", lambda: None)() for t in missing]
        kinds = sorted({type(m).__name__ for m in makers if m is not None})
        what = ", ".join(kinds) if kinds else "a lookup table, tf.Variable or the like"
        raise ExportError(
            ("builder", "src"),
            f"the model's functions use {len(missing)} TensorFlow resource(s) ({what})"
            " that no layer of the model holds, so the SavedModel cannot save them",
            "create each such object inside a layer (in __init__ or build) and keep it as"
            " an attribute of that layer, rather than in the builder or a closure",
        )
    resources = [owners[id(t)] for t in needed]
    for resource in resources:
        _check_files(resource)
        _name_table_by_contents(resource)
    return resources


def _files_of(resource) -> list[str]:
    """Paths of the files (tf.saved_model.Asset) a resource is initialized from."""
    return [
        os.fsdecode(t.asset_path.numpy())
        for t in tf.train.TrackableView(resource).descendants()
        if isinstance(t, tf.saved_model.Asset)
    ]


def _check_files(resource) -> None:
    # tf.saved_model.save skips a missing file without a word; the table then fails
    # to initialize when the SavedModel is loaded.
    for path in _files_of(resource):
        if not os.path.isfile(path):
            raise ExportError(
                ("builder", "src"),
                f"the file '{path}' that a lookup table of the model was built from (a"
                " vocabulary file) no longer exists, so the SavedModel cannot include it",
                "keep the file in place until the export is done (not in a temporary"
                " folder the builder deletes), or give the vocabulary as a list",
            )


def _name_table_by_contents(resource) -> None:
    """A table read from a file is named after the file's path (`hash_table_/abs/path
    /vocab.txt_-2_-1`), which differs between checkouts, sandboxes and machines, and
    would reach saved_model.pb. The path is replaced by a digest of the file's contents:
    the same bytes wherever the file is, and tables of equal contents may share."""
    initializer = getattr(resource, "_initializer", None)
    if not isinstance(initializer, tf.lookup.TextFileInitializer):
        return
    path = getattr(initializer, "_filename_arg", None)
    name = getattr(resource, "_shared_name", None)
    if not isinstance(path, str) or not isinstance(name, str) or path not in name:
        return
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    resource._shared_name = name.replace(path, f"file_{digest}")


def _prepare_training_state(model, model_interface, targets, train: bool) -> None:
    """Creates lazily-built state eagerly, so tracing captures variables that exist."""
    samples = model_interface.samples
    x = model_interface.pack_inputs(
        [
            tf.constant(z)
            for z in interface.zeros_for(model_interface.inputs, 1, samples)
        ]
    )
    # Builds the compiled loss and metrics (their variables appear on first use). A
    # model with no compiled loss, trained by its own train_step, has none to build.
    if _has_loss(model) or _defines_step(model, "test_step"):
        try:
            y = model_interface.pack_targets(
                [
                    tf.constant(z)
                    for z in interface.zeros_for(
                        _concrete_targets(model, x, targets), 1, samples
                    )
                ]
            )
            model.test_step((x, y))
        except Exception as e:  # noqa: BLE001 - user losses/metrics
            raise _training_state_error(model, model_interface, x, targets, e) from None
    for metric in model.metrics:
        metric.reset_state()
    if train and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def _training_state_error(
    model, model_interface, x, targets, error: Exception
) -> ExportError:
    """Names what made test_step fail on the sample batch, found by re-trying.

    The labels are blamed only when they are the difference: the model runs on the
    inputs alone, and the compiled loss and metrics run with labels of another usual
    form (the output's own shape and dtype, or sparse class ids). Otherwise the model or
    its loss/metrics fail whatever the labels are, and the error says so.
    """
    try:
        outputs = model(x, training=False)
    except Exception as e:  # noqa: BLE001 - user model code
        return ExportError(
            ("builder", "src"),
            "the model failed on a sample batch of its declared inputs"
            f" {_descs_text(model_interface.inputs)} before"
            f" its loss could run: {describe_exception(e)}",
            "make the model accept any batch of its declared input shape (give fixed"
            " sizes, or sizes it accepts, to the dimensions it cannot take freely)",
            format_traceback(e),
        )
    shown = _descs_text(targets)
    for candidate, sample in _label_alternatives(model_interface, outputs, targets):
        y = model_interface.pack_targets(
            [tf.constant(z) for z in interface.zeros_for(sample)]
        )
        if not _runs(model.test_step, (x, y)):
            continue
        specs = {
            d.name.removesuffix(TARGET_SUFFIX): ",".join(str(n) for n in d.shape)
            + f":{d.dtype}"
            for d in candidate
        }
        return ExportError(
            "label_specs",
            f"the compiled loss and metrics fail on labels {shown} ({describe_exception(error)})"
            f" but run on labels {_descs_text(candidate)}",
            ["state the labels, e.g. ", setting("label_specs", specs)],
            format_traceback(error),
        )
    return ExportError(
        ("builder", "src"),
        f"the model's compiled loss or metrics (its test_step) failed on its own outputs"
        f" with labels {shown}, and with labels shaped like the outputs too, so the labels"
        f" are not the cause: {describe_exception(error)}",
        "fix the loss, metric or test_step the traceback below points at",
        format_traceback(error),
    )


def _runs(step, data) -> bool:
    try:
        step(data)
    except Exception:  # noqa: BLE001 - only whether it runs matters here
        return False
    return True


def _descs_text(descs) -> str:
    """`(name: [shape] dtype, ...)` of inputs or labels, as the errors show them."""
    return "(" + ", ".join(f"{d.name}: {list(d.shape)} {d.dtype}" for d in descs) + ")"


def _label_alternatives(model_interface, outputs, targets):
    """Label descs of the usual forms other than `targets`, dense (each output's own
    shape and dtype) and sparse (class ids: int64, without the last dimension), each
    with the sizes of the sample outputs (to make labels that fit them)."""
    declared, sample = {"dense": [], "sparse": []}, {"dense": [], "sparse": []}
    for target, output, value in zip(
        targets, model_interface.outputs, keras.tree.flatten(outputs), strict=True
    ):
        dtype = tf.as_dtype(value.dtype).name
        sizes = (None, *tuple(value.shape)[1:])
        declared["dense"].append(interface.TensorDesc(target.name, output.shape, dtype))
        sample["dense"].append(interface.TensorDesc(target.name, sizes, dtype))
        declared["sparse"].append(
            interface.TensorDesc(target.name, output.shape[:-1], "int64")
        )
        sample["sparse"].append(interface.TensorDesc(target.name, sizes[:-1], "int64"))
    kinds = ["dense"]
    if all(len(d.shape) > 1 for d in declared["dense"]):
        kinds.append("sparse")
    return [
        (tuple(declared[k]), tuple(sample[k]))
        for k in kinds
        if tuple(declared[k]) != tuple(targets)
    ]


def _concrete_targets(model, x, targets):
    """Targets with their unknown non-batch dims sized like the model's outputs on x
    (a sequence model's labels are as long as its input)."""
    if not any(d is None for t in targets for d in t.shape[1:]):
        return targets
    outputs = keras.tree.flatten(model(x, training=False))
    result = []
    for target, output in zip(targets, outputs, strict=True):
        known = tuple(output.shape)
        shape = tuple(
            known[i] if d is None and 0 < i < len(known) else d
            for i, d in enumerate(target.shape)
        )
        result.append(dataclasses.replace(target, shape=shape))
    return result


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
