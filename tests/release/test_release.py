"""Signing, verifying and pushing the example export, as `bazel run` runs them.

Each test runs the real `//models:my_export.sign`, `.verify` and `.push` programs in
child processes, with the arguments the keras_saved_model macro gives them, on keys
made here with openssl and on real folders: tampered copies, model base paths that
pushes race for, a full tmpfs, a push killed while it waits for the base path's lock.
"""

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

TARGET = "//models:my_export"
# The arguments of the macro's targets (rules/private/release.bzl).
MACRO_ARGS = ["--saved_model=models/my_export", f"--target={TARGET}"]


def _namespaces_work():
    probe = subprocess.run(
        ["unshare", "-Urm", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


def tree_digests(folder):
    digests = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(
                    f.read()
                ).hexdigest()
    return digests


class ReleaseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.export = os.path.abspath("models/my_export/1")
        cls.keys = tempfile.mkdtemp(prefix="keys-")
        for name in ["key", "other"]:
            key = os.path.join(cls.keys, name + ".pem")
            subprocess.run(
                [
                    "openssl",
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    key,
                ],
                check=True,
            )
            subprocess.run(
                [
                    "openssl",
                    "ec",
                    "-in",
                    key,
                    "-pubout",
                    "-out",
                    os.path.join(cls.keys, name + ".pub.pem"),
                ],
                check=True,
                capture_output=True,
            )
        cls.key = os.path.join(cls.keys, "key.pem")
        cls.pub = os.path.join(cls.keys, "key.pub.pem")
        cls.signature = os.path.join(cls.keys, "my_export.sig")
        cls.run_step(
            "sign",
            f"--private_key={cls.key}",
            f"--signature={cls.signature}",
            check=True,
        )

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.keys)

    @staticmethod
    def command(step, *flags):
        return [os.path.join("models", f"my_export.{step}"), step, *MACRO_ARGS, *flags]

    @classmethod
    def run_step(cls, step, *flags, check=False):
        result = subprocess.run(
            cls.command(step, *flags), capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{step} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="release-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def assert_one_line_error(self, result, *words):
        self.assertNotEqual(result.returncode, 0, result.stdout)
        error = result.stderr.strip()
        self.assertEqual(len(error.splitlines()), 1, error)
        self.assertTrue(error.startswith(f"{TARGET}."), error)
        for word in words:
            self.assertIn(word, error)
        return error

    def copy_of_export(self):
        folder = os.path.join(self.tmp, "copy")
        shutil.copytree(self.export, folder)
        return folder

    def verify(self, *flags):
        return self.run_step(
            "verify",
            f"--public_key={self.pub}",
            f"--signature={self.signature}",
            *flags,
        )

    # --- sign and verify

    def test_the_signed_export_and_a_faithful_copy_verify(self):
        self.assertEqual(self.verify().returncode, 0)
        result = self.verify(f"--model_dir={self.copy_of_export()}")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Verified", result.stdout)

    def test_a_flipped_byte_names_the_file(self):
        folder = self.copy_of_export()
        path = os.path.join(folder, "variables", "variables.data-00000-of-00001")
        with open(path, "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 1]))
        self.assert_one_line_error(
            self.verify(f"--model_dir={folder}"), path, "changed"
        )

    def test_an_extra_file_names_it(self):
        folder = self.copy_of_export()
        extra = os.path.join(folder, "assets", "notes.txt")
        with open(extra, "w") as f:
            f.write("not part of the model\n")
        self.assert_one_line_error(
            self.verify(f"--model_dir={folder}"), extra, "extra file"
        )

    def test_a_missing_file_names_it(self):
        folder = self.copy_of_export()
        missing = os.path.join(folder, "fingerprint.pb")
        os.remove(missing)
        self.assert_one_line_error(
            self.verify(f"--model_dir={folder}"), missing, "missing"
        )

    def test_a_changed_provenance_is_not_the_signed_one(self):
        provenance = os.path.join(self.tmp, "provenance.json")
        with open("models/my_export.provenance.json") as f:
            statement = json.load(f)
        statement["predicate"]["buildDefinition"]["externalParameters"]["target"] = (
            "//elsewhere:model"
        )
        with open(provenance, "w") as f:
            json.dump(statement, f)
        self.assert_one_line_error(
            self.verify(f"--provenance={provenance}"), provenance, "not the provenance"
        )

    def test_a_wrong_key_names_the_key(self):
        other = os.path.join(self.keys, "other.pub.pem")
        result = self.run_step(
            "verify", f"--public_key={other}", f"--signature={self.signature}"
        )
        self.assert_one_line_error(
            result, f"--public_key={other}", "not made with the key"
        )

    def test_a_missing_key_names_the_flag_and_the_file(self):
        absent = os.path.join(self.tmp, "absent.pem")
        result = self.run_step(
            "sign", f"--private_key={absent}", f"--signature={self.tmp}/s.sig"
        )
        self.assert_one_line_error(result, f"--private_key={absent}", "No such file")
        self.assertEqual(os.listdir(self.tmp), [])
        self.assert_one_line_error(self.run_step("sign"), "--private_key is required")

    def test_a_public_key_is_no_private_key(self):
        result = self.run_step(
            "sign", f"--private_key={self.pub}", f"--signature={self.tmp}/s.sig"
        )
        self.assert_one_line_error(result, "not an elliptic-curve private key")
        self.assertEqual(os.listdir(self.tmp), [])

    def test_without_model_signing_the_error_names_the_package_and_the_lines_to_add(
        self,
    ):
        # -S: no site-packages, so the standard library only, as with a lock of one's own.
        command = [
            sys.executable,
            "-S",
            "rules/private/release.py",
            "sign",
            *MACRO_ARGS,
            f"--private_key={self.key}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        self.assert_one_line_error(
            result,
            "needs the Python package model-signing",
            "`model-signing==1.1.1`",
            "`pyOpenSSL==26.4.0`",
        )

    # --- push

    def push(self, base, *flags):
        return self.run_step("push", f"--model_base_path={base}", *flags)

    def test_push_verifies_copies_and_writes_the_model_config(self):
        base = os.path.join(self.tmp, "base")
        config = os.path.join(base, "models.config")
        signed = [f"--signature={self.signature}", f"--public_key={self.pub}"]
        result = self.push(base, *signed, f"--model_config={config}", "--label=stable")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            tree_digests(os.path.join(base, "1")), tree_digests(self.export)
        )
        result = self.push(
            base, "--next_version", f"--model_config={config}", "--label=canary"
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            sorted(os.listdir(base)),
            [".rules_keras_push.lock", "1", "2", "models.config"],
        )
        # TF Serving's own proto reads the file back.
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        with open(config) as f:
            parsed = text_format.Parse(
                f.read(), model_server_config_pb2.ModelServerConfig()
            )
        (entry,) = parsed.model_config_list.config
        self.assertEqual(
            (entry.name, entry.base_path, entry.model_platform),
            ("my_export", base, "tensorflow"),
        )
        self.assertEqual(dict(entry.version_labels), {"stable": 1, "canary": 2})
        self.assertEqual(list(entry.model_version_policy.specific.versions), [1, 2])
        # The pushed folder verifies against the signature.
        self.assertEqual(self.verify(f"--model_dir={base}/2").returncode, 0)

    def test_push_refuses_a_different_model_under_the_same_number(self):
        base = os.path.join(self.tmp, "base")
        os.makedirs(os.path.join(base, "1"))
        with open(os.path.join(base, "1", "saved_model.pb"), "wb") as f:
            f.write(b"another model")
        self.assert_one_line_error(
            self.push(base),
            f"{base}/1 already holds a different model",
            "--next_version",
        )
        self.assertEqual(os.listdir(os.path.join(base, "1")), ["saved_model.pb"])
        # The same model again is no error, and copies nothing.
        self.assertEqual(self.push(base, "--version=3").returncode, 0)
        again = self.push(base, "--version=3")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already holds this export", again.stdout)

    def test_push_with_a_bad_signature_copies_nothing(self):
        base = os.path.join(self.tmp, "base")
        other = os.path.join(self.keys, "other.pub.pem")
        result = self.push(
            base, f"--signature={self.signature}", f"--public_key={other}"
        )
        self.assert_one_line_error(result, "not made with the key")
        self.assertFalse(os.path.exists(base))

    def test_racing_pushes_each_get_a_whole_version(self):
        base = os.path.join(self.tmp, "base")
        config = os.path.join(base, "models.config")
        # The racers line up behind a push that holds the base path (this test), so
        # they all stage their copies and then choose a number and rewrite the config
        # at once when it lets go.
        fd = self.held_lock(base)
        racers = [
            subprocess.Popen(
                self.command(
                    "push",
                    f"--model_base_path={base}",
                    "--next_version",
                    f"--model_config={config}",
                    f"--label=racer{i}",
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        self.wait_for_staging(base, racers[0], count=4)
        self.assertEqual(
            [n for n in os.listdir(base) if not n.startswith(".")],
            [],
            "published under a held lock",
        )
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        for racer in racers:
            _, stderr = racer.communicate()
            self.assertEqual(racer.returncode, 0, stderr)
        self.assertEqual(
            sorted(os.listdir(base)),
            [".rules_keras_push.lock", "1", "2", "3", "4", "models.config"],
        )
        for version in "1234":
            self.assertEqual(
                tree_digests(os.path.join(base, version)), tree_digests(self.export)
            )
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        with open(config) as f:
            parsed = text_format.Parse(
                f.read(), model_server_config_pb2.ModelServerConfig()
            )
        (entry,) = parsed.model_config_list.config
        # No rewrite of the config lost another's label.
        self.assertEqual(
            sorted(entry.version_labels), ["racer0", "racer1", "racer2", "racer3"]
        )
        self.assertEqual(sorted(entry.version_labels.values()), [1, 2, 3, 4])

    def test_racing_pushes_of_one_version_leave_one_whole_copy(self):
        base = os.path.join(self.tmp, "base")
        racers = [
            subprocess.Popen(
                self.command("push", f"--model_base_path={base}"),
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        for racer in racers:
            _, stderr = racer.communicate()
            self.assertEqual(racer.returncode, 0, stderr)
        self.assertEqual(sorted(os.listdir(base)), [".rules_keras_push.lock", "1"])
        self.assertEqual(
            tree_digests(os.path.join(base, "1")), tree_digests(self.export)
        )

    # --- faults

    def held_lock(self, base):
        """Holds the base path's lock, as a slow push would, so a push waits for it."""
        os.makedirs(base, exist_ok=True)
        fd = os.open(
            os.path.join(base, ".rules_keras_push.lock"), os.O_RDWR | os.O_CREAT
        )
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def wait_for_staging(self, base, process, count=1):
        """Waits until `count` pushes have copied the export under hidden names."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            staged = [
                n
                for n in os.listdir(base)
                if n.startswith(".push-")
                and os.path.exists(os.path.join(base, n, "saved_model.pb"))
            ]
            if len(staged) >= count:
                time.sleep(1.0)  # the copies are done; they now wait for the lock
                return staged
            time.sleep(0.05)
        if process.poll() is not None:
            self.fail(
                f"a push ended (listing: {sorted(os.listdir(base))}) while another held the base path's lock"
            )
        self.fail(f"{count} pushes never staged their copies")

    def test_a_killed_push_leaves_no_version_and_the_next_push_cleans_up(self):
        base = os.path.join(self.tmp, "base")
        fd = self.held_lock(base)
        process = subprocess.Popen(
            self.command("push", f"--model_base_path={base}"), stderr=subprocess.PIPE
        )
        self.wait_for_staging(base, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        # Only hidden names, which TF Serving does not load.
        self.assertTrue(
            all(n.startswith(".") for n in os.listdir(base)), os.listdir(base)
        )
        result = self.push(base)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sorted(os.listdir(base)), [".rules_keras_push.lock", "1"])

    def test_a_stopped_push_removes_its_copy(self):
        base = os.path.join(self.tmp, "base")
        fd = self.held_lock(base)
        process = subprocess.Popen(
            self.command("push", f"--model_base_path={base}"), stderr=subprocess.PIPE
        )
        self.wait_for_staging(base, process)
        process.send_signal(signal.SIGTERM)
        process.wait()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self.assertNotEqual(process.returncode, 0)
        self.assertEqual(os.listdir(base), [".rules_keras_push.lock"])

    def in_namespace(self, script, *args):
        if not _namespaces_work():
            self.skipTest("unshare -Urm is not permitted here (no user namespaces)")
        return subprocess.run(
            ["unshare", "-Urm", "sh", "-c", script, "sh", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def test_a_full_disk_names_the_cause_and_leaves_nothing(self):
        base = os.path.join(self.tmp, "base")
        os.makedirs(base)
        # A 64 KB tmpfs: the example's variables alone are larger.
        script = 'mount -t tmpfs -o size=64k tmpfs "$1" && shift && "$@"; echo "rc=$?"; ls -A "$BASE"'
        result = self.in_namespace(
            f'BASE="$1"; {script}',
            base,
            *self.command("push", f"--model_base_path={base}"),
        )
        lines = result.stdout.strip().splitlines()
        self.assertIn("rc=1", lines, result.stdout + result.stderr)
        # Nothing is left in the full base path (the lock is taken after the copy).
        self.assertEqual(lines[lines.index("rc=1") + 1 :], [])
        error = result.stderr.strip()
        self.assertEqual(len(error.splitlines()), 1, error)
        self.assertIn("No space left on device", error)
        self.assertIn("Nothing was published", error)

    def test_an_unreadable_base_path_names_it(self):
        base = os.path.join(self.tmp, "base")
        os.makedirs(base)
        os.chmod(base, 0)
        self.addCleanup(os.chmod, base, 0o755)
        # In a user namespace with no user mapped, root's override of permissions is gone.
        if (
            subprocess.run(
                ["unshare", "-U", "true"], capture_output=True, check=False
            ).returncode
            != 0
        ):
            self.skipTest("unshare -U is not permitted here")
        result = subprocess.run(
            ["unshare", "-U", *self.command("push", f"--model_base_path={base}")],
            capture_output=True,
            text=True,
            check=False,
        )
        self.assert_one_line_error(
            result, f"--model_base_path={base}", "Permission denied"
        )


if __name__ == "__main__":
    unittest.main()
