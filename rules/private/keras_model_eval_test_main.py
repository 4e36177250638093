"""keras_model_eval_test's program (internal): evaluates an export on a data set
through its eval_state and eval_result signatures alone, in a process of its own, and
gates the metrics on bounds and on a baseline.

The data is read a batch at a time (TFRecord of tf.train.Example, GZIP too; CSV with a
header; .npz), so memory does not grow with the data set. It prints a table (metric,
value, baseline, bound, verdict) and writes `metrics.json` and `report.html` into
TEST_UNDECLARED_OUTPUTS_DIR. Any bad input (a missing or extra feature, a value of the
wrong type, a label the signature refuses, no data, a bound on a metric the export
does not report, a NaN metric, an unreadable file) fails the test with one paragraph
naming the target, the attribute or file, the feature and the fix.
"""

import csv
import glob
import html
import json
import math
import os
import re
import sys

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("target", "", "The test's label, as errors name it.")
flags.DEFINE_string("saved_model", None, "The keras_saved_model output folder.")
flags.DEFINE_multi_string("data", [], "Data files, read in this order.")
flags.DEFINE_string("bounds", "{}", 'JSON: metric -> bound, e.g. {"auc": ">= 0.9"}.')
flags.DEFINE_string("baseline_saved_model", None, "A baseline export to evaluate too.")
flags.DEFINE_string("baseline_metrics", None, "A metrics JSON file to compare with.")
flags.DEFINE_string(
    "change_bounds",
    "{}",
    'JSON: metric -> allowed change from the baseline, e.g. {"auc": ">= -0.01"} or'
    ' {"loss": "<= +5%"}.',
)
flags.DEFINE_integer("batch_size", 32, "Examples per eval_state call.")
flags.DEFINE_string("feature_map", "{}", "JSON: signature input -> feature name.")

STATE_KEY, RESULT_KEY = "eval_state", "eval_result"
_BOUND = re.compile(r"^\s*(>=|<=|>|<|==)\s*([+-]?[0-9.eE+-]+)\s*(%?)\s*$")


class GateError(Exception):
    """Bad input: one paragraph naming what is wrong and how to fix it."""


def _fail(text: str) -> GateError:
    return GateError(f"{FLAGS.target}: {text}")


def _parse_bound(attribute: str, metric: str, text: str):
    match = _BOUND.match(str(text))
    if not match:
        raise _fail(
            f"the bound \"{text}\" on '{metric}' in `{attribute}` is not a comparison;"
            ' write it as ">= 0.9", "<= 0.35" (or, in change_bounds, ">= -0.01" or'
            ' ">= -2%")'
        )
    op, number, percent = match.groups()
    if percent and attribute != "change_bounds":
        raise _fail(
            f"the bound \"{text}\" on '{metric}' in `{attribute}` is relative (%), which"
            " only change_bounds takes; give an absolute value"
        )
    return op, float(number), bool(percent)


def _holds(value: float, op: str, limit: float) -> bool:
    return {
        ">=": value >= limit,
        "<=": value <= limit,
        ">": value > limit,
        "<": value < limit,
        "==": value == limit,
    }[op]


# Reading the data, a batch at a time.


def _version_dir(base: str) -> str:
    if os.path.exists(os.path.join(base, "saved_model.pb")):
        return base
    found = sorted(glob.glob(os.path.join(base, "*", "saved_model.pb")))
    if len(found) != 1:
        raise _fail(f"expected one SavedModel version folder under {base}")
    return os.path.dirname(found[0])


class Signature:
    """eval_state's inputs (name, dtype, shape) and the two functions."""

    def __init__(self, path: str, attribute: str):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(_version_dir(path))
        if STATE_KEY not in self.loaded.signatures:
            raise _fail(
                f"the export `{attribute}` has no {STATE_KEY} signature, so it cannot be"
                " evaluated batch by batch; export it with 'eval' in its `modes` (the"
                " model needs a compiled loss)"
            )
        self.state = self.loaded.signatures[STATE_KEY]
        self.result = self.loaded.signatures[RESULT_KEY]
        _, specs = self.state.structured_input_signature
        self.inputs = {
            name: (spec.dtype, spec.shape) for name, spec in sorted(specs.items())
        }


