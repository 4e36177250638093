"""The program of keras_saved_model_test: checks one export in a fresh process.

keras_saved_model writes `<name>.export.json` next to the `<name>/` folder, saying what
the export was made from; this test rebuilds the Keras model from it (through the
export's own deps) and compares it with the SavedModel, as a user would. The model file
and weights come through the test's `<name>.model_files` target: the export's runfiles
leave them out.

One copy of the model is in memory at a time (the rebuilt or re-loaded Keras model, the
export loaded through the object API, or through TF Serving's loader): what a test
compares is computed from each copy in turn, as arrays, and the copy dropped before the
next one loads, so that a model of a few GB can be tested where it can be exported.
"""

import dataclasses
import gc
import glob
import hashlib
import json
import os

import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import absltest

from export.lib import (
    evaluation,
    interface,
    options,
    serving,
    signatures,
    sources,
    verify,
)
from export.lib.loader import load_keras_model
from rules.private import export_info

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

_INPUT_SEED = export_info.INPUT_SEED
# The labels fed to eval and train along with those inputs.
_LABEL_SEED = _INPUT_SEED + 1
_BATCH = 3
_TRAIN_KEY = signatures.SIGNATURE_KEYS["train"]
# TFServingSession reads variables in groups of about this size.
_READ_GROUP_BYTES = 64 << 20
# The SignatureDef TensorFlow adds to hold the init op (no client calls it).
_INIT_OP_KEY = "__saved_model_init_op"


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
            # Every variable the graph holds, read by its handle, in groups of at
            # most _READ_GROUP_BYTES: one run per variable re-prunes the whole graph
            # each time (minutes for MobileNetV2's 800), one run for all holds a
            # second copy of a big model.
            self._read_groups = [[]]
            group_bytes = 0
            for op in self.graph.get_operations():
                if op.type != "VarHandleOp":
                    continue
                dtype = tf.as_dtype(op.get_attr("dtype"))
                shape = tf.TensorShape(op.get_attr("shape"))
                size = shape.num_elements() if shape.is_fully_defined() else None
                nbytes = _READ_GROUP_BYTES if size is None else size * dtype.size
                if self._read_groups[-1] and group_bytes + nbytes > _READ_GROUP_BYTES:
                    self._read_groups.append([])
                    group_bytes = 0
                self._read_groups[-1].append(
                    tf.raw_ops.ReadVariableOp(resource=op.outputs[0], dtype=dtype)
                )
                group_bytes += nbytes
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

    def variable_digests(self) -> list[str]:
        """A digest of each variable's value, read a group at a time."""
        return [
            hashlib.sha256(np.ascontiguousarray(value)).hexdigest()
            for group in self._read_groups
            if group
            for value in self.session.run(group)
        ]


@dataclasses.dataclass(frozen=True)
class KerasFacts:
    """What the tests compare with the rebuilt Keras model, as arrays: its sample
    inputs, its outputs on them, and on the inputs of the warmup requests."""

    inputs: tuple[interface.TensorDesc, ...]
    samples: interface.SampleValues
    reference: verify.KerasReference
    warmup: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]


def _keras_outputs(loaded: sources.LoadedModel, feeds: dict) -> dict[str, np.ndarray]:
    model_interface = loaded.interface
    packed = model_interface.pack_inputs(
        [tf.constant(feeds[d.name]) for d in model_interface.inputs]
    )
    outputs = model_interface.name_outputs(loaded.model(packed, training=False))
    return {name: np.asarray(value) for name, value in outputs.items()}


