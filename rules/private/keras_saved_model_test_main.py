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

from export.lib import (
    interface,
    options,
    serving,
    settings,
    signatures,
    sources,
    verify,
)
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
# The labels fed to eval and train along with those inputs.
_LABEL_SEED = _INPUT_SEED + 1
_BATCH = 3
_TRAIN_KEY = signatures.SIGNATURE_KEYS["train"]
# The SignatureDef TensorFlow adds to hold the init op (no client calls it).
_INIT_OP_KEY = "__saved_model_init_op"


def _runfile(path: str) -> str:
    return os.path.normpath(
        os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"], path)
    )


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class TFServingSession:
    """An export loaded the way TF Serving loads it, in a graph and session of its own.

    TF Serving does not call tf.saved_model.load: its C++ SavedModelBundle loads the
    MetaGraph tagged `serve` into a session, runs its init op (which fills lookup
    tables) and runs a SignatureDef by the tensor names it holds.
    tf.compat.v1.saved_model.loader.load is that same C++ loader.
    """

    def __init__(self, export_dir: str):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(
                self.session, [tf.saved_model.SERVING], export_dir
            )
            # Every variable the graph holds, read by its handle.
            handles = [
                op for op in self.graph.get_operations() if op.type == "VarHandleOp"
            ]
            self._variable_reads = [
                tf.raw_ops.ReadVariableOp(
                    resource=op.outputs[0], dtype=op.get_attr("dtype")
                )
                for op in handles
            ]
        self._saver = meta_graph.saver_def
        self._checkpoint = os.path.join(export_dir, "variables", "variables")
        # Without the SignatureDef that only holds the init op (the loader ran it).
        self.signatures = {
            key: signature
            for key, signature in meta_graph.signature_def.items()
            if key != _INIT_OP_KEY
        }

    def close(self) -> None:
        self.session.close()

    def run(self, key: str, feeds: dict) -> dict[str, np.ndarray]:
        """Runs the SignatureDef `key` on `feeds` (by input name), as TF Serving does."""
        signature = self.signatures[key]
        if set(feeds) != set(signature.inputs):
            raise AssertionError(
                f"'{key}' takes {sorted(signature.inputs)}, the feeds are {sorted(feeds)}"
            )
        return self.session.run(
            {name: info.name for name, info in signature.outputs.items()},
            feed_dict={signature.inputs[k].name: value for k, value in feeds.items()},
        )

    def variable_values(self) -> list[np.ndarray]:
        return self.session.run(self._variable_reads)

    def restore_exported(self) -> None:
        """Restores every variable from the export's checkpoint, as the loader did.

        Signatures may change variables besides train: a layer that draws random
        numbers (a VAE's sampling) advances its seed state on every serving call.
        """
        self.session.run(
            self._saver.restore_op_name,
            feed_dict={self._saver.filename_tensor_name: self._checkpoint},
        )


def _restore_exported(loaded, export_dir: str) -> None:
    """Restores the variables of an export loaded with tf.saved_model.load from its
    checkpoint: what other signature calls (or an earlier train) changed."""
    lists = {
        name: getattr(loaded, name)
        for name in ("model_variables", "metric_variables", "optimizer_variables")
        if getattr(loaded, name, None)
    }
    prefix = os.path.join(export_dir, "variables", "variables")
    tf.train.Checkpoint(**lists).read(prefix).assert_existing_objects_matched()


