"""options.resolve runs once per export, from the command line and from the library.

It reads the clock for --version=timestamp and checks the output folder: a second run
could pick another second than the first, and costs the checks twice.
"""

import os
from unittest import mock

from absl import flags
from absl.testing import absltest

from export import exporter
from export.lib import api, options
from tests.export import testmodels

M = testmodels.MODULE


class ResolveOnceTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.out = os.path.join(self.create_tempdir().full_path, "out")

    def test_the_exporter_resolves_once(self):
        flags.FLAGS(
            [
                "exporter",
                f"--builder={M}:mlp",
                f"--output_dir={self.out}",
                "--version=timestamp",
                "--noverify",
            ]
        )
        with mock.patch.object(options, "resolve", wraps=options.resolve) as resolve:
            self.assertEqual(exporter._export_from_flags(), 0)
        self.assertEqual(resolve.call_count, 1)
        self.assertLen(os.listdir(self.out), 1)

    def test_the_library_resolves_once(self):
        request = api.ExportRequest(
            builder=f"{M}:mlp", output_dir=self.out, verify=False
        )
        with mock.patch.object(options, "resolve", wraps=options.resolve) as resolve:
            api.export_with_result(request)
        self.assertEqual(resolve.call_count, 1)


if __name__ == "__main__":
    absltest.main()
