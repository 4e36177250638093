"""Two fresh exporter processes must write byte-identical trees.

The two runs differ in everything that must not matter: absolute vs relative output path,
working directory and PYTHONHASHSEED. A third run with another --seed must differ, so the
comparison is not vacuous.
"""

import os

import tensorflow as tf
from absl.testing import absltest
from tensorflow.core.protobuf import fingerprint_pb2

from tests.export import testmodels, testutil

BUILDER = f"--builder={testmodels.MODULE}:compiled_two_outputs"


class DeterminismTest(absltest.TestCase):
    def test_fresh_processes_write_identical_bytes(self):
        tmp = self.create_tempdir().full_path
        workdir = os.path.join(tmp, "elsewhere")
        os.makedirs(workdir)
        runs = {
            "a": testutil.start_exporter(
                [BUILDER, f"--output_dir={tmp}/a", f"--manifest_out={tmp}/a.json"],
                cwd=tmp,
                env={"PYTHONHASHSEED": "0"},
            ),
            "b": testutil.start_exporter(
                [BUILDER, "--output_dir=../b/nested", "--manifest_out=b.json"],
                cwd=workdir,
                env={"PYTHONHASHSEED": "12345"},
            ),
            "other_seed": testutil.start_exporter(
                [BUILDER, f"--output_dir={tmp}/c", "--seed=1"], cwd=tmp
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


if __name__ == "__main__":
    absltest.main()
