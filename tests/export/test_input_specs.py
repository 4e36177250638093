"""Subclassed models whose inputs the exporter cannot guess, exported and used in a
fresh process: strings declared by input_specs, and a call() taking two tensors.

Each is exported from its builder (tests/zoo exports them from `.keras` files too); the
SavedModel is then served and loaded with load_keras_model by a separate interpreter
(tests.export.child), and compared with the Keras model this process rebuilds.
"""

import dataclasses
import os
import shutil

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest

from export.lib import api, labels, options, sample_inputs, signatures, sources
from tests.export import testmodels, testutil
from tests.zoo import subclassed

M = testmodels.MODULE
ATOL = 1e-6
TEXT_SPECS = {"input_1": "None:string"}
# What load_keras_model is given in the fresh process, as a user would.
CUSTOM_OBJECTS = {
    "zoo>ReviewModel": "tests.zoo.subclassed:ReviewModel",
    "zoo>PairScorer": "tests.zoo.subclassed:PairScorer",
    "rules_keras_tests>TwoArgumentsDefaultBuild": f"{M}:TwoArgumentsDefaultBuild",
}


def _dataset(x, y):
    return tf.data.Dataset.from_tensors((x, y))


class InputSpecsTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = testutil.make_tempdir()
        cases = {
            "review": {
                "builder": "tests.zoo.subclassed:review_model",
                "input_specs": TEXT_SPECS,
            },
            "pair": {"builder": "tests.zoo.subclassed:pair_scorer"},
            # Keras recorded a's shape alone: b's is declared.
            "default_build": {
                "builder": f"{M}:two_arguments_default_build",
                "input_specs": {"b": "None,4:float32"},
            },
        }
        cls.results, cls.expected, cls.keras_evaluate, cls.keras_fit = {}, {}, {}, {}
        tasks = []
        for name, kwargs in cases.items():
            request = api.ExportRequest(
                output_dir=os.path.join(cls.tmp, name), **kwargs
            )
            cls.results[name] = api.export_with_result(request)
            source = options.resolve(
                dataclasses.replace(request, output_dir=os.path.join(cls.tmp, "unused"))
            ).source
            loaded = sources.load_model(source)
            model, model_interface = loaded.model, loaded.interface
            arrays = sample_inputs.random_for(
                model_interface.inputs, seed=3, batch=4, samples=model_interface.samples
            )
            inputs = {
                d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)
            }
            packed = model_interface.pack_inputs([tf.constant(a) for a in arrays])
            cls.expected[name] = {
                key: np.asarray(value)
                for key, value in model_interface.name_outputs(
                    model_interface.call(model, packed)
                ).items()
            }
            path = cls.results[name].path
            in_file = testutil.save_arrays(
                os.path.join(cls.tmp, f"{name}_in.npz"), inputs
            )
            for kind in ("serve", "keras"):
                task = {"kind": kind, "path": path, "inputs": in_file}
                task["out"] = os.path.join(cls.tmp, f"{name}_{kind}.npz")
                if kind == "keras":
                    # As a user would, with the classes and the declared inputs.
                    task["custom_objects"] = CUSTOM_OBJECTS
                    task["input_specs"] = kwargs.get("input_specs", {})
                tasks.append(task)
            if name == "review":
                # Loaded again in the same process: its TextVectorization, made by
                # the model's __init__, must find its vocabulary under the same name.
                again = os.path.join(cls.tmp, f"{name}_keras_again.npz")
                tasks.append({**tasks[-1], "out": again})
            if "train" in cls.results[name].modes:
                tasks.append(cls._train_task(name, model, model_interface, path))
        testutil.run_child(tasks, cls.tmp)

    @classmethod
    def _train_task(cls, name, model, model_interface, path):
        """Keras's own evaluate and fit on the model's sample batch, for comparison."""
        batch = (
            subclassed.review_model_batch()
            if name.startswith("review")
            else subclassed.pair_batch()
        )
        x, y = batch
        cls.keras_evaluate[name] = model.evaluate(
            _dataset(x, y), verbose=0, return_dict=True
        )
        feeds = dict(
            zip(
                [d.name for d in model_interface.inputs],
                keras.tree.flatten(x),
                strict=True,
            )
        )
        feeds["output_1" + labels.TARGET_SUFFIX] = y
        if name.startswith("pair"):  # no dropout: Keras's step is the signature's
            model.fit(_dataset(x, y), verbose=0)
            cls.keras_fit[name] = [np.asarray(v.numpy()) for v in model.variables]
        in_file = testutil.save_arrays(
            os.path.join(cls.tmp, f"{name}_train_in.npz"), feeds
        )
        out = os.path.join(cls.tmp, f"{name}_train.npz")
        return {"kind": "train_eval", "path": path, "inputs": in_file, "out": out}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def _child(self, name, kind):
        return testutil.load_arrays(os.path.join(self.tmp, f"{name}_{kind}.npz"))

    def test_signatures_take_the_declared_and_call_inputs(self):
        want = {
            "review": {"input_1": {"dtype": "string", "shape": [None]}},
            "pair": {
                "query": {"dtype": "float32", "shape": [None, 5]},
                "document": {"dtype": "float32", "shape": [None, 7]},
            },
            "default_build": {
                "a": {"dtype": "float32", "shape": [None, 3]},
                "b": {"dtype": "float32", "shape": [None, 4]},
            },
        }
        for name, inputs in want.items():
            with self.subTest(name):
                manifest = self.results[name].manifest["signatures"]
                self.assertEqual(manifest[signatures.SERVING_KEY]["inputs"], inputs)
                for mode in ("eval", "train"):
                    if name != "default_build":
                        self.assertEqual(
                            set(manifest[mode]["inputs"]),
                            set(inputs) | {"output_1_target"},
                        )
        self.assertEqual(self.results["default_build"].modes, ("serve",))

    def test_serving_outputs_match_keras_in_fresh_process(self):
        for name, expected in self.expected.items():
            with self.subTest(name):
                got = self._child(name, "serve")
                self.assertEqual(sorted(got), sorted(expected))
                for key, value in expected.items():
                    np.testing.assert_allclose(
                        got[key], value, rtol=0, atol=ATOL, err_msg=f"{name} {key}"
                    )

    def test_load_keras_model_in_fresh_process(self):
        loads = [(name, "keras") for name in self.expected]
        loads.append(("review", "keras_again"))
        for name, kind in loads:
            expected = self.expected[name]
            with self.subTest(name=name, kind=kind):
                got = self._child(name, kind)
                for key, value in expected.items():
                    np.testing.assert_allclose(
                        got[key], value, rtol=0, atol=ATOL, err_msg=f"{name} {key}"
                    )

    def test_eval_equals_keras_evaluate(self):
        for name, want in self.keras_evaluate.items():
            with self.subTest(name):
                got = self._child(name, "train")
                self.assertEqual(
                    sorted(k for k in got if k.startswith("eval_")),
                    sorted(f"eval_{k}" for k in want),
                )
                for key, value in want.items():
                    self.assertAlmostEqual(
                        float(got[f"eval_{key}"]), value, delta=1e-6, msg=key
                    )
        self.assertEqual(set(self.keras_evaluate), {"review", "pair"})

    def test_train_takes_the_step_keras_fit_takes(self):
        self.assertEqual(set(self.keras_fit), {"pair"})
        for name, after in self.keras_fit.items():
            with self.subTest(name):
                got = self._child(name, "train")
                self.assertEqual(int(got["optimizer_iterations"]), 1)
                for i, value in enumerate(after):
                    self.assertFalse(
                        np.array_equal(got[f"after_{i}"], got[f"before_{i}"]), i
                    )
                    np.testing.assert_allclose(
                        got[f"after_{i}"], value, rtol=0, atol=ATOL, err_msg=str(i)
                    )


if __name__ == "__main__":
    absltest.main()
