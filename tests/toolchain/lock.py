"""Reads the pins of requirements_lock.txt, for tests that compare them with imports."""

import os
import re

_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\;]+)")


def runfile(path: str) -> str:
    """Returns the absolute path of a file of this workspace in the test's runfiles."""
    return os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"], path)


def pins() -> dict[str, str]:
    """Maps each normalised package name in the lock to its pinned version."""
    result = {}
    with open(runfile("requirements_lock.txt")) as f:
        for line in f:
            match = _PIN.match(line)
            if match:
                result[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return result
