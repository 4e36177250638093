"""The export's settings, read from export/settings.bzl: the one table of their names.

keras_saved_model's attributes, the exporter's flags and ExportRequest's fields all come
from that table (its docstring says what each key means), so a setting has one name
everywhere. This module reads the table (a Starlark file that holds only literals, so
Python's own literal parser reads it), defines the absl flags from it and makes the
ExportRequest dataclass. It imports no TensorFlow.
"""

import ast
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

TABLE_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "settings.bzl")
# keras_tflite_model's and the TFLite converter's settings, in the same format.
TFLITE_TABLE_PATH = os.path.join(
    os.path.dirname(__file__), os.pardir, "tflite_settings.bzl"
)

# Who sets a setting (the table's `set_by`).
USER = "user"
RULE = "rule"
PROGRAM = "program"
LIBRARY = "library"


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    type: str
    default: Any
    doc: str
    set_by: str
    allow_files: tuple[str, ...] = ()
    flag_type: str | None = None
    values: tuple[str, ...] = ()
    # The rule whose attribute it is and the program whose flag it is (its table's).
    rule: str = "keras_saved_model"
    program: str = "exporter"

    @property
    def is_attribute(self) -> bool:
        """A keras_saved_model attribute of the same name sets it."""
        return self.set_by == USER

    @property
    def has_flag(self) -> bool:
        return self.set_by != LIBRARY

    @property
    def in_request(self) -> bool:
        return self.set_by != PROGRAM


def _read_table(path: str, variable: str, **owner: str) -> tuple[Setting, ...]:
    """The settings of the list `variable` in the table at `path`; `owner` gives their
    rule and program."""
    with open(path, encoding="utf-8") as f:
        module = ast.parse(f.read(), filename=path)
    for statement in module.body:
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and getattr(statement.targets[0], "id", None) == variable
        ):
            entries = ast.literal_eval(_joined_strings(statement.value))
            return tuple(
                Setting(
                    **{
                        **e,
                        "allow_files": tuple(e.get("allow_files", ())),
                        "values": tuple(e.get("values", ())),
                        **owner,
                    }
                )
                for e in entries
            )
    raise RuntimeError(f"{path} defines no {variable} list")


def _joined_strings(node: ast.AST) -> ast.AST:
    """The node with `"a" + "b"` string concatenations folded (Starlark has no implicit
    concatenation of adjacent strings, so the table's long docs use `+`)."""

    class Fold(ast.NodeTransformer):
        def visit_BinOp(self, op):
            self.generic_visit(op)
            if (
                isinstance(op.op, ast.Add)
                and isinstance(op.left, ast.Constant)
                and isinstance(op.right, ast.Constant)
                and isinstance(op.left.value, str)
                and isinstance(op.right.value, str)
            ):
                return ast.copy_location(
                    ast.Constant(op.left.value + op.right.value), op
                )
            return op

    return Fold().visit(node)


SETTINGS = _read_table(TABLE_PATH, "SETTINGS")
BY_NAME = {s.name: s for s in SETTINGS}
TFLITE_SETTINGS = _read_table(
    TFLITE_TABLE_PATH,
    "TFLITE_SETTINGS",
    rule="keras_tflite_model",
    program="tflite_converter",
)
# The converter's flags: its own settings and the exporter's program settings (how the
# program runs: --quiet, --target_label, the persistent worker's).
CONVERTER_SETTINGS = TFLITE_SETTINGS + tuple(s for s in SETTINGS if s.set_by == PROGRAM)
# Every setting by name, for errors: a name is unique across the two tables.
_ANY_BY_NAME = {s.name: s for s in SETTINGS + TFLITE_SETTINGS}
if len(_ANY_BY_NAME) != len(SETTINGS) + len(TFLITE_SETTINGS):
    raise RuntimeError(f"{TABLE_PATH} and {TFLITE_TABLE_PATH} share a setting's name")


def get(name: str) -> Setting:
    """The setting `name` of either table."""
    return _ANY_BY_NAME[name]


