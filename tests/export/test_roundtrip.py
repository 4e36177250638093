"""Exports each kind of model, then uses the exports in a fresh process.

Exports run in this process through the library (fast); the SavedModels are then loaded
by a separate interpreter (tests.export.child), as a server would, and compared with the
Keras model this process rebuilds from the same source and seed.
"""

import dataclasses
import os
import shutil

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest

from export.lib import api, options, sample_inputs, sources
from tests.export import testmodels, testutil

M = testmodels.MODULE
ATOL = 1e-6  # measured: 0.0, or 6e-8 where eager Keras and graph fuse ops differently
BATCH = 5
# Compiled cases whose train signature (and eval, where Keras can evaluate them) is
# compared with Keras's own steps.
TRAINED = (
    "compiled",
    "custom_train_step",
    "guide_train_step",
    "low_level_train_step",
)


def _compiled_data(model_interface, rng):
    x = dict(
        zip(
            [d.name for d in model_interface.inputs],
            sample_inputs.random_for(model_interface.inputs, seed=11, batch=BATCH),
            strict=True,
        )
    )
    y = {"probs_target": rng.integers(0, 3, size=(BATCH,)).astype(np.int64)}
    return x, y


class RoundTripTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = testutil.make_tempdir()
        files = cls._make_files()
        cases = {
            "mlp": {"builder": f"{M}:mlp"},
            "two_in_two_out": {"builder": f"{M}:two_in_two_out"},
            "custom_layer": {
                "builder": f"{M}:custom_layer",
                "custom_objects": [f"Scale={M}:Scale"],
            },
            "subclassed": {"builder": f"{M}:subclassed"},
            "compiled": {"builder": f"{M}:compiled"},
            "custom_train_step": {
                "builder": f"{M}:custom_train_step",
                "custom_objects": [f"ClippedStep={M}:ClippedStep"],
            },
            # Its train_step returns the compiled metrics as a nested dict.
            "guide_train_step": {
                "builder": f"{M}:guide_train_step",
                "custom_objects": ["CustomModel=tests.zoo.training:CustomModel"],
            },
            # No compiled loss: serve and train only; the labels are stated.
            "low_level_train_step": {
                "builder": f"{M}:low_level_train_step",
                "custom_objects": [f"LowLevelStep={M}:LowLevelStep"],
                "label_specs": ["probs=None:int64"],
            },
            "keras_file": {"src": files["keras_file"]},
            "weights": {"builder": f"{M}:mlp", "weights": files["weights"]},
            "lambda_file": {
                "src": files["lambda_file"],
                "allow_unsafe_deserialization": True,
            },
            # Its lambda's bytecode is rewritten with a portable file name: it must run.
            "lambda_builder": {
                "builder": f"{M}:lambda_model",
                "allow_unsafe_deserialization": True,
            },
            "legacy_h5": {"src": files["legacy_h5"]},
        }
        keras_load_options = {
            "custom_layer": {"custom_objects": {"Scale": f"{M}:Scale"}},
            "lambda_file": {"allow_unsafe_deserialization": True},
            "lambda_builder": {"allow_unsafe_deserialization": True},
            "custom_train_step": {
                "custom_objects": {"ClippedStep": f"{M}:ClippedStep"}
            },
            "guide_train_step": {
                "custom_objects": {"CustomModel": "tests.zoo.training:CustomModel"}
            },
            "low_level_train_step": {
                "custom_objects": {"LowLevelStep": f"{M}:LowLevelStep"}
            },
        }
        cls.results, cls.models, cls.expected, cls.json = {}, {}, {}, {}
        cls.keras_steps = {}
        tasks = []
        for name, kwargs in cases.items():
            request = api.ExportRequest(
                output_dir=os.path.join(cls.tmp, name), **kwargs
            )
            cls.results[name] = api.export_with_result(request)
            # Rebuilding from the same source and seed must give the exported weights.
            source = options.resolve(
                dataclasses.replace(request, output_dir=os.path.join(cls.tmp, "unused"))
            ).source
            loaded = sources.load_model(source)
            cls.models[name] = loaded
            cls.json[name] = loaded.model_json
            arrays = sample_inputs.random_for(
                loaded.interface.inputs, seed=3, batch=BATCH
            )
            inputs = {
                d.name: a for d, a in zip(loaded.interface.inputs, arrays, strict=True)
            }
            outputs = loaded.interface.name_outputs(
                loaded.model(
                    loaded.interface.pack_inputs([tf.constant(a) for a in arrays])
                )
            )
            cls.expected[name] = {
                "inputs": inputs,
                "outputs": {k: np.asarray(v) for k, v in outputs.items()},
                "variables": [np.asarray(v.numpy()) for v in loaded.model.variables],
            }
            path = cls.results[name].path
            in_file = testutil.save_arrays(
                os.path.join(cls.tmp, f"{name}_in.npz"), inputs
            )
            for kind in ("serve", "keras"):
                task = {"kind": kind, "path": path, "inputs": in_file}
                task["out"] = os.path.join(cls.tmp, f"{name}_{kind}.npz")
                if kind == "keras":
                    task.update(keras_load_options.get(name, {}))
                tasks.append(task)
            if name in TRAINED:
                modes = cls.results[name].modes
                tasks.append(cls._train_task(name, loaded, path, modes))
        testutil.run_child(tasks, cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def _make_files(cls):
        files = {}
        for name, build, path in (
            ("keras_file", testmodels.compiled_two_outputs, "two.keras"),
            ("lambda_file", testmodels.lambda_model, "lambda.keras"),
            ("legacy_h5", testmodels.mlp, "mlp.h5"),
        ):
            keras.backend.clear_session()
            keras.utils.set_random_seed(5)
            files[name] = os.path.join(cls.tmp, path)
            build().save(files[name])
        # Weights unlike anything the seed gives: the test sees whether they were applied.
        keras.backend.clear_session()
        keras.utils.set_random_seed(9)
        model = testmodels.mlp()
        model.set_weights([w * 1.5 + 0.25 for w in model.get_weights()])
        files["weights"] = os.path.join(cls.tmp, "mlp.weights.h5")
        model.save_weights(files["weights"])
        return files

    @classmethod
    def _train_task(cls, name, loaded, path, modes):
        """Keras's own evaluate and fit on the same batch, for comparison."""
        model = loaded.model
        x, y = _compiled_data(loaded.interface, np.random.default_rng(4))
        step = {"before": [np.asarray(v.numpy()) for v in model.variables]}
        if "eval" in modes:
            step["eval"] = model.evaluate(
                x["x"], y["probs_target"], batch_size=BATCH, return_dict=True, verbose=0
            )
        # One epoch of one batch: fit, the way Keras users train (train_on_batch hands
        # train_step (x, y, None), which the guide's `x, y = data` does not unpack).
        history = model.fit(
            x["x"], y["probs_target"], batch_size=BATCH, shuffle=False, verbose=0
        ).history
        step["train"] = {key: values[-1] for key, values in history.items()}
        step["after"] = [np.asarray(v.numpy()) for v in model.variables]
        step["serve_after"] = np.asarray(model(x["x"]))
        cls.keras_steps[name] = step
        in_file = testutil.save_arrays(
            os.path.join(cls.tmp, f"{name}_train_in.npz"), {**x, **y}
        )
        out = os.path.join(cls.tmp, f"{name}_train.npz")
        return {"kind": "train_eval", "path": path, "inputs": in_file, "out": out}

    def _child(self, name, kind):
        return testutil.load_arrays(os.path.join(self.tmp, f"{name}_{kind}.npz"))

    def test_serving_outputs_match_keras_in_fresh_process(self):
        for name, expected in self.expected.items():
            with self.subTest(name):
                got = self._child(name, "serve")
                self.assertEqual(sorted(got), sorted(expected["outputs"]))
                for key, value in expected["outputs"].items():
                    self.assertEqual(got[key].shape, value.shape)
                    np.testing.assert_allclose(
                        got[key], value, rtol=0, atol=ATOL, err_msg=name
                    )

    def test_signature_names_are_the_models_own(self):
        want = {
            "mlp": ({"features"}, {"probs"}),
            "two_in_two_out": ({"image_feats", "meta"}, {"score", "cls"}),
            "custom_layer": ({"x"}, {"scaled"}),
            "subclassed": ({"input_1"}, {"output_1"}),
            "compiled": ({"x"}, {"probs"}),
        }
        for name, (inputs, outputs) in want.items():
            with self.subTest(name):
                serving = self.results[name].manifest["signatures"]["serving_default"]
                self.assertEqual(set(serving["inputs"]), inputs)
                self.assertEqual(set(serving["outputs"]), outputs)
                for spec in serving["inputs"].values():
                    self.assertIsNone(spec["shape"][0], "batch dim must be polymorphic")

    def test_modes_follow_compilation(self):
        self.assertEqual(self.results["mlp"].modes, ("serve",))
        self.assertEqual(self.results["compiled"].modes, ("serve", "eval", "train"))
        self.assertEqual(self.results["keras_file"].modes, ("serve", "eval", "train"))
        # fit runs its own train_step; evaluate has no loss to compute.
        self.assertEqual(self.results["low_level_train_step"].modes, ("serve", "train"))
        eval_sig = self.results["compiled"].manifest["signatures"]["eval"]
        self.assertEqual(
            eval_sig["inputs"]["probs_target"],
            {"dtype": "int64", "shape": [None], "accepted_shapes": [[None], [None, 1]]},
        )
        self.assertEqual(set(eval_sig["outputs"]), {"loss", "accuracy"})

    def test_files_written(self):
        for name, result in self.results.items():
            with self.subTest(name):
                self.assertEqual(os.path.basename(result.path), "1")
                self.assertEqual(
                    sorted(os.listdir(os.path.dirname(result.path))),
                    ["1"],
                    "temp folder left",
                )
                for rel in (
                    "saved_model.pb",
                    "fingerprint.pb",
                    "variables/variables.index",
                ):
                    self.assertTrue(os.path.isfile(os.path.join(result.path, rel)), rel)
                with open(os.path.join(result.path, "assets", "saved_model.json")) as f:
                    self.assertEqual(f.read(), self.json[name])
                tf.saved_model.experimental.read_fingerprint(result.path)

    def test_load_keras_model_in_fresh_process(self):
        for name, expected in self.expected.items():
            with self.subTest(name):
                got = self._child(name, "keras")
                for key, value in expected["outputs"].items():
                    np.testing.assert_allclose(
                        got[key], value, rtol=0, atol=ATOL, err_msg=name
                    )
                variables = expected["variables"]
                self.assertLen(
                    [k for k in got if k.startswith("variable_")], len(variables)
                )
                for i, value in enumerate(variables):
                    np.testing.assert_array_equal(
                        got[f"variable_{i}"], value, err_msg=name
                    )

    def test_load_keras_model_rejects_a_variable_of_another_shape(self):
        class ScalarScale(testmodels.Scale):
            """Scale changed since the export: one gain instead of one per feature."""

            def build(self, input_shape):
                self.gain = self.add_weight(name="gain", shape=(1,), initializer="ones")

        with self.assertRaisesRegex(
            ValueError,
            r"holds float32 \[4\] as model_variables 2, .* has float32 \[1\] there"
            r" \(scaled/gain",
        ):
            api.load_keras_model(
                self.results["custom_layer"].path, {"Scale": ScalarScale}
            )

    def test_weights_flag_applies_weights(self):
        got = self._child("weights", "serve")["probs"]
        plain = self.expected["mlp"]["outputs"]["probs"]
        self.assertGreater(float(np.max(np.abs(got - plain))), 1e-3)

    def test_eval_signature_equals_keras_evaluate(self):
        for name in TRAINED:
            with self.subTest(name):
                got = self._child(name, "train")
                want = self.keras_steps[name].get("eval", {})
                self.assertEqual(
                    sorted(k for k in got if k.startswith("eval_")),
                    sorted(f"eval_{k}" for k in want),
                )
                for key, value in want.items():
                    self.assertAlmostEqual(
                        float(got[f"eval_{key}"]), value, delta=1e-6, msg=key
                    )

    def test_train_signature_runs_the_models_train_step_like_keras(self):
        for name in TRAINED:
            with self.subTest(name):
                self._check_train(name, self._child(name, "train"))

    def _check_train(self, name, got):
        want = self.keras_steps[name]
        self.assertEqual(int(got["optimizer_iterations"]), 1)
        # Every log of the model's train_step (custom_train_step adds grad_norm).
        self.assertEqual(
            sorted(k for k in got if k.startswith("train_")),
            sorted(f"train_{k}" for k in want["train"]),
        )
        for key, value in want["train"].items():
            self.assertAlmostEqual(
                float(got[f"train_{key}"]), value, delta=1e-6, msg=key
            )
        model = self.models[name].model
        trainable = {id(v) for v in model.trainable_variables}
        for i, variable in enumerate(model.variables):
            np.testing.assert_array_equal(got[f"before_{i}"], want["before"][i])
            np.testing.assert_allclose(
                got[f"after_{i}"],
                want["after"][i],
                rtol=0,
                atol=ATOL,
                err_msg=variable.path,
            )
            if id(variable) in trainable:
                self.assertFalse(
                    np.array_equal(got[f"after_{i}"], got[f"before_{i}"]),
                    f"train did not change {variable.path}",
                )
        np.testing.assert_allclose(
            got["serve_after_probs"], want["serve_after"], rtol=0, atol=ATOL
        )


if __name__ == "__main__":
    absltest.main()
