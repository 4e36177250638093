"""Checks one zoo export the way its user would, in a process of its own.

It runs keras_saved_model_test's checks (signatures, serving outputs and
load_keras_model against the rebuilt Keras model, every signature and the warmup
requests through TF Serving's loader) and adds, on the model's own sample
batch (real strings, real labels): serving equals the Keras model, `eval` equals
`model.evaluate`, `train` changes every trainable variable and BatchNormalization's
moving statistics, a second export gives the same bytes, and `saved_model_cli` reads it.
"""

import importlib
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import absltest

from export.lib import interface, settings, signatures
from rules.private import keras_saved_model_test_main as rule_test
from tests.export import testutil

_DATA = flags.DEFINE_string(
    "data",
    None,
    "module:function returning (x, y), a batch in the model's own input and output"
    " structure, as model.evaluate takes it.",
    required=True,
)

# Statistics that BatchNormalization updates in a training step without gradients.
_MOVING_STATISTICS = ("moving_mean", "moving_variance")


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


class ZooTest(rule_test.SavedModelTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.export_base = rule_test._SAVED_MODEL.value
        cls.atol = rule_test._TOLERANCE.value
        x, y = _import(_DATA.value)()
        rebuilt = cls._keras()
        model, model_interface = rebuilt.model, rebuilt.interface
        # Fed as the signatures declare them (a client sends those dtypes).
        eval_inputs = cls.manifest["signatures"]["eval"]["inputs"]
        cls.serve_feeds = {
            name: tf.constant(value, dtype=eval_inputs[name]["dtype"])
            for name, value in _by_name(model_interface.inputs, x).items()
        }
        targets = _by_name(model_interface.outputs, y, signatures.TARGET_SUFFIX)
        cls.train_feeds = {
            **cls.serve_feeds,
            **{
                name: tf.constant(value, dtype=eval_inputs[name]["dtype"])
                for name, value in targets.items()
            },
        }
        packed = model_interface.pack_inputs(
            [cls.serve_feeds[d.name] for d in model_interface.inputs]
        )
        cls.keras_outputs = {
            name: np.asarray(value)
            for name, value in model_interface.name_outputs(
                model(packed, training=False)
            ).items()
        }
        # One batch, as a dataset: Keras's numpy adapter does not take string arrays.
        cls.keras_evaluate = model.evaluate(
            tf.data.Dataset.from_tensors((x, y)), verbose=0, return_dict=True
        )
        cls.variable_paths = _paths(model.variables)
        # The exporter builds the optimizer the same way before tracing `train`.
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        # A LossScaleOptimizer's own `iteration` stays 0: count the wrapped one's steps.
        cls.iterations_path = model.optimizer.iterations.path
        cls.optimizer_paths = [path for path, _ in _paths(model.optimizer.variables)]

    def test_sample_batch_serves_like_keras(self):
        serve = self.loaded.signatures[signatures.SERVING_KEY]
        served = serve(**self.serve_feeds)
        self.assertEqual(set(served), set(self.keras_outputs))
        for name, want in self.keras_outputs.items():
            np.testing.assert_allclose(
                served[name].numpy(), want, rtol=0, atol=self.atol, err_msg=name
            )

    def test_eval_equals_keras_evaluate(self):
        got = self.loaded.signatures["eval"](**self.train_feeds)
        self.assertEqual(set(got), set(self.keras_evaluate))
        for name, want in self.keras_evaluate.items():
            self.assertAlmostEqual(
                float(got[name]), want, delta=max(self.atol, 1e-6), msg=name
            )

    def test_train_changes_the_variables(self):
        model_variables = self.loaded.model_variables
        optimizer_variables = self.loaded.optimizer_variables
        self.assertLen(model_variables, len(self.variable_paths))
        self.assertLen(optimizer_variables, len(self.optimizer_paths))
        before = [v.numpy() for v in model_variables]
        saved_optimizer = [v.numpy() for v in optimizer_variables]
        try:
            logs = self.loaded.signatures["train"](**self.train_feeds)
            after = [v.numpy() for v in model_variables]
            iterations = optimizer_variables[
                self.optimizer_paths.index(self.iterations_path)
            ].numpy()
        finally:
            # The other tests use the exported values.
            for variable, value in zip(
                model_variables + optimizer_variables,
                before + saved_optimizer,
                strict=True,
            ):
                variable.assign(value)
        self.assertEqual(set(logs), set(self.keras_evaluate))
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
