"""A build action's py_binary tool ran TensorFlow from the same locked venv as tests."""

import json
import sys

from absl.testing import absltest

from tests.toolchain import lock


class BuildActionTest(absltest.TestCase):
    def test_action_ran_tensorflow_from_the_lock(self):
        with open(lock.runfile("tests/toolchain/tf_probe_output.json")) as f:
            report = json.load(f)
        pins = lock.pins()
        self.assertEqual(report["tensorflow"], pins["tensorflow-cpu"])
        self.assertEqual(report["keras"], pins["keras"])
        self.assertEqual(report["matmul"], 11.0)
        # The exec-configuration tool and this test share the one toolchain venv.
        self.assertTrue(sys.prefix.endswith("/" + report["python_prefix"]), sys.prefix)


if __name__ == "__main__":
    absltest.main()
