"""Releasing a keras_saved_model export: `<name>.sign`, `<name>.verify` and `<name>.push`.

    bazel run //models:my_export.sign -- --private_key=key.pem
    bazel run //models:my_export.verify -- --public_key=pub.pem [--model_dir=DIR/1]
    bazel run //models:my_export.push -- --model_base_path=DIR [--signature=... --public_key=...]

What is signed (OpenSSF model-signing, an elliptic-curve key, offline) is the export's
version folder and its `<name>.provenance.json`, seen as one folder `<name>/` holding
`saved_model/<the version folder's files>` and `provenance.json`, so the signature
does not depend on where the folder lies or on its version number. The provenance lists
every file's SHA-256, so a folder is also checked against it.

Standard library only, until a step needs more: model-signing for a signature,
tensorflow-serving-api's protos for `models.config`. Relative paths are taken from the
folder `bazel run` was started in. Internal to rules_keras.
"""

import argparse
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import sys
import tempfile

# A folder is checked against its provenance with the digests and file list the
# provenance was made with (a sibling module: both programs run from this folder).
from provenance import files_of, sha256_of

# TF Serving loads the folders of a model base path whose names are numbers and ignores
# the others: the staging folders and the lock file are hidden names.
_STAGING_PREFIX = ".push-"
_LOCK_NAME = ".rules_keras_push.lock"
_VERSION_NAME = re.compile(r"^[0-9]+$")


class ReleaseError(Exception):
    """A bad input or a fault, told as one paragraph."""


# ---------------------------------------------------------------------------
# Optional packages: imported only by the step that needs them.


def _missing_package(step, package, pins, error):
    lines = " and ".join(f"`{pin}`" for pin in pins)
    return ReleaseError(
        f"{step} needs the Python package {package}, which is not installed here "
        f"({error}). Add {lines} to the requirements.in of the lock your "
        "rules_keras_dependencies() installs (rules_keras's own lock has them), "
        "regenerate the lock (tools/update_lock.sh) and run again."
    )


def import_model_signing(step):
    """model-signing's signing, verifying and hashing modules."""
    try:
        from model_signing import hashing, signing, verifying
    except ImportError as error:
        # model-signing imports OpenSSL without declaring pyOpenSSL.
        raise _missing_package(
            step, "model-signing", ["model-signing==1.1.1", "pyOpenSSL==26.4.0"], error
        ) from None
    return hashing, signing, verifying


def import_model_server_config(step):
    try:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as error:
        raise _missing_package(
            step, "tensorflow-serving-api", ["tensorflow-serving-api==2.21.0"], error
        ) from None
    return model_server_config_pb2, text_format


# ---------------------------------------------------------------------------
# The export and its provenance.


def user_path(path):
    """A path the user typed, relative to where `bazel run` was started."""
    return os.path.join(
        os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd()), os.path.expanduser(path)
    )


def runfile(path):
    """A `$(rootpath)` of the program's data, found from the current folder or the runfiles."""
    if os.path.exists(path):
        return path
    roots = [
        os.environ.get("RUNFILES_DIR", ""),
        os.path.abspath(sys.argv[0]) + ".runfiles",
    ]
    for root in filter(os.path.isdir, roots):
        for repository in sorted(os.listdir(root)):
            candidate = os.path.normpath(os.path.join(root, repository, path))
            if os.path.exists(candidate):
                return candidate
    raise ReleaseError(
        f"cannot find {path} in the runfiles; run the program with `bazel run`."
    )


class Export:
    """The built export: its version folder, version and provenance."""

    def __init__(self, saved_model, target):
        self.target = target
        self.name = os.path.basename(saved_model.rstrip("/"))
        base_dir = runfile(saved_model)
        versions = [n for n in os.listdir(base_dir) if _VERSION_NAME.match(n)]
        if len(versions) != 1:
            raise ReleaseError(
                f"{target}: expected one version folder in {base_dir}, found {versions}."
            )
        self.version = int(versions[0])
        self.folder = os.path.join(base_dir, versions[0])
        self.provenance = runfile(saved_model.rstrip("/") + ".provenance.json")


