"""The one error type the exporter reports to users, formatted as a single paragraph.

A message is written once, in the exporter's flags (`--label_spec=probs=None:int64`,
`--nosafe_mode`), and read in the user's own terms: on the command line as written, and
for a keras_saved_model target (`render(target)`) with each flag turned into the rule's
attribute and the value to set (`label_specs = {"probs": "None:int64"}`,
`allow_unsafe_deserialization = True`), after the target's label. BAZEL_ATTRIBUTES is
the one table of that translation; a new message needs nothing but the flag names.
"""

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Attribute:
    """The keras_saved_model attribute a flag comes from, and how its values read.

    `kind` says how `--flag=VALUE` reads as `name = ...`: "string" and "label" quote
    VALUE, "int" leaves it bare, "dict" splits `KEY=VALUE` into `{"KEY": "VALUE"}`,
    "list" splits a comma-separated VALUE, "bool" writes `--flag` / `--noflag` as
    `name = True` / `name = False` (the other way round when `inverted`).
    """

    name: str
    kind: str
    inverted: bool = False
    # Flag values that another attribute sets instead (`--version=timestamp`: stamp).
    special_values: tuple[tuple[str, str], ...] = ()


# Flag name (without `--`) -> the keras_saved_model attribute that sets it. Every flag
# of the exporter is here or in FLAGS_THE_RULE_SETS (tests/export/test_error_terms.py).
BAZEL_ATTRIBUTES = {
    "as_text": Attribute("as_text", "bool"),
    "builder": Attribute("builder", "string"),
    "custom_objects": Attribute("custom_objects", "dict"),
    "import_path": Attribute("deps", "label_list"),
    "label_spec": Attribute("label_specs", "dict"),
    "model_file": Attribute("src", "label"),
    "modes": Attribute("modes", "list"),
    "safe_mode": Attribute("allow_unsafe_deserialization", "bool", inverted=True),
    "seed": Attribute("seed", "int"),
    "verify": Attribute("verify", "bool"),
    "version": Attribute(
        "version", "int", special_values=(("timestamp", "stamp = 1"),)
    ),
    "weights": Attribute("weights", "label"),
}

# The exporter's other flags: keras_saved_model sets them itself, so no attribute does.
FLAGS_THE_RULE_SETS = frozenset(
    {
        "manifest_out",
        "output_dir",
        "persistent_worker",
        "quiet",
        "target_label",
        "worker_request_timeout",
        "workspace_status_file",
    }
)

# `--name` or `--name=VALUE` in a message; VALUE runs to the next space, less the
# punctuation that ends a clause (see _split_trailer).
_FLAG = re.compile(r"(?<![\w-])--(\w+)(?:=(\S+))?")


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


class ExportError(Exception):
    """A problem with the export request or its inputs, explained for the user.

    The message names the flag at fault, the cause and the fix in one paragraph;
    `details` (e.g. a traceback from user code) follows after a blank line. `flag`,
    `cause` and `fix` name flags as on the command line (`--modes`, `--noverify`,
    `--label_spec=OUTPUT=SHAPE:DTYPE`); `render(target)` reads them as attributes.
    """

    def __init__(self, flag: str, cause: str, fix: str, details: str | None = None):
        self.flag = flag
        self.cause = one_line(cause)
        self.fix = one_line(fix)
        self.details = details
        super().__init__(self.render())

    def render(self, target: str | None = None) -> str:
        """The message; with `target` (a keras_saved_model label), in its attributes."""
        if target is None:
            subject, terms = self.flag, _flag_terms
        else:
            subject, terms = f"{target}: {_bazel_subject(self.flag)}", _bazel_terms
        fix = terms(self.fix)
        if not self.fix.startswith("--"):  # a flag or attribute keeps its case
            fix = fix[:1].upper() + fix[1:]
        message = f"{subject}: {_sentence(terms(self.cause))} {_sentence(fix)}"
        if self.details:
            message += "\n\n" + self.details
        return message


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _flag_terms(text: str) -> str:
    return text


def _bazel_terms(text: str) -> str:
    """`text` with every exporter flag that has an attribute written as the attribute."""
    return _FLAG.sub(_bazel_setting, text)


def _bazel_subject(flags: str) -> str:
    """`attribute label_specs` for `--label_spec`; `builder/src` for two flags."""
    attributes = [_attribute_of(flag.removeprefix("--")) for flag in flags.split("/")]
    if all(attributes):
        return "attribute " + "/".join(a.name for a, _ in attributes)
    return f"the exporter's {flags} (set by keras_saved_model)"


def _attribute_of(name: str) -> tuple[Attribute, bool] | None:
    """The attribute of flag `name` (which may be `noNAME`) and whether it was negated."""
    if name in BAZEL_ATTRIBUTES:
        return BAZEL_ATTRIBUTES[name], False
    if name.startswith("no") and name[2:] in BAZEL_ATTRIBUTES:
        attribute = BAZEL_ATTRIBUTES[name[2:]]
        if attribute.kind == "bool":
            return attribute, True
    return None


def _bazel_setting(match: re.Match) -> str:
    found = _attribute_of(match.group(1))
    if not found:
        return match.group(0)
    attribute, negated = found
    value, trailer = _split_trailer(match.group(2))
    if attribute.kind == "bool":
        if not negated and value is None:
            return attribute.name + trailer
        on = not negated if value is None else value.lower() in ("true", "1")
        return f"{attribute.name} = {on != attribute.inverted}{trailer}"
    if value is None:
        return attribute.name + trailer
    for flag_value, setting in attribute.special_values:
        if value == flag_value:
            return setting + trailer
    return f"{attribute.name} = {_starlark_value(attribute.kind, value)}{trailer}"


def _split_trailer(value: str | None) -> tuple[str | None, str]:
    """Splits the punctuation that ends a sentence or a clause off a flag's value."""
    if value is None:
        return None, ""
    end = len(value)
    while end:
        last, head = value[end - 1], value[:end]
        if last in ".,:;'\"" or (last == ")" and head.count(")") > head.count("(")):
            end -= 1
        else:
            break
    return value[:end] or None, value[end:]


def _starlark_value(kind: str, value: str) -> str:
    if kind == "int":
        return value
    if kind == "dict":
        key, sep, item = value.partition("=")
        if sep:
            return "{" + f'"{key}": "{item}"' + "}"
    if kind in ("list", "label_list"):
        return "[" + ", ".join(f'"{v}"' for v in value.split(",")) + "]"
    return f'"{value}"'