def _feature_names(inputs, feature_map) -> dict[str, str]:
    unknown = sorted(set(feature_map) - set(inputs))
    if unknown:
        raise _fail(
            f"`feature_map` maps {', '.join(unknown)}, which the export's eval_state"
            f" does not take (it takes {', '.join(inputs)}); name the signature's"
            " inputs on the left"
        )
    return {name: feature_map.get(name, name) for name in inputs}


def _as_array(values, dtype, name: str, source: str, feature: str) -> np.ndarray:
    import tensorflow as tf

    try:
        if dtype == tf.string:
            return np.asarray(
                [v if isinstance(v, bytes) else str(v).encode() for v in values],
                dtype=object,
            )
        return np.asarray(values, dtype=dtype.as_numpy_dtype)
    except (ValueError, TypeError) as e:
        raise _fail(
            f"the feature '{feature}' in {source} does not hold {dtype.name} values, as"
            f" the export's input '{name}' takes ({e}); fix the data, or map '{name}' to"
            " the right feature in `feature_map`"
        ) from None


def _columns(feature) -> list[str]:
    """The file's features an input is read from: one, or (CSV) a list stacked."""
    return list(feature) if isinstance(feature, list) else [feature]


def _check_columns(present, wanted: dict, source: str) -> None:
    columns = [c for f in wanted.values() for c in _columns(f)]
    missing = sorted(c for c in columns if c not in present)
    if missing:
        inputs = [n for n, f in wanted.items() if set(_columns(f)) & set(missing)]
        raise _fail(
            f"the feature(s) {', '.join(missing)} that the export's eval_state takes"
            f" (as {', '.join(inputs)}) are not in {source} (it has"
            f" {', '.join(sorted(present))}); add them to the data, or map each input"
            " to the file's feature in `feature_map`"
        )
    extra = sorted(set(present) - set(columns))
    if extra:
        raise _fail(
            f"{source} holds the feature(s) {', '.join(extra)}, which the export's"
            f" eval_state does not take (it takes {', '.join(columns)}); remove"
            " them from the data, or map an input to each in `feature_map`"
        )


def _reshape(array: np.ndarray, shape, name: str, source: str) -> np.ndarray:
    """A column of scalars as the input's shape: (n,) or (n, 1)."""
    if shape.rank == 2 and shape[1] == 1 and array.ndim == 1:
        return array[:, None]
    return array


def _csv_batches(path, inputs, names, batch_size):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        _check_columns(reader.fieldnames or [], names, path)
        rows = []
        for row in reader:
            rows.append(row)
            if len(rows) == batch_size:
                yield _csv_batch(rows, inputs, names, path)
                rows = []
        if rows:
            yield _csv_batch(rows, inputs, names, path)


def _csv_batch(rows, inputs, names, path):
    batch = {}
    for name, (dtype, shape) in inputs.items():
        columns = [
            _as_array([r[c] for r in rows], dtype, name, path, c)
            for c in _columns(names[name])
        ]
        if isinstance(names[name], list):
            batch[name] = np.stack(columns, axis=1)
        else:
            batch[name] = _reshape(columns[0], shape, name, path)
    return batch


def _npz_batches(path, inputs, names, batch_size):
    with np.load(path, allow_pickle=False) as data:
        _check_columns(list(data.keys()), names, path)
        arrays = {name: data[names[name]] for name in inputs}
    n = len(next(iter(arrays.values())))
    for start in range(0, n, batch_size):
        yield {
            name: _as_array(
                arrays[name][start : start + batch_size],
                inputs[name][0],
                name,
                path,
                names[name],
            )
            for name in inputs
        }


