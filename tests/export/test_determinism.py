"""Two fresh exporter processes must write byte-identical trees.

The two runs differ in everything that must not matter: absolute vs relative output path,
working directory and PYTHONHASHSEED. A third run with another --seed must differ, so the
comparison is not vacuous.
"""

import base64
import importlib
import json
import marshal
import os
import sys
import types

import tensorflow as tf
from absl.testing import absltest
from tensorflow.core.protobuf import fingerprint_pb2

from export.lib import options, sources
from tests.export import testmodels, testutil

BUILDER = f"--builder={testmodels.MODULE}:compiled_two_outputs"
# The warmup requests are seeded sample inputs: the same bytes in every process too.
WARMUP = "--warmup_requests=3"


class DeterminismTest(absltest.TestCase):
    def test_fresh_processes_write_identical_bytes(self):
        tmp = self.create_tempdir().full_path
        workdir = os.path.join(tmp, "elsewhere")
        os.makedirs(workdir)
        runs = {
            "a": testutil.start_exporter(
                [
                    BUILDER,
                    WARMUP,
                    f"--output_dir={tmp}/a",
                    f"--manifest_out={tmp}/a.json",
                ],
                cwd=tmp,
                env={"PYTHONHASHSEED": "0"},
            ),
            "b": testutil.start_exporter(
                [BUILDER, WARMUP, "--output_dir=../b/nested", "--manifest_out=b.json"],
                cwd=workdir,
                env={"PYTHONHASHSEED": "12345"},
            ),
            "other_seed": testutil.start_exporter(
                [BUILDER, WARMUP, f"--output_dir={tmp}/c", "--seed=1"], cwd=tmp
            ),
        }
        for name, proc in runs.items():
            _, stderr = proc.communicate(timeout=testutil.TIMEOUT_S)
            self.assertEqual(proc.returncode, 0, f"{name}: {stderr[-4000:]}")

        a = testutil.tree_bytes(os.path.join(tmp, "a", "1"))
        b = testutil.tree_bytes(os.path.join(tmp, "b", "nested", "1"))
        self.assertEqual(
            sorted(a),
            sorted(
                [
                    "assets.extra/tf_serving_warmup_requests",
                    "assets/saved_model.json",
                    "fingerprint.pb",
                    "saved_model.pb",
                    "variables/variables.data-00000-of-00001",
                    "variables/variables.index",
                ]
            ),
        )
        self.assertEqual(sorted(a), sorted(b))
        for rel in sorted(a):
            self.assertTrue(a[rel] == b[rel], f"{rel} differs between the two exports")
        with (
            open(os.path.join(tmp, "a.json"), "rb") as fa,
            open(os.path.join(workdir, "b.json"), "rb") as fb,
        ):
            self.assertEqual(fa.read(), fb.read())

        # No path may leak into the files.
        for rel, data in a.items():
            self.assertNotIn(tmp.encode(), data, rel)

        fingerprint = fingerprint_pb2.FingerprintDef()
        fingerprint.ParseFromString(a["fingerprint.pb"])
        self.assertEqual(fingerprint.uuid, "")
        self.assertNotEqual(fingerprint.saved_model_checksum, 0)
        read = tf.saved_model.experimental.read_fingerprint(os.path.join(tmp, "a", "1"))
        self.assertEqual(read.saved_model_checksum, fingerprint.saved_model_checksum)

        c = testutil.tree_bytes(os.path.join(tmp, "c", "1"))
        data = "variables/variables.data-00000-of-00001"
        self.assertNotEqual(a[data], c[data], "--seed did not change the weights")
        warmup = "assets.extra/tf_serving_warmup_requests"
        self.assertNotEqual(a[warmup], c[warmup], "--seed did not change the requests")


# A builder module with lambdas: one holding nested code (an inner lambda), one using
# the module's `ops`, one in a custom layer's config (Keras's other layout for lambdas).
_LAMBDA_MODULE = """
import keras
from keras import layers, ops


class Transform(layers.Layer):
    def __init__(self, transform, **kwargs):
        super().__init__(**kwargs)
        self.transform = transform

    def call(self, inputs):
        return self.transform(inputs)

    def get_config(self):
        return {**super().get_config(), "transform": self.transform}

    @classmethod
    def from_config(cls, config):
        transform = keras.saving.deserialize_keras_object(config.pop("transform"))
        return cls(transform, **config)


def build():
    return keras.Sequential(
        [
            keras.Input((4,), name="pixels"),
            layers.Lambda(lambda t: t / 255.0 - 0.5, name="rescale"),
            layers.Lambda(lambda t: (lambda u: u * 2.0)(t), name="double"),
            layers.Lambda(lambda t: ops.sign(t) * ops.log1p(ops.abs(t)), name="log"),
            Transform(lambda t: t + 1.0, name="shift"),
        ],
        name="lambdas",
    )
"""
_LAMBDA_MODULE_NAME = "portable_lambda_builder"


class LambdaCodeTest(absltest.TestCase):
    """Keras marshals a lambda's code object, which names its source file."""

    def _model_json(self, folder: str) -> str:
        with open(os.path.join(folder, _LAMBDA_MODULE_NAME + ".py"), "w") as f:
            f.write(_LAMBDA_MODULE)
        sys.modules.pop(_LAMBDA_MODULE_NAME, None)
        sys.path.insert(0, folder)
        importlib.invalidate_caches()
        try:
            request = options.ExportRequest(
                output_dir=os.path.join(folder, "out"),
                builder=f"{_LAMBDA_MODULE_NAME}:build",
                custom_objects=[f"Transform={_LAMBDA_MODULE_NAME}:Transform"],
            )
            return sources.load_model(options.resolve(request).source).model_json
        finally:
            sys.path.remove(folder)
            sys.modules.pop(_LAMBDA_MODULE_NAME, None)

    def test_model_json_is_the_same_wherever_the_builder_module_is(self):
        tmp = self.create_tempdir().full_path
        here, there = os.path.join(tmp, "checkout_a"), os.path.join(tmp, "elsewhere_b")
        os.makedirs(here)
        os.makedirs(there)
        a, b = self._model_json(here), self._model_json(there)
        self.assertNotIn(tmp, a)
        self.assertEqual(a, b)

        def filenames(code):
            yield code.co_filename
            for const in code.co_consts:
                if isinstance(const, types.CodeType):
                    yield from filenames(const)

        layers = {
            layer["config"]["name"]: layer
            for layer in json.loads(a)["config"]["layers"]
        }
        functions = {
            name: layers[name]["config"]["function"]
            for name in ("rescale", "double", "log")
        }
        # The module is recorded only where the code needs its globals.
        self.assertEqual(functions["log"]["module"], _LAMBDA_MODULE_NAME)
        self.assertNotIn("module", functions["rescale"])
        codes = [f["config"]["code"] for f in functions.values()]
        codes.append(layers["shift"]["config"]["transform"]["config"]["value"][0])
        for code in codes:
            code = marshal.loads(base64.decodebytes(code.encode("ascii")))
            self.assertEqual(set(filenames(code)), {_LAMBDA_MODULE_NAME + ".py"})


if __name__ == "__main__":
    absltest.main()
