"""Evaluating a data set batch by batch through the export: `eval_state` and
`eval_result`.

`eval` answers for one batch (it resets the metrics on every call). Keras's
`model.evaluate` instead accumulates its metrics' state over the batches and reads the
result once. The export does the same without holding any state of its own:

| signature     | inputs                         | outputs |
|---------------|--------------------------------|---------|
| `eval_state`  | as `eval` (inputs + labels)    | every metric variable after updating from its reset value on this batch, keyed by a stable name (`auc_true_positives`) |
| `eval_result` | the state, summed over batches | the logs `model.evaluate` returns for those batches |

The metric variables of the export are neither read nor written by these two: both
run the model's own `test_step` and metrics in a Keras StatelessScope that maps each
metric variable to a value of the call's own. So any number of callers (TF Serving
threads, several evaluations of one loaded model) run them concurrently without
mixing, and the export holds the same bytes whatever was evaluated.

Summing states is right only for metrics whose state is a sum over the examples
(Keras's Mean and the metrics built on it, the loss tracker weighted by batch size, AUC's
threshold counts, Precision and Recall, top-k, confusion matrices). A metric whose
state is not (a running max, the last batch's value) would give a wrong number, so
the exporter probes every metric at export time (two random batches: their states
summed must equal the state after both in turn, and the result of one batch's state
must equal `eval` on it) and raises ExportError naming the metric otherwise (the
export then leaves these two out, with a note).

Every state the probe compares is computed traced, with the batch size unknown, as
eval_state computes it and as model.evaluate does (arrays or a tf.data data set): a
multi-output model's per-output loss trackers are weighted by the batch's static size
(`compile_loss`), which is then unknown, so each batch counts once. Computed eagerly,
the same tracker would count the batch's size, and the states would not compare.
"""

import re

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.common.stateless_scope import StatelessScope

from export.lib import interface, signatures, step_data
from export.lib.errors import ExportError, describe_exception, setting

STATE_KEY = "eval_state"
RESULT_KEY = "eval_result"
DATA_SET_KEYS = (STATE_KEY, RESULT_KEY)
_PROBE_RTOL, _PROBE_ATOL = 1e-4, 1e-5


def state_names(variables) -> list[str]:
    """A stable name for each metric variable: its Keras path with `_` for `/` (a
    valid tf.function argument, placeholder and SignatureDef key alike); unique."""
    names, seen = [], set()
    for variable in variables:
        base = re.sub(r"[^A-Za-z0-9_]", "_", variable.path)
        name, n = base, 1
        while name in seen:
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        names.append(name)
    return names


class _Evaluation:
    """The model's test_step and metrics, run on state passed in rather than on the
    metric variables."""

    def __init__(self, model, model_interface, labels):
        self.model = model
        self.model_interface = model_interface
        self.labels = labels
        self.variables = list(model.metrics_variables)

    def reset_values(self) -> list:
        with StatelessScope() as scope:
            for metric in self.model.metrics:
                metric.reset_state()
        return [self._value(scope, v) for v in self.variables]

    def updated(self, start, args) -> tuple[list, dict]:
        """(the state after test_step from `start` on eval's flat arguments `args`,
        its labels checked as eval checks them; test_step's logs).

        The model's weights are in the scope too, as their own values: Keras reads a
        weight regularizer's input from the scope (a Dense with kernel_regularizer)."""
        with step_data.checked_step_data(
            self.model_interface, self.labels, STATE_KEY, args
        ) as data:
            weights = [(v, v.value) for v in self.model.trainable_variables]
            mapping = weights + list(zip(self.variables, start, strict=True))
            with StatelessScope(state_mapping=mapping) as scope:
                logs = step_data.log_tensors("test_step", self.model.test_step(data))
            state = [tf.identity(self._value(scope, v)) for v in self.variables]
        return state, logs

    def result(self, state) -> dict:
        """What Keras's evaluate returns after the batches whose states sum to `state`."""
        with StatelessScope(
            state_mapping=list(zip(self.variables, state, strict=True))
        ):
            return step_data.log_tensors("test_step", self.model.get_metrics_result())

    @staticmethod
    def _value(scope, variable):
        value = scope.get_current_value(variable)
        return variable.value if value is None else value


