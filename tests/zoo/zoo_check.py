"""Checks one zoo export the way its user would, in a process of its own.

It runs keras_saved_model_test's checks (signatures, serving outputs and
load_keras_model against the rebuilt Keras model, every signature and the warmup
requests through TF Serving's loader) and adds, on the model's own sample
batch (real strings, real labels): serving equals the Keras model, `eval` equals
`model.evaluate` for the labels in every shape the zoo_model states they are accepted
in (and the manifest lists those), a label of another shape fails naming it and changes
no variable, `train` changes every trainable variable and
BatchNormalization's moving statistics and lowers the loss, a second export gives the
same bytes, and `saved_model_cli` reads it.
"""

import importlib
import itertools
import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import absltest

from export.lib import (
    evaluation,
    interface,
    label_probes,
    labels,
    settings,
    signatures,
    sources,
)

# keras_tflite_model_test's checks of the zoo_model's `tflite` conversions, if any.
from formats.tflite.keras_tflite_model_test_main import (  # noqa: F401
    TfliteModelTest,
)
from rules.private import keras_saved_model_test_main as rule_test
from tests.export import testutil

_DATA = flags.DEFINE_string(
    "data",
    None,
    "module:function returning (x, y), a batch in the model's own input and output"
    " structure, as model.evaluate takes it.",
    required=True,
)

_DATA_SET_EVAL_REFUSED = flags.DEFINE_string(
    "data_set_eval_refused",
    None,
    "Why the export has eval but legitimately no eval_state/eval_result, as the"
    " zoo_model states it; unset, an export with eval must have them.",
)

_LABEL_SHAPES = flags.DEFINE_string(
    "label_shapes",
    None,
    "JSON: each label the eval and train signatures take (by name) and the shapes"
    ' they must accept ("None,1"), as the zoo_model states them (not read from the'
    " export).",
)

# Statistics that BatchNormalization updates in a training step without gradients.
_MOVING_STATISTICS = ("moving_mean", "moving_variance")
# Train calls on the sample batch after which its loss must be lower than before.
_TRAIN_STEPS = 3


def _import(reference: str):
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def _by_name(descs, structure, suffix=""):
    """Maps a batch given as a dict (by name) or in flat order onto named tensors."""
    if isinstance(structure, dict):
        return {d.name + suffix: structure[d.name] for d in descs}
    flat = keras.tree.flatten(structure)
    return {d.name + suffix: value for d, value in zip(descs, flat, strict=True)}


def _paths(variables) -> list[tuple[str, bool]]:
    """(path, trainable) of each tf.Variable behind `variables`, in the export's order."""
    by_id = {id(v.value): v for v in variables}
    return [
        (by_id[id(v)].path, by_id[id(v)].trainable)
        for v in interface.tf_variables(variables)
    ]


def _dataset(x, y):
    """One batch, as a dataset: Keras's numpy adapter does not take string arrays."""
    return tf.data.Dataset.from_tensors(x if y is None else (x, y))


def _partial_batch_size(examples: int) -> int:
    """A batch size that leaves the last batch of `examples` partial (1 for 1 or 2)."""
    for size in (3, 2, 4, 5):
        if size < examples and examples % size:
            return size
    return 1


def _summed(states) -> dict[str, np.ndarray]:
    """Each metric state added up over the batches' states."""
    total = {}
    for state in states:
        for name, value in state.items():
            total[name] = total.get(name, 0) + np.asarray(value)
    return total


def _as_shape(value: np.ndarray, shape) -> np.ndarray:
    """`value` in an accepted shape of its label (a trailing 1 more or less)."""
    if len(shape) == value.ndim + 1:
        return value[..., None]
    if len(shape) == value.ndim - 1:
        return value[..., 0]
    return value


