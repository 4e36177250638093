"""An export holds one copy of the model's variables, in memory while verifying and on disk.

What that saves at scale (peak RSS, bytes on disk, 67 MB to 1 GB of weights) is
measured by bench/scale.py; these tests check the property itself, on a small model.
"""

import gc
import os
import weakref
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import absltest

from export.lib import api, interface, label_probes
from export.lib.loader import load_keras_model
from tests.export import testutil

# Files in variables/ may exceed the variables' own bytes by this much: the index and
# the object graph that the checkpoint stores beside the values.
_STORE_OVERHEAD = 1.02
_MODULE = __name__


def classifier() -> keras.Model:
    """About 1.2 MB of float32 weights (2.4 MB more of Adam's slots), compiled."""
    model = keras.Sequential(
        [
            keras.Input((64,), name="features"),
            keras.layers.Dense(512, activation="relu", name="hidden1"),
            keras.layers.Dense(512, activation="relu", name="hidden2"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="classifier",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# Weak references to what watched_classifier built, for the test to check.
_watched: list[weakref.ref] = []


def watched_classifier() -> keras.Model:
    """classifier(), with its optimizer's slots made here, all of it watched weakly."""
    model = classifier()
    model.optimizer.build(model.trainable_variables)
    variables = interface.tf_variables(model.variables + model.optimizer.variables)
    # A variable's memory lives as long as its handle, which traced functions capture.
    _watched[:] = [weakref.ref(o) for o in [model, model.optimizer]] + [
        weakref.ref(v.handle) for v in variables
    ]
    return model


# An op type's gradient, registered by name the way a module of custom ops does.
_OP_GRADIENT = "RulesKerasTestSquare"


def registers_an_op_gradient() -> keras.Model:
    """classifier(), after registering a gradient (as importing a custom op would)."""
    tf.RegisterGradient(_OP_GRADIENT)(lambda op, grad: 2.0 * op.inputs[0] * grad)
    return classifier()


def _variable_bytes(variables) -> int:
    return sum(int(np.prod(v.shape)) * v.dtype.size for v in variables)


def _files_bytes(folder: str) -> int:
    return sum(
        os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)
    )


class MemoryTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = testutil.make_tempdir()

    def test_keras_model_is_released_before_verify_loads_the_saved_model(self):
        real_load = tf.saved_model.load
        for modes in ("serve", "serve,eval,train"):
            with self.subTest(modes=modes):
                alive_at_load = []

                def load_and_record(*args, alive_at_load=alive_at_load, **kwargs):
                    gc.collect()  # what only a cycle keeps alive does not count
                    alive_at_load.append(sum(r() is not None for r in _watched))
                    return real_load(*args, **kwargs)

                with mock.patch.object(tf.saved_model, "load", load_and_record):
                    result = api.export_with_result(
                        api.ExportRequest(
                            builder=f"{_MODULE}:watched_classifier",
                            output_dir=os.path.join(self.tmp, modes),
                            modes=modes,
                        )
                    )
                self.assertIsNotNone(result.max_abs_diff)  # it did verify
                self.assertGreater(len(_watched), 2 + 6)  # model, optimizer, handles
                self.assertEqual(
                    alive_at_load,
                    [0],
                    "the Keras model, its optimizer or their variables were still alive"
                    " when --verify loaded the SavedModel",
                )

    def test_nothing_verify_loaded_outlives_the_export(self):
        real_load = tf.saved_model.load
        handles = []

        def load_and_watch(*args, **kwargs):
            loaded = real_load(*args, **kwargs)
            handles.extend(weakref.ref(v.handle) for v in loaded.model_variables)
            return loaded

        with mock.patch.object(tf.saved_model, "load", load_and_watch):
            api.export_saved_model(
                api.ExportRequest(
                    builder=f"{_MODULE}:classifier",
                    output_dir=self.tmp,
                    modes="serve,eval,train",
                )
            )
        gc.collect()
        self.assertNotEmpty(handles)
        self.assertEqual(
            [r for r in handles if r() is not None],
            [],
            "variables of the SavedModel that --verify loaded are still alive",
        )

    def test_gradients_registered_by_op_name_stay(self):
        api.export_saved_model(
            api.ExportRequest(
                builder=f"{_MODULE}:registers_an_op_gradient",
                output_dir=self.tmp,
                modes="serve,eval,train",
            )
        )
        with tf.Graph().as_default() as graph:
            x = tf.constant(3.0)
            with graph.gradient_override_map({"Identity": _OP_GRADIENT}):
                y = tf.identity(x)
            (grad,) = tf.gradients(y, x)
            with tf.compat.v1.Session(graph=graph) as session:
                self.assertEqual(session.run(grad), 6.0)

    def test_the_json_check_creates_no_optimizer_variables(self):
        # A serve-only export builds no optimizer: neither does re-creating the model
        # from its JSON to check that load_keras_model can (Keras's deserialization
        # creates Adam's slots, two more copies of the weights).
        with mock.patch.object(
            keras.optimizers.Adam,
            "build",
            autospec=True,
            side_effect=keras.optimizers.Adam.build,
        ) as builds:
            result = api.export_with_result(
                api.ExportRequest(
                    # Lambdas using their module: code from outside Keras.
                    builder="tests.export.testmodels:lambdas_using_their_module",
                    output_dir=self.tmp,
                    modes="serve",
                )
            )
        self.assertIsNotNone(result.max_abs_diff)
        self.assertEqual(builds.call_count, 0)

    def test_load_keras_model_creates_optimizer_variables_when_needed(self):
        x = np.random.default_rng(0).normal(size=(8, 64)).astype("float32")
        y = np.arange(8) % 10
        for modes, restored in (("serve", False), ("serve,eval,train", True)):
            with self.subTest(modes=modes):
                path = api.export_saved_model(
                    api.ExportRequest(
                        builder=f"{_MODULE}:classifier",
                        output_dir=os.path.join(self.tmp, modes),
                        modes=modes,
                    )
                )
                model = load_keras_model(path)
                # Only a train export holds the optimizer's state to restore.
                self.assertEqual(model.optimizer.built, restored)
                history = model.fit(x, y, epochs=2, verbose=0).history
                self.assertLess(history["loss"][1], history["loss"][0])
                self.assertTrue(model.optimizer.built)

    def test_label_probes_copy_no_weights_of_a_model_trained_by_keras(self):
        # Choosing the labels runs test_step and forward passes, which change only
        # non-trainable state (seed generators): a copy of the weights to put back
        # would be a second model in memory.
        copied = []
        real = label_probes.put_back_variables

        def recording(variables):
            copied.extend(v for v in variables if v.trainable)
            return real(variables)

        with mock.patch.object(label_probes, "put_back_variables", recording):
            api.export_saved_model(
                api.ExportRequest(
                    builder=f"{_MODULE}:classifier",
                    output_dir=self.tmp,
                    modes="serve,eval,train",
                )
            )
        self.assertEqual([v.name for v in copied], [])

    def test_each_variable_is_stored_once(self):
        model = classifier()
        model_bytes = _variable_bytes(interface.tf_variables(model.variables))
        model.optimizer.build(model.trainable_variables)
        optimizer_bytes = _variable_bytes(
            interface.tf_variables(model.optimizer.variables)
        )
        self.assertGreater(model_bytes, 1_000_000)
        for modes, stored_bytes in (
            ("serve", model_bytes),
            ("serve,eval,train", model_bytes + optimizer_bytes),
        ):
            with self.subTest(modes=modes):
                path = api.export_saved_model(
                    api.ExportRequest(
                        builder=f"{_MODULE}:classifier",
                        output_dir=os.path.join(self.tmp, modes),
                        modes=modes,
                    )
                )
                on_disk = _files_bytes(os.path.join(path, "variables"))
                self.assertGreaterEqual(on_disk, stored_bytes)
                self.assertLessEqual(
                    on_disk,
                    _STORE_OVERHEAD * stored_bytes,
                    f"variables/ holds {on_disk} bytes for {stored_bytes} bytes of"
                    " variables: something is stored twice",
                )


if __name__ == "__main__":
    absltest.main()
