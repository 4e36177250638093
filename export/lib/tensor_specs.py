"""label_specs and input_specs: `NAME=SHAPE:DTYPE` settings (one syntax for both),
each parsed into a LabelSpec (a shape and a dtype).

Nothing here imports TensorFlow (see options).
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from export.lib.errors import ExportError, setting

# Dtype names accepted in label_specs and input_specs (TensorFlow's canonical names).
LABEL_DTYPES = (
    "bool",
    "bfloat16",
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "string",
)


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    shape: tuple[int | None, ...]
    dtype: str


def parse_shape(text: str) -> tuple[int | None, ...]:
    """Parses `None,10` into (None, 10); the empty string is a scalar."""
    if not text.strip():
        return ()
    dims: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part in ("None", "?", "-1"):
            dims.append(None)
        elif part.isdigit():
            dims.append(int(part))
        else:
            raise ValueError(part)
    return tuple(dims)


# What each `NAME=SHAPE:DTYPE` setting names, and a spec of it written right.
_SPEC_SETTINGS = {
    "label_specs": (
        "OUTPUT_NAME",
        "output",
        "label",
        "probs",
        ("None,10:float32", "None:int64"),
    ),
    "input_specs": (
        "INPUT_NAME",
        "input",
        "input",
        "input_1",
        ("None:string", "None,8:float32"),
    ),
}


def parse_spec(name_of_setting: str, text: str) -> tuple[str, LabelSpec]:
    """Parses `NAME=SHAPE:DTYPE` of label_specs or input_specs (one syntax for both)."""
    placeholder, what, kind, default_example, examples = _SPEC_SETTINGS[name_of_setting]
    name, sep, rest = text.partition("=")
    shape_text, colon, dtype = rest.rpartition(":")
    example = name if sep and name else default_example
    fix = [
        "write it like ",
        setting(name_of_setting, {example: examples[0]}),
        " or ",
        setting(name_of_setting, {example: examples[1]}),
        (
            f" (the {what}'s name, its shape as comma-separated dims with None for the"
            " batch dim, and a dtype)"
        ),
    ]
    if not sep or not name:
        raise ExportError(
            name_of_setting,
            f"'{text}' is not of the form {placeholder}=SHAPE:DTYPE",
            fix,
        )
    if not colon:
        raise ExportError(
            name_of_setting,
            f"the {kind} spec '{rest}' of '{name}' is not of the form SHAPE:DTYPE",
            fix,
        )
    try:
        shape = parse_shape(shape_text)
    except ValueError as e:
        raise ExportError(
            name_of_setting,
            f"the {kind} spec '{rest}' of '{name}' has the dimension '{e}', which is not"
            " an integer or None",
            fix,
        ) from None
    if dtype not in LABEL_DTYPES:
        raise ExportError(
            name_of_setting,
            f"the {kind} spec '{rest}' of '{name}' has the dtype '{dtype}', which is not"
            f" one of {', '.join(LABEL_DTYPES)}",
            fix,
        )
    return name, LabelSpec(shape, dtype)


def parse_label_spec(text: str) -> tuple[str, LabelSpec]:
    return parse_spec("label_specs", text)


def parse_specs(
    name_of_setting: str, values: Sequence[str] | Mapping[str, Any]
) -> dict[str, LabelSpec]:
    """label_specs or input_specs: `NAME=SHAPE:DTYPE` strings, or a mapping of names
    to `SHAPE:DTYPE` strings or LabelSpecs."""
    if isinstance(values, Mapping):
        result = {}
        for name, spec in values.items():
            if isinstance(spec, LabelSpec):
                result[name] = spec
            else:
                result.update([parse_spec(name_of_setting, f"{name}={spec}")])
        return result
    if isinstance(values, str):
        values = [values]
    _, what, kind, _, _ = _SPEC_SETTINGS[name_of_setting]
    result = {}
    for text in values:
        name, spec = parse_spec(name_of_setting, text)
        if name in result:
            raise ExportError(
                name_of_setting,
                f"{what} '{name}' has more than one {kind} spec",
                f"give one per {what}",
            )
        result[name] = spec
    return result


def parse_label_specs(
    values: Sequence[str] | Mapping[str, Any],
) -> dict[str, LabelSpec]:
    return parse_specs("label_specs", values)


def parse_input_specs(
    values: Sequence[str] | Mapping[str, Any],
) -> dict[str, LabelSpec]:
    return parse_specs("input_specs", values)
