"""A minimal remote-execution worker (bot) for BuildGrid, for rules_keras's e2e tests.

Speaks the Remote Workers API (Bots service): opens a bot session, long-polls
UpdateBotSession for leases, and for each lease (payload: an Action or its Digest)

1. reads the Action, its Command and the input root's Directory protos from the CAS;
2. stages the input root in a fresh folder: every file is a hardlink from a bot-local
   content-addressed cache (filled from the CAS on first use), so an 11,000-file
   toolchain is fetched once and staged in about a second afterwards;
3. runs the command under bubblewrap: a new mount namespace where only the input root
   (at /rex/root, writable) and the base system (/usr, its /bin and /lib links, a few
   files of /etc, a private /tmp, /proc, /dev) exist, with no network and no
   capabilities, and with the Command's environment only. Nothing else of the host
   (no /root, no /work, no output base) can be read, so an action that runs here reads
   only its declared inputs and the base system;
4. uploads the outputs (`output_files`, `output_directories` as Tree protos, and
   `output_paths`), stdout and stderr, and reports an ActionResult in the completed
   lease; BuildGrid stores it in its action cache.

One action per CPU at a time (--capacity). It is test infrastructure, not a production
worker: no cancellation, no resource limits, no output symlinks (a symlink among the
outputs is uploaded as the file it points to). Run with the BuildGrid venv's python
(it has grpc and the generated protos):

    bot.py --server 127.0.0.1:PORT --work-dir DIR [--bot-id NAME] [--capacity N]
"""

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import (
    remote_execution_pb2 as re_pb2,
)
from buildgrid._protos.build.bazel.remote.execution.v2 import (
    remote_execution_pb2_grpc as re_grpc,
)
from buildgrid._protos.google.bytestream import bytestream_pb2, bytestream_pb2_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import (
    bots_pb2,
    bots_pb2_grpc,
)
from buildgrid._protos.google.rpc import code_pb2

# Inside the sandbox the input root is here, the same path for every action.
SANDBOX_ROOT = "/rex/root"
# The base system an action may use; /etc only as the few files programs need.
SYSTEM_DIRS = ["/usr"]
SYSTEM_LINKS = ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]
ETC_FILES = [
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/localtime",
]
# Batch RPCs stay well under BuildGrid's 4 MiB request limit; bigger blobs use ByteStream.
BATCH_BYTES = 2 * 1024 * 1024
BATCH_COUNT = 400
CHUNK = 1024 * 1024
# UpdateBotSession is a long poll: the server holds it up to 80% of this while no job comes.
POLL_TIMEOUT_S = 30


