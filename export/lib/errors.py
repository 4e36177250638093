"""The one error type the exporter reports to users, formatted as a single paragraph."""

import traceback

# Keras error messages can embed whole model configs; keep the paragraph readable.
_MAX_CAUSE_CHARS = 700


def one_line(text: str) -> str:
    """Collapses whitespace (including newlines) so a message stays one paragraph."""
    return " ".join(str(text).split())


def describe(exc: BaseException, limit: int = _MAX_CAUSE_CHARS) -> str:
    """Returns `Type: message` of an exception, collapsed and shortened."""
    text = one_line(f"{type(exc).__name__}: {exc}")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()


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