def add(
    built: signatures.BuiltSignatures,
    model: keras.Model,
    model_interface: interface.ModelInterface,
    probe_arguments: tuple[tuple[tf.Tensor, ...], ...],
) -> None:
    """Adds eval_state and eval_result beside eval, once the probe shows that the
    model's metric states add up over `probe_arguments` (eval's flat arguments of two
    random batches of different sizes, so that a state weighted wrongly by the batch
    size shows; made by label_probes); raises ExportError otherwise."""
    eval_labels = built.labels
    evaluation = _Evaluation(model, model_interface, eval_labels)
    names = state_names(evaluation.variables)
    state_descs = tuple(
        interface.TensorDesc(name, tuple(v.shape), v.dtype)
        for name, v in zip(names, evaluation.variables, strict=True)
    )

    def eval_state(*args):
        state, _ = evaluation.updated(evaluation.reset_values(), args)
        return dict(zip(names, state, strict=True))

    def eval_result(*state):
        return evaluation.result(list(state))

    # As eval's: labels of unknown rank, checked and reshaped inside (labels.Label).
    eval_specs = [d.spec() for d in model_interface.inputs] + [
        label.spec() for label in eval_labels
    ]
    state_fn = tf.function(
        eval_state, input_signature=eval_specs, autograph=False
    ).get_concrete_function()

    def continued_state(*args):
        # The probe's "both batches in turn": traced like eval_state, with the batch
        # size unknown, since Keras weights some trackers by the static batch size.
        start, step_args = list(args[: len(names)]), args[len(names) :]
        state, _ = evaluation.updated(start, step_args)
        return state

    continued_fn = tf.function(
        continued_state,
        input_signature=[d.spec() for d in state_descs] + eval_specs,
        autograph=False,
    ).get_concrete_function()
    result_fn = tf.function(
        eval_result,
        input_signature=[d.spec() for d in state_descs],
        autograph=False,
    ).get_concrete_function()
    _probe(evaluation, names, state_fn, continued_fn, result_fn, probe_arguments)
    built.root.eval_state = state_fn
    built.root.eval_result = result_fn
    built.functions[STATE_KEY] = state_fn
    built.functions[RESULT_KEY] = result_fn
    built.inputs[STATE_KEY] = built.inputs[signatures.SIGNATURE_KEYS["eval"]]
    built.inputs[RESULT_KEY] = state_descs


def _probe(evaluation, names, state_fn, continued_fn, result_fn, batches):
    """Refuses metrics whose state does not add up over `batches` (eval's flat
    arguments of two batches), and a test_step whose logs are not its metrics' results
    (evaluate then reports the last batch's logs)."""
    try:
        states = [state_fn(*args) for args in batches]
        first = [states[0][name] for name in names]
        in_turn = continued_fn(*first, *batches[1])
        _, one_batch_logs = evaluation.updated(evaluation.reset_values(), batches[0])
        result = result_fn(*first)
    except Exception as e:  # noqa: BLE001 - the model's own metrics and steps
        raise ExportError(
            ("builder", "src"),
            "the model's metrics could not be run on state passed in (a Keras"
            " StatelessScope), which eval_state and eval_result need to evaluate a data"
            f" set batch by batch: {describe_exception(e)}",
            [
                (
                    "write the metrics as Keras metrics (state in self.add_variable,"
                    " updated with assign/assign_add), or drop 'eval' from "
                ),
                setting("modes"),
            ],
        ) from None
    for name, variable, value in zip(names, evaluation.variables, in_turn, strict=True):
        summed = states[0][name].numpy() + states[1][name].numpy()
        value = np.asarray(value)
        if not np.allclose(summed, value, rtol=_PROBE_RTOL, atol=_PROBE_ATOL):
            metric = variable.path.split("/")[0]
            raise ExportError(
                ("builder", "src"),
                f"the metric '{metric}' keeps state that does not add up over batches:"
                f" its variable '{variable.path}' is {_short(value)} after two batches"
                f" in turn but {_short(summed)} as the sum of each batch's state, so"
                " the export cannot evaluate a data set batch by batch (eval_state,"
                " eval_result) as model.evaluate does",
                [
                    (
                        "use metrics whose state is a sum over the examples (Keras's"
                        " Mean, Sum, AUC, Precision, Recall, Accuracy and the like), or"
                        " drop 'eval' from "
                    ),
                    setting("modes"),
                ],
            )
    one_batch = {key: np.asarray(value) for key, value in one_batch_logs.items()}
    got = {key: value.numpy() for key, value in result.items()}
    if one_batch.keys() != got.keys():
        raise ExportError(
            ("builder", "src"),
            f"the model's test_step returns the logs ({', '.join(sorted(one_batch))}),"
            f" not its metrics' results ({', '.join(sorted(got))}), so Keras's evaluate"
            " reports the last batch's logs and no sum of batches gives them",
            _RESULTS_FIX,
        )
    for key, want in one_batch.items():
        if not np.allclose(got[key], want, rtol=_PROBE_RTOL, atol=_PROBE_ATOL):
            raise ExportError(
                ("builder", "src"),
                f"the model's test_step logs '{key}' as {_short(want)} on a batch, but"
                f" its metrics' state after that batch gives {_short(got[key])}, so the"
                " logs of a data set cannot be computed from summed metric states",
                _RESULTS_FIX,
            )


_RESULTS_FIX = [
    (
        "return {m.name: m.result() for m in self.metrics} from test_step (what"
        " Keras's own test_step returns), with every metric listed in the model's"
        " `metrics`, or drop 'eval' from "
    ),
    setting("modes"),
]


def _short(value: np.ndarray) -> str:
    flat = np.asarray(value).ravel()
    text = np.array2string(flat[:4], precision=6)
    return text if flat.size <= 4 else f"{text[:-1]} ...] ({flat.size} values)"
