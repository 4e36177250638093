"""Lambdas whose code uses their module's globals (`ops`, `tf`, `np`, constants).

Keras saves a lambda's bytecode without its module and re-creates it with globals of its
own; the export names the lambda's module, and load_keras_model re-creates the lambda with
that module's globals. Each export runs in a fresh exporter process and each load in
another (tests.export.child), as a build and a later notebook or server would.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import tensorflow as tf
from absl.testing import absltest

from export.lib import lambda_code, options, sample_inputs, sources
from tests.export import testmodels, testutil
from tests.zoo import structured

ATOL = 1e-6

# A builder's module the exporter imports from a folder of its own (--import_path),
# which a loading process may not have on its path.
_SHOP_FEATURES = """
import keras
from keras import layers, ops

PRICE_SCALE = 100.0


def build():
    inputs = keras.Input((3,), name="basket")
    x = layers.Lambda(lambda t: ops.log1p(t / PRICE_SCALE), name="log_price")(inputs)
    outputs = layers.Dense(1, name="spend")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    return model
"""

# The same module after a rename, as a later checkout has it.
_SHOP_FEATURES_RENAMED = _SHOP_FEATURES.replace("PRICE_SCALE", "PRICE_UNIT")

# A transform kept as text in a pipeline's configuration, compiled when the model is
# built: its code belongs to no module's file.
_CONFIGURED_TRANSFORMS = """
import keras
from keras import layers, ops

TRANSFORMS = {"signed_log": "lambda t: ops.sign(t) * ops.log1p(ops.abs(t))"}


def build():
    inputs = keras.Input((3,), name="features")
    x = layers.Lambda(eval(TRANSFORMS["signed_log"]), name="signed_log")(inputs)
    outputs = layers.Dense(1, name="score")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    return model
"""

# A script that defines its builder and exports it through the library, as a notebook
# does: the lambda's module is __main__.
_SCRIPT = """
import json
import sys

import keras
from keras import layers, ops

from export.lib import api


def build():
    inputs = keras.Input((3,), name="features")
    x = layers.Lambda(
        lambda t: ops.sign(t) * ops.log1p(ops.abs(t)), name="signed_log"
    )(inputs)
    outputs = layers.Dense(1, name="score")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    return model


if __name__ == "__main__":
    request = api.ExportRequest(builder="__main__:build", output_dir=sys.argv[1])
    result = api.export_with_result(request)
    with open(sys.argv[2], "w") as f:
        json.dump({"path": result.path, "modes": result.modes, "notes": result.notes}, f)