def log(message: str) -> None:
    print(f"bot {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def digest_of(data: bytes) -> re_pb2.Digest:
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def file_digest(path: str) -> re_pb2.Digest:
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
            size += len(block)
    return re_pb2.Digest(hash=sha.hexdigest(), size_bytes=size)


def batches(digests, limit_bytes=BATCH_BYTES):
    """Groups small digests into batch requests; yields big ones alone."""
    batch, size = [], 0
    for digest in digests:
        if batch and (
            size + digest.size_bytes > limit_bytes or len(batch) >= BATCH_COUNT
        ):
            yield batch
            batch, size = [], 0
        batch.append(digest)
        size += digest.size_bytes
    if batch:
        yield batch


class Cas:
    """The server's CAS, with a local content-addressed cache of the blobs read."""

    def __init__(self, channel: grpc.Channel, cache_dir: str):
        self.cas = re_grpc.ContentAddressableStorageStub(channel)
        self.bytestream = bytestream_pb2_grpc.ByteStreamStub(channel)
        self.cache_dir = cache_dir
        os.makedirs(cache_dir, exist_ok=True)

    # --- reading
    def read(self, digest: re_pb2.Digest) -> bytes:
        if digest.size_bytes == 0:
            return b""
        if digest.size_bytes > BATCH_BYTES:
            return self._read_stream(digest)
        response = self.cas.BatchReadBlobs(
            re_pb2.BatchReadBlobsRequest(digests=[digest])
        )
        (blob,) = response.responses
        if blob.status.code != code_pb2.OK:
            raise RuntimeError(f"CAS has no {digest.hash}: {blob.status.message}")
        return blob.data

    def _read_stream(self, digest: re_pb2.Digest) -> bytes:
        name = f"blobs/{digest.hash}/{digest.size_bytes}"
        request = bytestream_pb2.ReadRequest(resource_name=name)
        return b"".join(r.data for r in self.bytestream.Read(request))

    def read_message(self, digest: re_pb2.Digest, message):
        message.ParseFromString(self.read(digest))
        return message

    def cached_path(self, digest: re_pb2.Digest, executable: bool) -> str:
        # Executable and plain copies are separate files: hardlinks share the mode.
        suffix = ".x" if executable else ""
        return os.path.join(self.cache_dir, digest.hash + suffix)

    def fetch_to_cache(self, files: list[tuple[re_pb2.Digest, bool]]) -> int:
        """Makes sure each (digest, executable) is in the local cache; returns how many
        blobs were downloaded."""
        missing = {}
        for digest, executable in files:
            if not os.path.exists(self.cached_path(digest, executable)):
                missing.setdefault(digest.hash, (digest, set()))[1].add(executable)
        small = [d for d, _ in missing.values() if d.size_bytes <= BATCH_BYTES]
        big = [d for d, _ in missing.values() if d.size_bytes > BATCH_BYTES]

        def store(digest, data):
            if hashlib.sha256(data).hexdigest() != digest.hash:
                raise RuntimeError(f"CAS returned wrong bytes for {digest.hash}")
            for executable in missing[digest.hash][1]:
                path = self.cached_path(digest, executable)
                tmp = f"{path}.{uuid.uuid4().hex}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                # Read-only: the sandbox drops root's capabilities, so an action cannot
                # write through its hardlink into the cache.
                os.chmod(tmp, 0o555 if executable else 0o444)
                os.replace(tmp, path)

        def fetch_batch(batch):
            response = self.cas.BatchReadBlobs(
                re_pb2.BatchReadBlobsRequest(digests=batch)
            )
            for blob in response.responses:
                if blob.status.code != code_pb2.OK:
                    raise RuntimeError(
                        f"CAS has no {blob.digest.hash}: {blob.status.message}"
                    )
                store(blob.digest, blob.data)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(fetch_batch, b) for b in batches(small)]
            jobs += [
                pool.submit(lambda d: store(d, self._read_stream(d)), d) for d in big
            ]
            for job in jobs:
                job.result()
        return len(missing)

    # --- writing
    def upload(self, blobs: dict[str, tuple[re_pb2.Digest, callable]]) -> None:
        """Uploads the blobs the server is missing. blobs: hash -> (digest, read), where
        read() returns the bytes."""
        if not blobs:
            return
        digests = [d for d, _ in blobs.values()]
        missing = []
        for batch in batches(digests, limit_bytes=1 << 62):
            response = self.cas.FindMissingBlobs(
                re_pb2.FindMissingBlobsRequest(blob_digests=batch)
            )
            missing.extend(response.missing_blob_digests)
        small = [d for d in missing if d.size_bytes <= BATCH_BYTES]
        for batch in batches(small):
            requests = [
                re_pb2.BatchUpdateBlobsRequest.Request(
                    digest=d, data=blobs[d.hash][1]()
                )
                for d in batch
            ]
            response = self.cas.BatchUpdateBlobs(
                re_pb2.BatchUpdateBlobsRequest(requests=requests)
            )
            for blob in response.responses:
                if blob.status.code != code_pb2.OK:
                    raise RuntimeError(
                        f"upload of {blob.digest.hash} failed: {blob.status.message}"
                    )
        for digest in (d for d in missing if d.size_bytes > BATCH_BYTES):
            self._write_stream(digest, blobs[digest.hash][1]())

    def _write_stream(self, digest: re_pb2.Digest, data: bytes) -> None:
        name = f"uploads/{uuid.uuid4()}/blobs/{digest.hash}/{digest.size_bytes}"

        def chunks():
            for offset in range(0, len(data), CHUNK):
                yield bytestream_pb2.WriteRequest(
                    resource_name=name,
                    write_offset=offset,
                    data=data[offset : offset + CHUNK],
                    finish_write=offset + CHUNK >= len(data),
                )

        self.bytestream.Write(chunks())


def stage_input_root(
    cas: Cas, root_digest: re_pb2.Digest, root: str
) -> tuple[int, int]:
    """Creates the input root under `root`; returns (files, blobs downloaded)."""
    # Directory protos, level by level: one batch of reads per level, and none once they
    # are in the local cache (an unchanged toolchain is the same tree every time).
    directories, level = {}, [root_digest]
    while level:
        wanted = {d.hash: d for d in level if d.hash not in directories}
        cas.fetch_to_cache([(d, False) for d in wanted.values()])
        level = []
        for digest in wanted.values():
            directory = re_pb2.Directory()
            directory.ParseFromString(read_file(cas.cached_path(digest, False)))
            directories[digest.hash] = directory
            level.extend(node.digest for node in directory.directories)

    files, links = [], []

    def walk(digest, path):
        os.makedirs(path, exist_ok=True)
        directory = directories[digest.hash]
        for node in directory.files:
            files.append(
                (node.digest, node.is_executable, os.path.join(path, node.name))
            )
        for node in directory.symlinks:
            links.append((node.target, os.path.join(path, node.name)))
        for node in directory.directories:
            walk(node.digest, os.path.join(path, node.name))

    walk(root_digest, root)
    downloaded = cas.fetch_to_cache([(d, x) for d, x, _ in files])
    for digest, executable, path in files:
        os.link(cas.cached_path(digest, executable), path)
    for target, path in links:
        os.symlink(target, path)
    return len(files), downloaded