def read_subject(provenance):
    """The provenance's subject: file name to SHA-256."""
    try:
        with open(provenance, encoding="utf-8") as f:
            statement = json.load(f)
        return {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReleaseError(
            f"cannot read the provenance {provenance}: {error}."
        ) from None


def check_against_provenance(folder, provenance):
    """Raises naming the first file of `folder` that the provenance does not list as it is."""
    expected = read_subject(provenance)
    actual = files_of(folder)
    for name in actual:
        if name not in expected:
            raise ReleaseError(
                f"{os.path.join(folder, name)} is an extra file: the provenance {provenance} does not list it."
            )
    for name in sorted(expected):
        path = os.path.join(folder, name)
        if name not in actual:
            raise ReleaseError(
                f"{path} is missing: the provenance {provenance} lists it."
            )
        if sha256_of(path) != expected[name]:
            raise ReleaseError(
                f"{path} was changed: its SHA-256 is not the {expected[name][:16]}... that the provenance {provenance} records."
            )


# ---------------------------------------------------------------------------
# Signing and verifying.


def signed_view(name, folder, provenance, scratch):
    """The folder that is signed: `<name>/saved_model/...` and `<name>/provenance.json`,
    links to the real files (a link per file: model-signing does not enter linked folders)."""
    view = os.path.join(scratch, name)
    for relative in files_of(folder):
        link = os.path.join(view, "saved_model", relative)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.realpath(os.path.join(folder, relative)), link)
    os.makedirs(view, exist_ok=True)
    os.symlink(os.path.realpath(provenance), os.path.join(view, "provenance.json"))
    return view


def readable_key(flag, path):
    if not path:
        raise ReleaseError(
            f"--{flag} is required: the PEM file of an elliptic-curve key (P-256, P-384 or P-521)."
        )
    full = user_path(path)
    try:
        with open(full, "rb"):
            pass
    except OSError as error:
        raise ReleaseError(
            f"--{flag}={path}: cannot read the key {full}: {error.strerror}."
        ) from None
    return full


def sign(export, private_key, signature):
    hashing, signing, _ = import_model_signing(f"{export.target}.sign")
    key = readable_key("private_key", private_key)
    # Sign only what the build made: a changed file in bazel-out is not signed.
    check_against_provenance(export.folder, export.provenance)
    output = user_path(signature)
    with tempfile.TemporaryDirectory() as scratch:
        view = signed_view(export.name, export.folder, export.provenance, scratch)
        try:
            config = signing.Config().use_elliptic_key_signer(private_key=key)
        except ValueError as error:
            raise ReleaseError(
                f"--private_key={private_key}: {key} is not an elliptic-curve private key ({error})."
            ) from None
        config.set_hashing_config(hashing.Config().set_allow_symlinks(True))
        partial = f"{output}.{os.getpid()}.tmp"
        try:
            config.sign(view, partial)
            os.replace(partial, output)
        except OSError as error:
            raise ReleaseError(
                f"--signature={signature}: cannot write {output}: {error.strerror}."
            ) from None
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    return output


def verify(export, folder, provenance, public_key, signature):
    """Checks `folder` and `provenance` against the signature and the public key."""
    hashing, _, verifying = import_model_signing(f"{export.target}.verify")
    key = readable_key("public_key", public_key)
    signature_path = user_path(signature)
    if not os.path.isfile(signature_path):
        raise ReleaseError(
            f"--signature={signature}: no signature file {signature_path}; make it with {export.target}.sign."
        )
    if not os.path.isdir(folder):
        raise ReleaseError(f"{folder} is not a folder.")
    if not os.path.isfile(provenance):
        raise ReleaseError(f"no provenance file {provenance}.")
    with tempfile.TemporaryDirectory() as scratch:
        view = signed_view(export.name, folder, provenance, scratch)
        try:
            config = verifying.Config().use_elliptic_key_verifier(public_key=key)
        except ValueError as error:
            raise ReleaseError(
                f"--public_key={public_key}: {key} is not an elliptic-curve public key ({error})."
            ) from None
        # Set, not guessed from the signature: model-signing 1.1.1's guess drops
        # allow_symlinks, and the view is links.
        config.set_hashing_config(hashing.Config().set_allow_symlinks(True))
        try:
            config.verify(view, signature_path)
        except ValueError as error:
            if str(error).startswith("Key mismatch"):
                raise ReleaseError(
                    f"the signature {signature_path} was not made with the key of --public_key={public_key}."
                ) from None
            if not str(error).startswith("Signature mismatch"):
                raise ReleaseError(
                    f"the signature {signature_path} cannot be checked: {error}"
                ) from None
            # The signed manifest covers the provenance too: name the file that differs.
            signed_provenance_ok = not re.search(r"[^/]provenance\.json", str(error))
            if signed_provenance_ok:
                check_against_provenance(folder, provenance)
            raise ReleaseError(
                f"{provenance} is not the provenance that was signed."
                if not signed_provenance_ok
                else f"{folder} is not the signed export: {error}"
            ) from None
    # Signed together, so they agree; checked anyway, as the step promises.
    check_against_provenance(folder, provenance)