def _tfrecord_batches(path, inputs, names, batch_size):
    import tensorflow as tf

    with open(path, "rb") as f:
        compression = "GZIP" if f.read(2) == b"\x1f\x8b" else ""
    dataset = tf.data.TFRecordDataset(path, compression_type=compression)
    spec = {}
    for name, (dtype, shape) in inputs.items():
        kind = (
            tf.string
            if dtype == tf.string
            else tf.float32
            if dtype.is_floating
            else tf.int64
        )
        if shape.rank is None:
            # A label (eval takes it in more than one shape): as many values as the
            # Example holds, (n, k); the signature checks the shape.
            spec[names[name]] = tf.io.VarLenFeature(kind)
            continue
        if any(d is None for d in shape[1:]):
            raise _fail(
                f"the export's input '{name}' has the shape {shape}, with a length"
                f" only known per example; {path}: TFRecord inputs need fixed sizes"
                " here, give such data as .npz"
            )
        spec[names[name]] = tf.io.FixedLenFeature(shape[1:], kind)
    first = True
    for records in dataset.batch(batch_size):
        if first:
            example = tf.train.Example.FromString(records[0].numpy())
            _check_columns(list(example.features.feature), names, path)
            first = False
        try:
            parsed = tf.io.parse_example(records, spec)
        except tf.errors.InvalidArgumentError as e:
            raise _fail(
                f"{path} holds an Example whose features do not fit the export's inputs"
                f" ({e.message.splitlines()[0]}); each feature must have the type"
                " (float_list, int64_list, bytes_list) and size of its input"
            ) from None
        parsed = {
            key: tf.sparse.to_dense(value)
            if isinstance(value, tf.sparse.SparseTensor)
            else value
            for key, value in parsed.items()
        }
        yield {
            name: tf.cast(parsed[names[name]], inputs[name][0]).numpy()
            if inputs[name][0] != tf.string
            else parsed[names[name]].numpy()
            for name in inputs
        }


def batches(path, inputs, names, batch_size):
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise _fail(f"the data file {path} (in `data`) cannot be read: it is missing")
    lower = path.lower()
    try:
        if lower.endswith(".csv"):
            yield from _csv_batches(path, inputs, names, batch_size)
        elif lower.endswith(".npz"):
            yield from _npz_batches(path, inputs, names, batch_size)
        elif re.search(r"\.(tfrecords?|tfrec)(\.gz)?$", lower):
            yield from _tfrecord_batches(path, inputs, names, batch_size)
        else:
            raise _fail(
                f"the data file {path} (in `data`) is of no format this rule reads;"
                " give .tfrecord (tf.train.Example, GZIP too), .csv with a header, or"
                " .npz"
            )
    except GateError:
        raise
    except Exception as e:  # noqa: BLE001 - OSError, a decoding error, TF's DataLossError
        raise _fail(
            f"the data file {path} (in `data`) cannot be read ({e}); check that it is"
            " a complete file of the format its name says"
        ) from None


# Evaluating and gating.


def evaluate(signature: Signature, paths, feature_map, batch_size):
    """The export's logs over every example of `paths`, the count of examples and
    the summed state."""
    import tensorflow as tf

    names = _feature_names(signature.inputs, feature_map)
    total, examples = None, 0
    for path in paths:
        stacked = [n for n, f in names.items() if isinstance(f, list)]
        if stacked and not path.lower().endswith(".csv"):
            raise _fail(
                f"`feature_map` reads {', '.join(stacked)} from a list of features,"
                f" which only CSV columns take; {path} must hold each input as one"
                " feature of its full shape"
            )
        for batch in batches(path, signature.inputs, names, batch_size):
            try:
                state = signature.state(**{k: tf.constant(v) for k, v in batch.items()})
            except tf.errors.InvalidArgumentError as e:
                message = e.message.splitlines()[0]
                raise _fail(
                    f"the export's eval_state refused a batch of {path}: {message}."
                    " Give each label (`<output>_target`) in a shape the manifest's"
                    " accepted_shapes lists, or map it to the right feature in"
                    " `feature_map`"
                ) from None
            state = {k: v.numpy() for k, v in state.items()}
            total = (
                state if total is None else {k: total[k] + v for k, v in state.items()}
            )
            examples += len(next(iter(batch.values())))
    if total is None:
        raise _fail(
            f"the data ({', '.join(paths)}) holds no example, so nothing can be"
            " evaluated; give `data` files with examples"
        )
    logs = {k: float(v) for k, v in signature.result(**total).items()}
    return logs, examples, total