"""

# Exports built from this process's own builders, compared with the Keras models.
_BUILDERS = {
    "signed_log": "tests.zoo.structured:signed_log_features",
    "everything": f"{testmodels.MODULE}:lambdas_using_their_module",
}
_MOVE_THE_LAMBDA = "the lambda in a module that can be imported"


def _write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class LambdaModulesTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = testutil.make_tempdir()
        cls.code = os.path.dirname(
            _write(os.path.join(cls.tmp, "code", "shop_features.py"), _SHOP_FEATURES)
        )
        _write(
            os.path.join(cls.code, "configured_transforms.py"), _CONFIGURED_TRANSFORMS
        )
        cls.renamed = os.path.dirname(
            _write(
                os.path.join(cls.tmp, "renamed", "shop_features.py"),
                _SHOP_FEATURES_RENAMED,
            )
        )
        script = _write(os.path.join(cls.tmp, "export_notebook.py"), _SCRIPT)
        cls.script_result = os.path.join(cls.tmp, "script.json")

        # Every export at once, each in a fresh process.
        runs = {
            name: testutil.start_exporter(
                [f"--builder={builder}", f"--output_dir={cls._out(name)}"]
            )
            for name, builder in _BUILDERS.items()
        }
        runs["shop"] = testutil.start_exporter(
            [
                "--builder=shop_features:build",
                f"--import_path={cls.code}",
                f"--output_dir={cls._out('shop')}",
            ]
        )
        runs["configured"] = testutil.start_exporter(
            [
                "--builder=configured_transforms:build",
                f"--import_path={cls.code}",
                f"--output_dir={cls._out('configured')}",
                "--quiet",
            ]
        )
        runs["script"] = subprocess.Popen(
            [sys.executable, script, cls._out("script"), cls.script_result],
            env=testutil.child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        cls.stderr = {}
        for name, run in runs.items():
            _, cls.stderr[name] = run.communicate(timeout=testutil.TIMEOUT_S)
            if run.returncode != 0:
                raise AssertionError(
                    f"export {name} failed:\n{cls.stderr[name][-4000:]}"
                )

        # This process's Keras models, from the same builders and seed.
        cls.keras = {}
        tasks = []
        for name, builder in _BUILDERS.items():
            request = options.ExportRequest(
                builder=builder, output_dir=os.path.join(cls.tmp, "unused")
            )
            loaded = sources.load_model(options.resolve(request).source)
            arrays = sample_inputs.random_for(loaded.interface.inputs, seed=3, batch=5)
            inputs = {
                d.name: a for d, a in zip(loaded.interface.inputs, arrays, strict=True)
            }
            packed = loaded.interface.pack_inputs([tf.constant(a) for a in arrays])
            outputs = loaded.interface.name_outputs(loaded.model(packed))
            cls.keras[name] = {k: np.asarray(v) for k, v in outputs.items()}
            in_file = testutil.save_arrays(
                os.path.join(cls.tmp, f"{name}_in.npz"), inputs
            )
            for kind in ("serve", "keras"):
                tasks.append(
                    cls._task(kind, name, in_file, allow_unsafe_deserialization=True)
                )
            if name == "signed_log":
                tasks.append(cls._fit_task(loaded.model))
        # Loads that must fail, in this order: the module is missing from the path, then
        # found but renamed its constant.
        tasks += [
            cls._task("keras_error", "script", allow_unsafe_deserialization=True),
            cls._task("keras_error", "configured", allow_unsafe_deserialization=True),
            cls._task(
                "keras_error",
                "shop",
                out="shop_missing",
                allow_unsafe_deserialization=True,
            ),
            cls._task(
                "keras_error",
                "shop",
                out="shop_renamed",
                allow_unsafe_deserialization=True,
                import_path=[cls.renamed],
            ),
        ]
        testutil.run_child(tasks, cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def _out(cls, name: str) -> str:
        return os.path.join(cls.tmp, "exports", name)

    @classmethod
    def _task(cls, kind, name, inputs=None, out=None, **options_) -> dict:
        return {
            "kind": kind,
            "path": os.path.join(cls._out(name), "1"),
            "inputs": inputs,
            "out": os.path.join(cls.tmp, f"{out or name}_{kind}.npz"),
            **options_,
        }

    @classmethod
    def _fit_task(cls, model) -> dict:
        """Keras's own fit on the zoo's batch, then the same in the child."""
        x, y = structured.signed_log_features_batch()
        cls.keras_before = [np.asarray(v.numpy()) for v in model.variables]
        history = model.fit(x, y, batch_size=len(x), shuffle=False, verbose=0).history
        cls.keras_fit = {key: values[-1] for key, values in history.items()}
        cls.keras_after = [np.asarray(v.numpy()) for v in model.variables]
        batch = testutil.save_arrays(
            os.path.join(cls.tmp, "fit_in.npz"), {"x": x, "y": y}
        )
        return cls._task(
            "keras_fit", "signed_log", batch, allow_unsafe_deserialization=True
        )

    def _child(self, name, kind):
        return testutil.load_arrays(os.path.join(self.tmp, f"{name}_{kind}.npz"))

    def _error(self, name) -> str:
        return str(self._child(name, "keras_error")["error"])

    def test_serving_equals_keras(self):
        for name, want in self.keras.items():
            with self.subTest(name):
                got = self._child(name, "serve")
                self.assertEqual(sorted(got), sorted(want))
                for key, value in want.items():
                    np.testing.assert_allclose(got[key], value, rtol=0, atol=ATOL)

    def test_load_keras_model_in_a_fresh_process_gives_keras_outputs(self):
        for name, want in self.keras.items():
            with self.subTest(name):
                got = self._child(name, "keras")
                for key, value in want.items():
                    np.testing.assert_allclose(got[key], value, rtol=0, atol=ATOL)

    def test_load_keras_model_trains_like_keras(self):
        got = self._child("signed_log", "keras_fit")
        for key, want in self.keras_fit.items():
            self.assertAlmostEqual(float(got[f"fit_{key}"]), want, delta=ATOL, msg=key)
        for i, (before, after) in enumerate(
            zip(self.keras_before, self.keras_after, strict=True)
        ):
            self.assertFalse(np.array_equal(before, after), f"variable {i} unchanged")
            np.testing.assert_allclose(got[f"variable_{i}"], after, rtol=0, atol=ATOL)

    def test_json_names_each_lambdas_module(self):
        with open(
            os.path.join(self._out("everything"), "1", "assets", "saved_model.json")
        ) as f:
            found = lambda_code.find_lambdas(json.load(f))
        self.assertEqual(
            [(entry.owner, entry.module) for entry in found],
            [
                ("the Lambda layer 'signed_log'", testmodels.MODULE),
                ("the Lambda layer 'clip'", testmodels.MODULE),
                ("the Lambda layer 'weigh'", testmodels.MODULE),
                ("'poly' (FeatureTransform)", testmodels.MODULE),
            ],
        )
        for entry in found:
            self.assertEqual(entry.code.co_filename, "tests/export/testmodels.py")

    def test_lambda_of_a_script_is_noted_and_its_load_error_names_it(self):
        with open(self.script_result) as f:
            result = json.load(f)
        self.assertEqual(result["modes"], ["serve", "eval", "train"])
        self.assertLen(result["notes"], 1)
        note = result["notes"][0]
        for words in (
            "the Lambda layer 'signed_log' uses ops",
            "__main__",
            "load_keras_model cannot re-create",
            _MOVE_THE_LAMBDA,
        ):
            self.assertIn(words, note)
        self.assertIn(note, " ".join(self.stderr["script"].split()))
        error = self._error("script")
        for words in (
            "ValueError",
            "the Lambda layer 'signed_log' uses ops",
            "__main__",
            _MOVE_THE_LAMBDA,
        ):
            self.assertIn(words, error)

    def test_quiet_exporter_prints_the_note_of_code_compiled_at_run_time(self):
        self.assertIn(
            "exporter: note: the Lambda layer 'signed_log' uses ops from the module its"
            " lambda was written in, '<string>'",
            self.stderr["configured"],
        )
        self.assertNotIn("UserWarning", self.stderr["configured"])  # the rest is quiet
        error = self._error("configured")
        for words in (
            "the Lambda layer 'signed_log' uses ops",
            "'<string>'",
            _MOVE_THE_LAMBDA,
        ):
            self.assertIn(words, error)

    def test_load_error_names_a_module_missing_from_the_path(self):
        error = self._error("shop_missing")
        for words in (
            "the Lambda layer 'log_price' runs code from module 'shop_features'",
            "cannot be imported here",
            "No module named 'shop_features'",
            "that module on the Python path",
        ):
            self.assertIn(words, error)

    def test_load_error_names_what_the_module_no_longer_defines(self):
        error = self._error("shop_renamed")
        for words in (
            "the Lambda layer 'log_price' uses PRICE_SCALE from module 'shop_features'",
            "which does not define it",
            "PRICE_SCALE in 'shop_features'",
            "export it again from the current code",
        ):
            self.assertIn(words, error)

    def test_no_note_when_every_module_can_be_imported(self):
        for name in ("signed_log", "everything", "shop"):
            self.assertNotIn("load_keras_model cannot", self.stderr[name])


if __name__ == "__main__":
    absltest.main()
