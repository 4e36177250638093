"""The program of keras_saved_model_test: checks one export in a fresh process.

keras_saved_model writes `<name>.export.json` next to the `<name>/` folder, saying what
the export was made from; this test rebuilds the Keras model from it (through the
export's own deps) and compares it with the SavedModel, as a user would. The model file
and weights come through the test's `<name>.model_files` target: the export's runfiles
leave them out.

For a large model, one copy of it is in memory at a time (the rebuilt or re-loaded
Keras model, or the export loaded through the object API; TF Serving's C++ loader runs
in a process of its own, cc/saved_model_checker): what a test compares is computed from
each copy in turn, as arrays, and the copy dropped before the next one loads, so that a
model of a few GB can be tested where it can be exported. A small model's copies are
shared instead, to save the test's time: the tests share one object API copy, and the
C++ checker loads its own while this process rebuilds the Keras model.
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
    sample_inputs,
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
# The request that has the C++ checker replay the export's warmup file itself.
_WARMUP_REPLAY = "tf_serving_warmup_requests"
# The SignatureDef TensorFlow adds to hold the init op (no client calls it).
_INIT_OP_KEY = "__saved_model_init_op"
# Up to this many bytes of variables, a model is small: the C++ checker loads its copy
# while the test process still holds the rebuilt Keras model (the two run side by side),
# and the tests share one copy loaded through the object API.
_SMALL_MAX_BYTES = 256 << 20


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclasses.dataclass(frozen=True)
class CppLoaderRun:
    """What cc/saved_model_checker, TensorFlow's C++ loader through its C API, gave:
    the SignatureDef keys it found and each request's outputs, for train how many of
    the variables the run changed, and for a warmup replay request NAME, each record's
    signature (the outputs of record i are NAME_<i>'s)."""

    keys: frozenset[str]
    outputs: dict[str, dict[str, np.ndarray]]
    changed_variables: dict[str, tuple[int, int]]
    warmup_signatures: dict[str, list[str]]


class CppLoader:
    """Runs each (name, signature key, feeds) request through the C++ checker, as TF
    Serving runs a SignatureDef: loaded with tags {serve} by TensorFlow's C++ loader,
    fed and fetched by the tensor names the SignatureDef holds. `feeds` is a dict of
    arrays, or the name of an earlier request whose outputs it is fed (eval_result fed
    what eval_state gave). A train request starts from the exported values. A request
    (name, _WARMUP_REPLAY, None) has the checker read the export's warmup file and
    replay it, as TF Serving does. The checker
    runs in a process of its own, started here, and loads the export at once; send()
    gives it the requests (here, or later, so that its load overlaps the caller's own
    work); result() waits for it."""

    def __init__(self, export_dir: str, requests: list[tuple] | None = None):
        self.export_dir = export_dir
        self.requests: list[tuple] = []
        self._folder = tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR"))
        self._process = subprocess.Popen(
            [os.path.abspath(_CHECKER.value), export_dir, self._folder.name, "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if requests is not None:
            self.send(requests)

    def send(self, requests: list[tuple]) -> None:
        lines = []
        for name, key, feeds in requests:
            kind = "train" if key == _TRAIN_KEY else "run"
            if key == _WARMUP_REPLAY:
                lines.append(f"{name} - warmup\n")
            elif isinstance(feeds, str):
                lines.append(f"{name} {key} {kind} {feeds}\n")
            else:
                tensors_file.write(
                    os.path.join(self._folder.name, name + ".feeds"), feeds
                )
                lines.append(f"{name} {key} {kind}\n")
        self.requests = list(requests)
        try:
            self._process.stdin.write("".join(lines))
            self._process.stdin.close()
        except BrokenPipeError:
            pass  # it failed loading the export: result() says why

    def close(self) -> None:
        """Stops the checker if it still runs (its results no longer wanted)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._folder.cleanup()

    def result(self) -> CppLoaderRun:
        if not self._process.stdin.closed:
            self._process.stdin.close()  # no requests: it stops after the load
        stderr = self._process.stderr.read()
        self._process.wait()
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
            outputs, changed, warmup = {}, {}, {}
            for name, key, _ in self.requests:
                path = os.path.join(folder, name)
                if key == _WARMUP_REPLAY:
                    with open(path + ".signatures", encoding="utf-8") as f:
                        warmup[name] = f.read().split()
                    for index in range(len(warmup[name])):
                        outputs[f"{name}_{index}"] = tensors_file.read(
                            f"{path}_{index}.outputs"
                        )
                    continue
                outputs[name] = tensors_file.read(path + ".outputs")
                if key == _TRAIN_KEY:
                    with open(path + ".variables", encoding="utf-8") as f:
                        count, total = f.read().split()
                    changed[name] = (int(count), int(total))
            return CppLoaderRun(keys, outputs, changed, warmup)
        finally:
            self._process.stderr.close()
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
    samples: sample_inputs.SampleValues
    reference: verify.KerasReference
    warmup: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]


def _keras_outputs(loaded: sources.LoadedModel, feeds: dict) -> dict[str, np.ndarray]:
    model_interface = loaded.interface
    packed = model_interface.pack_inputs(
        [tf.constant(feeds[d.name]) for d in model_interface.inputs]
    )
    outputs = model_interface.name_outputs(model_interface.call(loaded.model, packed))
    return {name: np.asarray(value) for name, value in outputs.items()}


def _restore_exported_values(loaded, export_dir: str) -> None:
    """Puts the exported values back into the variables of `loaded` (a signature may
    change them: train, a metric's state), from the checkpoint it was loaded from."""
    prefix = os.path.join(export_dir, "variables", "variables")
    tf.train.Checkpoint(root=loaded).read(prefix).assert_existing_objects_matched()


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
        # The modules imported so far (TensorFlow's, Keras's) live as long as the
        # process: the collections after each test skip them (each walked them all,
        # a fifth of a second of CPU: bench/README.md).
        gc.freeze()
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
        # The C++ checker loads its copy while this process rebuilds the Keras model;
        # its requests follow (_start_cpp_loader_early).
        if cls._is_small():
            cls._cpp_running = CppLoader(cls.export_dir)

    @classmethod
    def tearDownClass(cls):
        if cls._cpp_running is not None:  # started, but no test asked for its result
            cls._cpp_running.close()
            cls._cpp_running = None
        cls._loaded = None
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        # What a test loaded is gone before the next test loads its own: cleanups run
        # last first, so TensorFlow forgets the loaded gradients, then collects.
        self.addCleanup(gc.collect)
        self.enter_context(signatures.custom_gradients_scoped())

    @classmethod
    def _is_small(cls) -> bool:
        """Whether the model is small (its variables up to _SMALL_MAX_BYTES): it may
        be held twice at a time (see the module's docstring)."""
        variables = os.path.join(cls.export_dir, "variables")
        size = sum(
            entry.stat().st_size for entry in os.scandir(variables) if entry.is_file()
        )
        return size <= _SMALL_MAX_BYTES

    # The export loaded through the object API, shared by the tests of a small model.
    _loaded = None

    @classmethod
    def _object_api(cls, variables: bool = True):
        """The export loaded by tf.saved_model.load: one copy shared by the tests of a
        small model, with the exported values (a test that runs a signature changing
        them puts them back); a copy of its own for each test of a large one, without
        restoring the variables' values if not `variables`."""
        if cls._loaded is not None:
            return cls._loaded
        small = cls._is_small()
        options = tf.saved_model.LoadOptions(
            experimental_skip_checkpoint=not (variables or small)
        )
        loaded = tf.saved_model.load(cls.export_dir, options=options)
        if small:
            cls._loaded = loaded
        return loaded

    @classmethod
    def _warmup_requests(cls) -> list:
        """The PredictRequests of the export's warmup file, read once."""
        if cls._warmup is None:
            cls._warmup = serving.read_warmup_requests(cls.export_dir)
        return cls._warmup

    _warmup: list | None = None

    # What the tests compare with Keras, from the model rebuilt from what the export
    # was made from: computed once, when a test first needs it; the model is dropped.
    _facts: KerasFacts | None = None

    @classmethod
    def _keras(cls) -> KerasFacts:
        if cls._facts is None:
            rebuilt = sources.load_model(cls.source)
            model_interface = rebuilt.interface
            cls._start_cpp_loader_early(model_interface)
            warmup = sample_inputs.warmup_feeds(
                model_interface.inputs,
                model_interface.samples,
                cls.info["seed"],
                len(cls._warmup_requests()),
            )
            cls._facts = KerasFacts(
                inputs=model_interface.inputs,
                samples=model_interface.samples,
                reference=verify.keras_reference(
                    rebuilt.model,
                    model_interface,
                    sample_inputs.random_for(
                        model_interface.inputs,
                        _INPUT_SEED,
                        _BATCH,
                        model_interface.samples,
                    ),
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
        # The signatures, not the variables' values: the other tests check those.
        loaded = self._object_api(variables=False)
        self.assertContainsSubset(expected, set(loaded.signatures))

    def test_serving_outputs_equal_the_keras_model(self):
        if _GOLDEN.value:
            self._check_golden(_GOLDEN.value)
            return
        # What verify.compare checks when the export is written, on this process's
        # copy: the fingerprint reads, serving_default gives the Keras model's outputs.
        tf.saved_model.experimental.read_fingerprint(self.export_dir)
        reference = self._keras().reference
        served = self._object_api().signatures[signatures.SERVING_KEY](
            **{name: tf.constant(value) for name, value in reference.inputs.items()}
        )
        self.assertNotEmpty(reference.outputs)
        _assert_outputs_equal(
            reference.outputs,
            {name: value.numpy() for name, value in served.items()},
            _TOLERANCE.value,
            f"'{signatures.SERVING_KEY}' against the Keras model",
        )

    def _check_golden(self, path: str):
        golden = np.load(path)
        serve = self._object_api().signatures[signatures.SERVING_KEY]
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
        arrays = sample_inputs.random_for(
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
        served = self._object_api().signatures[signatures.SERVING_KEY](
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
        arrays = sample_inputs.random_for(inputs, _INPUT_SEED, _BATCH, samples)
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
        arrays = sample_inputs.random_for(labels, _LABEL_SEED, _BATCH, samples)
        feeds.update({d.name: a for d, a in zip(labels, arrays, strict=True)})
        return {name: feeds[name] for name in signature.inputs}

    # The requests sent to the C++ loader (None before they are), the checker while it
    # runs (for a small model, started by setUpClass), then what it gave: one checker
    # process for the three tests below.
    _cpp_requests: dict | None = None
    _cpp_running: CppLoader | None = None
    _cpp_run: CppLoaderRun | None = None

    @classmethod
    def _start_cpp_loader_early(cls, model_interface) -> None:
        """Sends the checker its requests, if not yet sent, while this process still
        has work to do with the rebuilt model (a subclass calls this as soon as it has
        one); a large model's checker starts after that model is dropped."""
        if cls._cpp_requests is None and cls._is_small():
            cls._start_cpp_loader(model_interface.inputs, model_interface.samples)

    @classmethod
    def _start_cpp_loader(cls, inputs, samples) -> None:
        """Sends the checker (starting it if need be) every SignatureDef with the
        seeded inputs and labels, eval_result fed what eval_state gave, and the replay
        of the warmup file (read by the checker, as TF Serving reads it)."""
        defs = serving_signature_defs(cls.export_dir)
        requests = {
            f"signature_{index}": (
                key,
                cls._sample_feeds(key, signature, inputs, samples),
            )
            for index, (key, signature) in enumerate(sorted(defs.items()))
            if key != evaluation.RESULT_KEY
        }
        if evaluation.RESULT_KEY in defs:
            (state_request,) = [
                name
                for name, (key, _) in requests.items()
                if key == evaluation.STATE_KEY
            ]
            requests[f"signature_{evaluation.RESULT_KEY}"] = (
                evaluation.RESULT_KEY,
                state_request,
            )
        requests["warmup"] = (_WARMUP_REPLAY, None)
        cls._cpp_requests = requests
        if cls._cpp_running is None:
            cls._cpp_running = CppLoader(cls.export_dir)
        cls._cpp_running.send(
            [(name, key, feeds) for name, (key, feeds) in requests.items()]
        )

    @classmethod
    def _sent_cpp_requests(cls) -> dict:
        """The requests sent to the C++ loader (sending them if not yet sent)."""
        if cls._cpp_requests is None:
            facts = cls._keras()
            if cls._cpp_requests is None:
                cls._start_cpp_loader(facts.inputs, facts.samples)
        return cls._cpp_requests

    @classmethod
    def _cpp_loader(cls) -> tuple[dict, CppLoaderRun]:
        """The requests and what TensorFlow's C++ loader gave for them; a request fed
        an earlier one's outputs is listed with those outputs as its feeds."""
        if cls._cpp_run is None:
            cls._sent_cpp_requests()
            running, cls._cpp_running = cls._cpp_running, None
            run = running.result()
            for name, (key, feeds) in cls._cpp_requests.items():
                if isinstance(feeds, str):
                    cls._cpp_requests[name] = (key, run.outputs[feeds])
            cls._cpp_run = run
        return cls._cpp_requests, cls._cpp_run

    def test_every_signature_through_tf_servings_loader(self):
        """Each SignatureDef but train, run by its tensor names through TensorFlow's C++
        loader as TF Serving runs it, gives what the object API gives on the same
        inputs; serving_default also gives the Keras model's outputs."""
        facts = self._keras()
        # For a small model, the object API's outputs while the C++ loader runs
        # (eval_result's after it: it is fed what eval_state gave there); a large
        # one's object API copy is loaded after the checker's is gone.
        want = {}
        if self._is_small():
            loaded = self._object_api()
            for name, (key, feeds) in sorted(self._sent_cpp_requests().items()):
                if key == _TRAIN_KEY or not name.startswith("signature_"):
                    continue
                if not isinstance(feeds, str):
                    want[name] = loaded.signatures[key](
                        **{k: tf.constant(value) for k, value in feeds.items()}
                    )
        requests, run = self._cpp_loader()
        loaded = self._object_api()
        self.assertEqual(run.keys, set(loaded.signatures))
        checked = set()
        for name, (key, feeds) in sorted(requests.items()):
            if key == _TRAIN_KEY or not name.startswith("signature_"):
                continue
            checked.add(key)
            with self.subTest(signature=key):
                if name not in want:
                    want[name] = loaded.signatures[key](
                        **{k: tf.constant(value) for k, value in feeds.items()}
                    )
                _assert_outputs_equal(
                    {k: value.numpy() for k, value in want[name].items()},
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
        # The object API's train from the exported values; a copy shared with the
        # other tests gets them back after.
        shared = self._loaded is not None
        loaded = self._object_api()
        if shared:
            _restore_exported_values(loaded, self.export_dir)
        try:
            want = loaded.signatures[_TRAIN_KEY](
                **{k: tf.constant(value) for k, value in feeds.items()}
            )
        finally:
            if self._loaded is not None:
                _restore_exported_values(loaded, self.export_dir)
        _assert_outputs_equal(
            {k: value.numpy() for k, value in want.items()},
            run.outputs[name],
            _TOLERANCE.value,
            "train's logs through TF Serving's C++ loader against the object API",
        )

    def test_warmup_requests_replay_through_tf_servings_loader(self):
        """The warmup file holds `warmup_requests` PredictRequests on serving_default
        of the sample inputs verify uses, and each gives the Keras model's outputs
        through TensorFlow's C++ loader, which reads and replays them as TF Serving
        does."""
        requests = self._warmup_requests()
        self.assertLen(requests, self.info["warmup_requests"])
        if not requests:
            return
        expected = self._keras().warmup
        self.assertLen(expected, len(requests))
        _, run = self._cpp_loader()
        self.assertEqual(
            run.warmup_signatures["warmup"], [signatures.SERVING_KEY] * len(requests)
        )
        for index, (want, keras_outputs) in enumerate(expected):
            what = f"warmup request {index}"
            request = requests[index]
            self.assertEqual(
                request.model_spec.signature_name, signatures.SERVING_KEY, what
            )
            feeds = {
                name: tf.make_ndarray(proto) for name, proto in request.inputs.items()
            }
            self.assertEqual(sorted(feeds), sorted(want), what)
            # `want` repeats the writer's own sample_inputs.warmup_feeds; the independent
            # checks are the outputs against Keras below, and test_serving.py, which
            # states request i's inputs (verify's with seed + i) itself.
            for name, value in want.items():
                np.testing.assert_array_equal(feeds[name], value, err_msg=what)
            _assert_outputs_equal(
                keras_outputs, run.outputs[f"warmup_{index}"], _TOLERANCE.value, what
            )


if __name__ == "__main__":
    absltest.main()
