"""The one error type the exporter reports to users, formatted as a single paragraph.

A message names the setting at fault and, where it tells the user what to set, carries
the setting and the value as data: `setting("label_specs", {"probs": "None:int64"})`.
Reading it in the user's own terms is then formatting: on the command line a setting is
its flag (`--label_specs=probs=None:int64`, `--noverify`), for a keras_saved_model target
its attribute (`label_specs = {"probs": "None:int64"}`, `verify = False`) after the
target's label. The names are those of export/settings.bzl, the same in both.

    raise ExportError(
        "label_specs",
        f"the compiled loss fails on labels {shown}",
        ["state the labels, e.g. ", setting("label_specs", {"probs": "None:int64"})],
    )
"""

import json
import re
import traceback
from collections.abc import Sequence
from typing import Any

from export.lib import settings

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
# What Mention.value holds when the message names a setting without a value.
_UNSET = object()


def strip_ansi(text: str) -> str:
    return _ANSI_ESCAPE.sub("", text)


def one_line(text: str) -> str:
    """Collapses whitespace (including newlines) so a message stays one paragraph."""
    return " ".join(strip_ansi(str(text)).split())


def describe_exception(exc: BaseException, limit: int = _MAX_CAUSE_CHARS) -> str:
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


class Mention:
    """A setting named inside a message, optionally with the value to set it to.

    It reads as the flag on the command line (`--label_specs=probs=None:int64`,
    `--noverify`) and as the attribute under Bazel (`label_specs = {"probs":
    "None:int64"}`, `verify = False`). Make one with `setting(...)`.
    """

    def __init__(self, name: str, value: Any = _UNSET):
        self.setting = settings.get(name)
        self.value = value

    def for_command_line(self) -> str:
        if self.value is _UNSET:
            return f"--{self.setting.name}"
        return " ".join(settings.flags_for(self.setting.name, self.value))

    def for_target(self) -> str:
        if not self.setting.is_attribute:
            return self.for_command_line()  # the rule sets it: there is no attribute
        name, value, kind = self.setting.name, self.value, self.setting.type
        if value is _UNSET:
            return name
        if name == "version" and value == "timestamp":
            return "stamp = 1"
        return f"{name} = {_starlark(kind, value)}"


def setting(name: str, value: Any = _UNSET) -> Mention:
    """The setting `name` in a message; with `value`, the setting set to that value."""
    return Mention(name, value)


def _starlark(kind: str, value: Any) -> str:
    if kind == "bool":
        return "True" if value else "False"
    if kind in ("int", "float"):
        return str(value)
    if kind == "string_dict":
        items = ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in value.items())
        return "{" + items + "}"
    if kind in ("string_list", "path_list"):
        values = value.split(",") if isinstance(value, str) else value
        return "[" + ", ".join(_quote(v) for v in values) + "]"
    return _quote(value)


def _quote(value: Any) -> str:
    return json.dumps(str(value))


# A message's text: a string, or a sequence of strings and Mentions.
Text = str | Sequence[str | Mention]


def _render(text: Text, target: bool) -> str:
    parts = [text] if isinstance(text, str) else list(text)
    return one_line(
        "".join(
            part
            if isinstance(part, str)
            else (part.for_target() if target else part.for_command_line())
            for part in parts
        )
    )


class ExportError(Exception):
    """A problem with the export request or its inputs, explained for the user.

    `setting` names the setting at fault (`"label_specs"`), or several
    (`("builder", "src")`); `cause` and `fix` say what is wrong and how to fix it, as a
    string or a sequence of strings and `setting(...)` mentions; `details` (e.g. a
    traceback from user code) follows after a blank line. The message is one paragraph:
    in the exporter's flags by default, and in a keras_saved_model target's attributes
    with `render(target)`.
    """

    def __init__(
        self,
        setting: str | tuple[str, ...],
        cause: Text,
        fix: Text,
        details: str | None = None,
    ):
        self.setting = setting
        self.settings = (setting,) if isinstance(setting, str) else tuple(setting)
        for name in self.settings:
            settings.get(name)  # a typo in a setting's name fails here, in tests
        self._cause, self._fix = cause, fix
        self.cause = _render(cause, target=False)
        self.fix = _render(fix, target=False)
        self.details = details
        super().__init__(self.render())

    def render(self, target: str | None = None) -> str:
        """The message; with `target` (a keras_saved_model label), in its attributes."""
        in_target = target is not None
        cause = _render(self._cause, in_target)
        fix = _render(self._fix, in_target)
        first = self._fix if isinstance(self._fix, str) else next(iter(self._fix), "")
        if isinstance(first, str):  # a setting's name keeps its case
            fix = fix[:1].upper() + fix[1:]
        message = f"{self._subject(target)}: {_sentence(cause)} {_sentence(fix)}"
        if self.details:
            message += "\n\n" + self.details
        return message

    def _subject(self, target: str | None) -> str:
        mentions = [Mention(name) for name in self.settings]
        if target is None:
            return "/".join(m.for_command_line() for m in mentions)
        if all(m.setting.is_attribute for m in mentions):
            return f"{target}: attribute " + "/".join(m.for_target() for m in mentions)
        flags = "/".join(m.for_command_line() for m in mentions)
        owner = mentions[0].setting
        return f"{target}: the {owner.program}'s {flags} (set by {owner.rule})"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