# ---------------------------------------------------------------------------
# Pushing to a model base path.


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_synced(source, destination):
    """Copies the folder `source` to `destination`, every file and folder fsynced."""
    os.mkdir(destination)
    for relative in files_of(source):
        target = os.path.join(destination, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with (
            open(os.path.join(source, relative), "rb") as src,
            open(target, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
    for root, dirs, _ in os.walk(destination, topdown=False):
        for name in dirs:
            fsync_path(os.path.join(root, name))
    fsync_path(destination)


def versions_in(base_path):
    return sorted(int(n) for n in os.listdir(base_path) if _VERSION_NAME.match(n))


def same_files(folder, provenance):
    try:
        check_against_provenance(folder, provenance)
    except ReleaseError:
        return False
    return True


def remove_stale_staging(base_path):
    """Removes the staging folders of pushes whose process is gone (killed)."""
    for name in os.listdir(base_path):
        match = re.match(re.escape(_STAGING_PREFIX) + r"[0-9]+-([0-9]+)-", name)
        if not match:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base_path, name), ignore_errors=True)
        except PermissionError:
            pass


class BasePathLock:
    """An exclusive lock on a model base path, held while a version is chosen and renamed
    into place and models.config is rewritten; copies run outside it."""

    def __init__(self, base_path):
        self.path = os.path.join(base_path, _LOCK_NAME)

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def update_model_config(config_path, model_name, base_path, version, label, step):
    """Adds or updates the model's entry of a ModelServerConfig text proto, atomically."""
    pb2, text_format = import_model_server_config(step)
    config = pb2.ModelServerConfig()
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            try:
                text_format.Parse(f.read(), config)
            except text_format.ParseError as error:
                raise ReleaseError(
                    f"--model_config: {config_path} is not a ModelServerConfig text proto ({error})."
                ) from None
    entries = [c for c in config.model_config_list.config if c.name == model_name]
    if entries:
        entry = entries[0]
    else:
        entry = config.model_config_list.config.add()
        entry.name = model_name
        entry.model_platform = "tensorflow"
    entry.base_path = base_path
    if label:
        entry.version_labels[label] = version
    if entry.version_labels:
        # TF Serving serves a label only for a loaded version: load exactly those.
        wanted = sorted(set(entry.version_labels.values()) | {version})
        entry.model_version_policy.specific.ClearField("versions")
        entry.model_version_policy.specific.versions.extend(wanted)
    partial = f"{config_path}.{os.getpid()}.tmp"
    try:
        with open(partial, "w", encoding="utf-8") as f:
            f.write(text_format.MessageToString(config))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, config_path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def push(export, args):
    if not args.model_base_path:
        raise ReleaseError(
            "--model_base_path is required: the folder TF Serving's --model_base_path points at."
        )
    if bool(args.public_key) != bool(args.signature):
        raise ReleaseError(
            "--signature and --public_key go together: give both to verify the export before the push, or neither."
        )
    if args.version is not None and args.next_version:
        raise ReleaseError("--version and --next_version exclude each other: give one.")
    if args.signature:
        verify(
            export, export.folder, export.provenance, args.public_key, args.signature
        )
    base_path = os.path.abspath(user_path(args.model_base_path))
    try:
        os.makedirs(base_path, exist_ok=True)
        os.listdir(base_path)
        if not os.access(base_path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as error:
        raise ReleaseError(
            f"--model_base_path={args.model_base_path}: cannot use {base_path}: {error.strerror}. "
            "Point it at a folder you can read and write."
        ) from None
    staging = os.path.join(
        base_path,
        f"{_STAGING_PREFIX}{export.version}-{os.getpid()}-{os.urandom(4).hex()}",
    )
    try:
        try:
            copy_synced(export.folder, staging)
        except OSError as error:
            raise ReleaseError(
                f"--model_base_path={args.model_base_path}: copying the export into {base_path} failed: "
                f"{error.strerror} ({error.filename or base_path}). Nothing was published; free space "
                "or fix the folder and push again."
            ) from None
        # What is renamed into place is what was signed and built.
        check_against_provenance(staging, export.provenance)
        with BasePathLock(base_path):
            remove_stale_staging(base_path)
            existing = versions_in(base_path)
            if args.next_version:
                version = max(existing, default=export.version - 1) + 1
            else:
                version = export.version if args.version is None else args.version
            final = os.path.join(base_path, str(version))
            if os.path.exists(final):
                if not same_files(final, export.provenance):
                    raise ReleaseError(
                        f"{final} already holds a different model: a pushed version is never overwritten. "
                        "Use --next_version to push as the next number, or --version=N for another one."
                    )
                print(f"{final} already holds this export; nothing copied.")
            else:
                try:
                    os.rename(staging, final)
                except OSError as error:
                    if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    # Only a writer that does not take the lock gets here.
                    raise ReleaseError(
                        f"{final} appeared while this push was publishing it: another program writes "
                        f"into {base_path} without {_LOCK_NAME}. Push again."
                    ) from None
                fsync_path(base_path)
                print(f"Pushed {export.target} to {final}")
            if args.model_config:
                config_path = os.path.abspath(user_path(args.model_config))
                update_model_config(
                    config_path,
                    args.model_name or export.name,
                    base_path,
                    version,
                    args.label,
                    f"{export.target}.push",
                )
                print(f"Updated {config_path}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version


# ---------------------------------------------------------------------------


def build_parser():
    """The flags of the three programs (tests/docs:surface_test reads them)."""
    parser = argparse.ArgumentParser(prog="release", description=__doc__)
    parser.add_argument("step", choices=["sign", "verify", "push"])
    parser.add_argument(
        "--saved_model",
        required=True,
        help="(set by the macro) the export folder's runfiles path",
    )
    parser.add_argument(
        "--target", required=True, help="(set by the macro) the export's label"
    )
    parser.add_argument(
        "--private_key", help="sign: the PEM private key (elliptic curve)"
    )
    parser.add_argument("--public_key", help="verify, push: the PEM public key")
    parser.add_argument("--signature", help="the signature file (default: <name>.sig)")
    parser.add_argument(
        "--model_dir",
        help="verify: a version folder to check (default: the built export's)",
    )
    parser.add_argument(
        "--provenance", help="verify: the provenance (default: the built export's)"
    )
    parser.add_argument("--model_base_path", help="push: TF Serving's model base path")
    parser.add_argument(
        "--version", type=int, help="push: the version number (default: the export's)"
    )
    parser.add_argument(
        "--next_version",
        action="store_true",
        help="push: one more than the largest there",
    )
    parser.add_argument(
        "--model_config", help="push: a ModelServerConfig text file to write or update"
    )
    parser.add_argument(
        "--model_name",
        help="push: the model's name in --model_config (default: <name>)",
    )
    parser.add_argument(
        "--label",
        help="push: a version label for the pushed version, e.g. stable or canary",
    )
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    step = f"{args.target}.{args.step}"
    # A stopped push (SIGTERM, Ctrl-C) unwinds, so its staging folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        export = Export(args.saved_model, args.target)
        args.signature = args.signature or (
            f"{export.name}.sig" if args.step != "push" or args.public_key else None
        )
        if args.step == "sign":
            print(
                f"Signed {export.target} and its provenance: {sign(export, args.private_key, args.signature)}"
            )
        elif args.step == "verify":
            folder = (
                os.path.abspath(user_path(args.model_dir))
                if args.model_dir
                else os.path.abspath(export.folder)
            )
            provenance = (
                os.path.abspath(user_path(args.provenance))
                if args.provenance
                else export.provenance
            )
            verify(export, folder, provenance, args.public_key, args.signature)
            print(
                f"Verified {args.model_dir or 'the export of ' + export.target}: signed by the key of "
                f"{args.public_key}, every file as the provenance records."
            )
        else:
            push(export, args)
    except ReleaseError as error:
        print(f"{step}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{step}: stopped; nothing half-written was left.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