def sandbox_argv(root: str, command: re_pb2.Command) -> list[str]:
    argv = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all"]
    argv += ["--cap-drop", "ALL", "--clearenv"]
    for path in SYSTEM_DIRS:
        argv += ["--ro-bind", path, path]
    for path in SYSTEM_LINKS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
    for path in ETC_FILES:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    argv += ["--bind", root, SANDBOX_ROOT]
    argv += ["--chdir", os.path.join(SANDBOX_ROOT, command.working_directory)]
    for variable in command.environment_variables:
        argv += ["--setenv", variable.name, variable.value]
    return argv + ["--", *command.arguments]


def collect_outputs(
    cas: Cas, workdir: str, command: re_pb2.Command
) -> re_pb2.ActionResult:
    """Uploads the outputs the action wrote and returns them as an ActionResult."""
    result = re_pb2.ActionResult()
    blobs = {}

    def add_file(path):
        digest = file_digest(path)
        blobs[digest.hash] = (digest, lambda: read_file(path))
        return digest

    def add_message(message):
        data = message.SerializeToString()
        digest = digest_of(data)
        blobs[digest.hash] = (digest, lambda: data)
        return digest

    def directory_proto(path, children):
        directory = re_pb2.Directory()
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isdir(full):
                child = directory_proto(full, children)
                children.append(child)
                directory.directories.add(name=name, digest=add_message(child))
            elif os.path.isfile(full):
                directory.files.add(
                    name=name,
                    digest=add_file(full),
                    is_executable=os.access(full, os.X_OK),
                )
        return directory

    def add_output(relative, want_dir):
        path = os.path.join(workdir, relative)
        if want_dir in (None, True) and os.path.isdir(path):
            tree = re_pb2.Tree()
            tree.root.CopyFrom(directory_proto(path, children := []))
            tree.children.extend(children)
            result.output_directories.add(path=relative, tree_digest=add_message(tree))
        elif want_dir in (None, False) and os.path.isfile(path):
            result.output_files.add(
                path=relative,
                digest=add_file(path),
                is_executable=os.access(path, os.X_OK),
            )

    for relative in command.output_files:
        add_output(relative, False)
    for relative in command.output_directories:
        add_output(relative, True)
    for relative in command.output_paths:
        add_output(relative, None)
    cas.upload(blobs)
    return result


def execute(
    cas: Cas, action_digest: re_pb2.Digest, work_dir: str
) -> re_pb2.ActionResult:
    action = cas.read_message(action_digest, re_pb2.Action())
    command = cas.read_message(action.command_digest, re_pb2.Command())
    root = os.path.join(work_dir, "actions", uuid.uuid4().hex)
    started = time.monotonic()
    try:
        files, downloaded = stage_input_root(cas, action.input_root_digest, root)
        staged = time.monotonic()
        workdir = os.path.join(root, command.working_directory)
        # The worker creates the outputs' parent folders (REAPI); outputs must not exist.
        for relative in [
            *command.output_files,
            *command.output_directories,
            *command.output_paths,
        ]:
            os.makedirs(os.path.dirname(os.path.join(workdir, relative)), exist_ok=True)
        timeout = action.timeout.seconds or None
        try:
            run = subprocess.run(
                sandbox_argv(root, command),
                check=False,
                capture_output=True,
                timeout=timeout,
            )
            exit_code, stdout, stderr = run.returncode, run.stdout, run.stderr
        except subprocess.TimeoutExpired as expired:
            exit_code, stdout = 124, expired.stdout or b""
            stderr = (
                expired.stderr or b""
            ) + f"\nbot: timed out after {timeout} s\n".encode()
        ran = time.monotonic()
        result = collect_outputs(cas, workdir, command)
        cas.upload(
            {digest_of(b).hash: (digest_of(b), lambda b=b: b) for b in (stdout, stderr)}
        )
        result.exit_code = exit_code
        result.stdout_digest.CopyFrom(digest_of(stdout))
        result.stderr_digest.CopyFrom(digest_of(stderr))
        log(
            f"{command.arguments[0].rsplit('/', 1)[-1]}: exit {exit_code}; {files} inputs"
            f" ({downloaded} fetched), staged in {staged - started:.1f} s, ran"
            f" {ran - staged:.1f} s, outputs uploaded in {time.monotonic() - ran:.1f} s"
        )
        return result
    finally:
        # Deleting ~11,000 links takes a while: not while the client waits.
        threading.Thread(target=shutil.rmtree, args=(root, True)).start()


