"""How an artifact rule's test gets its files: one way for every format.

The test macro (artifact_rule.bzl's artifact_test) makes `<test>.model_files`, a JSON
`{"format": rule, "files": {role: runfiles path}}` of the target's ArtifactInfo, and
passes it as `--artifact_files`; the test program asks for the files of its format.
"""

import json

from absl import flags

_PATHS = flags.DEFINE_multi_string(
    "artifact_files",
    [],
    "JSON (a test's `<name>.model_files`) of the runfiles paths of an artifact target's"
    " files by role. Repeatable: several targets, of one format or several.",
)


def of(rule: str) -> list[dict[str, str | None]]:
    """The files, role to runfiles path, of each --artifact_files target of `rule`."""
    result = []
    for path in _PATHS.value:
        with open(path, encoding="utf-8") as f:
            paths = json.load(f)
        if paths["format"] == rule:
            result.append(paths["files"])
    return result
