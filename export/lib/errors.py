"""The one error type the exporter reports to users, formatted as a single paragraph."""

import re
import traceback

# Keras error messages can embed whole model configs; keep the paragraph readable.
_MAX_CAUSE_CHARS = 700
# A bracketed span ({...} or [...]) longer than this is a config or a value dump.
_MAX_REPR_CHARS = 80
# Terminal control sequences (Keras makes the key sentence of a message bold).
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# Lines of a message that only repeat the arguments or config it was given.
_NOISE_LINE = re.compile(
    r"^•|^(?:args|kwargs|(?:received |full object )?config)\s*[=:]"
    r"|^(?:call )?arguments received by\b",
    re.IGNORECASE,
)


def strip_ansi(text: str) -> str:
    return _ANSI_ESCAPE.sub("", text)


def one_line(text: str) -> str:
    """Collapses whitespace (including newlines) so a message stays one paragraph."""
    return " ".join(strip_ansi(str(text)).split())


def describe(exc: BaseException, limit: int = _MAX_CAUSE_CHARS) -> str:
    """Returns `Type: message` of an exception in one line, without its noise.

    Configs and long value dumps are elided and lines that only echo the call's
    arguments are dropped. When the rest is still longer than `limit`, the first line
    (what failed) and the last one (usually why: Keras puts the original error last)
    are kept and the middle is cut.
    """
    lines = []
    for line in strip_ansi(str(exc)).splitlines():
        line = one_line(_elide_long_reprs(line))
        if line and not _NOISE_LINE.match(line):
            lines.append(line)
    head = f"{type(exc).__name__}:"
    text = " ".join([head] + lines)
    if len(text) <= limit or len(lines) < 2:
        return _shorten(text, limit)
    first, last = f"{head} {lines[0]}", lines[-1]
    last = _shorten(last, limit // 2) if len(last) > limit // 2 else last
    return f"{_shorten(first, limit - len(last) - 5)} ... {last}"


def _shorten(text: str, limit: int) -> str:
    """Cuts the middle out of `text` so it fits `limit`, keeping both ends."""
    if len(text) <= limit:
        return text
    keep = max(limit - 5, 2)
    return f"{text[: keep - keep // 3]} ... {text[len(text) - keep // 3 :]}"


def _elide_long_reprs(text: str) -> str:
    """Replaces each outermost {...} or [...] longer than _MAX_REPR_CHARS by {...}."""
    pairs = {"}": "{", "]": "["}
    stack: list[tuple[str, int]] = []
    spans = []
    for i, char in enumerate(text):
        if char in "{[":
            stack.append((char, i))
        elif char in pairs:
            if not stack or stack[-1][0] != pairs[char]:
                return text  # unbalanced (brackets inside quotes): leave it as it is
            _, start = stack.pop()
            if not stack and i + 1 - start > _MAX_REPR_CHARS:
                spans.append((start, i + 1))
    for start, end in reversed(spans):
        text = f"{text[:start]}{text[start]}...{text[end - 1]}{text[end:]}"
    return text


def format_traceback(exc: BaseException) -> str:
    return strip_ansi("".join(traceback.format_exception(exc)).rstrip())


class ExportError(Exception):
    """A problem with the export request or its inputs, explained for the user.

    The message names the flag at fault, the cause and the fix in one paragraph;
    `details` (e.g. a traceback from user code) follows after a blank line.
    """

    def __init__(self, flag: str, cause: str, fix: str, details: str | None = None):
        self.flag = flag
        self.cause = one_line(cause)
        self.fix = one_line(fix)
        self.details = details
        fix = self.fix[:1].upper() + self.fix[1:]
        message = f"{flag}: {_sentence(self.cause)} {_sentence(fix)}"
        if details:
            message += "\n\n" + details
        super().__init__(message)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