def lease_action_digest(lease: bots_pb2.Lease) -> re_pb2.Digest:
    digest = re_pb2.Digest()
    if lease.payload.Unpack(digest):
        return digest
    action = re_pb2.Action()
    if lease.payload.Unpack(action):
        return digest_of(action.SerializeToString())
    raise RuntimeError(
        f"lease {lease.id}: payload {lease.payload.type_url} is not an Action"
    )


def run_lease(cas: Cas, lease: bots_pb2.Lease, work_dir: str) -> bots_pb2.Lease:
    """Executes the lease's action; returns the lease completed, with its result."""
    done = bots_pb2.Lease(id=lease.id, state=bots_pb2.LeaseState.Value("COMPLETED"))
    try:
        done.result.Pack(execute(cas, lease_action_digest(lease), work_dir))
        done.status.code = code_pb2.OK
    # Whatever went wrong is reported to Bazel as the action's failure.
    except Exception as error:  # noqa: BLE001
        log(f"lease {lease.id} failed: {error!r}")
        done.status.code = code_pb2.INTERNAL
        done.status.message = f"rules_keras e2e bot: {error!r}"
    return done


def serve(server: str, work_dir: str, bot_id: str, capacity: int) -> None:
    options = [("grpc.max_receive_message_length", 64 << 20)]
    channel = grpc.insecure_channel(server, options=options)
    cas = Cas(channel, os.path.join(work_dir, "cache"))
    bots = bots_pb2_grpc.BotsStub(channel)
    session = bots_pb2.BotSession(bot_id=bot_id, status=bots_pb2.BotStatus.Value("OK"))
    session.worker.configs.add(key="capacity", value=str(capacity))
    # A deadline this short makes the server answer at once instead of waiting for work.
    session = bots.CreateBotSession(
        bots_pb2.CreateBotSessionRequest(parent="", bot_session=session), timeout=3
    )
    log(f"session {session.name} open, {capacity} actions at a time")
    open(os.path.join(work_dir, "ready"), "w").close()
    pool = concurrent.futures.ThreadPoolExecutor(capacity)
    running: dict[str, concurrent.futures.Future] = {}
    while True:
        # Leases the server handed out are ACTIVE: start the new ones, replace the
        # finished ones by their COMPLETED copy; the others stay as they are (a
        # heartbeat).
        leases = []
        for lease in session.leases:
            if lease.state != bots_pb2.LeaseState.Value("ACTIVE"):
                continue
            if lease.id not in running:
                running[lease.id] = pool.submit(run_lease, cas, lease, work_dir)
            leases.append(lease)
        if running:
            # Report a finished action at once; poll for more work meanwhile.
            concurrent.futures.wait(
                running.values(), timeout=0.5, return_when="FIRST_COMPLETED"
            )
        for i, lease in enumerate(leases):
            if lease.id in running and running[lease.id].done():
                leases[i] = running.pop(lease.id).result()
        del session.leases[:]
        session.leases.extend(leases)
        try:
            session = bots.UpdateBotSession(
                bots_pb2.UpdateBotSessionRequest(
                    name=session.name, bot_session=session
                ),
                # While actions run, a deadline under the server's network timeout
                # makes it answer at once; idle, it holds the call until work comes.
                timeout=2 if running else POLL_TIMEOUT_S,
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                log(f"UpdateBotSession: {error.code().name}; retrying")
                time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="HOST:PORT of BuildGrid")
    parser.add_argument("--work-dir", required=True, help="cache and staging folder")
    parser.add_argument("--bot-id", default=f"rules-keras-e2e-bot-{os.getpid()}")
    parser.add_argument(
        "--capacity",
        type=int,
        default=os.cpu_count() or 1,
        help="actions run at a time (default: one per CPU)",
    )
    args = parser.parse_args()
    if shutil.which("bwrap") is None:
        print(
            "bot.py: bubblewrap (bwrap) not found: apt-get install bubblewrap",
            file=sys.stderr,
        )
        return 1
    # Running actions die with the bot (bubblewrap --die-with-parent).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    os.makedirs(args.work_dir, exist_ok=True)
    serve(args.server, os.path.abspath(args.work_dir), args.bot_id, args.capacity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