def _load_object_api(export_dir: str, variables: bool = True):
    """tf.saved_model.load, with or without restoring the variables' values."""
    options = tf.saved_model.LoadOptions(experimental_skip_checkpoint=not variables)
    return tf.saved_model.load(export_dir, options=options)


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
        cls.info = export_info.read(base_dir)
        cls.manifest = _read_json(base_dir + ".signatures.json")
        versions = glob.glob(os.path.join(base_dir, "*", "saved_model.pb*"))
        if len(versions) != 1:
            raise AssertionError(
                f"expected one version folder in {base_dir}: {versions}"
            )
        cls.export_dir = os.path.dirname(versions[0])
        cls.source = cls._model_source()

    def setUp(self):
        super().setUp()
        # What a test loaded is gone before the next test loads its own: cleanups run
        # last first, so TensorFlow forgets the loaded gradients, then collects.
        self.addCleanup(gc.collect)
        self.enter_context(signatures.custom_gradients_scoped())

    # What the tests compare with Keras, from the model rebuilt from what the export
    # was made from: computed once, when a test first needs it; the model is dropped.
    _facts: KerasFacts | None = None

    @classmethod
    def _keras(cls) -> KerasFacts:
        if cls._facts is None:
            rebuilt = sources.load_model(cls.source)
            model_interface = rebuilt.interface
            warmup = serving.warmup_inputs(
                model_interface,
                cls.info["seed"],
                len(serving.read_warmup_requests(cls.export_dir)),
            )
            cls._facts = KerasFacts(
                inputs=model_interface.inputs,
                samples=model_interface.samples,
                reference=verify.keras_reference(
                    rebuilt.model, model_interface, seed=_INPUT_SEED, batch=_BATCH
                ),
                warmup=[(feeds, _keras_outputs(rebuilt, feeds)) for feeds in warmup],
            )
            del rebuilt, model_interface
            gc.collect()
        return cls._facts

    @classmethod
    def _model_source(cls) -> options.ModelSource:
        return export_info.model_source(cls.info)

    def test_expected_signatures_exist(self):
        expected = {signatures.SIGNATURE_KEYS[mode] for mode in self.info["modes"]}
        expected |= set(self.manifest["signatures"]) | set(_EXPECT_SIGNATURE.value)
        expected.add(signatures.SERVING_KEY)
        # The signatures, not the variables' values: the other tests restore those.
        loaded = _load_object_api(self.export_dir, variables=False)
        self.assertContainsSubset(expected, set(loaded.signatures))

    def test_serving_outputs_equal_the_keras_model(self):
        if _GOLDEN.value:
            self._check_golden(_GOLDEN.value)
            return
        result = verify.compare(
            self.export_dir,
            self._keras().reference,
            atol=_TOLERANCE.value,
            rtol=0.0,
        )
        self.assertNotEmpty(result.outputs)

    def _check_golden(self, path: str):
        golden = np.load(path)
        loaded = _load_object_api(self.export_dir)
        serve = loaded.signatures[signatures.SERVING_KEY]
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
            model_interface.inputs, _INPUT_SEED, _BATCH, model_interface.samples
        )
        inputs = {
            d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)
        }
        keras_outputs = {
            name: np.asarray(value)
            for name, value in model_interface.name_outputs(
                model(model_interface.pack_inputs(arrays), training=False)
            ).items()
        }
        del model, model_interface
        gc.collect()
        loaded = _load_object_api(self.export_dir)
        served = loaded.signatures[signatures.SERVING_KEY](
            **{name: tf.constant(value) for name, value in inputs.items()}
        )
        _assert_outputs_equal(
            keras_outputs,
            {name: value.numpy() for name, value in served.items()},
            _TOLERANCE.value,
            "load_keras_model's model against the SavedModel",
        )

    def _sample_feeds(self, key: str, signature) -> dict[str, np.ndarray]:
        """Seeded inputs for the SignatureDef `key`: the model's inputs from its sample
        values (strings from its vocabularies), the others (labels) typed as the
        signature declares them and shaped as the manifest says a client sends them
        (a label's SignatureDef declares no rank: it takes more than one shape)."""
        declared = self.manifest["signatures"][key]["inputs"]
        facts = self._keras()
        samples = facts.samples
        arrays = interface.random_for(facts.inputs, _INPUT_SEED, _BATCH, samples)
        feeds = {d.name: a for d, a in zip(facts.inputs, arrays, strict=True)}
        labels = [
            interface.TensorDesc(
                name,
                tuple(declared[name]["shape"]),
                tf.as_dtype(info.dtype).name,
            )
            for name, info in sorted(signature.inputs.items())
            if name not in feeds
        ]
        arrays = interface.random_for(labels, _LABEL_SEED, _BATCH, samples)
        feeds.update({d.name: a for d, a in zip(labels, arrays, strict=True)})
        return {name: feeds[name] for name in signature.inputs}

    def test_every_signature_through_tf_servings_loader(self):
        """Each SignatureDef but train, run by its tensor names as TF Serving runs it,
        gives what the object API gives on the same inputs; serving_default also gives
        the Keras model's outputs."""
        facts = self._keras()
        session = TFServingSession(self.export_dir)
        keys = sorted(set(session.signatures) - {_TRAIN_KEY})
        # eval_result takes a summed metric state: the state eval_state gives here.
        fed = [key for key in keys if key != evaluation.RESULT_KEY]
        feeds = {key: self._sample_feeds(key, session.signatures[key]) for key in fed}
        served = {key: session.run(key, feeds[key]) for key in fed}
        if evaluation.RESULT_KEY in keys:
            feeds[evaluation.RESULT_KEY] = served[evaluation.STATE_KEY]
            served[evaluation.RESULT_KEY] = session.run(
                evaluation.RESULT_KEY, feeds[evaluation.RESULT_KEY]
            )
        all_keys = set(session.signatures)
        session.close()
        del session
        gc.collect()
        loaded = _load_object_api(self.export_dir)
        self.assertEqual(all_keys, set(loaded.signatures))
        for key in keys:
            with self.subTest(signature=key):
                want = loaded.signatures[key](
                    **{name: tf.constant(value) for name, value in feeds[key].items()}
                )
                _assert_outputs_equal(
                    {name: value.numpy() for name, value in want.items()},
                    served[key],
                    _TOLERANCE.value,
                    f"'{key}' through TF Serving's loader against the object API",
                )
                if key == signatures.SERVING_KEY:
                    for name, value in feeds[key].items():
                        np.testing.assert_array_equal(
                            value, facts.reference.inputs[name], err_msg=name
                        )
                    _assert_outputs_equal(
                        facts.reference.outputs,
                        served[key],
                        _TOLERANCE.value,
                        f"'{key}' through TF Serving's loader against Keras",
                    )

    def test_train_through_tf_servings_loader(self):
        """train, run as TF Serving runs it, changes variables and returns the logs the
        object API's train returns from the same state."""
        session = TFServingSession(self.export_dir)
        if _TRAIN_KEY not in session.signatures:
            session.close()
            return
        feeds = self._sample_feeds(_TRAIN_KEY, session.signatures[_TRAIN_KEY])
        before = session.variable_digests()
        served = session.run(_TRAIN_KEY, feeds)
        after = session.variable_digests()
        session.close()
        del session
        gc.collect()
        self.assertNotEqual(
            before, after, "train through TF Serving's loader changed no variable"
        )
        # The object API's train from the exported values, in a copy of its own.
        loaded = _load_object_api(self.export_dir)
        want = loaded.signatures[_TRAIN_KEY](
            **{name: tf.constant(value) for name, value in feeds.items()}
        )
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
        expected = self._keras().warmup
        self.assertLen(expected, len(requests))
        session = TFServingSession(self.export_dir)
        self.addCleanup(session.close)
        for index, (request, (want, keras_outputs)) in enumerate(
            zip(requests, expected, strict=True)
        ):
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
                keras_outputs,
                session.run(signatures.SERVING_KEY, feeds),
                _TOLERANCE.value,
                what,
            )


if __name__ == "__main__":
    absltest.main()
