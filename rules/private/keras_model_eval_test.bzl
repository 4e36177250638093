"""Implementation of keras_model_eval_test: a py_test gating an export's metrics on a data set."""

load(":py.bzl", "py_test")

def _quoted_json(value):
    # A test's args are split as a shell splits words: the JSON goes in single quotes.
    return "'%s'" % json.encode(value).replace("'", "'\\''")

def keras_model_eval_test(
        name,
        saved_model,
        data,
        bounds = {},
        baseline = None,
        baseline_metrics = None,
        change_bounds = {},
        batch_size = 32,
        feature_map = {},
        **kwargs):
    """A py_test that evaluates an export on a data set and gates its metrics.

    In a process of its own, it loads the export (no Keras model, no builder) and runs
    its `eval_state` signature on the data a batch at a time, adding the states up,
    then `eval_result` on the sums: the logs `model.evaluate` gives with the same batch
    size. It prints a table (metric, value, baseline, bound, verdict), writes
    `metrics.json` and `report.html` (a ROC curve for a model with an AUC metric) into
    the test's undeclared outputs, and fails when a bound does not hold or on bad input.

    Args:
      name: the test.
      saved_model: label of a keras_saved_model target exported with `eval`.
      data: data files, read in order, a batch at a time: `.tfrecord` of
        tf.train.Example (GZIP too), `.csv` with a header, `.npz`. Each feature is
        matched to the signature's input or label (`<output>_target`) of its name.
      bounds: dict metric -> bound, e.g. {"accuracy": ">= 0.9", "loss": "<= 0.35"}
        (`>=`, `<=`, `>`, `<`, `==`).
      baseline: optional label of another keras_saved_model target, evaluated on the
        same data as the baseline.
      baseline_metrics: optional checked-in metrics JSON (a `metrics.json` this rule
        wrote) as the baseline, instead of `baseline`.
      change_bounds: dict metric -> bound on the change from the baseline, absolute
        ({"auc": ">= -0.01"}) or relative in percent ({"loss": "<= +5%"}).
      batch_size: examples per `eval_state` call.
      feature_map: dict signature input -> feature name in the data, where they differ.
      **kwargs: passed to py_test (size, tags, timeout, ...).
    """
    args = [
        "--target=//%s:%s" % (native.package_name(), name),
        "--saved_model=$(rootpath %s)" % saved_model,
        "--bounds=%s" % _quoted_json(bounds),
        "--change_bounds=%s" % _quoted_json(change_bounds),
        "--batch_size=%d" % batch_size,
        "--feature_map=%s" % _quoted_json(feature_map),
    ] + ["--data=$(rootpath %s)" % f for f in data]
    files = [saved_model] + data
    if baseline:
        args.append("--baseline_saved_model=$(rootpath %s)" % baseline)
        files.append(baseline)
    if baseline_metrics:
        args.append("--baseline_metrics=$(rootpath %s)" % baseline_metrics)
        files.append(baseline_metrics)
    py_test(
        name = name,
        srcs = [Label("//rules/private:keras_model_eval_test_main.py")],
        main = Label("//rules/private:keras_model_eval_test_main.py"),
        args = args,
        data = files,
        deps = [Label("//export:tensorflow")],
        **kwargs
    )
