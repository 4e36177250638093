"""Choosing the labels of eval and train by trying them on the model.

Labels stated by label_specs or guessed from a compiled loss are tried on a sample
batch with the step Keras would run; without either, the usual forms are tried in a
fixed order. A second form of a label is accepted where the model's steps give the
same logs for both, and a dimension the label leaves open is traced to the input
dimension the output follows there. Every step tried is undone (_undone).

The model's steps come described (modes.ModelSteps), the first guess of the labels
too (labels.label_descs), and the sample batches made (sample_inputs.SampleBatches);
what is found here goes on to the signatures as `labels.Label`s, with eval_state's
probe batches, labelled here as the probes' own batches are.
"""

import contextlib
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from export.lib import interface, labels, sample_inputs, step_data
from export.lib.errors import (
    ExportError,
    describe_exception,
    format_traceback,
    setting,
)
from export.lib.labels import Label
from export.lib.modes import ModelSteps

# How close the logs of two forms of a label must be (summation order differs after a
# reshape).
FORMS_RTOL, FORMS_ATOL = 1e-5, 1e-6


def prepare_training_state(
    model,
    model_interface,
    model_steps: ModelSteps,
    modes,
    label_specs,
    batches: sample_inputs.SampleBatches,
) -> tuple[tuple[Label, ...], tuple[tuple[tf.Tensor, ...], ...]]:
    """Chooses what eval and train take, and creates lazily built state (the compiled
    loss and metrics, the optimizer's slots) eagerly, so tracing captures variables that
    exist. Returns the labels (none when the model trains on its inputs alone or
    `modes` hold neither eval nor train) and eval_state's probe batches as eval's flat
    arguments, labelled with them (none without eval).

    The labels are tried on a sample batch with the step Keras would run: test_step
    where Keras's evaluate runs, else train_step (every variable it changes is put
    back). Given by label_specs, or guessed from a compiled loss, they must run, or the
    error says why (_training_state_error). Without either, Keras does not know them
    either (a compute_loss or train_step of the model's own reads them), so the usual
    forms are tried in a fixed order (_found_labels).
    """
    if set(modes) <= {"serve"}:
        return (), ()
    descs = labels.label_descs(model, model_interface, label_specs)
    # The steps that must give the same logs for both forms of a label: the one
    # Keras's evaluate runs, and train_step where it is the model's own or the only.
    compared = []
    if model_steps.evaluates:
        compared.append(model.test_step)
    if "train" in modes and (not model_steps.evaluates or model_steps.own_train_step):
        compared.append(model.train_step)
    # The probes' forward passes advance seed generators (a VAE's sampling layer):
    # the export keeps the state the builder left. Only non-trainable state changes
    # there (train_step's probes put back the weights and slots themselves), and a
    # copy of every weight would be a second model in memory.
    with put_back_variables(model.non_trainable_variables):
        chosen = _probe_training_state(
            model,
            model_interface,
            model_steps,
            modes,
            label_specs,
            descs,
            compared,
            batches,
        )
        eval_probe = _eval_probe_arguments(
            model, model_interface, chosen, batches.eval_probe
        )
    return chosen, eval_probe


def _probe_training_state(
    model, model_interface, model_steps, modes, label_specs, descs, compared, batches
):
    x = _sample_inputs(model_interface, batches.probe_zeros)
    if not model_steps.evaluates and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    step = model.test_step if model_steps.evaluates else model.train_step
    error = _step_error(model, model_interface, step, x, descs)
    if error is not None:
        if model_steps.has_loss or label_specs:
            raise _training_state_error(
                model, model_interface, model_steps, step, x, descs, error
            )
        descs = _found_labels(model, model_interface, step, x, descs, error)
    if "train" in modes and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if descs is None:
        return ()
    return tuple(
        Label(
            desc,
            _accepted_shapes(
                model, model_interface, compared, descs, index, batches.forms
            ),
            # A label stated by label_specs need not follow the outputs (CTC labels).
            ()
            if labels.output_name(desc) in label_specs
            else _open_dim_sources(
                model, model_interface, desc, index, batches.open_dim_zeros
            ),
        )
        for index, desc in enumerate(descs)
    )


