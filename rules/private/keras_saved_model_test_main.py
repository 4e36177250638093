"""The program of keras_saved_model_test: checks one export in a fresh process.

keras_saved_model writes `<name>.export.json` next to the `<name>/` folder, saying what
the export was made from; this test rebuilds the Keras model from it (through the
export's own deps) and compares it with the SavedModel, as a user would. The model file
and weights come through the test's `<name>.model_files` target: the export's runfiles
leave them out.

One copy of the model is in memory at a time (the rebuilt or re-loaded Keras model, or
the export loaded through the object API; TF Serving's C++ loader runs in a process of
its own, cc/saved_model_checker): what a test compares is computed from each copy in
turn, as arrays, and the copy dropped before the next one loads, so that a model of a
few GB can be tested where it can be exported.
"""

import dataclasses
import gc
import glob
import json
import os
import subprocess
import tempfile

import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import absltest
from tensorflow.core.protobuf import saved_model_pb2

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
from rules.private import artifact_files, export_info, tensors_file

_SAVED_MODEL = flags.DEFINE_string(
    "saved_model",
    None,
    "The keras_saved_model folder, by hand; keras_saved_model_test gives it with"
    " --artifact_files.",
)
_GOLDEN = flags.DEFINE_string(
    "golden", None, "An .npz with input:<name> and output:<name> arrays."
)
_EXPECT_SIGNATURE = flags.DEFINE_multi_string(
    "expect_signature", [], "A signature name that must exist."
)
_CHECKER = flags.DEFINE_string(
    "checker",
    None,
    "cc/saved_model_checker: runs SignatureDefs through TensorFlow's C++ loader.",
    required=True,
)
_TOLERANCE = flags.DEFINE_float(
    "tolerance", 1e-5, "Largest absolute difference allowed."
)

_INPUT_SEED = export_info.INPUT_SEED
# The labels fed to eval and train along with those inputs.
_LABEL_SEED = _INPUT_SEED + 1
_BATCH = 3
_TRAIN_KEY = signatures.SIGNATURE_KEYS["train"]
# The SignatureDef TensorFlow adds to hold the init op (no client calls it).
_INIT_OP_KEY = "__saved_model_init_op"
# Up to this many bytes of variables, the C++ checker loads its copy while the test
# process still holds the rebuilt Keras model (the two run side by side).
_OVERLAP_MAX_BYTES = 256 << 20


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclasses.dataclass(frozen=True)
class CppLoaderRun:
    """What cc/saved_model_checker, TensorFlow's C++ loader through its C API, gave:
    the SignatureDef keys it found and each request's outputs, and for train how many
    of the variables the run changed."""

    keys: frozenset[str]
    outputs: dict[str, dict[str, np.ndarray]]
    changed_variables: dict[str, tuple[int, int]]


