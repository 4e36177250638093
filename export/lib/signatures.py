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
keras.io's VAE) has no `<output>_target`. See `Label` for the label shapes a signature
takes and how it checks them.

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
import numpy as np
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
# Batch of the sample labels tried on the model's steps: more than 1, so that labels of
# the wrong form rarely broadcast against the outputs.
PROBE_BATCH = 2
# Batch and seed of the random batch on which a second label form must give the logs
# of the first, and how close they must be (summation order differs after a reshape).
FORMS_BATCH = 3
FORMS_SEED = 7
FORMS_RTOL, FORMS_ATOL = 1e-5, 1e-6
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


@dataclasses.dataclass(frozen=True)
class Label:
    """The `<output>_target` input of eval and train.

    `desc` is the form the model's steps are traced with (the shape Keras's loss sees).
    `shapes` are the shapes a client may send, `desc.shape` first; a second one differs
    by a trailing dimension of 1 (labels (n,) for an output (n, 1); sparse class ids
    (n, 1) as well as (n,)), and is taken only where the model's own steps give the
    same logs for both (see _other_form). A loaded signature does not check the shapes
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


@dataclasses.dataclass
class BuiltSignatures:
    root: ExportModule
    # Signature key -> concrete function, in MODES order.
    functions: dict[str, tf.types.experimental.ConcreteFunction]
    inputs: dict[str, tuple[interface.TensorDesc, ...]]
    # The labels eval and train take; empty when they take the inputs alone.
    labels: tuple[Label, ...] = ()


def supported_modes(model: keras.Model) -> tuple[str, ...]:
    """The modes Keras itself can run: evaluate needs a compiled loss, or the model's
    own compute_loss or test_step; fit an optimizer and a compiled loss, or the model's
    own compute_loss or train_step."""
    modes = ["serve"]
    if not getattr(model, "compiled", False):
        return tuple(modes)
    if _evaluates(model):
        modes.append("eval")
    if getattr(model, "optimizer", None) is not None and (
        _computes_loss(model) or _defines_step(model, "train_step")
    ):
        modes.append("train")
    return tuple(modes)


def _has_loss(model: keras.Model) -> bool:
    return getattr(model, "loss", None) is not None


def _computes_loss(model: keras.Model) -> bool:
    """A compiled loss, or a compute_loss of the model's own (keras.io's Distiller)."""
    return _has_loss(model) or _defines_step(model, "compute_loss")


def _evaluates(model: keras.Model) -> bool:
    """True when Keras's own evaluate runs the model (compiled)."""
    return _computes_loss(model) or _defines_step(model, "test_step")


def _defines_step(model: keras.Model, step: str) -> bool:
    """True when the model's class replaces Keras's own train_step, test_step or
    compute_loss."""
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
                "the model was not compiled with a loss and has no compute_loss or"
                f" {step} of its own"
                if mode == "eval"
                or not (_computes_loss(model) or _defines_step(model, "train_step"))
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
    labels: tuple[Label, ...] = ()
    if training:
        labels = _prepare_training_state(model, model_interface, modes, label_specs)

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
        with checked_step_data(model_interface, labels, mode, args) as data:
            for metric in model.metrics:
                metric.reset_state()
            return _log_tensors(step.__name__, step(data))

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
            # of these specs (_prepare_training_state), so the step itself failed.
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
    return BuiltSignatures(root, functions, signature_inputs, labels)


@contextlib.contextmanager
def checked_step_data(model_interface, labels: tuple[Label, ...], mode: str, args):
    """What a step takes from a signature's flat arguments (the inputs, then the
    labels), yielded inside a control dependency on the labels' shape checks: every op
    traced within waits for them, so on a label of another shape nothing runs, not even
    the optimizer's step count (which reads no input)."""
    n_inputs = len(model_interface.inputs)
    x = model_interface.pack_inputs(args[:n_inputs])
    checks = _label_checks(mode, args[:n_inputs], args[n_inputs:], labels)
    with tf.control_dependencies(checks):
        if labels:
            y = _reshaped_labels(args[n_inputs:], labels)
            yield x, model_interface.pack_targets(y)
        else:
            # What Keras's fit(x) hands train_step: the inputs alone.
            yield keras.utils.pack_x_y_sample_weight(x)


