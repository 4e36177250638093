"""keras_saved_model_test's C++ loader check fails on a broken SignatureDef.

Copies of //models:my_export whose saved_model.pb is edited the way a broken export
would be, checked by the C++ checker and by keras_saved_model_test's own program:

- serving_default's output names a tensor the graph does not have: the checker exits
  1 with one line naming the signature, the output and the tensor;
- eval's two outputs swapped (each names the other's tensor, both scalars): the C++
  loader runs it, and the test fails naming eval's output that differs from the
  object API's (whose functions are not read from the SignatureDef).
"""

import os
import shutil
import subprocess
import sys

import numpy as np
from absl.testing import absltest
from tensorflow.core.protobuf import saved_model_pb2

from rules.private import tensors_file

_WORKSPACE = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])
_CHECKER = os.path.join(_WORKSPACE, "cc", "saved_model_checker")
_MAIN = os.path.join(_WORKSPACE, "rules", "private", "keras_saved_model_test_main.py")
_EXPORT = os.path.join(_WORKSPACE, "models", "my_export")


def _edited_copy(folder: str, edit) -> str:
    """A copy of the export (and the files the test reads beside it) with `edit`
    applied to the serve MetaGraph's SignatureDefs; returns the copy's base folder."""
    base = os.path.join(folder, "my_export")
    shutil.copytree(_EXPORT, base)
    for suffix in (".export.json", ".signatures.json"):
        shutil.copy(_EXPORT + suffix, base + suffix)
    path = os.path.join(base, "1", "saved_model.pb")
    os.chmod(path, 0o644)
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    edit(saved_model.meta_graphs[0].signature_def)
    with open(path, "wb") as f:
        f.write(saved_model.SerializeToString())
    return base


class CheckerTest(absltest.TestCase):
    def test_a_missing_tensor_fails_naming_it(self):
        def drop_tensor(defs):
            defs["serving_default"].outputs["probs"].name = "no_such_op:0"

        folder = self.create_tempdir().full_path
        base = _edited_copy(folder, drop_tensor)
        requests = os.path.join(folder, "requests")
        os.mkdir(requests)
        with open(os.path.join(requests, "requests.txt"), "w") as f:
            f.write("one serving_default run\n")
        tensors_file.write(
            os.path.join(requests, "one.feeds"),
            {"image": np.zeros((1, 28, 28, 1), "float32")},
        )
        result = subprocess.run(
            [_CHECKER, os.path.join(base, "1"), requests],
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(
            "saved_model_checker: output 'probs' of signature 'serving_default' names"
            " the tensor 'no_such_op:0', which the graph of",
            result.stderr,
        )

    def test_outputs_that_differ_fail_the_test(self):
        def swap_outputs(defs):
            outputs = defs["eval"].outputs
            accuracy, loss = outputs["accuracy"].name, outputs["loss"].name
            outputs["accuracy"].name, outputs["loss"].name = loss, accuracy

        base = _edited_copy(self.create_tempdir().full_path, swap_outputs)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        env.pop("XML_OUTPUT_FILE", None)  # the report file is this test's
        result = subprocess.run(
            [
                sys.executable,
                _MAIN,
                f"--saved_model={base}",
                f"--checker={_CHECKER}",
                "SavedModelTest.test_every_signature_through_tf_servings_loader",
            ],
            cwd=_WORKSPACE,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertNotEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn(
            "'eval' through TF Serving's C++ loader against the object API: accuracy",
            result.stderr,
        )


if __name__ == "__main__":
    absltest.main()