class CppLoader:
    """Runs each (name, signature key, feeds) request through the C++ checker, as TF
    Serving runs a SignatureDef: loaded with tags {serve} by TensorFlow's C++ loader,
    fed and fetched by the tensor names the SignatureDef holds. The train key's
    requests each start from a freshly loaded copy. The checker runs in a process of
    its own, started here; result() waits for it."""

    def __init__(self, export_dir: str, requests: list[tuple[str, str, dict]]):
        self.export_dir = export_dir
        self.requests = requests
        self._folder = tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR"))
        folder = self._folder.name
        lines = []
        for name, key, feeds in requests:
            tensors_file.write(os.path.join(folder, name + ".feeds"), feeds)
            lines.append(f"{name} {key} {'train' if key == _TRAIN_KEY else 'run'}\n")
        with open(os.path.join(folder, "requests.txt"), "w", encoding="utf-8") as f:
            f.writelines(lines)
        self._process = subprocess.Popen(
            [os.path.abspath(_CHECKER.value), export_dir, folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self) -> CppLoaderRun:
        _, stderr = self._process.communicate()
        folder = self._folder.name
        try:
            if self._process.returncode != 0:
                raise AssertionError(
                    f"TensorFlow's C++ loader ({_CHECKER.value}) failed on"
                    f" {self.export_dir} (exit code {self._process.returncode}):\n"
                    f"{stderr[-4000:]}"
                )
            with open(os.path.join(folder, "signatures.txt"), encoding="utf-8") as f:
                keys = frozenset(f.read().split())
            outputs, changed = {}, {}
            for name, key, _ in self.requests:
                path = os.path.join(folder, name)
                outputs[name] = tensors_file.read(path + ".outputs")
                if key == _TRAIN_KEY:
                    with open(path + ".variables", encoding="utf-8") as f:
                        count, total = f.read().split()
                    changed[name] = (int(count), int(total))
            return CppLoaderRun(keys, outputs, changed)
        finally:
            self._folder.cleanup()


def serving_signature_defs(export_dir: str) -> dict:
    """The SignatureDefs of the MetaGraph tagged `serve`, but the init op's."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    (meta_graph,) = [
        m
        for m in saved_model.meta_graphs
        if tf.saved_model.SERVING in m.meta_info_def.tags
    ]
    return {
        key: signature
        for key, signature in meta_graph.signature_def.items()
        if key != _INIT_OP_KEY
    }


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
    outputs = model_interface.name_outputs(model_interface.call(loaded.model, packed))
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


def _export_folder() -> str:
    """The keras_saved_model folder to check (runfiles path)."""
    if _SAVED_MODEL.value:
        return _SAVED_MODEL.value
    exports = artifact_files.of("keras_saved_model")
    if len(exports) != 1:
        raise AssertionError(f"expected one keras_saved_model, given {exports}")
    return exports[0]["saved_model"]


class SavedModelTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        base_dir = _export_folder()
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
            cls._start_cpp_loader_early(model_interface)
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
        model_interface = interface.describe_model(model, self.source.input_specs)
        arrays = interface.random_for(
            model_interface.inputs, _INPUT_SEED, _BATCH, model_interface.samples
        )
        inputs = {
            d.name: a for d, a in zip(model_interface.inputs, arrays, strict=True)
        }
        keras_outputs = {
            name: np.asarray(value)
            for name, value in model_interface.name_outputs(
                model_interface.call(model, model_interface.pack_inputs(arrays))
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

    @classmethod
    def _sample_feeds(
        cls, key: str, signature, inputs, samples
    ) -> dict[str, np.ndarray]:
        """Seeded inputs for the SignatureDef `key`: the model's `inputs` from its
        `samples` (strings from its vocabularies), the others (labels) typed as the
        signature declares them and shaped as the manifest says a client sends them
        (a label's SignatureDef declares no rank: it takes more than one shape)."""
        declared = cls.manifest["signatures"][key]["inputs"]
        arrays = interface.random_for(inputs, _INPUT_SEED, _BATCH, samples)
        feeds = {d.name: a for d, a in zip(inputs, arrays, strict=True)}
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

    # The requests sent to the C++ loader, and the loader while it runs (None before
    # it starts), then what it gave: one checker process for the three tests below.
    _cpp_requests: dict | None = None
    _cpp_running: CppLoader | None = None
    _cpp_run: CppLoaderRun | None = None

    @classmethod
    def _overlap_cpp_loader(cls) -> bool:
        """Whether the checker may hold its copy of the model while this process holds
        the rebuilt Keras model: for small models, so that it runs beside the Keras
        reference computations; a large one is checked after that model is dropped."""
        variables = os.path.join(cls.export_dir, "variables")
        size = sum(
            entry.stat().st_size for entry in os.scandir(variables) if entry.is_file()
        )
        return size <= _OVERLAP_MAX_BYTES

    @classmethod
    def _start_cpp_loader_early(cls, model_interface) -> None:
        """Starts the checker, if not yet started, while this process still has work
        to do with the rebuilt model (a subclass calls this as soon as it has one)."""
        started = cls._cpp_running is not None or cls._cpp_run is not None
        if not started and cls._overlap_cpp_loader():
            cls._start_cpp_loader(model_interface.inputs, model_interface.samples)

    @classmethod
    def _start_cpp_loader(cls, inputs, samples) -> None:
        """Starts the checker on every SignatureDef with the seeded inputs and labels,
        and each warmup record's inputs on its signature."""
        defs = serving_signature_defs(cls.export_dir)
        # eval_result takes a summed metric state, fed below with what eval_state
        # gave (_cpp_loader), not with seeded values.
        requests = {
            f"signature_{index}": (
                key,
                cls._sample_feeds(key, signature, inputs, samples),
            )
            for index, (key, signature) in enumerate(sorted(defs.items()))
            if key != evaluation.RESULT_KEY
        }
        for index, request in enumerate(serving.read_warmup_requests(cls.export_dir)):
            feeds = {
                name: tf.make_ndarray(proto) for name, proto in request.inputs.items()
            }
            requests[f"warmup_{index}"] = (request.model_spec.signature_name, feeds)
        cls._cpp_requests = requests
        cls._cpp_running = CppLoader(
            cls.export_dir,
            [(name, key, feeds) for name, (key, feeds) in requests.items()],
        )

    @classmethod
    def _cpp_loader(cls) -> tuple[dict, CppLoaderRun]:
        """The requests and what TensorFlow's C++ loader gave for them."""
        if cls._cpp_run is None:
            facts = cls._keras()
            if cls._cpp_running is None:
                cls._start_cpp_loader(facts.inputs, facts.samples)
            running, cls._cpp_running = cls._cpp_running, None
            run = running.result()
            if evaluation.RESULT_KEY in run.keys:
                (state_request,) = [
                    name
                    for name, (key, _) in cls._cpp_requests.items()
                    if key == evaluation.STATE_KEY
                ]
                state = run.outputs[state_request]
                name = f"signature_{evaluation.RESULT_KEY}"
                result = CppLoader(
                    cls.export_dir, [(name, evaluation.RESULT_KEY, state)]
                ).result()
                cls._cpp_requests[name] = (evaluation.RESULT_KEY, state)
                run = dataclasses.replace(
                    run, outputs={**run.outputs, name: result.outputs[name]}
                )
            cls._cpp_run = run
        return cls._cpp_requests, cls._cpp_run

    def test_every_signature_through_tf_servings_loader(self):
        """Each SignatureDef but train, run by its tensor names through TensorFlow's C++
        loader as TF Serving runs it, gives what the object API gives on the same
        inputs; serving_default also gives the Keras model's outputs."""
        facts = self._keras()
        requests, run = self._cpp_loader()
        loaded = _load_object_api(self.export_dir)
        self.assertEqual(run.keys, set(loaded.signatures))
        checked = set()
        for name, (key, feeds) in sorted(requests.items()):
            if key == _TRAIN_KEY or not name.startswith("signature_"):
                continue
            checked.add(key)
            with self.subTest(signature=key):
                want = loaded.signatures[key](
                    **{k: tf.constant(value) for k, value in feeds.items()}
                )
                _assert_outputs_equal(
                    {k: value.numpy() for k, value in want.items()},
                    run.outputs[name],
                    _TOLERANCE.value,
                    f"'{key}' through TF Serving's C++ loader against the object API",
                )
                if key == signatures.SERVING_KEY:
                    for k, value in feeds.items():
                        np.testing.assert_array_equal(
                            value, facts.reference.inputs[k], err_msg=k
                        )
                    _assert_outputs_equal(
                        facts.reference.outputs,
                        run.outputs[name],
                        _TOLERANCE.value,
                        f"'{key}' through TF Serving's C++ loader against Keras",
                    )
        self.assertEqual(checked, set(run.keys) - {_TRAIN_KEY})

    def test_train_through_tf_servings_loader(self):
        """train, run through TensorFlow's C++ loader as TF Serving runs it, changes
        variables and returns the logs the object API's train returns from the same
        state."""
        requests, run = self._cpp_loader()
        if _TRAIN_KEY not in run.keys:
            return
        ((name, (_, feeds)),) = [
            (name, request)
            for name, request in requests.items()
            if request[0] == _TRAIN_KEY and name.startswith("signature_")
        ]
        changed, total = run.changed_variables[name]
        self.assertGreater(
            changed,
            0,
            f"train through TF Serving's C++ loader changed none of {total} variables",
        )
        # The object API's train from the exported values, in a copy of its own.
        loaded = _load_object_api(self.export_dir)
        want = loaded.signatures[_TRAIN_KEY](
            **{k: tf.constant(value) for k, value in feeds.items()}
        )
        _assert_outputs_equal(
            {k: value.numpy() for k, value in want.items()},
            run.outputs[name],
            _TOLERANCE.value,
            "train's logs through TF Serving's C++ loader against the object API",
        )

    def test_warmup_requests_replay_through_tf_servings_loader(self):
        """The warmup file holds `warmup_requests` PredictRequests on serving_default
        of the sample inputs verify uses, and each gives the Keras model's outputs
        through TensorFlow's C++ loader, as TF Serving replays them."""
        requests = serving.read_warmup_requests(self.export_dir)
        self.assertLen(requests, self.info["warmup_requests"])
        if not requests:
            return
        expected = self._keras().warmup
        self.assertLen(expected, len(requests))
        sent, run = self._cpp_loader()
        for index, (want, keras_outputs) in enumerate(expected):
            what = f"warmup request {index}"
            key, feeds = sent[f"warmup_{index}"]
            self.assertEqual(key, signatures.SERVING_KEY, what)
            self.assertEqual(sorted(feeds), sorted(want), what)
            # `want` repeats the writer's own serving.warmup_inputs; the independent
            # checks are the outputs against Keras below, and test_serving.py, which
            # states request i's inputs (verify's with seed + i) itself.
            for name, value in want.items():
                np.testing.assert_array_equal(feeds[name], value, err_msg=what)
            _assert_outputs_equal(
                keras_outputs, run.outputs[f"warmup_{index}"], _TOLERANCE.value, what
            )


if __name__ == "__main__":
    absltest.main()