def _label_checks(mode: str, flat_inputs, values, labels: tuple[Label, ...]) -> list:
    """Asserts that fail, naming the label and the shapes it takes for these inputs,
    unless each label has one of them."""
    if not labels:
        return []
    batch = tf.shape(flat_inputs[0])[0]
    checks = []
    for value, label in zip(values, labels, strict=True):
        shape = tf.shape(value)
        padded = _padded_shape(value, label)
        # The size each dimension must have; None where any size is taken.
        sizes = {0: batch}
        for dim, input_index, input_dim in label.open_dims:
            sizes[dim] = tf.shape(flat_inputs[input_index])[input_dim]
        fits, texts, values_shown = [], [], []
        for form in label.shapes:
            conditions = [tf.equal(tf.size(shape), len(form))]
            dims_text = []
            for i, size in enumerate(form):
                wanted = size if size is not None else sizes.get(i)
                if wanted is None:
                    dims_text.append("None")
                    continue
                conditions.append(tf.equal(padded[i], wanted))
                dims_text.append("{}" if size is None else str(size))
                if size is None:
                    values_shown.append(wanted)
            fits.append(tf.reduce_all(tf.stack(conditions)))
            texts.append(
                "(" + ", ".join(dims_text) + ("," if len(dims_text) == 1 else "") + ")"
            )
        message = tf.strings.format(
            f"the label {label.name} has the shape {{}}; {mode} accepts"
            f" {' or '.join(texts)} for these inputs",
            (shape, *values_shown),
        )
        checks.append(tf.debugging.Assert(tf.reduce_any(tf.stack(fits)), [message]))
    return checks


def _padded_shape(value, label: Label):
    """The shape of `value`, cut or filled up with -1 to the longest of the label's
    shapes: comparable whatever the rank of what was fed."""
    longest = max(len(form) for form in label.shapes)
    return tf.concat([tf.shape(value), tf.fill([longest], -1)], 0)[:longest]


def _reshaped_labels(values, labels: tuple[Label, ...]) -> list:
    """Each label in the shape the step is traced with (its accepted shapes differ
    from it by a trailing 1 at most)."""
    reshaped = []
    for value, label in zip(values, labels, strict=True):
        padded = _padded_shape(value, label)
        target = tf.stack(
            [
                padded[i] if size is None else size
                for i, size in enumerate(label.desc.shape)
            ]
        )
        reshaped.append(tf.ensure_shape(tf.reshape(value, target), label.desc.shape))
    return reshaped


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


def _prepare_training_state(
    model, model_interface, modes, label_specs
) -> tuple[Label, ...]:
    """Chooses what eval and train take, and creates lazily built state (the compiled
    loss and metrics, the optimizer's slots) eagerly, so tracing captures variables that
    exist. Returns the labels, or () when the model trains on its inputs alone.

    The labels are tried on a sample batch with the step Keras would run: test_step
    where Keras's evaluate runs, else train_step (every variable it changes is put
    back). Given by label_specs, or guessed from a compiled loss, they must run, or the
    error says why (_training_state_error). Without either, Keras does not know them
    either (a compute_loss or train_step of the model's own reads them), so the usual
    forms are tried in a fixed order (_found_labels).
    """
    # The probes' forward passes advance seed generators (a VAE's sampling layer):
    # the export keeps the state the builder left. Only non-trainable state changes
    # there (train_step's probes put back the weights and slots themselves), and a
    # copy of every weight would be a second model in memory.
    with _put_back_variables(interface.tf_variables(model.non_trainable_variables)):
        return _probe_training_state(model, model_interface, modes, label_specs)


