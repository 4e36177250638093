"""The test's interpreter is the Bazel-managed venv, holding exactly the lock's pins."""

import importlib.metadata
import sys

import absl
import keras
import tensorflow as tf
from absl.testing import absltest

from tests.toolchain import lock


class VersionsTest(absltest.TestCase):
    def test_imports_match_the_lock(self):
        pins = lock.pins()
        self.assertEqual(tf.__version__, pins["tensorflow-cpu"])
        self.assertEqual(keras.__version__, pins["keras"])
        self.assertEqual(importlib.metadata.version("absl-py"), pins["absl-py"])
        self.assertTrue(absl.__file__.startswith(sys.prefix))

    def test_every_locked_package_is_installed_at_its_pin(self):
        for name, version in lock.pins().items():
            with self.subTest(package=name):
                self.assertEqual(importlib.metadata.version(name), version)

    def test_interpreter_is_the_toolchain_venv(self):
        self.assertIn("rules_keras_python", sys.prefix)
        self.assertNotEqual(sys.prefix, sys.base_prefix)


if __name__ == "__main__":
    absltest.main()