def define_flags(flag_values, table: Sequence[Setting] = SETTINGS) -> dict[str, Any]:
    """Defines one absl flag per setting of `table` that has one; returns their holders
    by name.

    They are this module's flags: the program adopts them as its key flags
    (flags.adopt_module_key_flags), so that --help lists them."""
    from absl import flags

    definers = {
        "string": flags.DEFINE_string,
        "label": flags.DEFINE_string,
        "bool": flags.DEFINE_bool,
        "int": flags.DEFINE_integer,
        "float": flags.DEFINE_float,
        "string_list": flags.DEFINE_list,
        "string_dict": flags.DEFINE_multi_string,
        "path_list": flags.DEFINE_multi_string,
    }
    holders = {}
    for setting in table:
        if not setting.has_flag:
            continue
        kind = setting.flag_type or setting.type
        default = setting.default
        if kind == "string" and default is not None:
            default = str(default)
        if kind in ("string_dict", "path_list"):
            default = []
        if setting.values:
            holders[setting.name] = flags.DEFINE_enum(
                setting.name,
                default,
                setting.values,
                _help(setting),
                flag_values=flag_values,
            )
            continue
        holders[setting.name] = definers[kind](
            setting.name, default, _help(setting), flag_values=flag_values
        )
    return holders


def _help(setting: Setting) -> str:
    text = setting.doc.replace("`", "")
    if setting.type == "string_dict":
        text += " Repeatable: KEY=VALUE."
    elif setting.type == "path_list":
        text += " Repeatable."
    elif setting.type == "string_list":
        text += " Comma-separated."
    return text


_PYTHON_TYPES = {
    "string": str | None,
    "label": str | None,
    "bool": bool,
    "int": int,
    "float": float,
    "string_list": str | Sequence[str] | None,
    "string_dict": Sequence[str] | Mapping[str, Any],
}


def _field(setting: Setting):
    kind = setting.type
    python_type = _PYTHON_TYPES[kind]
    if setting.name == "version":
        python_type = int | str
    if kind == "string_dict":
        default = ()
    elif kind == "string_list":
        default = None
    else:
        default = setting.default
    return (
        setting.name,
        python_type,
        dataclasses.field(default=default, metadata={"doc": setting.doc}),
    )


def _request_doc() -> str:
    lines = [
        "Everything one export needs: the fields are the exporter's settings, named as",
        "keras_saved_model's attributes and the exporter's flags (export/settings.bzl).",
        "",
        "`custom_objects` also takes a mapping of names to the objects themselves;",
        "`label_specs` a mapping of output names to `SHAPE:DTYPE` strings or LabelSpecs;",
        "`modes` a comma-separated string or a sequence (None or empty: every mode the",
        "model supports); `version` an int or `timestamp`.",
        "",
    ]
    for setting in SETTINGS:
        if setting.in_request:
            lines.append(f"{setting.name}: {setting.doc.replace('`', '')}")
    return "\n".join(lines)


def make_request_class() -> type:
    fields = [_field(s) for s in SETTINGS if s.in_request]
    # A required output_dir comes first, as a dataclass wants defaults last.
    fields = [
        (n, t, dataclasses.field()) for n, t, _ in fields if n == "output_dir"
    ] + [f for f in fields if f[0] != "output_dir"]
    cls = dataclasses.make_dataclass("ExportRequest", fields)
    cls.__module__ = "export.lib.options"
    cls.__doc__ = _request_doc()
    return cls


def flags_for(name: str, value: Any) -> list[str]:
    """The command-line flags that set the setting `name` to `value` (none for None)."""
    kind = get(name).type
    if value is None:
        return []
    if kind == "bool":
        return [f"--{name}" if value else f"--no{name}"]
    if kind == "string_dict":
        return [f"--{name}={key}={item}" for key, item in value.items()]
    if kind == "path_list":
        return [f"--{name}={item}" for item in value]
    if kind == "string_list" and not isinstance(value, str):
        return [f"--{name}={','.join(value)}"] if value else []
    return [f"--{name}={value}"]


def request_from_flags(request_class: type, holders: Mapping[str, Any]) -> Any:
    """An ExportRequest whose fields are the parsed flags of the same names."""
    values = {
        f.name: holders[f.name].value
        for f in dataclasses.fields(request_class)
        if f.name in holders
    }
    return request_class(**values)