def _probe_training_state(model, model_interface, modes, label_specs):
    x = _sample_inputs(
        model_interface,
        interface.zeros_for(
            model_interface.inputs, PROBE_BATCH, model_interface.samples
        ),
    )
    evaluates = _evaluates(model)
    if not evaluates and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    step = model.test_step if evaluates else model.train_step
    descs = label_descs(model, model_interface, label_specs)
    error = _step_error(model, model_interface, step, x, descs)
    if error is not None:
        if _has_loss(model) or label_specs:
            raise _training_state_error(model, model_interface, step, x, descs, error)
        descs = _found_labels(model, model_interface, step, x, descs, error)
    if "train" in modes and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if descs is None:
        return ()
    return tuple(
        Label(
            desc,
            _accepted_shapes(model, model_interface, modes, descs, index),
            # A label stated by label_specs need not follow the outputs (CTC labels).
            ()
            if _output_name(desc) in label_specs
            else _open_dim_sources(model, model_interface, desc, index),
        )
        for index, desc in enumerate(descs)
    )


def _output_name(desc) -> str:
    return desc.name.removesuffix(TARGET_SUFFIX)


def _open_dim_sources(model, model_interface, desc, index):
    """For each dimension the label leaves open after the batch, the input dimension
    the model's output `index` follows there, found by calling the model on inputs
    whose open dimensions all have one size, then each in turn another: (label dim,
    input index, input dim). A dimension that follows none (or several) is left out."""
    label_dims = [d for d in range(1, len(desc.shape)) if desc.shape[d] is None]
    input_dims = [
        (k, j)
        for k, input_desc in enumerate(model_interface.inputs)
        for j in range(1, len(input_desc.shape))
        if input_desc.shape[j] is None
    ]
    if not label_dims or not input_dims:
        return ()
    size = model_interface.samples.unknown_dim
    base = _output_shape(model, model_interface, index, {}, size)
    if base is None:
        return ()
    followed = {d: [] for d in label_dims}
    for k, j in input_dims:
        for other in (s for s in interface.SMALLER_DIMS if s < size):
            changed = _output_shape(
                model, model_interface, index, {(k, j): other}, size
            )
            if changed is not None:
                break
        else:
            continue  # the model takes no other size there
        for d in label_dims:
            if d < len(base) and base[d] == size and changed[d] == other:
                followed[d].append((k, j))
    return tuple(
        (d, *sources[0]) for d, sources in followed.items() if len(sources) == 1
    )


def _output_shape(model, model_interface, index, sizes, size):
    """The shape of output `index` on zeros (batch 1) whose open input dimensions are
    `size`, or `sizes[(input, dim)]`; None when the model does not take them."""
    descs = [
        dataclasses.replace(
            d,
            shape=tuple(
                sizes.get((k, j), size) if j and n is None else n
                for j, n in enumerate(d.shape)
            ),
        )
        for k, d in enumerate(model_interface.inputs)
    ]
    arrays = interface.zeros_for(descs, 1, model_interface.samples)
    try:
        outputs = model_interface.call(model, _sample_inputs(model_interface, arrays))
    except Exception:  # noqa: BLE001 - a size the model does not take
        return None
    return tuple(keras.tree.flatten(outputs)[index].shape)


def _sample_inputs(model_interface, arrays):
    return model_interface.pack_inputs([tf.constant(a) for a in arrays])


def _step_data(model, model_interface, x, descs, make_labels=None):
    """What Keras hands the step: (x, y) with labels of `descs` sized like the model's
    outputs on x (zeros unless `make_labels` makes them), or x alone for `descs` None."""
    if descs is None:
        return keras.utils.pack_x_y_sample_weight(x)
    batch = int(tf.shape(keras.tree.flatten(x)[0])[0])
    concrete = _concrete_targets(model, model_interface, x, descs)
    if make_labels is None:
        values = interface.zeros_for(concrete, batch, model_interface.samples)
    else:
        values = make_labels(concrete, batch)
    return x, model_interface.pack_targets([tf.constant(v) for v in values])


