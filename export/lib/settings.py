"""The settings of every artifact format, read from their tables: one name each.

export/formats.bzl lists the formats: each rule, its program and its settings table.
keras_saved_model's attributes, the exporter's flags and ExportRequest's fields all come
from export/settings.bzl (its docstring says what each key means), so a setting has one
name everywhere; each other format's table is read the same way. This module reads the
tables (Starlark files that hold only literals, so Python's own literal parser reads
them), defines a program's absl flags from its table and makes the ExportRequest
dataclass. It imports no TensorFlow.
"""

import ast
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

# The workspace's root: export/formats.bzl's paths are from it.
_ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
TABLE_PATH = os.path.join(_ROOT, "export", "settings.bzl")
FORMATS_PATH = os.path.join(_ROOT, "export", "formats.bzl")

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
    flag_by_rule: bool = False
    # The rule whose attribute it is and the program whose flag it is (its table's).
    rule: str = "keras_saved_model"
    program: str = "exporter"

    @property
    def python_type(self) -> Any:
        """The request field's type: that of `type`, and of `flag_type` if it has one."""
        python_type = _PYTHON_TYPES[self.type]
        if self.flag_type:
            python_type = python_type | _PYTHON_TYPES[self.flag_type]
        return python_type

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


@dataclasses.dataclass(frozen=True)
class Format:
    """An artifact format: an entry of export/formats.bzl (its docstring says what each
    key means)."""

    rule: str
    rule_file: str
    program: str
    library: str
    table: str
    settings: str
    mnemonic: str
    test: str
    test_file: str
    test_program: str
    provider: str
    flags_docs: str
    optional_features: str = ""

    @property
    def program_name(self) -> str:
        """How the program names itself (`tflite_converter`): its py_binary's name."""
        return os.path.basename(self.program).removesuffix(".py")

    @property
    def library_module(self) -> str:
        """The library's module, as imported (`formats.tflite.tflite`)."""
        return self.library.removesuffix(".py").replace("/", ".")

    @property
    def test_module(self) -> str:
        """The test program's module, as imported."""
        return self.test_program.removesuffix(".py").replace("/", ".")


def read_literal(path: str, variable: str) -> Any:
    """The value of the top-level `variable = <literal>` of the Starlark file `path`."""
    with open(path, encoding="utf-8") as f:
        module = ast.parse(f.read(), filename=path)
    for statement in module.body:
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and getattr(statement.targets[0], "id", None) == variable
        ):
            return ast.literal_eval(_joined_strings(statement.value))
    raise RuntimeError(f"{path} defines no {variable}")


def _read_table(artifact: Format) -> tuple[Setting, ...]:
    """The settings of a format's table, each owned by its rule and program."""
    path = os.path.join(_ROOT, artifact.table)
    return tuple(
        Setting(
            **{
                **e,
                "allow_files": tuple(e.get("allow_files", ())),
                "values": tuple(e.get("values", ())),
                "rule": artifact.rule,
                "program": artifact.program_name,
            }
        )
        for e in read_literal(path, artifact.settings)
    )


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


FORMATS = tuple(Format(**e) for e in read_literal(FORMATS_PATH, "FORMATS"))
TABLES = {f.rule: _read_table(f) for f in FORMATS}
SETTINGS = TABLES["keras_saved_model"]
BY_NAME = {s.name: s for s in SETTINGS}
# Every setting by name, for errors: a name is unique across the tables.
_ANY_BY_NAME = {s.name: s for table in TABLES.values() for s in table}
if len(_ANY_BY_NAME) != sum(map(len, TABLES.values())):
    raise RuntimeError(f"the tables of {FORMATS_PATH} share a setting's name")

# The optional features (export/lib/packages.py) the formats declare beside their
# tables (export/formats.bzl's optional_features), by name: an OptionalFeature's fields.
FORMAT_FEATURES = {
    name: row
    for f in FORMATS
    if f.optional_features
    for name, row in read_literal(
        os.path.join(_ROOT, f.table), f.optional_features
    ).items()
}

# Facts of the SavedModel that Starlark needs too, stored once in export/settings.bzl.
SIGNATURE_OF_MODE = read_literal(TABLE_PATH, "SIGNATURE_OF_MODE")
MAX_WARMUP_REQUESTS = read_literal(TABLE_PATH, "MAX_WARMUP_REQUESTS")
DATA_SET_SIGNATURES = tuple(read_literal(TABLE_PATH, "DATA_SET_SIGNATURES"))
# The serving signature of every export, the one the other formats convert.
SERVING_KEY = SIGNATURE_OF_MODE["serve"]


def get(name: str) -> Setting:
    """The setting `name` of any table."""
    return _ANY_BY_NAME[name]


def format_of(program: str) -> Format:
    """The format whose program is `program` (e.g. "tflite_converter")."""
    return next(f for f in FORMATS if f.program_name == program)


def program_settings(program: str) -> tuple[Setting, ...]:
    """The settings that are flags of `program`: its format's table, and for each
    other program also the exporter's program settings (how a program runs: --quiet,
    --target_label, the persistent worker's)."""
    table = TABLES[format_of(program).rule]
    if table is SETTINGS:
        return table
    return table + tuple(s for s in SETTINGS if s.set_by == PROGRAM)


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
    python_type = setting.python_type
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