class ZooTest(rule_test.SavedModelTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.export_base = rule_test._SAVED_MODEL.value
        cls.atol = rule_test._TOLERANCE.value
        x, y = _import(_DATA.value)()
        # Small models: these checks keep the export and the Keras model side by side
        # for the class (keras_saved_model_test's own load one copy at a time).
        cls.loaded = tf.saved_model.load(cls.export_dir)
        rebuilt = sources.load_model(cls.source)
        model, model_interface = rebuilt.model, rebuilt.interface
        # The rule's C++ loader check runs beside the checks set up below.
        cls._start_cpp_loader_early(model_interface)
        cls.model, cls.x, cls.y, cls.outputs = model, x, y, model_interface.outputs
        cls.has_eval = "eval" in cls.manifest["signatures"]
        # Fed as the signatures declare them (a client sends those dtypes).
        cls.train_inputs = cls.manifest["signatures"]["train"]["inputs"]
        cls.serve_feeds = {
            name: tf.constant(value, dtype=cls.train_inputs[name]["dtype"])
            for name, value in _by_name(model_interface.inputs, x).items()
        }
        # A model trained with fit(x) has no labels (y is None).
        cls.targets = (
            {}
            if y is None
            else _by_name(model_interface.outputs, y, labels.TARGET_SUFFIX)
        )
        cls.train_feeds = {**cls.serve_feeds, **cls._label_feeds(cls.targets)}
        packed = model_interface.pack_inputs(
            [cls.serve_feeds[d.name] for d in model_interface.inputs]
        )
        cls.keras_outputs = {
            name: np.asarray(value)
            for name, value in model_interface.name_outputs(
                model_interface.call(model, packed)
            ).items()
        }
        # Keras's evaluate needs a loss: None where it cannot run (no eval either).
        try:
            cls.keras_evaluate = cls._keras_evaluate(y)
        except ValueError as e:
            if "No loss to compute" not in str(e):
                raise
            cls.keras_evaluate = None
        cls.variable_paths = _paths(model.variables)
        # The exporter builds the optimizer the same way before tracing `train`.
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        # A LossScaleOptimizer's own `iteration` stays 0: count the wrapped one's steps.
        cls.iterations_path = model.optimizer.iterations.path
        cls.optimizer_paths = [path for path, _ in _paths(model.optimizer.variables)]
        if cls.keras_evaluate is None:
            # The names train's logs must have: those of Keras's fit (it trains this
            # class's own copy of the model, which no check uses after this).
            history = model.fit(_dataset(x, y), verbose=0).history
            cls.keras_train_log_names = set(history)
        else:
            cls.keras_train_log_names = set(cls.keras_evaluate)

    @classmethod
    def _label_feeds(cls, targets):
        return {
            name: tf.constant(value, dtype=cls.train_inputs[name]["dtype"])
            for name, value in targets.items()
        }

    @classmethod
    def _keras_evaluate(cls, y):
        # A test function of its own for each label form: Keras would trace the one it
        # has again with a shape of unknown rank, which its losses do not take.
        cls.model.make_test_function(force=True)
        return cls.model.evaluate(_dataset(cls.x, y), verbose=0, return_dict=True)

    def _exported_state_kept(self):
        """Puts the loaded export's variables back after train calls."""
        return label_probes.put_back_variables(
            [
                *self.loaded.model_variables,
                *self.loaded.metric_variables,
                *self.loaded.optimizer_variables,
            ]
        )

    def test_sample_batch_serves_like_keras(self):
        serve = self.loaded.signatures[signatures.SERVING_KEY]
        served = serve(**self.serve_feeds)
        self.assertEqual(set(served), set(self.keras_outputs))
        for name, want in self.keras_outputs.items():
            np.testing.assert_allclose(
                served[name].numpy(), want, rtol=0, atol=self.atol, err_msg=name
            )

    def test_eval_equals_keras_evaluate(self):
        if self.keras_evaluate is None:
            self.assertFalse(self.has_eval, "eval, but Keras cannot evaluate the model")
            return
        self._assert_eval_gives(self.train_feeds, self.keras_evaluate)

    def _assert_eval_gives(self, feeds, want, msg=""):
        got = self.loaded.signatures["eval"](**feeds)
        self.assertEqual(set(got), set(want), msg)
        for name, value in want.items():
            self.assertAlmostEqual(
                float(got[name]), value, delta=max(self.atol, 1e-6), msg=f"{msg} {name}"
            )

    def _stated_label_shapes(self) -> dict:
        if _LABEL_SHAPES.value is None:
            self.assertEmpty(
                self.targets,
                "the model takes labels: state the shapes they must be accepted in"
                " with its zoo_model (label_shapes)",
            )
            return {}
        return {
            name: [
                [None if size == "None" else int(size) for size in shape.split(",")]
                for shape in shapes
            ]
            for name, shapes in json.loads(_LABEL_SHAPES.value).items()
        }

    def test_labels_are_accepted_in_the_shapes_stated(self):
        """The manifest lists, for each label, the shapes the zoo_model states."""
        stated = self._stated_label_shapes()
        listed = {
            name: spec["accepted_shapes"]
            for name, spec in self.train_inputs.items()
            if name.endswith(labels.TARGET_SUFFIX)
        }
        self.assertEqual(listed, stated)

    def test_data_set_in_batches_gives_keras_evaluate(self):
        """The sample batch fed as a data set in smaller batches (the last one partial):
        eval_state summed over the batches and read by eval_result gives the logs of
        model.evaluate on the same batches, by the object API and through TF Serving's
        loader."""
        if self.keras_evaluate is None:
            self.assertNotIn(evaluation.STATE_KEY, self.manifest["signatures"])
            return
        if _DATA_SET_EVAL_REFUSED.value is not None:
            self.assertNotIn(evaluation.STATE_KEY, self.manifest["signatures"])
            return
        self.assertIn(
            evaluation.STATE_KEY,
            sorted(self.manifest["signatures"]),
            "the export has eval but no eval_state/eval_result (its note says why);"
            " state data_set_eval_refused on the zoo_model if that is legitimate",
        )
        examples = len(next(iter(self.serve_feeds.values())))
        batch = _partial_batch_size(examples)
        self.model.make_test_function(force=True)
        data = (
            tf.data.Dataset.from_tensor_slices(
                self.x if self.y is None else (self.x, self.y)
            )
        ).batch(batch)
        want = self.model.evaluate(data, verbose=0, return_dict=True)
        feeds = {name: value.numpy() for name, value in self.train_feeds.items()}
        batches = [
            {name: value[start : start + batch] for name, value in feeds.items()}
            for start in range(0, examples, batch)
        ]
        state_fn = self.loaded.signatures[evaluation.STATE_KEY]
        states = [
            state_fn(**{k: tf.constant(v) for k, v in b.items()}) for b in batches
        ]
        result = self.loaded.signatures[evaluation.RESULT_KEY](**_summed(states))
        self._assert_logs_equal(result, want, "object API")
        # Through TensorFlow's C++ loader, as TF Serving runs SignatureDefs: the
        # batches' states first, then their sum read by eval_result.
        run = rule_test.CppLoader(
            self.export_dir,
            [(f"batch_{i}", evaluation.STATE_KEY, b) for i, b in enumerate(batches)],
        ).result()
        states = [run.outputs[f"batch_{i}"] for i in range(len(batches))]
        result = (
            rule_test.CppLoader(
                self.export_dir, [("sum", evaluation.RESULT_KEY, _summed(states))]
            )
            .result()
            .outputs["sum"]
        )
        self._assert_logs_equal(result, want, "TF Serving's C++ loader")

    def _assert_logs_equal(self, got, want, msg):
        self.assertEqual(set(got), set(want), msg)
        for name, value in want.items():
            self.assertAlmostEqual(
                float(got[name]), value, delta=max(self.atol, 1e-5), msg=f"{msg} {name}"
            )

    def test_every_accepted_label_shape_gives_keras_evaluate(self):
        """The label in each shape the zoo_model states: eval gives what Keras's
        evaluate gives for the label in that shape."""
        stated = self._stated_label_shapes()
        if not self.has_eval:
            self.assertIsNone(self.keras_evaluate, "eval, but Keras can evaluate it")
            return
        self.assertEqual(set(stated), set(self.targets))
        for name, value in self.targets.items():
            for shape in stated[name]:
                form = _as_shape(value, shape)
                with self.subTest(label=name, shape=form.shape):
                    labels = self._label_feeds({**self.targets, name: form})
                    want = self._keras_evaluate(self._replaced_label(name, form))
                    self._assert_eval_gives({**self.serve_feeds, **labels}, want)

    def _replaced_label(self, target, value):
        """The model's own y with the label of `target` replaced by `value`."""
        names = [d.name + labels.TARGET_SUFFIX for d in self.outputs]
        if isinstance(self.y, dict):
            return {**self.y, target.removesuffix(labels.TARGET_SUFFIX): value}
        flat = keras.tree.flatten(self.y)
        flat[names.index(target)] = value
        return keras.tree.pack_sequence_as(self.y, flat)

    def test_labels_of_other_shapes_fail_naming_the_label_and_change_nothing(self):
        """eval and train refuse a label of another shape with InvalidArgumentError
        naming it, before any variable (weights, metrics, optimizer) changes."""
        modes = [m for m in ("eval", "train") if m in self.manifest["signatures"]]
        variables = [
            *self.loaded.model_variables,
            *self.loaded.metric_variables,
            *self.loaded.optimizer_variables,
        ]
        for name, value in self.targets.items():
            wrongs = [value[:-1], np.stack([value, value], axis=-1)]
            # One step long where the label must be as long as an input (a sequence).
            for follows in self.train_inputs[name].get("sizes_from_inputs", []):
                wrongs.append(np.take(value, [0], axis=follows["dim"]))
            for wrong, mode in itertools.product(wrongs, modes):
                with self.subTest(label=name, shape=wrong.shape, signature=mode):
                    labels = self._label_feeds({**self.targets, name: wrong})
                    before = [v.numpy() for v in variables]
                    with self._exported_state_kept():
                        with self.assertRaisesRegex(
                            tf.errors.InvalidArgumentError,
                            f"the label {name} has the shape",
                        ):
                            self.loaded.signatures[mode](**self.serve_feeds, **labels)
                        moved = [
                            v.name
                            for v, old in zip(variables, before, strict=True)
                            if not np.array_equal(v.numpy(), old)
                        ]
                    self.assertEmpty(moved, f"the refused {mode} call changed these")

    def test_train_lowers_the_loss(self):
        """A few train calls on the sample batch lower its loss: eval's, or where
        there is no eval, train's own (each call's is its batch's before its step)."""
        train = self.loaded.signatures["train"]
        with self._exported_state_kept():
            if self.has_eval:
                evaluate = self.loaded.signatures["eval"]
                before = float(evaluate(**self.train_feeds)["loss"])
                for _ in range(_TRAIN_STEPS):
                    train(**self.train_feeds)
                after = float(evaluate(**self.train_feeds)["loss"])
            else:
                losses = [
                    float(train(**self.train_feeds)["loss"])
                    for _ in range(_TRAIN_STEPS + 1)
                ]
                before, after = losses[0], losses[-1]
        self.assertLess(after, before)

    def test_train_changes_the_variables(self):
        model_variables = self.loaded.model_variables
        optimizer_variables = self.loaded.optimizer_variables
        self.assertLen(model_variables, len(self.variable_paths))
        self.assertLen(optimizer_variables, len(self.optimizer_paths))
        before = [v.numpy() for v in model_variables]
        with self._exported_state_kept():
            logs = self.loaded.signatures["train"](**self.train_feeds)
            after = [v.numpy() for v in model_variables]
            iterations = optimizer_variables[
                self.optimizer_paths.index(self.iterations_path)
            ].numpy()
        self.assertEqual(set(logs), self.keras_train_log_names)
        for name, value in logs.items():
            self.assertTrue(np.all(np.isfinite(value.numpy())), f"{name}: {value}")
        self.assertEqual(int(iterations), 1, self.iterations_path)
        unchanged = [
            path
            for (path, trainable), old, new in zip(
                self.variable_paths, before, after, strict=True
            )
            if (trainable or path.endswith(_MOVING_STATISTICS))
            and np.array_equal(old, new)
        ]
        self.assertEmpty(unchanged, "train left these variables as they were")

    def test_second_export_is_byte_identical(self):
        output = tempfile.mkdtemp(dir=absltest.TEST_TMPDIR.value)
        manifest = os.path.join(output, "signatures.json")
        proc = testutil.run_exporter(self._exporter_flags(output, manifest))
        self.assertEqual(proc.returncode, 0, proc.stderr[-4000:])
        again = testutil.tree_bytes(output + "/model")
        built = testutil.tree_bytes(self.export_base)
        self.assertEqual(sorted(again), sorted(built))
        differing = sorted(path for path in built if again[path] != built[path])
        self.assertEmpty(differing, "a second export wrote other bytes in these files")
        with (
            open(manifest, "rb") as again_manifest,
            open(self.export_base + ".signatures.json", "rb") as built_manifest,
        ):
            self.assertEqual(again_manifest.read(), built_manifest.read())

    def _exporter_flags(self, output: str, manifest: str) -> list[str]:
        """The flags of the build action (see keras_saved_model), from the export's info."""
        values = {
            name: value
            for name, value in self.info.items()
            if name != "label" and settings.get(name).is_attribute
        }
        values.update(
            src=self.source.src,
            weights=self.source.weights,
            version=os.path.basename(self.export_dir),
            verify=False,
        )
        flags_ = [f"--output_dir={output}/model", f"--manifest_out={manifest}"]
        for name, value in values.items():
            flags_ += settings.flags_for(name, value)
        return flags_

    def test_saved_model_cli_shows_every_signature(self):
        proc = subprocess.run(
            [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
            + ["show", "--dir", self.export_dir, "--all"],
            env=testutil.child_env(),
            capture_output=True,
            text=True,
            timeout=testutil.TIMEOUT_S,
            check=False,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-4000:])
        for key in self.manifest["signatures"]:
            self.assertIn(f"signature_def['{key}']", proc.stdout)


if __name__ == "__main__":
    absltest.main()