@contextlib.contextmanager
def _put_back_variables(variables):
    saved = [v.numpy() for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)


@contextlib.contextmanager
def _put_back(model, step):
    """Runs a step eagerly without trace: train_step's changes to the model's and the
    optimizer's variables (weights, seed generators, slots, step count) are undone, and
    every metric is reset."""
    variables = []
    if step.__name__ == "train_step":
        variables = interface.tf_variables(model.variables) + interface.tf_variables(
            model.optimizer.variables
        )
    try:
        with _put_back_variables(variables):
            yield
    finally:
        for metric in model.metrics:
            metric.reset_state()


def _step_error(model, model_interface, step, x, descs) -> Exception | None:
    """What `step` raises on the sample batch x with zero labels of `descs` (or x alone
    for None), or None when it runs."""
    try:
        with _put_back(model, step):
            step(_step_data(model, model_interface, x, descs))
    except Exception as e:  # noqa: BLE001 - user model, loss and step code
        return e
    return None


def _step_logs(model, step, data) -> dict[str, np.ndarray] | None:
    """The logs of `step` run eagerly on `data` (undone), or None when it fails."""
    try:
        with _put_back(model, step):
            logs = _log_tensors(step.__name__, step(data))
            return {key: np.asarray(value) for key, value in logs.items()}
    except Exception:  # noqa: BLE001 - a form the step does not take
        return None


def _found_labels(model, model_interface, step, x, primary, first_error):
    """The labels of a model whose own compute_loss or train_step reads them: the first
    form the step runs on, of the outputs' own shape and dtype, sparse class ids (int64,
    without the last dimension), and the inputs alone (None: what fit(x) hands it)."""
    model_error = _model_error(model, model_interface, x)
    if model_error is not None:
        raise model_error
    metrics_built = _compiled_metrics_built(model)
    outputs = model_interface.call(model, x)
    candidates = _label_alternatives(model_interface, outputs, primary)
    tried = [primary]
    for candidate in [*candidates, None]:
        if _compiled_metrics_built(model) != metrics_built:
            # A failed try built the compiled metrics for its labels ("accuracy" picks
            # its kind from them): later tries would run with the wrong ones.
            break
        if _step_error(model, model_interface, step, x, candidate) is None:
            return candidate
        tried.append(candidate)
    shown = ", with labels ".join(_descs_text(d) for d in tried if d is not None)
    alone = " and with the inputs alone" if None in tried else ""
    raise ExportError(
        "label_specs",
        f"the model's {step.__name__} (Keras does not know its labels: it has no"
        f" compiled loss) failed with labels {shown}{alone}:"
        f" {describe_exception(first_error)}",
        [
            f"state the labels its {step.__name__} takes, e.g. ",
            setting("label_specs", _label_specs(primary)),
            ", or fix the step (the traceback below is from its first try)",
        ],
        format_traceback(first_error),
    )


def _compiled_metrics_built(model) -> bool:
    return bool(getattr(getattr(model, "_compile_metrics", None), "built", False))


def _other_form(shape, output_shape):
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


