"""Writing a program's output files so that a failure leaves none half-written.

Every artifact format writes its files (a manifest, a converted model) this way: the
bytes go to a temporary file in the same folder, which is then renamed over the path,
so a reader sees the whole file or none. No TensorFlow here.
"""

import json
import os
from typing import Any


def json_text(value: Any) -> str:
    """A manifest's text: sorted keys, indented, ending with a newline (the same bytes
    for the same value)."""
    return json.dumps(value, sort_keys=True, indent=2) + "\n"


def write_atomically(path: str, content: bytes) -> None:
    """Writes `content` to `path` through a temporary file and a rename, creating the
    folder if needed. On any failure (an OSError, an interrupt) the temporary file is
    removed and the error raised; the caller names it in the user's terms."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_files(files: list[tuple[str, str, bytes]]) -> None:
    """Writes each `(path, setting, content)` with write_atomically; a path that cannot
    be written raises the ExportError naming its setting (the flag the path came from)."""
    from export.lib.errors import ExportError

    for path, name, content in files:
        try:
            write_atomically(path, content)
        except OSError as e:
            raise ExportError(
                name,
                f"cannot write '{path}' ({e.strerror or e})",
                "choose a writable path",
            ) from None
