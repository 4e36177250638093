"""Models that carry their own preprocessing and state, exported and used elsewhere.

Each model (tests.export.stateful_models) is exported in this process; a fresh process
then serves the SavedModel, reloads it with load_keras_model and runs eval and train,
and this process compares the results with the Keras model rebuilt from the same
builder and seed, on the exporter's own sample inputs (tokens of the model's
vocabularies, sequences as long as the model accepts).
"""

import dataclasses
import os
import shutil
import subprocess

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest

from export.lib import (
    api,
    labels,
    options,
    sample_inputs,
    signatures,
    sources,
    writer,
)
from export.lib.errors import ExportError
from tests.export import stateful_models, testutil

S = stateful_models.MODULE
CUSTOM_OBJECTS = {name: f"{S}:{name}" for name in ("PositionEmbedding", "TopClass")}
ATOL = 1e-6
BATCH = 4
# name -> (builder, modes); compiled models export eval and train too.
CASES = {
    "text_classifier": ("text_classifier", None),
    "tf_idf_text": ("tf_idf_text", None),
    "string_lookup_vocabulary": ("string_lookup_vocabulary", None),
    "vocabulary_file": ("vocabulary_file", None),
    "integer_lookup_adapted": ("integer_lookup_adapted", None),
    "structured_data": ("structured_data", None),
    "feature_space": ("feature_space", None),
    "adapted_normalization": ("adapted_normalization", None),
    "mixed_precision": ("mixed_precision", None),
    # Built after mixed_precision: the global dtype policy must be back to float32.
    "short_positions": ("short_positions", None),
    "short_positions_serve": ("short_positions", ("serve",)),
    "label_names": ("label_names", None),
}
COMPILED = (
    "text_classifier",
    "structured_data",
    "feature_space",
    "mixed_precision",
    "short_positions",
)


def _targets(manifest: dict, samples: sample_inputs.SampleValues, rng) -> dict:
    """Labels for the eval/train signatures: classes 0/1, or floats in [0, 1)."""
    targets = {}
    for name, spec in sorted(manifest["signatures"]["eval"]["inputs"].items()):
        if not name.endswith(labels.TARGET_SUFFIX):
            continue
        shape = sample_inputs.concrete_shape(spec["shape"], BATCH, samples.unknown_dim)
        if spec["dtype"].startswith("int"):
            targets[name] = rng.integers(0, 2, shape).astype(spec["dtype"])
        else:
            targets[name] = rng.uniform(0, 1, shape).astype(spec["dtype"])
    return targets


class StatefulModelTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = testutil.make_tempdir()
        cls.results, cls.loaded, cls.inputs, cls.expected = {}, {}, {}, {}
        cls.keras_eval, cls.targets = {}, {}
        tasks = []
        for name, (builder, modes) in CASES.items():
            request = api.ExportRequest(
                builder=f"{S}:{builder}",
                output_dir=os.path.join(cls.tmp, name),
                modes=modes,
            )
            cls.results[name] = result = api.export_with_result(request)
            source = options.resolve(
                dataclasses.replace(request, output_dir=os.path.join(cls.tmp, "unused"))
            ).source
            cls.loaded[name] = loaded = sources.load_model(source)
            descs, samples = loaded.interface.inputs, loaded.interface.samples
            arrays = sample_inputs.random_for(descs, 3, BATCH, samples)
            cls.inputs[name] = dict(zip([d.name for d in descs], arrays, strict=True))
            outputs = loaded.interface.name_outputs(
                loaded.model(loaded.interface.pack_inputs(arrays), training=False)
            )
            cls.expected[name] = {k: np.asarray(v) for k, v in outputs.items()}
            in_file = testutil.save_arrays(
                os.path.join(cls.tmp, f"{name}_in.npz"), cls.inputs[name]
            )
            for kind in ("serve", "keras"):
                tasks.append(
                    {
                        "kind": kind,
                        "path": result.path,
                        "inputs": in_file,
                        "out": os.path.join(cls.tmp, f"{name}_{kind}.npz"),
                        # The fresh process has not imported the builder's module.
                        "custom_objects": CUSTOM_OBJECTS,
                    }
                )
            if name in COMPILED:
                targets = _targets(result.manifest, samples, np.random.default_rng(5))
                cls.targets[name] = targets
                y = loaded.interface.pack_targets(list(targets.values()))
                # Tensors: Keras's data adapters refuse numpy arrays of strings.
                x = loaded.interface.pack_inputs([tf.constant(a) for a in arrays])
                cls.keras_eval[name] = loaded.model.evaluate(
                    x, y, batch_size=BATCH, return_dict=True, verbose=0
                )
                train_in = testutil.save_arrays(
                    os.path.join(cls.tmp, f"{name}_train_in.npz"),
                    {**cls.inputs[name], **targets},
                )
                tasks.append(
                    {
                        "kind": "train_eval",
                        "path": result.path,
                        "inputs": train_in,
                        "out": os.path.join(cls.tmp, f"{name}_train.npz"),
                    }
                )
        testutil.run_child(tasks, cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def _child(self, name, kind):
        return testutil.load_arrays(os.path.join(self.tmp, f"{name}_{kind}.npz"))

    def _assert_outputs(self, name, got):
        want = self.expected[name]
        self.assertContainsSubset(set(want), set(got))
        for key, value in want.items():
            self.assertEqual(got[key].shape, value.shape, f"{name}: {key}")
            if value.dtype == object:  # strings
                np.testing.assert_array_equal(
                    got[key], value.astype(bytes), err_msg=f"{name}: {key}"
                )
                continue
            np.testing.assert_allclose(
                got[key], value, rtol=0, atol=ATOL, err_msg=f"{name}: {key}"
            )

    def test_serving_outputs_match_keras_in_fresh_process(self):
        for name in CASES:
            with self.subTest(name):
                self._assert_outputs(name, self._child(name, "serve"))

    def test_load_keras_model_gives_the_keras_outputs(self):
        # Adapted vocabularies, an adapted Normalization's mean and variance and a
        # mixed-precision optimizer all come back.
        for name in CASES:
            with self.subTest(name):
                self._assert_outputs(name, self._child(name, "keras"))

    def test_mixed_precision_reload_keeps_the_loss_scale_optimizer(self):
        got = self._child("mixed_precision", "keras")
        self.assertEqual(str(got["optimizer_class"]), "LossScaleOptimizer")
        self.assertEqual(int(got["optimizer_iterations"]), 0)
        model = self.loaded["short_positions"].model
        self.assertEqual(keras.mixed_precision.dtype_policy().name, "float32")
        self.assertEqual({v.dtype for v in model.weights}, {"float32"})

    def test_string_inputs_take_strings_from_the_vocabulary(self):
        string_inputs = {
            "text_classifier": ["review"],
            "tf_idf_text": ["review"],
            "string_lookup_vocabulary": ["color"],
            "vocabulary_file": ["color"],
            "structured_data": ["thal"],
            "feature_space": ["thal"],
        }
        for name, inputs in string_inputs.items():
            serving = self.results[name].manifest["signatures"]["serving_default"]
            for key in inputs:
                with self.subTest(f"{name}.{key}"):
                    self.assertEqual(serving["inputs"][key]["dtype"], "string")
        words = {w for review in stateful_models.REVIEWS for w in review.split()}
        reviews = [v.decode() for v in self.inputs["text_classifier"]["review"].flat]
        self.assertTrue(all(reviews), reviews)
        self.assertContainsSubset({w for r in reviews for w in r.split()}, words)
        self.assertGreater(len({w for r in reviews for w in r.split()}), 3)
        for name in ("structured_data", "feature_space"):
            thal = {v.decode() for v in self.inputs[name]["thal"].flat}
            self.assertContainsSubset(thal, set(stateful_models.HEART["thal"].flat))
        colors = {v.decode() for v in self.inputs["vocabulary_file"]["color"].flat}
        self.assertContainsSubset(colors, {"red", "green", "blue"})
        probe = sample_inputs.zeros_for(
            self.loaded["text_classifier"].interface.inputs,
            samples=self.loaded["text_classifier"].interface.samples,
        )[0]
        self.assertIn(probe.flat[0].decode(), words)

    def test_string_outputs_are_served(self):
        serving = self.results["label_names"].manifest["signatures"]["serving_default"]
        self.assertEqual(serving["outputs"]["label"]["dtype"], "string")
        labels = set(self._child("label_names", "serve")["label"].flat)
        self.assertContainsSubset(labels, {b"cat", b"dog", b"bird"})

    def test_integer_lookup_inputs_take_its_vocabulary(self):
        codes = set(self.inputs["integer_lookup_adapted"]["code"].flat)
        self.assertContainsSubset(codes, {3, 7, 42, 1000})
        self.assertContainsSubset(
            set(self.inputs["structured_data"]["sex"].flat), {0, 1}
        )

    def test_unknown_length_is_one_the_position_table_accepts(self):
        samples = self.loaded["short_positions"].interface.samples
        self.assertEqual(samples.unknown_dim, stateful_models.MAX_POSITIONS)
        self.assertEqual(
            self.results["short_positions"].modes, ("serve", "eval", "train")
        )
        self.assertEqual(self.inputs["short_positions"]["tokens"].shape, (BATCH, 16))
        serving = self.results["short_positions"].manifest["signatures"]
        self.assertEqual(
            serving["serving_default"]["inputs"]["tokens"]["shape"], [None, None]
        )
        self.assertEqual(
            serving["eval"]["inputs"]["tags_target"]["shape"], [None, None]
        )
        self.assertEqual(self.results["short_positions_serve"].max_abs_diff, 0.0)

    def test_eval_equals_keras_evaluate(self):
        for name in COMPILED:
            with self.subTest(name):
                got = self._child(name, "train")
                for key, value in self.keras_eval[name].items():
                    self.assertAlmostEqual(
                        float(got[f"eval_{key}"]), value, delta=1e-5, msg=key
                    )

    def test_train_changes_the_trainable_variables(self):
        for name in COMPILED:
            with self.subTest(name):
                got = self._child(name, "train")
                if name != "mixed_precision":  # its first variable is the wrapper's
                    self.assertEqual(int(got["optimizer_iterations"]), 1)
                model = self.loaded[name].model
                trainable = {id(v) for v in model.trainable_variables}
                for i, variable in enumerate(model.variables):
                    if id(variable) in trainable:
                        self.assertFalse(
                            np.array_equal(got[f"after_{i}"], got[f"before_{i}"]),
                            f"{name}: train did not change {variable.path}",
                        )

    def test_checkpoint_keys_stay_the_variable_lists(self):
        # Lookup tables hold no checkpointed state: the keys are those of every export.
        prefix = os.path.join(self.results["text_classifier"].path, "variables")
        keys = {name for name, _ in tf.train.list_variables(prefix + "/variables")}
        lists = {key.split("/", 1)[0] for key in keys}
        self.assertEqual(
            lists,
            {
                "_CHECKPOINTABLE_OBJECT_GRAPH",
                "model_variables",
                "metric_variables",
                "optimizer_variables",
            },
        )
        self.assertIn("model_variables/0/.ATTRIBUTES/VARIABLE_VALUE", keys)

    def test_vocabularies_are_saved_as_assets(self):
        def assets(name):
            return os.path.join(self.results[name].path, writer.ASSETS_DIR)

        vocabulary = os.path.join(
            assets("text_classifier"), "keras_layers", "vectorize"
        )
        with open(os.path.join(vocabulary, "vocabulary.txt"), encoding="utf-8") as f:
            saved = f.read().splitlines()
        layer = self.loaded["text_classifier"].model.get_layer("vectorize")
        self.assertEqual(saved, layer.get_vocabulary())
        # A vocabulary file is copied as TensorFlow's own asset, under its own name.
        with open(os.path.join(assets("vocabulary_file"), "colors.txt")) as f:
            self.assertEqual(f.read(), "red\ngreen\nblue\n")
        # A vocabulary given as a list lives in the config: no layer assets.
        self.assertEqual(
            os.listdir(assets("string_lookup_vocabulary")), ["saved_model.json"]
        )
        with open(
            os.path.join(self.results["vocabulary_file"].path, "saved_model.pb"), "rb"
        ) as f:
            self.assertNotIn(
                os.path.dirname(stateful_models.COLORS_FILE).encode(), f.read()
            )


class StatefulErrorTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.out = os.path.join(self.create_tempdir().full_path, "out")

    def assertExportError(self, flag, phrases, builder, **kwargs):
        request = api.ExportRequest(
            builder=f"{S}:{builder}", output_dir=self.out, **kwargs
        )
        with self.assertRaises(ExportError) as cm:
            api.export_saved_model(request)
        message = str(cm.exception)
        paragraph = message.split("\n\n", 1)[0]
        self.assertEqual(testutil.flags_named(cm.exception), flag, message)
        self.assertNotIn("\n", paragraph)
        for phrase in phrases:
            self.assertIn(phrase, paragraph)
        self.assertFalse(os.path.exists(self.out), "something was left behind")

    def test_table_no_layer_holds(self):
        self.assertExportError(
            "--builder/--src",
            ["StaticHashTable", "no layer of the model holds", "inside a layer"],
            "table_outside_the_model",
        )

    def test_vocabulary_file_deleted_by_the_builder(self):
        self.assertExportError(
            "--builder/--src",
            ["colors.txt' that a lookup table", "no longer exists", "as a list"],
            "vocabulary_file_deleted",
        )

    def test_verify_call_failing_is_one_paragraph(self):
        self.assertExportError(
            "--verify",
            [
                "calling the Keras model on seeded sample inputs (x: [1, 3])",
                "inputs must be >= 0",
                "--noverify",
            ],
            "checks_its_inputs",
        )

    def test_save_failure_is_one_paragraph(self):
        untracked = tf.Variable(2.0)
        root = signatures.ExportModule([], [], [])
        root.serve = tf.function(
            lambda x: x * untracked, input_signature=[tf.TensorSpec([None], tf.float32)]
        ).get_concrete_function()
        resolved = options.resolve(
            options.ExportRequest(
                builder="unused.module:build",
                output_dir=self.create_tempdir().full_path,
            )
        )
        staging = writer.begin(resolved.output_dir, resolved.version)
        with self.assertRaises(ExportError) as cm:
            writer.write(
                staging, root, {signatures.SERVING_KEY: root.serve}, "{}", resolved
            )
        self.assertEqual(testutil.flags_named(cm.exception), "--builder/--src")
        paragraph = str(cm.exception).split("\n\n", 1)[0]
        self.assertNotIn("\n", paragraph)
        self.assertIn("TensorFlow could not save the traced model", paragraph)
        self.assertIn("untracked", paragraph)


class StatefulDeterminismTest(absltest.TestCase):
    def test_vocabulary_exports_are_identical_wherever_the_files_are(self):
        """Two fresh processes, the builder and its vocabulary file at two paths."""
        tmp = self.create_tempdir().full_path
        procs = {}
        for copy in ("a", "b/deeper"):
            folder = os.path.join(tmp, copy)
            os.makedirs(os.path.join(folder, "testdata"))
            shutil.copy(
                stateful_models.__file__, os.path.join(folder, "vocab_builder.py")
            )
            shutil.copy(stateful_models.COLORS_FILE, os.path.join(folder, "testdata"))
            env = testutil.child_env()
            env["PYTHONPATH"] = folder + os.pathsep + env["PYTHONPATH"]
            procs[copy] = [
                subprocess.Popen(
                    testutil.exporter_command()
                    + [
                        f"--builder=vocab_builder:{builder}",
                        f"--output_dir={folder}/{builder}",
                    ],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for builder in ("vocabulary_file", "text_classifier")
            ]
        for copy, runs in procs.items():
            for proc in runs:
                _, stderr = proc.communicate(timeout=testutil.TIMEOUT_S)
                self.assertEqual(proc.returncode, 0, f"{copy}: {stderr[-3000:]}")
        for builder, asset in (
            ("vocabulary_file", "assets/colors.txt"),
            ("text_classifier", "assets/keras_layers/vectorize/vocabulary.txt"),
        ):
            a = testutil.tree_bytes(os.path.join(tmp, "a", builder, "1"))
            b = testutil.tree_bytes(os.path.join(tmp, "b/deeper", builder, "1"))
            self.assertIn(asset, a)
            self.assertEqual(sorted(a), sorted(b))
            for rel in sorted(a):
                self.assertTrue(a[rel] == b[rel], f"{builder}: {rel} differs")
            for data in a.values():
                self.assertNotIn(tmp.encode(), data)


if __name__ == "__main__":
    absltest.main()