def _accepted_shapes(model, model_interface, modes, descs, index):
    """The shapes label `index` is taken in: its own, and its other form (_other_form)
    where the model's steps give the same logs for both on a random batch. Keras's
    losses reconcile the two; a loss or step of the user's own may instead broadcast
    labels (n,) against outputs (n, 1) into another number, and then only the first
    form is taken."""
    desc = descs[index]
    other = _other_form(desc.shape, model_interface.outputs[index].shape)
    if other is None:
        return (desc.shape,)
    x = _sample_inputs(
        model_interface,
        interface.random_for(
            model_interface.inputs, FORMS_SEED, FORMS_BATCH, model_interface.samples
        ),
    )
    rng = np.random.default_rng(FORMS_SEED)

    def make_labels(concrete, batch):
        return [
            _random_labels(rng, d, output, batch)
            for d, output in zip(concrete, model_interface.outputs, strict=True)
        ]

    try:
        x_data, y = _step_data(model, model_interface, x, descs, make_labels)
    except Exception:  # noqa: BLE001 - the outputs ran on zeros; not on these
        return (desc.shape,)
    flat = keras.tree.flatten(y)
    value = flat[index]
    flat[index] = (
        tf.expand_dims(value, -1) if len(other) > len(desc.shape) else value[..., 0]
    )
    y_other = model_interface.pack_targets(flat)
    steps = []
    if _evaluates(model):
        steps.append(model.test_step)
    if "train" in modes and (
        not _evaluates(model) or _defines_step(model, "train_step")
    ):
        steps.append(model.train_step)
    for step in steps:
        own = _step_logs(model, step, (x_data, y))
        second = _step_logs(model, step, (x_data, y_other))
        if own is None or second is None or own.keys() != second.keys():
            return (desc.shape,)
        for key, want in own.items():
            if not np.allclose(second[key], want, rtol=FORMS_RTOL, atol=FORMS_ATOL):
                return (desc.shape,)
    return (desc.shape, other)


def _random_labels(rng, desc, output, batch: int) -> np.ndarray:
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


def _model_error(model, model_interface, x) -> ExportError | None:
    try:
        model_interface.call(model, x)
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
    return None


def _label_specs(descs) -> dict[str, str]:
    """label_specs stating `descs`, as the user would write them."""
    return {
        _output_name(d): ",".join(str(n) for n in d.shape) + f":{d.dtype}"
        for d in descs
    }


def _training_state_error(
    model, model_interface, step, x, targets, error: Exception
) -> ExportError:
    """Names what made the step fail on the sample batch, found by re-trying.

    The labels are blamed only when they are the difference: the model runs on the
    inputs alone, and the step runs with labels of another usual form (the output's
    own shape and dtype, or sparse class ids). Otherwise the model or its loss, metrics
    or step fail whatever the labels are, and the error says so.
    """
    model_error = _model_error(model, model_interface, x)
    if model_error is not None:
        return model_error
    outputs = model_interface.call(model, x)
    shown = _descs_text(targets)
    compiled = _has_loss(model) and step.__name__ == "test_step"
    what, fail, run = (
        ("the compiled loss and metrics", "fail", "run")
        if compiled
        else (f"the model's {step.__name__}", "fails", "runs")
    )
    for candidate in _label_alternatives(model_interface, outputs, targets):
        if _step_error(model, model_interface, step, x, candidate) is not None:
            continue
        return ExportError(
            "label_specs",
            f"{what} {fail} on labels {shown} ({describe_exception(error)})"
            f" but {run} on labels {_descs_text(candidate)}",
            [
                "state the labels, e.g. ",
                setting("label_specs", _label_specs(candidate)),
            ],
            format_traceback(error),
        )
    what = "compiled loss or metrics (its test_step)" if compiled else step.__name__
    return ExportError(
        ("builder", "src"),
        f"the model's {what} failed on its own outputs"
        f" with labels {shown}, and with labels shaped like the outputs too, so the labels"
        f" are not the cause: {describe_exception(error)}",
        f"fix the loss, metric or {step.__name__} the traceback below points at",
        format_traceback(error),
    )


def _descs_text(descs) -> str:
    """`(name: [shape] dtype, ...)` of inputs or labels, as the errors show them."""
    return "(" + ", ".join(f"{d.name}: {list(d.shape)} {d.dtype}" for d in descs) + ")"


def _label_alternatives(model_interface, outputs, targets):
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


def _concrete_targets(model, model_interface, x, targets):
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
