"""The program of keras_saved_model_test: checks one export in a fresh process.

keras_saved_model writes `<name>.export.json` next to the `<name>/` folder, saying what
the export was made from; this test rebuilds the Keras model from it (through the
export's own deps) and compares it with the SavedModel, as a user would. The model file
and weights come through the test's `<name>.model_files` target: the export's runfiles
leave them out.
"""

import glob
import json
import os

import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import absltest

from export.lib import interface, options, settings, signatures, sources, verify
from export.lib.loader import load_keras_model

_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "The keras_saved_model folder (runfiles path).", required=True
)
_GOLDEN = flags.DEFINE_string(
    "golden", None, "An .npz with input:<name> and output:<name> arrays."
)
_EXPECT_SIGNATURE = flags.DEFINE_multi_string(
    "expect_signature", [], "A signature name that must exist."
)
_TOLERANCE = flags.DEFINE_float(
    "tolerance", 1e-5, "Largest absolute difference allowed."
)

# The keys of `<name>.export.json`, written (and documented) by keras_saved_model.bzl's
# _export_info: the target's label and every setting a user sets, files as runfiles
# paths.
_EXPORT_INFO_KEYS = {"label"} | {s.name for s in settings.SETTINGS if s.is_attribute}

# Inputs that differ from the exporter's own verification inputs (seed 0).
_INPUT_SEED = 20261123


def _runfile(path: str) -> str:
    return os.path.normpath(
        os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"], path)
    )


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class SavedModelTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        base_dir = _SAVED_MODEL.value
        cls.info = _read_json(base_dir + ".export.json")
        if set(cls.info) != _EXPORT_INFO_KEYS:
            raise AssertionError(
                f"{base_dir}.export.json has the keys {sorted(cls.info)}, this test reads"
                f" {sorted(_EXPORT_INFO_KEYS)}: update both keras_saved_model.bzl and"
                " keras_saved_model_test_main.py"
            )
        cls.manifest = _read_json(base_dir + ".signatures.json")
        versions = glob.glob(os.path.join(base_dir, "*", "saved_model.pb*"))
        if len(versions) != 1:
            raise AssertionError(
                f"expected one version folder in {base_dir}: {versions}"
            )
        cls.export_dir = os.path.dirname(versions[0])
        cls.loaded = tf.saved_model.load(cls.export_dir)
        cls.source = cls._model_source()

    @classmethod
    def _model_source(cls) -> options.ModelSource:
        info = cls.info
        specs, _ = options.parse_custom_objects(
            [f"{name}={ref}" for name, ref in info["custom_objects"].items()]
        )
        return options.ModelSource(
            builder=info["builder"],
            src=info["src"] and _runfile(info["src"]),
            weights=info["weights"] and _runfile(info["weights"]),
            custom_objects=specs,
            allow_unsafe_deserialization=info["allow_unsafe_deserialization"],
            seed=info["seed"],
        )

    def test_expected_signatures_exist(self):
        expected = {signatures.SIGNATURE_KEYS[mode] for mode in self.info["modes"]}
        expected |= set(self.manifest["signatures"]) | set(_EXPECT_SIGNATURE.value)
        expected.add(signatures.SERVING_KEY)
        self.assertContainsSubset(expected, set(self.loaded.signatures))

    def test_serving_outputs_equal_the_keras_model(self):
        if _GOLDEN.value:
            self._check_golden(_GOLDEN.value)
            return
        rebuilt = sources.load_model(self.source)
        result = verify.verify(
            self.export_dir,
            rebuilt.model,
            rebuilt.interface,
            seed=_INPUT_SEED,
            atol=_TOLERANCE.value,
            rtol=0.0,
            batch=3,
        )
        self.assertNotEmpty(result.outputs)

    def _check_golden(self, path: str):
        golden = np.load(path)
        serve = self.loaded.signatures[signatures.SERVING_KEY]
        inputs = {
            key.removeprefix("input:"): tf.constant(golden[key])
            for key in golden.files
            if key.startswith("input:")
        }
        got = serve(**inputs)
        outputs = [key for key in golden.files if key.startswith("output:")]
        self.assertNotEmpty(outputs, f"{path} holds no output:<name> arrays")
        for key in outputs:
            np.testing.assert_allclose(
                got[key.removeprefix("output:")].numpy(),
                golden[key],
                rtol=0,
                atol=_TOLERANCE.value,
                err_msg=f"output {key} differs from {path}",
            )

    def test_load_keras_model_round_trips(self):
        custom_objects = sources.load_custom_objects(self.source)
        model = load_keras_model(
            self.export_dir,
            custom_objects,
            safe_mode=not self.source.allow_unsafe_deserialization,
        )
        model_interface = interface.describe_model(model)
        arrays = interface.random_for(
            model_interface.inputs, _INPUT_SEED, 3, model_interface.samples
        )
        keras_outputs = model_interface.name_outputs(
            model(model_interface.pack_inputs(arrays), training=False)
        )
        serve = self.loaded.signatures[signatures.SERVING_KEY]
        served = serve(
            **{
                d.name: tf.constant(a)
                for d, a in zip(model_interface.inputs, arrays, strict=True)
            }
        )
        self.assertEqual(set(keras_outputs), set(served))
        for name, value in keras_outputs.items():
            want, got = np.asarray(value), served[name].numpy()
            if np.issubdtype(want.dtype, np.number):
                np.testing.assert_allclose(want, got, rtol=0, atol=_TOLERANCE.value)
            else:  # strings, e.g. a StringLookup(invert=True) output
                np.testing.assert_array_equal(want, got, err_msg=name)


if __name__ == "__main__":
    absltest.main()
