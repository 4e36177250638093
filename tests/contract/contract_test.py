"""keras_saved_model's serving contract: its check and its update program.

The variants of the example (variants.py) are real exports, checked against the
example's own contract file the way `//models:my_export.contract_test` checks the
example; the other tests classify each kind of change on contracts written out here.
"""

import contextlib
import copy
import io
import os
import tempfile

from absl.testing import absltest

from rules.private import serving_contract

_EXAMPLE_CONTRACT = "models/my_export.contract.json"
_EXAMPLE = "//models:my_export"
_UPDATE_COMMAND = "bazel run //models:my_export.update_contract"


def _runfile(path: str) -> str:
    return os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"], path)


def _captured(function, *args) -> tuple[int, str]:
    """(exit code, stderr) of one run of the program's check or update."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = function(*args)
    return code, stderr.getvalue()


class ExampleVariantsTest(absltest.TestCase):
    def _check_variant(self, name: str) -> tuple[int, str]:
        return _captured(
            serving_contract.check,
            _runfile(f"tests/contract/{name}"),
            _runfile(_EXAMPLE_CONTRACT),
            _EXAMPLE,
        )

    def test_a_renamed_input_is_a_breaking_change(self):
        code, message = self._check_variant("renamed_input")
        self.assertEqual(code, 1, message)
        self.assertIn(
            f"{_EXAMPLE}: the export's serving API no longer matches", message
        )
        self.assertIn("(a breaking change)", message)
        self.assertIn("can fail:", message)
        for key in ("eval", "serving_default", "train"):
            self.assertIn(
                f"  - {key}: input 'image' renamed to 'pixels'"
                " (float32 [None, 28, 28, 1])",
                message,
            )
        self.assertNotIn("Compatible", message)
        self.assertIn(f"commit it with the change:\n  {_UPDATE_COMMAND}", message)

    def test_an_input_that_accepts_more_is_a_compatible_change(self):
        code, message = self._check_variant("any_image_size")
        self.assertEqual(code, 1, message)
        self.assertIn("(a compatible change)", message)
        self.assertIn(
            "Compatible: a client built against"
            f" {_runfile(_EXAMPLE_CONTRACT)} keeps working:",
            message,
        )
        self.assertIn(
            "  + serving_default: input 'image' shape [None, 28, 28, 1] ->"
            " [None, None, None, 1] (accepts every shape it accepted)",
            message,
        )
        self.assertNotIn("Breaking", message)
        self.assertIn(_UPDATE_COMMAND, message)

    def test_the_contract_is_read_from_the_export(self):
        contract = serving_contract.read_contract(
            _runfile("tests/contract/renamed_input")
        )
        # eval brings eval_state and eval_result (evaluating a data set).
        self.assertEqual(
            sorted(contract["signatures"]),
            ["eval", "eval_result", "eval_state", "serving_default", "train"],
        )
        serve = contract["signatures"]["serving_default"]
        self.assertEqual(serve["method_name"], "tensorflow/serving/predict")
        self.assertEqual(
            serve["inputs"],
            {"pixels": {"dtype": "float32", "shape": [None, 28, 28, 1]}},
        )
        self.assertEqual(
            serve["outputs"], {"probs": {"dtype": "float32", "shape": [None, 10]}}
        )
        # The label's SignatureDef declares no rank; the manifest says what it takes.
        self.assertEqual(
            contract["signatures"]["eval"]["inputs"]["probs_target"],
            {"dtype": "int64", "shape": None, "accepts": [[None], [None, 1]]},
        )


def _tensor(dtype: str, *shape) -> dict:
    return {"dtype": dtype, "shape": list(shape)}


_SERVE = {
    "method_name": "tensorflow/serving/predict",
    "inputs": {"image": _tensor("float32", None, 28, 28, 1)},
    "outputs": {"probs": _tensor("float32", None, 10)},
}
_CONTRACT = {"signatures": {"serving_default": _SERVE}}


def _changed(edit) -> list[tuple[bool, str]]:
    new = copy.deepcopy(_CONTRACT)
    edit(new["signatures"])
    return [(c.breaking, c.text) for c in serving_contract.compare(_CONTRACT, new)]


class CompareTest(absltest.TestCase):
    def test_the_same_contract_has_no_change(self):
        self.assertEqual(
            serving_contract.compare(_CONTRACT, copy.deepcopy(_CONTRACT)), []
        )

    def test_a_dropped_signature_breaks(self):
        self.assertEqual(
            _changed(lambda s: s.pop("serving_default")),
            [(True, "signature 'serving_default' removed")],
        )

    def test_a_new_signature_is_compatible(self):
        self.assertEqual(
            _changed(lambda s: s.update(eval=copy.deepcopy(_SERVE))),
            [(False, "new signature 'eval'")],
        )

    def test_another_method_breaks(self):
        def edit(s):
            s["serving_default"]["method_name"] = "tensorflow/serving/classify"

        self.assertEqual(
            _changed(edit),
            [
                (
                    True,
                    (
                        "serving_default: method tensorflow/serving/predict ->"
                        " tensorflow/serving/classify"
                    ),
                )
            ],
        )

    def test_a_removed_input_breaks(self):
        self.assertEqual(
            _changed(lambda s: s["serving_default"]["inputs"].pop("image")),
            [
                (
                    True,
                    "serving_default: input 'image' removed (float32 [None, 28, 28, 1])",
                )
            ],
        )

    def test_a_new_required_input_breaks(self):
        def edit(s):
            s["serving_default"]["inputs"]["mask"] = _tensor("bool", None, 28, 28)

        self.assertEqual(
            _changed(edit),
            [
                (
                    True,
                    "serving_default: new required input 'mask' (bool [None, 28, 28])",
                )
            ],
        )

    def test_another_input_dtype_breaks(self):
        def edit(s):
            s["serving_default"]["inputs"]["image"]["dtype"] = "uint8"

        self.assertEqual(
            _changed(edit),
            [(True, "serving_default: input 'image' dtype float32 -> uint8")],
        )

    def test_input_shapes(self):
        cases = {
            # shape of the export -> breaking
            (None, None, None, 1): False,  # widened
            None: False,  # any rank
            (None, 32, 32, 1): True,  # other sizes
            (1, 28, 28, 1): True,  # narrowed: a fixed batch
            (None, 28, 28): True,  # another rank
        }
        for shape, breaking in cases.items():

            def edit(s, shape=shape):
                s["serving_default"]["inputs"]["image"]["shape"] = (
                    None if shape is None else list(shape)
                )

            with self.subTest(shape=shape):
                [(got, text)] = _changed(edit)
                self.assertEqual(got, breaking, text)
                self.assertIn(
                    "refuses shapes it accepted"
                    if breaking
                    else "accepts every shape it accepted",
                    text,
                )

    def test_label_shapes(self):
        # A label declares no rank: what it accepts is its `accepts` list.
        label = {"dtype": "int64", "shape": None, "accepts": [[None], [None, 1]]}
        contract = copy.deepcopy(_CONTRACT)
        contract["signatures"]["eval"] = {
            "method_name": "tensorflow/serving/predict",
            "inputs": {"image": _tensor("float32", None, 28, 28, 1), "y": label},
            "outputs": {"loss": _tensor("float32")},
        }
        cases = {
            # accepted shapes of the export -> breaking
            ((None,),): True,  # no longer (n, 1)
            ((None,), (None, 1), (None, 1, 1)): False,  # one more
        }
        for accepts, breaking in cases.items():
            new = copy.deepcopy(contract)
            new["signatures"]["eval"]["inputs"]["y"]["accepts"] = [
                list(a) for a in accepts
            ]
            with self.subTest(accepts=accepts):
                changes = serving_contract.compare(contract, new)
                self.assertLen(changes, 1)
                self.assertEqual(changes[0].breaking, breaking, changes[0].text)
                self.assertIn("[None] or [None, 1] ->", changes[0].text)
        reordered = copy.deepcopy(contract)
        reordered["signatures"]["eval"]["inputs"]["y"]["accepts"].reverse()
        self.assertEqual(serving_contract.compare(contract, reordered), [])

    def test_output_shapes(self):
        cases = {
            (3, 10): False,  # more precise: still the shape a client expects
            (None, None): True,  # may be another size than 10
            None: True,  # any rank
            (None, 10, 1): True,  # another rank
        }
        for shape, breaking in cases.items():

            def edit(s, shape=shape):
                s["serving_default"]["outputs"]["probs"]["shape"] = (
                    None if shape is None else list(shape)
                )

            with self.subTest(shape=shape):
                [(got, text)] = _changed(edit)
                self.assertEqual(got, breaking, text)

    def test_outputs(self):
        def new_output(s):
            s["serving_default"]["outputs"]["logits"] = _tensor("float32", None, 10)

        self.assertEqual(
            _changed(new_output),
            [(False, "serving_default: new output 'logits' (float32 [None, 10])")],
        )

        def renamed(s):
            outputs = s["serving_default"]["outputs"]
            outputs["scores"] = outputs.pop("probs")

        self.assertEqual(
            _changed(renamed),
            [
                (
                    True,
                    (
                        "serving_default: output 'probs' renamed to 'scores'"
                        " (float32 [None, 10])"
                    ),
                )
            ],
        )

        def other_dtype(s):
            s["serving_default"]["outputs"]["probs"]["dtype"] = "float16"

        self.assertEqual(
            _changed(other_dtype),
            [(True, "serving_default: output 'probs' dtype float32 -> float16")],
        )

    def test_the_file_reads_back_as_written(self):
        text = serving_contract.contract_text(_CONTRACT)
        self.assertIn('"image": {"dtype": "float32", "shape": [null, 28, 28, 1]}', text)
        path = self.create_tempfile(content=text).full_path
        self.assertEqual(serving_contract._parse_contract(path), _CONTRACT)


class ProgramTest(absltest.TestCase):
    def test_a_file_that_is_no_contract_names_the_update_command(self):
        path = self.create_tempfile(content="").full_path
        code, message = _captured(
            serving_contract.check,
            _runfile("tests/contract/renamed_input"),
            path,
            _EXAMPLE,
        )
        self.assertEqual(code, 1)
        self.assertIn(f"{path} is not a serving contract", message)
        self.assertIn(_UPDATE_COMMAND, message)

    def test_update_writes_the_file_into_the_workspace(self):
        workspace = tempfile.mkdtemp(dir=absltest.TEST_TMPDIR.value)
        os.mkdir(os.path.join(workspace, "models"))
        export = _runfile("tests/contract/renamed_input")
        path = "models/my_export.contract.json"
        with open(_runfile(_EXAMPLE_CONTRACT), encoding="utf-8") as f:
            example = f.read()
        with open(os.path.join(workspace, path), "w", encoding="utf-8") as f:
            f.write(example)
        os.environ["BUILD_WORKSPACE_DIRECTORY"] = workspace
        try:
            code, message = _captured(serving_contract.update, export, path, _EXAMPLE)
            self.assertEqual(code, 0, message)
            self.assertIn(f"wrote {path}:", message)
            self.assertIn("renamed to 'pixels'", message)
            code, message = _captured(serving_contract.update, export, path, _EXAMPLE)
            self.assertEqual(
                (code, message.strip()), (0, f"{path}: already up to date")
            )
        finally:
            del os.environ["BUILD_WORKSPACE_DIRECTORY"]
        code, message = _captured(
            serving_contract.check, export, os.path.join(workspace, path), _EXAMPLE
        )
        self.assertEqual(code, 0, message)

    def test_update_outside_bazel_run_says_how_to_run_it(self):
        self.assertNotIn("BUILD_WORKSPACE_DIRECTORY", os.environ)
        code, message = _captured(
            serving_contract.update,
            _runfile("tests/contract/renamed_input"),
            "models/my_export.contract.json",
            _EXAMPLE,
        )
        self.assertEqual(code, 1)
        self.assertIn(f"run this with `{_UPDATE_COMMAND}`", message)


if __name__ == "__main__":
    absltest.main()
