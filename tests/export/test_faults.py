"""Faults of the machine, not of the model: the command line names their real cause.

Each runs //export:exporter in a child and provokes the fault for real where the test
can:
  - a full filesystem: a 4 MB tmpfs, mounted in a user and mount namespace of the
    exporter's own (`unshare`), which the kernel fills while TensorFlow writes the
    variables (ENOSPC from the kernel, through TensorFlow's C++ writer);
  - a file larger than allowed: the exporter's RLIMIT_FSIZE below the variables' size
    (EFBIG from the kernel, the same path);
  - a read-only filesystem: a read-only tmpfs (EROFS, met when the staging folder is
    created);
  - no permission: a folder without write permission, the exporter in a user
    namespace with no uid mapped, where root's override of permissions does not apply
    (EACCES, met when the staging folder is created);
  - SIGTERM and SIGKILL while the exporter writes; a live exporter (stopped with
    SIGSTOP while it writes) beside them.
A quota cannot be set in a user namespace: `test_write_errors_are_told_by_the_system_message`
feeds the classifier TensorFlow's own error types with the message its writer makes.

The mounts and the permission test need a privilege: user namespaces (`unshare -Urm`),
or root's own (a mount namespace, `unshare -m`, and capabilities dropped with
`setpriv`). Without either they cannot run: under CI (CI=true, as root) that fails;
elsewhere they skip with a `NOT RUN HERE:` line, which ./test.sh reports as not run
rather than passed.
"""

import dataclasses
import errno
import os
import resource
import signal
import subprocess
import time

import tensorflow as tf
from absl.testing import absltest

from export.lib import staging_owner, writer
from tests.export import fault_models, testutil

BUILDER = f"--builder={fault_models.MODULE}:text_classifier"
# The classifier's variables: an embedding and two convolutions hold most of them.
VARIABLE_BYTES = 4 * (
    fault_models.VOCABULARY_SIZE * fault_models.EMBEDDING_DIM
    + 2 * (7 * 128 * 128 + 128)
    + (128 * 128 + 128)
    + (128 + 1)
)
POLL_S = 0.005
EACCES, EDQUOT, ENOSPC, EROFS = errno.EACCES, errno.EDQUOT, errno.ENOSPC, errno.EROFS


UNSHARE = "unshare"
# Root's override of file permissions, dropped for the permission test.
_DAC_CAPABILITIES = "-dac_override,-dac_read_search"


