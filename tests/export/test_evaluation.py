"""Evaluating a data set batch by batch through the export (eval_state, eval_result)
gives model.evaluate's logs, by the object API and by TF Serving's session path; two
evaluations run interleaved or at once do not mix; a metric whose state does not add
up is refused at export; the export holds the model's state as the builder left it."""

import dataclasses
import os
import shutil
import threading

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from export.lib import api, evaluation, options, sources
from tests.export import evaluation_models, testutil

M = evaluation_models.MODULE
EXAMPLES = 23
BATCH = 5  # the last batch holds 3
TOLERANCE = 1e-5
CASES = ("fraud_classifier", "topk_classifier")


def _labels(name: str, rng, n: int) -> np.ndarray:
    if name == "fraud_classifier":
        return (rng.random((n, 1)) < 0.3).astype("float32")
    return rng.integers(0, evaluation_models.CLASSES, (n,)).astype("int64")


def _batches(feeds: dict, batch: int):
    n = len(next(iter(feeds.values())))
    for start in range(0, n, batch):
        yield {name: value[start : start + batch] for name, value in feeds.items()}


def _summed(states) -> dict:
    total = None
    for state in states:
        state = {name: np.asarray(value) for name, value in state.items()}
        total = state if total is None else {k: total[k] + v for k, v in state.items()}
    return total


def evaluate_object_api(loaded, feeds: dict, batch: int) -> dict:
    state_fn = loaded.signatures[evaluation.STATE_KEY]
    result_fn = loaded.signatures[evaluation.RESULT_KEY]
    states = (
        state_fn(**{k: tf.constant(v) for k, v in b.items()})
        for b in _batches(feeds, batch)
    )
    summed = _summed(states)
    return {k: float(v) for k, v in result_fn(**summed).items()}


class _Session:
    """The export loaded as TF Serving loads it: the C++ loader into a session, each
    SignatureDef run by its tensor names."""

    def __init__(self, export_dir: str):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(
                self.session, ["serve"], export_dir
            )
        self.signatures = meta.signature_def

    def run(self, key: str, feeds: dict) -> dict:
        signature = self.signatures[key]
        return self.session.run(
            {name: info.name for name, info in signature.outputs.items()},
            {signature.inputs[k].name: v for k, v in feeds.items()},
        )


def evaluate_session(session: _Session, feeds: dict, batch: int) -> dict:
    states = (session.run(evaluation.STATE_KEY, b) for b in _batches(feeds, batch))
    result = session.run(evaluation.RESULT_KEY, _summed(states))
    return {k: float(v) for k, v in result.items()}


class DataSetEvaluationTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = testutil.make_tempdir()
        cls.paths, cls.feeds, cls.keras_logs, cls.manifests = {}, {}, {}, {}
        rng = np.random.default_rng(4)
        for name in CASES:
            request = api.ExportRequest(
                builder=f"{M}:{name}",
                output_dir=os.path.join(cls.tmp, name),
                modes=("serve", "eval"),
            )
            result = api.export_with_result(request)
            cls.paths[name], cls.manifests[name] = result.path, result.manifest
            source = options.resolve(
                dataclasses.replace(request, output_dir=os.path.join(cls.tmp, "unused"))
            ).source
            model = sources.load_model(source).model
            x = rng.normal(size=(EXAMPLES, evaluation_models.FEATURES)).astype(
                "float32"
            )
            y = _labels(name, rng, EXAMPLES)
            target = model.output_names[0] + "_target"
            cls.feeds[name] = {"features": x, target: y}
            cls.keras_logs[name] = model.evaluate(
                x, y, batch_size=BATCH, return_dict=True, verbose=0
            )

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def _assert_logs(self, got: dict, want: dict, msg: str):
        self.assertEqual(set(got), set(want), msg)
        for key, value in want.items():
            self.assertAlmostEqual(
                got[key], value, delta=TOLERANCE, msg=f"{msg}: {key}"
            )

    def test_object_api_gives_model_evaluate(self):
        for name in CASES:
            with self.subTest(model=name):
                loaded = tf.saved_model.load(self.paths[name])
                got = evaluate_object_api(loaded, self.feeds[name], BATCH)
                self._assert_logs(got, self.keras_logs[name], name)

    def test_tf_serving_session_gives_model_evaluate(self):
        for name in CASES:
            with self.subTest(model=name):
                session = _Session(self.paths[name])
                got = evaluate_session(session, self.feeds[name], BATCH)
                self._assert_logs(got, self.keras_logs[name], name)

    def test_one_batch_eval_is_unchanged(self):
        """eval still answers for one batch: the batch's own logs, not the data set's."""
        loaded = tf.saved_model.load(self.paths["fraud_classifier"])
        first = next(_batches(self.feeds["fraud_classifier"], BATCH))
        one = loaded.signatures["eval"](**{k: tf.constant(v) for k, v in first.items()})
        want = evaluate_object_api(loaded, first, BATCH)
        self._assert_logs({k: float(v) for k, v in one.items()}, want, "one batch")

    def test_interleaved_and_concurrent_evaluations_do_not_mix(self):
        """Two evaluations of one loaded export, their calls interleaved and then run
        in two threads at once, each give their own data set's logs; the export's own
        metric variables are not touched."""
        name = "fraud_classifier"
        loaded = tf.saved_model.load(self.paths[name])
        before = [v.numpy() for v in loaded.metric_variables]
        feeds = self.feeds[name]
        # The second data set: the first's labels flipped.
        other = {**feeds, "fraud_target": 1 - feeds["fraud_target"]}
        want = [
            evaluate_object_api(loaded, feeds, BATCH),
            evaluate_object_api(loaded, other, BATCH),
        ]
        self.assertNotAlmostEqual(want[0]["auc"], want[1]["auc"], delta=1e-3)
        state_fn = loaded.signatures[evaluation.STATE_KEY]
        result_fn = loaded.signatures[evaluation.RESULT_KEY]
        states = ([], [])
        for pair in zip(_batches(feeds, BATCH), _batches(other, BATCH), strict=True):
            for index, batch in enumerate(pair):
                states[index].append(
                    state_fn(**{k: tf.constant(v) for k, v in batch.items()})
                )
        for index in range(2):
            got = {k: float(v) for k, v in result_fn(**_summed(states[index])).items()}
            self._assert_logs(got, want[index], f"interleaved {index}")

        results = [None, None]

        def run(index, data):
            for _ in range(3):
                results[index] = evaluate_object_api(loaded, data, 2)

        threads = [
            threading.Thread(target=run, args=(i, d))
            for i, d in enumerate((feeds, other))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for index, data in enumerate((feeds, other)):
            self._assert_logs(
                results[index], evaluate_object_api(loaded, data, 2), f"thread {index}"
            )
        after = [v.numpy() for v in loaded.metric_variables]
        for old, new in zip(before, after, strict=True):
            np.testing.assert_array_equal(old, new)

    def test_manifest_lists_the_signatures(self):
        described = self.manifests["topk_classifier"]["signatures"]
        self.assertEqual(
            set(described[evaluation.STATE_KEY]["outputs"]),
            set(described[evaluation.RESULT_KEY]["inputs"]),
        )
        self.assertIn("top2_total", described[evaluation.STATE_KEY]["outputs"])
        self.assertEqual(
            set(described[evaluation.RESULT_KEY]["outputs"]),
            set(described["eval"]["outputs"]),
        )


class RefusedMetricTest(absltest.TestCase):
    def test_state_that_does_not_add_up_is_refused_naming_the_metric(self):
        tmp = testutil.make_tempdir()
        result = api.export_with_result(
            api.ExportRequest(
                builder=f"{M}:running_max_metric",
                output_dir=os.path.join(tmp, "out"),
                modes=("serve", "eval"),
            )
        )
        text = " ".join(result.notes)
        self.assertIn(
            "the metric 'largest_error' keeps state that does not add up", text
        )
        self.assertNotIn(evaluation.STATE_KEY, result.manifest["signatures"])
        self.assertIn("eval", result.manifest["signatures"])


class StateAsBuiltTest(absltest.TestCase):
    def test_vae_export_holds_the_seed_generator_state_the_builder_left(self):
        """keras.io's VAE samples in its encoder: nothing the exporter runs before
        writing (describing the model, probing its steps) may advance that state."""
        import keras

        from tests.zoo import training

        keras.utils.set_random_seed(0)
        want = {v.path: v.numpy() for v in training.vae().variables}
        tmp = testutil.make_tempdir()
        path = api.export_with_result(
            api.ExportRequest(
                builder="tests.zoo.training:vae",
                output_dir=os.path.join(tmp, "vae"),
                modes=("serve", "train"),
                verify=False,
            )
        ).path
        loaded = tf.saved_model.load(path)
        seeds = [v for v in loaded.model_variables if "seed_generator" in v.name]
        self.assertLen(seeds, 1)
        np.testing.assert_array_equal(
            seeds[0].numpy(), want["seed_generator/seed_generator_state"]
        )


if __name__ == "__main__":
    absltest.main()
