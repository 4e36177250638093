"""Copies the running interpreter into a folder that works from any location.

Run by the python_venv repository rule with the base interpreter:

    python3 relocatable_python.py DEST

DEST gets bin/pythonX.Y, its shared libpython when the binary needs one, and the
standard library (without its tests, GUI tools, bundled pip and the base's own
site-packages). Python finds its prefix from the location of its binary, so the copy
works wherever DEST is staged: in a sandbox, a runfiles tree or a remote worker's input
root. ELF run paths that name the base installation are rewritten relative to $ORIGIN,
so the copy never loads a library from the base's folder. Prints DEST's interpreter.
"""

import os
import shutil
import struct
import sys
import sysconfig

# Parts of the standard library no build action needs, at its top level: the base's
# own packages, tests, GUI tools, the bundled pip and the static libpython (config-*).
_STDLIB_SKIPPED = {
    "dist-packages",
    "ensurepip",
    "idlelib",
    "site-packages",
    "tkinter",
    "turtledemo",
    "EXTERNALLY-MANAGED",
}

# Skipped at any depth: byte code (compiled again for the copy) and packages' tests.
_SKIPPED_ANYWHERE = {"__pycache__", "test", "tests"}

_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_RPATH = 15
_DT_RUNPATH = 29
_PT_LOAD = 1
_PT_DYNAMIC = 2


class _Elf:
    """The dynamic section of a 64-bit little-endian ELF file (Linux x86_64, aarch64)."""

    def __init__(self, data):
        self.data = data
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError("not a 64-bit little-endian ELF file")
        (phoff,) = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        self.loads = []
        dynamic = None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
                "<IIQQQQQQ", data, phoff + i * phentsize
            )
            if p_type == _PT_LOAD:
                self.loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == _PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
        self.entries = []
        if dynamic is None:
            return
        offset, size = dynamic
        for pos in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 0:
                break
            self.entries.append((tag, value))
        strtab = [v for t, v in self.entries if t == _DT_STRTAB]
        self.strtab = self._file_offset(strtab[0]) if strtab else None

    def _file_offset(self, vaddr):
        for start, offset, size in self.loads:
            if start <= vaddr < start + size:
                return offset + vaddr - start
        raise ValueError(f"address {vaddr:#x} is in no loaded segment")

    def string_at(self, index):
        start = self.strtab + index
        return self.data[start : self.data.index(b"\0", start)].decode()

    def needed(self):
        return [self.string_at(v) for t, v in self.entries if t == _DT_NEEDED]

    def run_paths(self):
        """(file offset, value) of each DT_RPATH and DT_RUNPATH string."""
        return [
            (self.strtab + v, self.string_at(v))
            for t, v in self.entries
            if t in (_DT_RPATH, _DT_RUNPATH)
        ]


def _read_elf(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    try:
        return _Elf(data)
    except (ValueError, struct.error):
        return None


def _relocate_run_paths(path, base_dirs, dest_lib):
    """Rewrites run path entries of `path` inside base_dirs to $ORIGIN-relative ones."""
    elf = _read_elf(path)
    if elf is None or elf.strtab is None:
        return
    changed = False
    for offset, value in elf.run_paths():
        entries = []
        for entry in value.split(":"):
            if any(entry == d or entry.startswith(d + "/") for d in base_dirs):
                relative = os.path.relpath(dest_lib, os.path.dirname(path))
                entry = "$ORIGIN" if relative == "." else "$ORIGIN/" + relative
            entries.append(entry)
        new = ":".join(entries).encode()
        if new == value.encode():
            continue
        if len(new) > len(value.encode()):
            sys.exit(
                f"cannot relocate {path}: the run path {new.decode()!r} does not fit in place of {value!r}"
            )
        # The string table entry is NUL-terminated: a shorter string padded with NULs
        # is read as the new value, and no other offset in the file moves.
        elf.data[offset : offset + len(value)] = new.ljust(len(value), b"\0")
        changed = True
    if changed:
        mode = os.stat(path).st_mode
        os.chmod(path, mode | 0o200)
        with open(path, "wb") as f:
            f.write(elf.data)
        os.chmod(path, mode)


def _copy_stdlib(source, dest):
    def skipped(folder, names):
        top = os.path.samefile(folder, source)
        return [
            n
            for n in names
            if n in _SKIPPED_ANYWHERE
            or (top and (n in _STDLIB_SKIPPED or n.startswith("config-")))
        ]

    shutil.copytree(source, dest, ignore=skipped, symlinks=False)


def main(dest):
    version = "{}.{}".format(*sys.version_info[:2])
    binary = os.path.realpath(sys.executable)
    dest = os.path.abspath(dest)
    dest_bin = os.path.join(dest, "bin")
    dest_lib = os.path.join(dest, "lib")
    os.makedirs(dest_bin)
    os.makedirs(dest_lib)
    dest_python = os.path.join(dest_bin, "python" + version)
    shutil.copy2(binary, dest_python)

    libdir = sysconfig.get_config_var("LIBDIR") or ""
    elf = _read_elf(binary)
    for name in elf.needed() if elf else []:
        if name.startswith("libpython"):
            shutil.copy2(os.path.join(libdir, name), os.path.join(dest_lib, name))

    stdlib = sysconfig.get_paths()["stdlib"]
    dest_stdlib = os.path.join(dest_lib, os.path.basename(stdlib))
    _copy_stdlib(stdlib, dest_stdlib)

    named = {d for d in (sys.base_prefix, sys.base_exec_prefix, libdir) if d}
    base_dirs = sorted(named | {os.path.realpath(d) for d in named})
    # Only a dedicated prefix (pyenv, a source build) can be named in a run path; a
    # system python's libdir (/usr/lib/...) holds the system's own libraries.
    base_dirs = [
        d
        for d in base_dirs
        if d not in ("/usr", "/usr/local", "/") and not d.startswith("/usr/lib")
    ]
    for folder, _, names in os.walk(dest):
        for name in names:
            path = os.path.join(folder, name)
            if name == "python" + version or ".so" in name:
                _relocate_run_paths(path, base_dirs, dest_lib)
    print(dest_python)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
