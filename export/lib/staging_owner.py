"""The staging folders of exports: their names say which process owns them.

An export writes its version folder under a temporary name in the output folder (the
staging folder) and renames it when complete. An exporter killed with SIGKILL (or a
crash, a power cut) leaves its staging folder behind; the next export into the same
folder removes it once it knows that exporter is gone, and never a running one's.

So the name records its owner: `.tmp-<version>-<pid>-<start>-<boot>-<pid namespace>`.
The pid alone would not do: pids are reused (hence the process's start time), and a pid
means nothing on another machine sharing the folder, after a reboot (the boot id) or in
another PID namespace, such as another container (the namespace's inode). A folder
whose owner this process cannot check is kept, with a note on stderr; without a /proc
of its own PID namespace (not Linux, or a foreign /proc), a process checks none.
"""

import dataclasses
import os
import re
import shutil
import sys

PREFIX = ".tmp-"


def name_for(version: int) -> str:
    """The name of this process's staging folder for `version`."""
    return Owner.this_process().staging_name(version)


@dataclasses.dataclass(frozen=True)
class Owner:
    """The process that owns a staging folder, as the folder's name records it."""

    pid: int
    start: int  # clock ticks from boot to the process's start (/proc/PID/stat)
    boot: str  # 12 hex digits of the machine's boot id
    pid_namespace: int  # the inode of the PID namespace the pid is counted in

    @classmethod
    def this_process(cls) -> "Owner":
        """This process; its start is 0 when /proc cannot tell (then no owner can be
        checked, and no other process can check this one)."""
        pid = os.getpid()
        start = _start_ticks(pid) if _proc_counts_our_pids() else None
        return cls(pid, start or 0, _boot_id(), _pid_namespace())

    @classmethod
    def of_staging(cls, name: str) -> "Owner | None":
        match = _STAGING_NAME.fullmatch(name)
        if not match:
            return None
        return cls(int(match[2]), int(match[3]), match[4], int(match[5]))

    def staging_name(self, version: int) -> str:
        return (
            f"{PREFIX}{version}-{self.pid}-{self.start}-{self.boot}"
            f"-{self.pid_namespace}"
        )

    def is_running(self) -> bool | None:
        """Whether the owner still runs; None when this process cannot see its pid."""
        me = Owner.this_process()
        same_pids = (self.boot, self.pid_namespace) == (me.boot, me.pid_namespace)
        if not (same_pids and me.start and self.start):
            return None
        # The same pid with another start time is another process: the pid was reused.
        return _start_ticks(self.pid) == self.start


_STAGING_NAME = re.compile(
    re.escape(PREFIX) + r"(\d+)-(\d+)-(\d+)-([0-9a-f]{12})-(\d+)"
)


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started; None when there is none, or only its zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return None
    # The fields after the command name, which may hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return None
    return int(fields[19])  # field 22 of proc(5)


def _proc_counts_our_pids() -> bool:
    """Whether /proc numbers processes as this process does: a /proc mounted for
    another PID namespace would show other processes under the same numbers."""
    try:
        with open("/proc/self/stat", encoding="utf-8") as f:
            return int(f.read().split(maxsplit=1)[0]) == os.getpid()
    except (OSError, ValueError):
        return False


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as f:
            return f.read().strip().replace("-", "")[:12]
    except OSError:
        return "0" * 12


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def remove_abandoned(output_dir: str) -> None:
    """Removes the staging folders whose exporters are gone; keeps those it cannot
    judge (another machine, boot or PID namespace) and says so."""
    for name in sorted(os.listdir(output_dir)):
        owner = Owner.of_staging(name)
        if owner is None:
            continue
        path = os.path.join(output_dir, name)
        running = owner.is_running()
        if running is False:
            shutil.rmtree(path, ignore_errors=True)
        elif running is None:
            print(
                f"note: kept '{path}', the temporary folder of an export by process"
                f" {owner.pid} on another machine, in another PID namespace or before a"
                " reboot, which this export cannot see; remove it once that export is"
                " no longer running",
                file=sys.stderr,
            )
