"""Prints the entries of a uv/pip-compile lock that the given packages need.

A user who installs only TensorFlow, Keras and absl locks just those and what they
require. rules_keras's lock says why each package is in it (`# via` lines, written by
`uv pip compile`): a package is needed when one of the packages it is there for is
needed. So those packages' entries, hashes included, are that user's lock.

  python3 core_lock.py requirements_lock.txt tensorflow-cpu keras absl-py
"""

import re
import sys


def read_entries(path: str) -> dict[str, tuple[list[str], set[str]]]:
    """Package name -> (its requirement and hash lines, the packages it is there for)."""
    entries: dict[str, tuple[list[str], set[str]]] = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            requirement = re.match(r"^([A-Za-z0-9_.-]+)==", line)
            if requirement:
                current = requirement.group(1).lower()
                entries[current] = ([line.rstrip("\n")], set())
            elif current and stripped.startswith("--hash="):
                entries[current][0].append(line.rstrip("\n"))
            elif current and stripped.startswith("#"):
                why = stripped.lstrip("#").strip().removeprefix("via").strip()
                if why and not why.startswith("-r "):
                    entries[current][1].add(why.lower())
    return entries


def needed(entries: dict, roots: list[str]) -> list[str]:
    wanted = {root.lower() for root in roots}
    missing = wanted - set(entries)
    if missing:
        raise SystemExit(f"core_lock.py: not in the lock: {sorted(missing)}")
    grew = True
    while grew:
        grew = False
        for name, (_, why) in entries.items():
            if name not in wanted and why & wanted:
                wanted.add(name)
                grew = True
    return sorted(wanted)


def main() -> None:
    path, roots = sys.argv[1], sys.argv[2:]
    entries = read_entries(path)
    for name in needed(entries, roots):
        lines = entries[name][0]
        # The last hash line ends the entry: no line continuation after it.
        lines[-1] = lines[-1].rstrip(" \\")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