def gate(metrics, baseline, bounds, change_bounds) -> tuple[list, bool]:
    rows, passed = [], True
    for attribute, table in (("bounds", bounds), ("change_bounds", change_bounds)):
        unknown = sorted(set(table) - set(metrics))
        if unknown:
            raise _fail(
                f"`{attribute}` names {', '.join(unknown)}, which the export does not"
                f" report (it reports {', '.join(sorted(metrics))}); name one of those"
            )
    if change_bounds and baseline is None:
        raise _fail(
            "`change_bounds` needs a baseline: set `baseline` (an export) or"
            " `baseline_metrics` (a metrics JSON file)"
        )
    for metric in sorted(metrics):
        value = metrics[metric]
        base = None if baseline is None else baseline.get(metric)
        checks = []
        if metric in bounds:
            op, limit, _ = _parse_bound("bounds", metric, bounds[metric])
            checks.append((f"{op} {limit:g}", _holds(value, op, limit)))
        if metric in change_bounds:
            op, limit, relative = _parse_bound(
                "change_bounds", metric, change_bounds[metric]
            )
            if base is None:
                raise _fail(
                    f"the baseline has no '{metric}', which `change_bounds` bounds;"
                    " give a baseline that reports it"
                )
            change = value - base
            if relative:
                change = 100.0 * change / abs(base) if base else math.inf
            unit = "%" if relative else ""
            checks.append(
                (
                    f"change {op} {limit:+g}{unit} (is {change:+.4g}{unit})",
                    _holds(change, op, limit),
                )
            )
        if math.isnan(value):
            raise _fail(
                f"the metric '{metric}' is NaN on this data (a NaN or inf in the data or the"
                " model's outputs, or a 0/0 in a metric of its own), so no bound"
                " can pass or fail on it; check the data and the labels"
            )
        ok = all(holds for _, holds in checks)
        passed = passed and ok
        rows.append(
            {
                "metric": metric,
                "value": value,
                "baseline": base,
                "bound": "; ".join(text for text, _ in checks),
                "verdict": ("PASS" if ok else "FAIL") if checks else "-",
            }
        )
    return rows, passed