def _eval_probe_arguments(model, model_interface, chosen, probe_batches):
    """Each of `probe_batches` (sample_inputs.SeededBatch) as eval's flat arguments:
    its inputs, then random labels of its seed sized like the model's outputs on
    those inputs, as tensors."""
    result = []
    for seeded in probe_batches:
        inputs = [tf.constant(a) for a in seeded.arrays]
        if chosen:
            descs = [label.desc for label in chosen]
            x = model_interface.pack_inputs(inputs)
            _, y = _step_data(model, model_interface, x, descs, seeded.seed)
            inputs += keras.tree.flatten(y)
        result.append(tuple(inputs))
    return tuple(result)


def _open_dim_sources(model, model_interface, desc, index, zeros):
    """For each dimension the label leaves open after the batch, the input dimension
    the model's output `index` follows there, found by calling the model on `zeros`
    (batch 1, every open dimension of the unknown_dim size), then on them with each
    open dimension in turn shorter: (label dim, input index, input dim). A dimension
    that follows none (or several) is left out."""
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
    base = _output_shape(model, model_interface, index, zeros)
    if base is None:
        return ()
    followed = {d: [] for d in label_dims}
    for k, j in input_dims:
        for other in (s for s in sample_inputs.SMALLER_DIMS if s < size):
            shorter = list(zeros)
            # Zeros hold one value throughout: cut short, they are zeros of that size.
            shorter[k] = np.take(zeros[k], range(other), axis=j)
            changed = _output_shape(model, model_interface, index, shorter)
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


def _output_shape(model, model_interface, index, arrays):
    """The shape of output `index` on the input `arrays`; None when the model does not
    take them."""
    try:
        outputs = model_interface.call(model, _sample_inputs(model_interface, arrays))
    except Exception:  # noqa: BLE001 - a size the model does not take
        return None
    return tuple(keras.tree.flatten(outputs)[index].shape)


def _sample_inputs(model_interface, arrays):
    return model_interface.pack_inputs([tf.constant(a) for a in arrays])


def _step_data(model, model_interface, x, descs, seed=None):
    """What Keras hands the step: (x, y) with labels of `descs` sized like the model's
    outputs on x, zeros or (given `seed`) random ones of that seed, or x alone for
    `descs` None."""
    if descs is None:
        return keras.utils.pack_x_y_sample_weight(x)
    batch = int(tf.shape(keras.tree.flatten(x)[0])[0])
    concrete = _concrete_targets(model, model_interface, x, descs)
    if seed is None:
        values = sample_inputs.zeros_for(concrete, batch, model_interface.samples)
    else:
        rng = np.random.default_rng(seed)
        values = [
            sample_inputs.random_labels(rng, d, output, batch)
            for d, output in zip(concrete, model_interface.outputs, strict=True)
        ]
    return x, model_interface.pack_targets([tf.constant(v) for v in values])


def _step_error(model, model_interface, step, x, descs) -> Exception | None:
    """What `step` raises on the sample batch x with zero labels of `descs` (or x alone
    for None), or None when it runs."""
    try:
        with _undone(model, step):
            step(_step_data(model, model_interface, x, descs))
    except Exception as e:  # noqa: BLE001 - user model, loss and step code
        return e
    return None


def _step_logs(model, step, data) -> dict[str, np.ndarray] | None:
    """The logs of `step` run eagerly on `data` (undone), or None when it fails."""
    try:
        with _undone(model, step):
            logs = step_data.log_tensors(step.__name__, step(data))
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
    candidates = label_alternatives(model_interface, outputs, primary)
    tried = [primary]
    for candidate in [*candidates, None]:
        if _compiled_metrics_built(model) != metrics_built:
            # A failed try built the compiled metrics for its labels ("accuracy" picks
            # its kind from them): later tries would run with the wrong ones.
            break
        if _step_error(model, model_interface, step, x, candidate) is None:
            return candidate
        tried.append(candidate)
    shown = ", with labels ".join(descs_text(d) for d in tried if d is not None)
    alone = " and with the inputs alone" if None in tried else ""
    raise ExportError(
        "label_specs",
        f"the model's {step.__name__} (Keras does not know its labels: it has no"
        f" compiled loss) failed with labels {shown}{alone}:"
        f" {describe_exception(first_error)}",
        [
            f"state the labels its {step.__name__} takes, e.g. ",
            setting("label_specs", label_specs_text(primary)),
            ", or fix the step (the traceback below is from its first try)",
        ],
        format_traceback(first_error),
    )