def _works(command: list[str]) -> bool:
    try:
        probe = subprocess.run(command + ["true"], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return probe.returncode == 0


def _user_namespaces_work() -> bool:
    return _works([UNSHARE, "-Urm"])


def _root_can_mount() -> bool:
    """Root mounts in a mount namespace of its own, without a user namespace."""
    return os.geteuid() == 0 and _works([UNSHARE, "-m"])


def _root_can_drop_permissions() -> bool:
    return os.geteuid() == 0 and _works(
        ["setpriv", f"--inh-caps={_DAC_CAPABILITIES}"]
        + [f"--bounding-set={_DAC_CAPABILITIES}"]
    )


def error_paragraph(stderr: str) -> str:
    start = stderr.find("exporter: error: ")
    if start < 0:
        raise AssertionError(f"no exporter error in stderr:\n{stderr[-3000:]}")
    return stderr[start:].split("\n\n", 1)[0].rstrip("\n")


class FaultTest(absltest.TestCase):
    def cannot_run_here(self, reason: str):
        """Fails under CI, which has the privileges; elsewhere skips, saying so in a
        line ./test.sh counts (Bazel counts a skipped test as passed)."""
        if os.environ.get("CI", "").lower() in ("true", "1"):
            self.fail(
                f"{reason}, and CI (CI={os.environ['CI']}) must run this test: run it"
                " as root or where user namespaces are allowed"
            )
        print(f"NOT RUN HERE: {self.id()}: {reason}", flush=True)
        self.skipTest(reason)

    def setUp(self):
        super().setUp()
        self.tmp = self.create_tempdir().full_path
        self.mount = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mount)
        self.listing = os.path.join(self.tmp, "listing.txt")

    def run_on_tmpfs(self, options: str, args: list[str], fill: bool = False):
        """The exporter on a tmpfs mounted at self.mount with `options`, in namespaces of
        its own; self.listing gets every path left on the tmpfs after it exits (the
        tmpfs goes with the namespace). `fill` fills the tmpfs first."""
        if _user_namespaces_work():
            namespaces = [UNSHARE, "-Urm"]
        elif _root_can_mount():
            namespaces = [UNSHARE, "-m"]
        else:
            self.cannot_run_here(
                "mounting a tmpfs needs user namespaces (unshare -Urm) or root (unshare"
                " -m), and neither works here"
            )
        script = (
            'mount -t tmpfs -o "$1" tmpfs "$2" || exit 99; mnt=$2 listing=$3; shift 3; '
            + (
                'head -c 100000000 /dev/zero > "$mnt/fill" 2>/dev/null; '
                if fill
                else ""
            )
            + '"$@"; status=$?; (cd "$mnt" && find . -mindepth 1) > "$listing"; '
            + "exit $status"
        )
        proc = subprocess.run(
            [*namespaces, "sh", "-c", script, "sh", options, self.mount]
            + [self.listing, *testutil.exporter_command(), *args],
            env=testutil.child_env(),
            capture_output=True,
            text=True,
            timeout=testutil.TIMEOUT_S,
            check=False,
        )
        self.assertNotEqual(proc.returncode, 99, proc.stderr)
        return proc

    def left_on_tmpfs(self) -> list[str]:
        with open(self.listing) as f:
            return sorted(f.read().split())

    def test_disk_full_names_the_folder_the_system_error_and_the_size(self):
        out = os.path.join(self.mount, "out")
        proc = self.run_on_tmpfs(
            "size=4m",
            [
                BUILDER,
                f"--output_dir={out}",
                f"--manifest_out={self.mount}/manifest.json",
            ],
        )
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        message = error_paragraph(proc.stderr)
        self.assertNotIn("\n", message)
        megabytes = f"{VARIABLE_BYTES / 1e6:.1f} MB"
        self.assertStartsWith(
            message,
            f"exporter: error: --output_dir: writing the export into '{out}' failed: No"
            f" space left on device; the export needs at least {megabytes} (an estimate:"
            " the size of its variables), and the filesystem had 4.2 MB free when the"
            " export began. Free space on that filesystem, or choose another"
            " --output_dir with room.",
        )
        self.assertNotIn("TensorFlow could not save", proc.stderr)
        # No staging folder, no manifest, and the output folder it made is gone too.
        self.assertEqual(self.left_on_tmpfs(), [])

    def test_manifest_on_a_full_filesystem(self):
        out = os.path.join(self.tmp, "out")
        manifest = os.path.join(self.mount, "manifest.json")
        proc = self.run_on_tmpfs(
            "size=64k",
            [BUILDER, f"--output_dir={out}", f"--manifest_out={manifest}"],
            fill=True,
        )
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        self.assertStartsWith(
            error_paragraph(proc.stderr),
            f"exporter: error: --manifest_out: writing the manifest '{manifest}'"
            " failed: No space left on device. Free space on that filesystem, or choose"
            " another --manifest_out with room.",
        )
        self.assertEqual(self.left_on_tmpfs(), ["./fill"])  # no manifest.json.tmp-PID
        self.assertFalse(os.path.exists(out), "the export was left behind")

    def test_read_only_filesystem(self):
        out = os.path.join(self.mount, "out")
        proc = self.run_on_tmpfs("ro", [BUILDER, f"--output_dir={out}"])
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        self.assertStartsWith(
            error_paragraph(proc.stderr),
            "exporter: error: --output_dir: creating the export's temporary folder in"
            f" '{out}' failed: Read-only file system. Choose another --output_dir on"
            " a writable filesystem.",
        )

    def test_permission_denied(self):
        # Root's own files are then checked by their mode bits: in a user namespace
        # with no uid mapped (no -r), or without root's override capabilities.
        if _user_namespaces_work():
            unprivileged = [UNSHARE, "-U"]
        elif _root_can_drop_permissions():
            unprivileged = ["setpriv", f"--inh-caps={_DAC_CAPABILITIES}"]
            unprivileged.append(f"--bounding-set={_DAC_CAPABILITIES}")
        else:
            self.cannot_run_here(
                "a folder's permissions bind only without root's override: that needs"
                " user namespaces (unshare -U) or root (setpriv), and neither works here"
            )
        locked = os.path.join(self.tmp, "locked")
        os.mkdir(locked, 0o555)
        out = os.path.join(locked, "out")
        proc = subprocess.run(
            [*unprivileged, *testutil.exporter_command()]
            + [BUILDER, f"--output_dir={out}"],
            env=testutil.child_env(),
            capture_output=True,
            text=True,
            timeout=testutil.TIMEOUT_S,
            check=False,
        )
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        self.assertStartsWith(
            error_paragraph(proc.stderr),
            "exporter: error: --output_dir: creating the export's temporary folder in"
            f" '{out}' failed: Permission denied. Give this user write permission"
            " there, or choose another --output_dir.",
        )
        self.assertEqual(os.listdir(locked), [])

    def test_file_larger_than_the_process_may_write(self):
        out = os.path.join(self.tmp, "out")
        limit = 2**20

        def limit_file_size():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        proc = subprocess.run(
            testutil.exporter_command() + [BUILDER, f"--output_dir={out}"],
            env=testutil.child_env(),
            preexec_fn=limit_file_size,
            capture_output=True,
            text=True,
            timeout=testutil.TIMEOUT_S,
            check=False,
        )
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        self.assertStartsWith(
            error_paragraph(proc.stderr),
            f"exporter: error: --output_dir: writing the export into '{out}' failed:"
            " File too large; this process may write no file larger than 1.0 MB (its"
            " file size limit, ulimit -f), and the variables' data file takes"
            f" {VARIABLE_BYTES / 1e6:.1f} MB (an estimate: the size of its variables)."
            " Raise the file size limit (ulimit -f unlimited) and export again.",
        )
        self.assertFalse(os.path.exists(out))

    def test_write_errors_are_told_by_the_system_message(self):
        """TensorFlow's error types carry the system's message after the path
        (`<path>; <strerror>`); the type alone says nothing: ResourceExhaustedError is
        also what running out of memory raises."""
        out = os.path.join(self.tmp, "out")
        inside = f"{out}/.tmp-1-2-3-0123456789ab-4/variables/variables_temp"
        vocabulary = "/data/vocab.txt"
        for error_type, message, expected in (
            (
                tf.errors.ResourceExhaustedError,
                f"{inside}; Disk quota exceeded",
                EDQUOT,
            ),
            (
                tf.errors.ResourceExhaustedError,
                f"{inside}; No space left on device",
                ENOSPC,
            ),
            (tf.errors.OutOfRangeError, f"{inside}; File too large", errno.EFBIG),
            (
                tf.errors.FailedPreconditionError,
                f"{inside}; Read-only file system",
                EROFS,
            ),
            (tf.errors.PermissionDeniedError, f"{inside}; Permission denied", EACCES),
            (tf.errors.UnknownError, f"{inside}; Input/output error", errno.EIO),
            # A file read, not written: the model's own vocabulary.
            (tf.errors.PermissionDeniedError, f"{vocabulary}; Permission denied", None),
            (
                tf.errors.ResourceExhaustedError,
                "OOM when allocating tensor with shape[100000,100000]",
                None,
            ),
        ):
            with self.subTest(message=message):
                error = error_type(None, None, message)
                self.assertEqual(writer._system_errno(error, out), expected)

        staging = writer.Staging(f"{out}/.tmp", out, False, free_bytes=10**6)
        error = writer._write_error(
            "output_dir",
            tf.errors.ResourceExhaustedError(
                None, None, f"{inside}; Disk quota exceeded"
            ),
            EDQUOT,
            f"writing the export into '{out}'",
            staging,
        )
        self.assertEqual(
            str(error),
            f"--output_dir: writing the export into '{out}' failed: Disk quota exceeded."
            " Free space within your disk quota, or choose another --output_dir with"
            " room.",
        )


class InterruptTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = self.create_tempdir().full_path
        self.out = os.path.join(self.tmp, "out")
        self.children: list[subprocess.Popen] = []
        self.me = staging_owner.Owner.this_process()

    def tearDown(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.communicate()
        super().tearDown()

    def start(self, version: int, *extra: str) -> subprocess.Popen:
        child = testutil.start_exporter(
            [BUILDER, f"--output_dir={self.out}", f"--version={version}", *extra]
        )
        self.children.append(child)
        return child

    def staging_folder(self, **owner) -> str:
        """Makes a staging folder named for this process with `owner`'s changes."""
        name = dataclasses.replace(self.me, **owner).staging_name(1)
        path = os.path.join(self.out, name)
        os.makedirs(os.path.join(path, "variables"))
        return path

    def staging_of(self, child: subprocess.Popen) -> str:
        """Waits until `child` has made its staging folder; returns its path."""
        deadline = time.monotonic() + testutil.TIMEOUT_S
        while time.monotonic() < deadline:
            if os.path.isdir(self.out):
                for name in os.listdir(self.out):
                    owner = staging_owner.Owner.of_staging(name)
                    if owner and owner.pid == child.pid:
                        return os.path.join(self.out, name)
            if child.poll() is not None:
                raise AssertionError(
                    f"the exporter ended ({child.returncode}) before writing:\n"
                    + child.communicate()[1][-3000:]
                )
            time.sleep(POLL_S)
        raise AssertionError("the exporter never began writing")

    def test_sigterm_while_writing_leaves_nothing_and_says_so(self):
        manifest = os.path.join(self.tmp, "manifest.json")
        child = self.start(1, f"--manifest_out={manifest}")
        self.staging_of(child)
        child.send_signal(signal.SIGTERM)
        stdout, stderr = child.communicate(timeout=testutil.TIMEOUT_S)
        self.assertEqual(child.returncode, 128 + signal.SIGTERM, stderr[-3000:])
        self.assertEqual(
            stderr.rstrip("\n").splitlines()[-1],
            "exporter: interrupted by SIGTERM; nothing was written",
        )
        self.assertEqual(stdout, "")
        self.assertFalse(os.path.exists(self.out), "the output folder was left")
        self.assertEqual(os.listdir(self.tmp), [])  # no manifest, no manifest.tmp-PID

    def test_next_export_removes_a_killed_exporters_folder_but_not_a_live_ones(self):
        killed = self.start(1)
        killed_staging = self.staging_of(killed)
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=testutil.TIMEOUT_S)
        self.assertTrue(os.path.isdir(killed_staging), "SIGKILL leaves the folder")

        # A live exporter, held still while it writes.
        live = self.start(2)
        live_staging = self.staging_of(live)
        live.send_signal(signal.SIGSTOP)
        try:
            # Folders as other exporters would have left them. Named for this (live)
            # process's pid with another start time: one whose pid was reused since.
            reused = self.staging_folder(start=self.me.start + 1)
            # Counted on another machine (or before a reboot): no pid here says
            # anything about it. And from an exporter that could not read its start.
            elsewhere = self.staging_folder(boot="fedcba987654")
            unchecked = self.staging_folder(start=0)

            proc = testutil.run_exporter([BUILDER, f"--output_dir={self.out}"])
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            for kept in (elsewhere, unchecked):
                self.assertIn(f"note: kept '{kept}'", proc.stderr)
            self.assertFalse(os.path.exists(reused))
            self.assertEqual(
                sorted(os.listdir(self.out)),
                sorted(
                    ["1", *map(os.path.basename, (live_staging, elsewhere, unchecked))]
                ),
            )
        finally:
            live.send_signal(signal.SIGCONT)
        _, stderr = live.communicate(timeout=testutil.TIMEOUT_S)
        self.assertEqual(live.returncode, 0, stderr[-3000:])
        self.assertEqual(
            sorted(os.listdir(self.out)),
            sorted(["1", "2", *map(os.path.basename, (elsewhere, unchecked))]),
        )


if __name__ == "__main__":
    absltest.main()