def _table(rows) -> str:
    header = ("metric", "value", "baseline", "bound", "verdict")
    cells = [header] + [
        (
            r["metric"],
            f"{r['value']:.6g}",
            "" if r["baseline"] is None else f"{r['baseline']:.6g}",
            r["bound"],
            r["verdict"],
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = [
        "  ".join(c[i].ljust(widths[i]) for i in range(len(header))) for c in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _roc_svg(state: dict) -> str:
    """A ROC curve from an AUC metric's summed threshold counts, if there is one."""
    prefix = next(
        (
            k[: -len("true_positives")]
            for k in sorted(state)
            if k.endswith("true_positives")
            and k[: -len("true_positives")] + "true_negatives" in state
        ),
        None,
    )
    if prefix is None:
        return ""
    tp, fp = state[prefix + "true_positives"], state[prefix + "false_positives"]
    tn, fn = state[prefix + "true_negatives"], state[prefix + "false_negatives"]
    tpr = tp / np.maximum(tp + fn, 1e-12)
    fpr = fp / np.maximum(fp + tn, 1e-12)
    points = " ".join(
        f"{20 + 260 * x:.1f},{280 - 260 * y:.1f}"
        for x, y in sorted(zip(fpr, tpr, strict=True))
    )
    return (
        f"<h2>ROC ({html.escape(prefix.rstrip('.'))})</h2>"
        '<svg width="300" height="300" xmlns="http://www.w3.org/2000/svg">'
        '<rect x="20" y="20" width="260" height="260" fill="none" stroke="#888"/>'
        '<line x1="20" y1="280" x2="280" y2="20" stroke="#ccc"/>'
        f'<polyline points="{points}" fill="none" stroke="#1565c0" stroke-width="2"/>'
        '<text x="120" y="298" font-size="11">false positive rate</text>'
        '<text x="2" y="150" font-size="11" transform="rotate(-90 10,150)">'
        "true positive rate</text></svg>"
    )


def _report(rows, examples, state) -> str:
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r["metric"],
                f"{r['value']:.6g}",
                "" if r["baseline"] is None else f"{r['baseline']:.6g}",
                r["bound"],
            )
        )
        + f'<td style="color:{"#2e7d32" if r["verdict"] == "PASS" else "#c62828" if r["verdict"] == "FAIL" else "#555"}">'
        f"<b>{r['verdict']}</b></td></tr>"
        for r in rows
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(FLAGS.target)}</title></head><body style='font-family:sans-serif'>"
        f"<h1>{html.escape(FLAGS.target)}</h1><p>{examples} examples</p>"
        "<table border='1' cellpadding='4' style='border-collapse:collapse'>"
        "<tr><th>metric</th><th>value</th><th>baseline</th><th>bound</th>"
        f"<th>verdict</th></tr>{body}</table>{_roc_svg(state)}</body></html>"
    )


def _json_flag(name: str) -> dict:
    try:
        value = json.loads(FLAGS[name].value)
    except json.JSONDecodeError as e:
        raise _fail(f"`{name}` is not a dict ({e})") from None
    return value


def run() -> bool:
    bounds = _json_flag("bounds")
    change_bounds = _json_flag("change_bounds")
    feature_map = _json_flag("feature_map")
    for attribute, table in (("bounds", bounds), ("change_bounds", change_bounds)):
        for metric, text in table.items():
            _parse_bound(attribute, metric, text)
    signature = Signature(FLAGS.saved_model, "saved_model")
    metrics, examples, state = evaluate(
        signature, FLAGS.data, feature_map, FLAGS.batch_size
    )
    baseline = None
    if FLAGS.baseline_metrics:
        try:
            with open(FLAGS.baseline_metrics, encoding="utf-8") as f:
                baseline = json.load(f)["metrics"]
        except (OSError, ValueError, KeyError) as e:
            raise _fail(
                f"the baseline_metrics file {FLAGS.baseline_metrics} cannot be read as a"
                f' metrics JSON ({e!r}); give a file this rule wrote ({{"metrics": ...}})'
            ) from None
    elif FLAGS.baseline_saved_model:
        base_signature = Signature(FLAGS.baseline_saved_model, "baseline")
        baseline, _, _ = evaluate(
            base_signature, FLAGS.data, feature_map, FLAGS.batch_size
        )
    rows, passed = gate(metrics, baseline, bounds, change_bounds)
    print(f"{FLAGS.target}: {examples} examples")
    print(_table(rows))
    out = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(
                {"examples": examples, "metrics": metrics, "baseline": baseline},
                f,
                indent=2,
                sort_keys=True,
            )
        with open(os.path.join(out, "report.html"), "w", encoding="utf-8") as f:
            f.write(_report(rows, examples, state))
    failed = [r["metric"] for r in rows if r["verdict"] == "FAIL"]
    if failed:
        print(f"{FLAGS.target}: FAILED on {', '.join(failed)}")
    return passed


def main(argv):
    del argv
    try:
        passed = run()
    except GateError as e:
        print(str(e), file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    flags.mark_flag_as_required("saved_model")
    app.run(main)
