"""eval and train take what Keras's evaluate and fit take, and give Keras's numbers.

Each model is exported through the library; the signatures are then called in a fresh
process (tests.export.child) on the model's batch with its labels in every form Keras
accepts (each must give what Keras's evaluate and fit give on a model rebuilt from the
same source), and in forms Keras would only broadcast into other numbers or reject
(each must fail, naming the label, and change no variable).
"""

import dataclasses
import importlib
import os
import shutil

import keras
import numpy as np
from absl.testing import absltest

from export.lib import api, labels, options, sources
from tests.export import testmodels, testutil, training_models

T = training_models.MODULE
# Measured: 0 to 3e-7 between a loaded signature and Keras's own steps.
DELTA = 1e-5


@dataclasses.dataclass(frozen=True)
class Case:
    builder: str
    batch: str
    # The label as the example holds it, then each other form Keras gives the same
    # numbers for: the signatures must take them all.
    forms: tuple = ()
    # Forms the signatures must refuse: Keras broadcasts them into other numbers, or
    # they do not fit the model.
    refused: tuple = ()
    # What the manifest says of the label: its shape, and every shape it takes.
    label_shapes: tuple = ()
    modes: tuple = ("serve", "eval", "train")
    custom_objects: tuple = ()
    # The input dimensions the label's open dimensions must be as long as.
    sizes_from_inputs: tuple = ()


def _drop_last(y):
    return y.reshape(y.shape[:-1])


def _add_last(y):
    return y.reshape(y.shape + (1,))


def _one_row_fewer(y):
    return y[:-1]


def _doubled_last(y):
    return np.concatenate([y, y], axis=-1) if y.ndim > 1 else np.stack([y, y], -1)


def _as_is(y):
    return y


CASES = {
    # A (None, 1) sigmoid output and ratings (n,): a broadcast (n, n) loss before.
    "recommender": Case(
        "tests.zoo.structured:recommender",
        "tests.zoo.structured:recommender_batch",
        forms=(_as_is, _add_last),
        refused=(_one_row_fewer, _doubled_last, lambda y: y.reshape(-1, 1, 1)),
        label_shapes=([None, 1], [[None, 1], [None]]),
    ),
    # Sparse CIFAR labels (n, 1) with a top-5 metric: InvalidArgumentError before.
    "patch_classifier": Case(
        f"{T}:patch_classifier",
        f"{T}:patch_classifier_batch",
        forms=(_as_is, _drop_last),
        refused=(_one_row_fewer, _doubled_last),
        label_shapes=([None], [[None], [None, 1]]),
    ),
    # Masks (n, H, W, 1): InvalidArgumentError before.
    "segmentation": Case(
        f"{T}:segmentation",
        f"{T}:segmentation_batch",
        forms=(_as_is, _drop_last),
        refused=(_one_row_fewer, _doubled_last, lambda y: y[:, :4, :4]),
        label_shapes=([None, 8, 8], [[None, 8, 8], [None, 8, 8, 1]]),
    ),
    # Its loss broadcasts labels (n,) against (n, 1): only (n, 1) gives one number.
    "unreconciled_loss": Case(
        f"{T}:unreconciled_loss",
        f"{T}:unreconciled_loss_batch",
        forms=(_as_is,),
        refused=(_drop_last, _one_row_fewer),
        label_shapes=([None, 1], [[None, 1]]),
    ),
    # Labels (n, T, 1) as long as the steps; one step (or the context's length) would
    # broadcast against the outputs into another number.
    "per_step_regression": Case(
        f"{T}:per_step_regression",
        f"{T}:per_step_regression_batch",
        forms=(_as_is, _drop_last),
        refused=(_one_row_fewer, lambda y: y[:, :1], lambda y: y[:, :3]),
        label_shapes=([None, None, 1], [[None, None, 1], [None, None]]),
        sizes_from_inputs=({"dim": 1, "input": "steps", "input_dim": 1},),
    ),
    # compute_loss of its own, no compiled loss: serve only before; its labels are
    # found by trying (dense ones fail its sparse loss).
    "distiller": Case(
        "tests.zoo.training:distiller",
        "tests.zoo.training:distiller_batch",
        forms=(_as_is, _add_last),
        refused=(_one_row_fewer,),
        label_shapes=([None], [[None], [None, 1]]),
    ),
    # fit(x): its train_step takes the images alone; traced with (x, y) before.
    "vae": Case(
        "tests.zoo.training:vae",
        "tests.zoo.training:digits_images_batch",
        modes=("serve", "train"),
    ),
    # The guide's lower-level train_step, no compiled loss, no label_specs given.
    "low_level_train_step": Case(
        f"{testmodels.MODULE}:low_level_train_step",
        f"{__name__}:low_level_batch",
        forms=(_as_is, _add_last),
        refused=(_one_row_fewer,),
        label_shapes=([None], [[None], [None, 1]]),
        modes=("serve", "train"),
        custom_objects=(f"LowLevelStep={testmodels.MODULE}:LowLevelStep",),
    ),
}