def _compiled_metrics_built(model) -> bool:
    return bool(getattr(getattr(model, "_compile_metrics", None), "built", False))


def _accepted_shapes(model, model_interface, compared, descs, index, forms):
    """The shapes label `index` is taken in: its own, and its other form (other_form)
    where the `compared` steps give the same logs for both on the random batch
    `forms` (a sample_inputs.SeededBatch). Keras's losses reconcile the two; a loss or
    step of the user's own may instead broadcast labels (n,) against outputs (n, 1)
    into another number, and then only the first form is taken."""
    desc = descs[index]
    other = other_form(desc.shape, model_interface.outputs[index].shape)
    if other is None:
        return (desc.shape,)
    x = _sample_inputs(model_interface, forms.arrays)
    try:
        x, y = _step_data(model, model_interface, x, descs, forms.seed)
    except Exception:  # noqa: BLE001 - the outputs ran on zeros; not on these
        return (desc.shape,)
    flat = keras.tree.flatten(y)
    value = flat[index]
    flat[index] = (
        tf.expand_dims(value, -1) if len(other) > len(desc.shape) else value[..., 0]
    )
    y_other = model_interface.pack_targets(flat)
    for step in compared:
        own = _step_logs(model, step, (x, y))
        second = _step_logs(model, step, (x, y_other))
        if own is None or second is None or own.keys() != second.keys():
            return (desc.shape,)
        for key, want in own.items():
            if not np.allclose(second[key], want, rtol=FORMS_RTOL, atol=FORMS_ATOL):
                return (desc.shape,)
    return (desc.shape, other)


def _model_error(model, model_interface, x) -> ExportError | None:
    try:
        model_interface.call(model, x)
    except Exception as e:  # noqa: BLE001 - user model code
        return ExportError(
            ("builder", "src"),
            "the model failed on a sample batch of its declared inputs"
            f" {descs_text(model_interface.inputs)} before"
            f" its loss could run: {describe_exception(e)}",
            "make the model accept any batch of its declared input shape (give fixed"
            " sizes, or sizes it accepts, to the dimensions it cannot take freely)",
            format_traceback(e),
        )
    return None


def _training_state_error(
    model, model_interface, model_steps, step, x, targets, error: Exception
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
    shown = descs_text(targets)
    compiled = model_steps.has_loss and step.__name__ == "test_step"
    what, fail, run = (
        ("the compiled loss and metrics", "fail", "run")
        if compiled
        else (f"the model's {step.__name__}", "fails", "runs")
    )
    for candidate in label_alternatives(model_interface, outputs, targets):
        if _step_error(model, model_interface, step, x, candidate) is not None:
            continue
        return ExportError(
            "label_specs",
            f"{what} {fail} on labels {shown} ({describe_exception(error)})"
            f" but {run} on labels {descs_text(candidate)}",
            [
                "state the labels, e.g. ",
                setting("label_specs", label_specs_text(candidate)),
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


@contextlib.contextmanager
def put_back_variables(variables):
    """Gives `variables` (Keras's or TensorFlow's) back, on exit, the values they had
    on entry."""
    saved = [v.numpy() for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)


@contextlib.contextmanager
def _undone(model, step):
    """Runs a step eagerly without trace: train_step's changes to the model's and the
    optimizer's variables (weights, seed generators, slots, step count) are undone, and
    every metric is reset."""
    variables = []
    if step.__name__ == "train_step":
        variables = [*model.variables, *model.optimizer.variables]
    try:
        with put_back_variables(variables):
            yield
    finally:
        for metric in model.metrics:
            metric.reset_state()


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


def label_specs_text(descs) -> dict[str, str]:
    """label_specs stating `descs`, as the user would write them."""
    return {
        labels.output_name(d): ",".join(str(n) for n in d.shape) + f":{d.dtype}"
        for d in descs
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
