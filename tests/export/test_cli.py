"""The command line: flags, exit status, stderr, manifest, and saved_model_cli on the output.

Runs //export:exporter from runfiles under Bazel, else `python -m export.exporter`.
"""

import json
import os
import subprocess
import sys

from absl.testing import absltest

from tests.export import testmodels, testutil

M = testmodels.MODULE
TIMESTAMP = 1700000123


def saved_model_cli() -> list[str]:
    # As `python -m`: rules_keras's toolchains keep no console scripts.
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def error_paragraph(stderr: str) -> str:
    """The exporter's own message: from 'exporter: error:' to the first blank line."""
    start = stderr.find("exporter: error: ")
    if start < 0:
        raise AssertionError(f"no exporter error in stderr:\n{stderr[-3000:]}")
    return stderr[start:].split("\n\n", 1)[0].rstrip("\n")


class CliTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = self.create_tempdir().full_path
        self.out = os.path.join(self.tmp, "out")

    def test_export_as_text_with_manifest_and_timestamp_then_saved_model_cli(self):
        status = os.path.join(self.tmp, "volatile-status.txt")
        with open(status, "w") as f:
            f.write(f"BUILD_TIMESTAMP {TIMESTAMP}\nBUILD_HOST somewhere\n")
        manifest_path = os.path.join(self.tmp, "manifest.json")
        os.makedirs(self.out)  # under Bazel the tree artifact exists already, empty
        proc = testutil.run_exporter(
            [
                f"--builder={M}:two_in_two_out",
                f"--output_dir={self.out}",
                "--version=timestamp",
                f"--workspace_status_file={status}",
                "--as_text",
                f"--manifest_out={manifest_path}",
            ]
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-4000:])
        path = os.path.join(self.out, str(TIMESTAMP))
        self.assertEqual(proc.stdout.strip(), path)
        self.assertEqual(os.listdir(self.out), [str(TIMESTAMP)])
        self.assertEqual(
            sorted(os.listdir(path)),
            ["assets", "fingerprint.pb", "saved_model.pbtxt", "variables"],
        )
        with open(manifest_path) as f:
            text = f.read()
        manifest = json.loads(text)
        self.assertEqual(text, json.dumps(manifest, sort_keys=True, indent=2) + "\n")
        self.assertEqual(
            manifest,
            {
                "version": TIMESTAMP,
                "source": f"{M}:two_in_two_out",
                "signatures": {
                    "serving_default": {
                        "inputs": {
                            "image_feats": {"dtype": "float32", "shape": [None, 6]},
                            "meta": {"dtype": "float32", "shape": [None, 3]},
                        },
                        "outputs": {
                            "score": {"dtype": "float32", "shape": [None, 1]},
                            "cls": {"dtype": "float32", "shape": [None, 4]},
                        },
                    }
                },
            },
        )
        show = subprocess.run(
            saved_model_cli() + ["show", "--all", "--dir", path],
            env=testutil.child_env(),
            capture_output=True,
            text=True,
            timeout=testutil.TIMEOUT_S,
            check=False,
        )
        self.assertEqual(show.returncode, 0, show.stderr[-4000:])
        for needle in (
            "signature_def['serving_default']",
            "inputs['image_feats']",
            "inputs['meta']",
            "outputs['score']",
            "outputs['cls']",
            "shape: (-1, 6)",
        ):
            self.assertIn(needle, show.stdout)

    def test_bad_builder_exits_1_and_writes_nothing(self):
        manifest_path = os.path.join(self.tmp, "manifest.json")
        proc = testutil.run_exporter(
            [
                "--builder=tests.export.no_such_module:build",
                f"--output_dir={self.out}",
                f"--manifest_out={manifest_path}",
            ]
        )
        self.assertEqual(proc.returncode, 1)
        message = error_paragraph(proc.stderr)
        self.assertNotIn("\n", message)
        self.assertIn("exporter: error: --builder: cannot import module", message)
        self.assertFalse(os.path.exists(self.out))
        self.assertFalse(os.path.exists(manifest_path))
        self.assertEqual(proc.stdout, "")

    def test_existing_version_folder_is_kept(self):
        os.makedirs(os.path.join(self.out, "7"))
        with open(os.path.join(self.out, "7", "keep.txt"), "w") as f:
            f.write("keep")
        proc = testutil.run_exporter(
            [f"--builder={M}:mlp", f"--output_dir={self.out}", "--version=7"]
        )
        self.assertEqual(proc.returncode, 1)
        self.assertIn("--output_dir:", error_paragraph(proc.stderr))
        self.assertIn("already exists", error_paragraph(proc.stderr))
        self.assertEqual(os.listdir(self.out), ["7"])
        self.assertEqual(os.listdir(os.path.join(self.out, "7")), ["keep.txt"])

    def test_bad_flag_syntax(self):
        for flag, args in (
            ("--version", ["--version=v2"]),
            ("--label_specs", ["--label_specs=probs"]),
            ("--modes", ["--modes=serve,predict"]),
            ("--builder/--src", [f"--src={self.tmp}/m.keras"]),
        ):
            with self.subTest(flag=flag):
                proc = testutil.run_exporter(
                    [f"--builder={M}:mlp", f"--output_dir={self.out}", *args]
                )
                self.assertEqual(proc.returncode, 1)
                self.assertTrue(
                    error_paragraph(proc.stderr).startswith(
                        f"exporter: error: {flag}: "
                    ),
                    proc.stderr[-2000:],
                )
                self.assertFalse(os.path.exists(self.out))

    def test_positional_arguments_are_refused(self):
        proc = testutil.run_exporter(
            [f"--builder={M}:mlp", f"--output_dir={self.out}", "extra"]
        )
        self.assertEqual(proc.returncode, 1)
        self.assertIn("unexpected arguments", proc.stderr)

    def test_helpfull_documents_every_flag(self):
        proc = testutil.run_exporter(["--helpfull"])
        text = proc.stdout + proc.stderr
        for flag, phrase in (
            ("builder", "package.module:function"),
            ("src", ".keras"),
            ("weights", ".weights.h5"),
            ("output_dir", "version folder"),
            ("version", "timestamp"),
            ("workspace_status_file", "BUILD_TIMESTAMP"),
            ("custom_objects", "package.module:symbol"),
            ("as_text", "saved_model.pbtxt"),
            ("modes", "Comma-separated"),
            ("seed", "set_random_seed"),
            ("label_specs", "SHAPE:DTYPE"),
            ("allow_unsafe_deserialization", "Lambda"),
            ("verify", "1e-5 absolute"),
            ("manifest_out", "JSON"),
        ):
            with self.subTest(flag=flag):
                self.assertRegex(text, rf"--(\[no\])?{flag}: ")
                self.assertIn(phrase, text)


if __name__ == "__main__":
    absltest.main()
