"""The test's interpreter is the toolchain's Python, holding exactly the lock's pins."""

import importlib.metadata
import os
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

    def test_interpreter_is_the_toolchain_python(self):
        self.assertIn("rules_keras_python", sys.prefix)
        if sys.prefix == sys.base_prefix:
            # The hermetic layout: not a venv, so the standard library is the
            # toolchain's own copy too.
            self.assertTrue(os.__file__.startswith(sys.prefix), os.__file__)
        else:
            # The venv layout: a venv over the base interpreter.
            self.assertNotIn("rules_keras_python", sys.base_prefix)


if __name__ == "__main__":
    absltest.main()
