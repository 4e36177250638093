"""What a signature function hands the model's step, and what it takes back: the
data in (the inputs packed as the model takes them, the labels checked and reshaped)
and the logs out (one flat dict of tensors, as Keras's fit reports them). The eval,
train and eval_state signatures and the label probes go through here.

A loaded signature does not check the shapes it is fed, so each function checks its
labels itself before anything runs, naming the label and the shapes it takes for the
inputs at hand, and reshapes a label of another accepted form to the one the model's
steps were traced with (see labels.Label).
"""

import contextlib
from collections.abc import Mapping

import keras
import tensorflow as tf

from export.lib.errors import ExportError, describe_exception
from export.lib.labels import Label


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


def log_tensors(step_name: str, logs) -> dict[str, tf.Tensor]:
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
            flat.update(log_tensors(step_name, value))
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