def low_level_batch():
    rng = np.random.default_rng(7)
    return rng.random((5, 4)).astype("float32"), rng.integers(0, 3, 5)


def _import(reference):
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


class LabelFormsTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = testutil.make_tempdir()
        cls.results, cls.keras_logs, cls.export_errors = {}, {}, {}
        tasks = []
        for name, case in CASES.items():
            request = api.ExportRequest(
                builder=case.builder,
                output_dir=os.path.join(cls.tmp, name),
                custom_objects=case.custom_objects,
            )
            try:
                cls.results[name] = result = api.export_with_result(request)
            except api.ExportError as e:
                cls.export_errors[name] = str(e)
                continue
            source = options.resolve(
                dataclasses.replace(request, output_dir=os.path.join(cls.tmp, "unused"))
            ).source
            x, y = _import(case.batch)()
            if "train" not in result.manifest["signatures"]:
                continue  # test_modes_are_those_keras_runs says what is missing
            train_inputs = result.manifest["signatures"]["train"]["inputs"]
            feed = {"x": x}
            calls = []
            forms = [("form", i, f) for i, f in enumerate(case.forms)] or [
                ("form", 0, None)
            ]
            forms += [("refused", i, f) for i, f in enumerate(case.refused)]
            for kind, index, form in forms:
                label = None if form is None else form(y)
                feed = cls._feed(result, train_inputs, x, label)
                path = testutil.save_arrays(
                    os.path.join(cls.tmp, f"{name}_{kind}{index}.npz"), feed
                )
                for signature in ("eval", "train"):
                    if signature in result.manifest["signatures"]:
                        calls.append(
                            {
                                "name": f"{signature}_{kind}{index}",
                                "signature": signature,
                                "inputs": path,
                            }
                        )
                if kind == "form":
                    cls.keras_logs[(name, index)] = cls._keras(source, x, label)
            tasks.append(
                {
                    "kind": "calls",
                    "path": result.path,
                    "calls": calls,
                    "out": os.path.join(cls.tmp, f"{name}_calls.npz"),
                }
            )
        testutil.run_child(tasks, cls.tmp)
        cls.got = {
            name: testutil.load_arrays(os.path.join(cls.tmp, f"{name}_calls.npz"))
            for name in CASES
            if os.path.exists(os.path.join(cls.tmp, f"{name}_calls.npz"))
        }

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    @staticmethod
    def _feed(result, train_inputs, x, label):
        """Inputs (one array, or a list in the model's order) and the label by name."""
        serving = result.manifest["signatures"]["serving_default"]["inputs"]
        arrays = x if isinstance(x, list) else [x]
        feed = {
            name: array.astype(train_inputs[name]["dtype"])
            for name, array in zip(serving, arrays, strict=True)
        }
        if label is not None:
            (target,) = [n for n in train_inputs if n not in serving]
            feed[target] = label.astype(train_inputs[target]["dtype"])
        return feed

    @staticmethod
    def _keras(source, x, y):
        """Keras's evaluate, then fit on one batch, on a model rebuilt from the source."""
        logs = {}
        batch = len(keras.tree.flatten(x)[0])
        model = sources.load_model(source).model
        try:
            logs["eval"] = model.evaluate(
                x, y, batch_size=batch, return_dict=True, verbose=0
            )
        except ValueError:  # "No loss to compute": Keras cannot evaluate it
            pass
        model = sources.load_model(source).model
        history = model.fit(
            x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0
        ).history
        logs["train"] = {key: values[-1] for key, values in history.items()}
        return logs

    def test_modes_are_those_keras_runs(self):
        for name, case in CASES.items():
            with self.subTest(name):
                self.assertNotIn(name, self.export_errors)
                self.assertEqual(self.results[name].modes, case.modes)

    def test_manifest_says_which_labels_to_send(self):
        for name, case in CASES.items():
            with self.subTest(name):
                self.assertNotIn(name, self.export_errors)
                self.assertIn("train", self.results[name].manifest["signatures"])
                inputs = self.results[name].manifest["signatures"]["train"]["inputs"]
                targets = {
                    k: v for k, v in inputs.items() if k.endswith(labels.TARGET_SUFFIX)
                }
                if not case.label_shapes:
                    self.assertEmpty(targets, "fit(x) takes no labels")
                    continue
                ((_, spec),) = targets.items()
                shape, accepted = case.label_shapes
                self.assertEqual(spec["shape"], shape)
                self.assertEqual(spec["accepted_shapes"], accepted)
                self.assertEqual(
                    spec.get("sizes_from_inputs", []), list(case.sizes_from_inputs)
                )

    def test_every_form_keras_accepts_gives_keras_numbers(self):
        for name, case in CASES.items():
            got = self.got.get(name, {})
            for index in range(max(len(case.forms), 1)):
                want = self.keras_logs.get((name, index), {})
                for signature in ("eval", "train"):
                    call = f"{signature}_form{index}"
                    with self.subTest(name=name, call=call):
                        self.assertIn(name, self.got, "no train signature to call")
                        if signature not in want:
                            self.assertNotIn(signature, self.results[name].modes)
                            continue
                        self.assertNotIn(
                            f"{call}/error", got, str(got.get(f"{call}/error"))
                        )
                        logs = {
                            k.split("/", 1)[1]: v
                            for k, v in got.items()
                            if k.startswith(call + "/") and k != f"{call}/changed"
                        }
                        self.assertEqual(set(logs), set(want[signature]))
                        for key, value in want[signature].items():
                            self.assertAlmostEqual(
                                float(logs[key]), value, delta=DELTA, msg=key
                            )
                        if signature == "train":
                            self.assertTrue(got[f"{call}/changed"])

    def test_other_shapes_fail_naming_the_label_and_change_nothing(self):
        for name, case in CASES.items():
            got = self.got.get(name, {})
            for index in range(len(case.refused)):
                for signature in ("eval", "train"):
                    call = f"{signature}_refused{index}"
                    if signature not in case.modes:
                        continue
                    with self.subTest(name=name, call=call):
                        self.assertIn(f"{call}/error", got, "gave a number")
                        error = str(got[f"{call}/error"])
                        # What TensorFlow raises for a failed check in a signature.
                        self.assertStartsWith(error, "InvalidArgumentError: ")
                        self.assertIn("_target has the shape", error)
                        self.assertIn("accepts", error)
                        self.assertIn("for these inputs", error)
                        self.assertFalse(got[f"{call}/changed"])

    def test_refused_form_is_one_keras_broadcasts_into_another_number(self):
        # The premise of refusing labels (n,) for SquaredGap: Keras gives other numbers.
        x, y = training_models.unreconciled_loss_batch()

        def keras_loss(labels):
            keras.utils.set_random_seed(0)
            model = training_models.unreconciled_loss()
            return model.evaluate(x, labels, verbose=0, return_dict=True)["loss"]

        self.assertGreater(abs(keras_loss(y) - keras_loss(y[:, 0])), 1e-3)


if __name__ == "__main__":
    absltest.main()
