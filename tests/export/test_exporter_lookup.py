"""testutil finds //export:exporter under this workspace's runfiles folder, whatever
that folder is called, and a missing exporter is an error instead of a silent switch."""

import os
from unittest import mock

from absl.testing import absltest

from tests.export import testutil


class ExporterLookupTest(absltest.TestCase):
    def test_finds_the_exporter_of_this_workspace(self):
        (command,) = testutil.exporter_command()
        self.assertEqual(
            command,
            os.path.join(
                os.environ["TEST_SRCDIR"],
                os.environ["TEST_WORKSPACE"],
                "export",
                "exporter",
            ),
        )
        self.assertTrue(os.access(command, os.X_OK))

    def test_a_missing_exporter_is_an_error(self):
        empty = self.create_tempdir().full_path
        environ = {"TEST_SRCDIR": empty, "TEST_WORKSPACE": "_main"}
        with mock.patch.dict(os.environ, environ):
            os.environ.pop("RULES_KERAS_EXPORTER", None)
            with self.assertRaisesRegex(FileNotFoundError, "//export:exporter is not"):
                testutil.exporter_command()


if __name__ == "__main__":
    absltest.main()