def _assert_outputs_equal(want: dict, got: dict, atol: float, what: str) -> None:
    if set(want) != set(got):
        raise AssertionError(f"{what}: outputs {sorted(got)}, expected {sorted(want)}")
    for name in sorted(want):
        expected, actual = np.asarray(want[name]), np.asarray(got[name])
        if np.issubdtype(expected.dtype, np.number):
            np.testing.assert_allclose(
                actual, expected, rtol=0, atol=atol, err_msg=f"{what}: {name}"
            )
        else:  # strings, e.g. a StringLookup(invert=True) output
            np.testing.assert_array_equal(actual, expected, err_msg=f"{what}: {name}")


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

    # The Keras model rebuilt from what the export was made from: made once, when a
    # test first needs it.
    _rebuilt: sources.LoadedModel | None = None

    @classmethod
    def _keras(cls) -> sources.LoadedModel:
        if cls._rebuilt is None:
            cls._rebuilt = sources.load_model(cls.source)
        return cls._rebuilt

    # The export loaded as TF Serving loads it, once: train puts back the variables it
    # changes.
    _session: TFServingSession | None = None

    @classmethod
    def _serving_session(cls) -> TFServingSession:
        if cls._session is None:
            cls._session = TFServingSession(cls.export_dir)
        return cls._session

    @classmethod
    def tearDownClass(cls):
        if cls._session is not None:
            cls._session.close()
        super().tearDownClass()

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
        rebuilt = self._keras()
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

    def _sample_feeds(self, key: str, signature) -> dict[str, np.ndarray]:
        """Seeded inputs for the SignatureDef `key`: the model's inputs from its sample
        values (strings from its vocabularies), the others (labels) typed as the
        signature declares them and shaped as the manifest says a client sends them
        (a label's signature declares no rank: it takes more than one shape)."""
        model_interface = self._keras().interface
        samples = model_interface.samples
        arrays = interface.random_for(
            model_interface.inputs, _INPUT_SEED, _BATCH, samples
        )
        feeds = {d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)}
        described = self.manifest["signatures"][key]["inputs"]
        labels = [
            interface.TensorDesc(
                name,
                tuple(described[name]["shape"]),
                tf.as_dtype(info.dtype).name,
            )
            for name, info in sorted(signature.inputs.items())
            if name not in feeds
        ]
        arrays = interface.random_for(labels, _LABEL_SEED, _BATCH, samples)
        feeds.update({d.name: a for d, a in zip(labels, arrays, strict=True)})
        return {name: feeds[name] for name in signature.inputs}

    def _keras_outputs(self, feeds: dict) -> dict[str, np.ndarray]:
        rebuilt = self._keras()
        packed = rebuilt.interface.pack_inputs(
            [tf.constant(feeds[d.name]) for d in rebuilt.interface.inputs]
        )
        outputs = rebuilt.interface.name_outputs(rebuilt.model(packed, training=False))
        return {name: np.asarray(value) for name, value in outputs.items()}

    def test_every_signature_through_tf_servings_loader(self):
        """Each SignatureDef but train, run by its tensor names as TF Serving runs it,
        gives what the object API gives on the same inputs; serving_default also gives
        the Keras model's outputs."""
        session = self._serving_session()
        self.assertEqual(set(session.signatures), set(self.loaded.signatures))
        for key in sorted(set(session.signatures) - {_TRAIN_KEY}):
            with self.subTest(signature=key):
                feeds = self._sample_feeds(key, session.signatures[key])
                served = session.run(key, feeds)
                want = self.loaded.signatures[key](
                    **{name: tf.constant(value) for name, value in feeds.items()}
                )
                _assert_outputs_equal(
                    {name: value.numpy() for name, value in want.items()},
                    served,
                    _TOLERANCE.value,
                    f"'{key}' through TF Serving's loader against the object API",
                )
                if key == signatures.SERVING_KEY:
                    _assert_outputs_equal(
                        self._keras_outputs(feeds),
                        served,
                        _TOLERANCE.value,
                        f"'{key}' through TF Serving's loader against Keras",
                    )

    def test_train_through_tf_servings_loader(self):
        """train, run as TF Serving runs it, changes variables and returns the logs the
        object API's train returns from the same state."""
        if _TRAIN_KEY not in self.loaded.signatures:
            return
        session = self._serving_session()
        feeds = self._sample_feeds(_TRAIN_KEY, session.signatures[_TRAIN_KEY])
        session.restore_exported()
        before = session.variable_values()
        try:
            served = session.run(_TRAIN_KEY, feeds)
            after = session.variable_values()
        finally:
            session.restore_exported()  # for the other tests
        self.assertTrue(
            any(
                not np.array_equal(old, new)
                for old, new in zip(before, after, strict=True)
            ),
            "train through TF Serving's loader changed no variable",
        )
        # The object API's train from the exported values, which are put back after.
        _restore_exported(self.loaded, self.export_dir)
        try:
            want = self.loaded.signatures[_TRAIN_KEY](
                **{name: tf.constant(value) for name, value in feeds.items()}
            )
        finally:
            _restore_exported(self.loaded, self.export_dir)
        _assert_outputs_equal(
            {name: value.numpy() for name, value in want.items()},
            served,
            _TOLERANCE.value,
            "train's logs through TF Serving's loader against the object API",
        )

    def test_warmup_requests_replay_through_tf_servings_loader(self):
        """The warmup file holds `warmup_requests` PredictRequests on serving_default
        of the sample inputs verify uses, and each gives the Keras model's outputs
        through TF Serving's loader."""
        requests = serving.read_warmup_requests(self.export_dir)
        self.assertLen(requests, self.info["warmup_requests"])
        if not requests:
            return
        expected = serving.warmup_inputs(
            self._keras().interface, self.info["seed"], len(requests)
        )
        session = self._serving_session()
        for index, (request, want) in enumerate(zip(requests, expected, strict=True)):
            what = f"warmup request {index}"
            self.assertEqual(
                request.model_spec.signature_name, signatures.SERVING_KEY, what
            )
            feeds = {
                name: tf.make_ndarray(proto) for name, proto in request.inputs.items()
            }
            self.assertEqual(sorted(feeds), sorted(want), what)
            for name, value in want.items():
                np.testing.assert_array_equal(feeds[name], value, err_msg=what)
            _assert_outputs_equal(
                self._keras_outputs(feeds),
                session.run(signatures.SERVING_KEY, feeds),
                _TOLERANCE.value,
                what,
            )


if __name__ == "__main__":
    absltest.main()
