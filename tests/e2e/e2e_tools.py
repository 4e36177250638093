"""Helpers of the end-to-end scripts that are easier in Python than in bash.

Run with the system python3 (no Bazel, no TensorFlow):

    e2e_tools.py compare SUMS_A SUMS_B
        SUMS_* are `sha256sum` listings ("DIGEST  PATH" lines). Prints how many files
        were compared and how many are identical, lists each file that differs or exists
        on one side only, and exits 0 only if there is at least one file and all match.

    e2e_tools.py spawns EXECUTION_LOG_JSON MNEMONIC
        Reads Bazel's --execution_log_json_file (a stream of JSON objects, one per
        spawn) and prints "SPAWNS HITS MISSES RUNNERS" for the spawns of MNEMONIC: how
        many there were, how many were served by a disk or remote cache (remoteCacheHit),
        how many ran, and the runners seen (comma-separated, spaces as underscores).

    e2e_tools.py explain_misses FIRST_LOG SECOND_LOG MNEMONIC
        For each spawn of MNEMONIC that ran in SECOND_LOG (no cache hit), finds the
        spawn with the same outputs in FIRST_LOG and prints what differs between the two
        (inputs by digest, arguments, environment): the reason of a cache miss.

    e2e_tools.py free_port
        Prints a TCP port on 127.0.0.1 that was free a moment ago.

    e2e_tools.py connect HOST PORT
        Exits 0 if a TCP connection to HOST:PORT succeeds within 5 s.
"""

import json
import socket
import sys


def _read_sums(name: str) -> dict[str, str]:
    sums = {}
    with open(name, encoding="utf-8") as lines:
        for line in lines:
            digest, path = line.rstrip("\n").split("  ", 1)
            sums[path] = digest
    return sums


def compare(sums_a: str, sums_b: str) -> int:
    a, b = _read_sums(sums_a), _read_sums(sums_b)
    paths = sorted(set(a) | set(b))
    identical = [p for p in paths if p in a and p in b and a[p] == b[p]]
    print(
        f"  files compared: {len(paths)}, identical: {len(identical)}, "
        f"different: {len(paths) - len(identical)}"
    )
    for path in paths:
        if path not in b:
            print(f"    only in the first tree: {path}")
        elif path not in a:
            print(f"    only in the second tree: {path}")
        elif a[path] != b[path]:
            print(f"    differs: {path}")
    return 0 if paths and len(identical) == len(paths) else 1


def read_spawns(log_path: str) -> list[dict]:
    """The spawns of a Bazel 4 --execution_log_json_file: concatenated JSON objects, not
    an array (bench/compare.py reads its logs with this too)."""
    with open(log_path, encoding="utf-8") as log:
        text = log.read()
    decoder = json.JSONDecoder()
    spawns, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return spawns
        spawn, pos = decoder.raw_decode(text, pos)
        spawns.append(spawn)


def spawns(log_path: str, mnemonic: str) -> int:
    mine = [s for s in read_spawns(log_path) if s.get("mnemonic") == mnemonic]
    hits = sum(1 for s in mine if s.get("remoteCacheHit"))
    runners = sorted({str(s.get("runner") or "?").replace(" ", "_") for s in mine})
    print(len(mine), hits, len(mine) - hits, ",".join(runners) or "-")
    return 0


def _key_parts(spawn: dict) -> dict[str, str]:
    """What goes into a spawn's cache key, as name -> value."""
    parts = {
        f"input {i['path']}": (i.get("digest") or {}).get("hash", "")
        for i in spawn.get("inputs", [])
    }
    parts.update(
        {
            f"env {e['name']}": e.get("value", "")
            for e in spawn.get("environmentVariables", [])
        }
    )
    parts["arguments"] = " ".join(spawn.get("commandArgs", []))
    parts["platform"] = json.dumps(spawn.get("platform", {}), sort_keys=True)
    return parts


def explain_misses(first_log: str, second_log: str, mnemonic: str) -> int:
    first = {
        tuple(s.get("listedOutputs", [])): s
        for s in read_spawns(first_log)
        if s.get("mnemonic") == mnemonic
    }
    for spawn in read_spawns(second_log):
        if spawn.get("mnemonic") != mnemonic or spawn.get("remoteCacheHit"):
            continue
        outputs = tuple(spawn.get("listedOutputs", []))
        print(f"  miss: {spawn.get('progressMessage') or outputs}")
        earlier = first.get(outputs)
        if earlier is None:
            print("    no spawn with the same outputs in the first build")
            continue
        a, b = _key_parts(earlier), _key_parts(spawn)
        changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        for key in changed[:15]:
            print(
                f"    differs: {key}: {a.get(key, '(absent)')[:70]} -> {b.get(key, '(absent)')[:70]}"
            )
        if len(changed) > 15:
            print(f"    ... and {len(changed) - 15} more")
        if not changed:
            print(
                "    same inputs, arguments and environment (was the entry evicted, or not uploaded?)"
            )
    return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1])
    return 0


def connect(host: str, port: str) -> int:
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return 0
    except OSError:
        return 1


def main(argv: list[str]) -> int:
    commands = {
        "compare": (compare, 2),
        "spawns": (spawns, 2),
        "explain_misses": (explain_misses, 3),
        "free_port": (free_port, 0),
        "connect": (connect, 2),
    }
    if (
        len(argv) < 2
        or argv[1] not in commands
        or len(argv) - 2 != commands[argv[1]][1]
    ):
        print(__doc__, file=sys.stderr)
        return 2
    function, _ = commands[argv[1]]
    return function(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
