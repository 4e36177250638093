"""Python lambdas in a Keras model config: finding them, rewriting their code, and
re-creating them with the globals of the module they were written in.

Keras serializes a lambda as its marshalled bytecode (base64) under the class name
`__lambda__`: a Lambda layer's function and output shape as {"code", "defaults",
"closure"}, a lambda anywhere else in a config (a custom layer's argument) as {"value":
[code, defaults, closure]}. Bytecode carries neither the lambda's module nor its
globals, and Keras re-creates a lambda with the globals of a module of its own, where
the `ops`, `np` or module constant the lambda uses is undefined.

At export, `portable_lambda_code` rewrites the absolute source path in each code object
into an import-relative one (so the JSON has the same bytes in every checkout) and, for
a lambda that uses its module's globals, records the module's name beside its code
("module", as Keras records the module of its own objects). At load, `recreate` builds
those lambdas with the globals of that module. What is allowed is decided by the callers.
"""

import base64
import builtins
import dataclasses
import dis
import functools
import importlib
import json
import marshal
import os
import sys
import types
from typing import Any

import keras

from export.lib.errors import describe_exception

# The Lambda layer's arguments that Keras's Lambda.from_config turns back into
# functions (it passes a lambda `mask` on as its config, so that one is left alone).
_RECREATED_LAMBDA_ARGUMENTS = ("function", "output_shape")


class LambdaError(ValueError):
    """A lambda in the config cannot be re-created; `cause` and `fix` say why and how."""

    def __init__(self, cause: str, fix: str):
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause}. {fix[:1].upper()}{fix[1:]}.")


@dataclasses.dataclass(frozen=True)
class SerializedLambda:
    """One lambda as Keras serialized it: `container[key]` in the model config."""

    container: dict | list
    key: str | int
    # The layer (or other Keras object) whose config holds it.
    owner: str
    # Whether it is an argument of a Lambda layer (function, output_shape, mask).
    lambda_argument: bool

    @property
    def entry(self) -> dict:
        return self.container[self.key]

    @property
    def _fields(self) -> list:
        """[code, defaults, closure] in either of Keras's two layouts."""
        config = self.entry["config"]
        if "value" in config:
            return list(config["value"])
        return [config["code"], config.get("defaults"), config.get("closure")]

    @property
    def code(self) -> types.CodeType:
        # Keras writes marshal.dumps(function.__code__) with the "base64" codec.
        return marshal.loads(base64.decodebytes(self._fields[0].encode("ascii")))

    def set_code(self, code: types.CodeType) -> None:
        text = base64.encodebytes(marshal.dumps(code)).decode("ascii")
        config = self.entry["config"]
        if "value" in config:
            config["value"] = [text, *config["value"][1:]]
        else:
            config["code"] = text

    @property
    def module(self) -> str | None:
        """The module whose globals the code uses, as the export recorded it."""
        return self.entry.get("module")

    @property
    def recreated_by_keras(self) -> bool:
        """Whether Keras turns this entry back into a function when it loads the config."""
        return not self.lambda_argument or self.key in _RECREATED_LAMBDA_ARGUMENTS

    def function(self, module_globals: dict[str, Any]) -> types.FunctionType:
        """The lambda, built as Keras builds it but with `module_globals`."""
        _, defaults, closure = self._fields
        code = self.code
        return types.FunctionType(
            code,
            module_globals,
            code.co_name,
            None if defaults is None else tuple(defaults),
            None if closure is None else tuple(types.CellType(v) for v in closure),
        )


def find_lambdas(config: Any) -> list[SerializedLambda]:
    """Every lambda Keras serialized in the config (Lambda layers' functions, output
    shapes and masks, lambdas in custom layers' configs), in config order."""
    found: list[SerializedLambda] = []

    def walk(node: Any, owner: str, lambda_layer_config: dict | None) -> None:
        if isinstance(node, dict):
            inner = node.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                owner = _describe_owner(str(node.get("class_name")), inner["name"])
                if node.get("class_name") == "Lambda":
                    lambda_layer_config = inner
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            return
        for key, value in items:
            if _is_serialized_lambda(value):
                argument = node is lambda_layer_config
                found.append(SerializedLambda(node, key, owner, argument))
            else:
                walk(value, owner, lambda_layer_config)

    walk(config, "the model", None)
    return found


def _is_serialized_lambda(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("class_name") != "__lambda__":
        return False
    config = value.get("config")
    if not isinstance(config, dict):
        return False
    if isinstance(config.get("value"), list):
        return bool(config["value"]) and isinstance(config["value"][0], str)
    return isinstance(config.get("code"), str)


def _describe_owner(class_name: str, name: str) -> str:
    if class_name == "Lambda":
        return f"the Lambda layer '{name}'"
    return f"'{name}' ({class_name})"


def portable_lambda_code(text: str, record_modules: bool) -> str:
    """Rewrites each lambda's code in the model JSON with a source path relative to the
    import path; with `record_modules`, also names the module of each lambda that uses
    globals, when another process can import that module by its name.

    Keras marshals a lambda's code object, which carries the absolute path of the file it
    was written in (under Bazel a sandbox or execroot path). Only that path changes: the
    code runs the same, and tracebacks name the module's file as imported. No module is
    recorded for `__main__` (a script or notebook) nor for code that is no module's (a
    notebook cell, code compiled at run time): those lambdas cannot be re-created.
    """
    if '"__lambda__"' not in text:
        return text  # no lambda: no JSON to parse
    config = json.loads(text)
    for found in find_lambdas(config):
        code = found.code
        module = _module_of_file(code.co_filename)
        path = _import_relative_path(code.co_filename, module)
        portable = _with_filename(code, path)
        if portable is not code:
            found.set_code(portable)
        if record_modules and module not in (None, "__main__") and global_names(code):
            found.entry["module"] = module
    # Keras writes its JSON with json.dumps's defaults too: the rest keeps its bytes.
    return json.dumps(config)


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    """The code object and every one nested in it (inner lambdas, comprehensions) with
    co_filename set to `filename`; `code` itself when nothing changes."""
    consts = tuple(
        _with_filename(c, filename) if isinstance(c, types.CodeType) else c
        for c in code.co_consts
    )
    if code.co_filename == filename and all(
        a is b for a, b in zip(consts, code.co_consts, strict=True)
    ):
        return code
    return code.replace(co_filename=filename, co_consts=consts)


def _module_of_file(filename: str) -> str | None:
    """The name of the imported module whose file is `filename`. A script's module is
    `__main__` under any other name it has (multiprocessing adds `__mp_main__`); the
    same file imported as a module of its own is preferred to it."""
    main = sys.modules.get("__main__")
    names = {
        "__main__" if module is main else name
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None) == filename
    }
    return min(names, key=lambda name: (name == "__main__", name), default=None)


def _import_relative_path(filename: str, module: str | None) -> str:
    """`pkg/mod.py` for the file of module pkg.mod, else the path relative to the
    deepest sys.path entry that holds it, else the file's base name."""
    if module is not None:
        relative = module.replace(".", os.sep)
        if os.path.basename(filename).startswith("__init__."):
            relative = os.path.join(relative, "__init__")
        return relative + os.path.splitext(filename)[1]
    if not os.path.isabs(filename):
        return filename
    best = None
    for entry in sys.path:
        root = os.path.abspath(entry or os.curdir)
        inside = filename.startswith(root.rstrip(os.sep) + os.sep)
        if inside and (best is None or len(root) > len(best)):
            best = root
    return os.path.relpath(filename, best) if best else os.path.basename(filename)


def global_names(code: types.CodeType) -> set[str]:
    """Names the code (and code nested in it) looks up as globals, builtins excepted."""
    names = {
        ins.argval
        for ins in dis.get_instructions(code)
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str)
    }
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_names(const)
    return {n for n in names if not hasattr(builtins, n)}


@functools.cache
def _names_keras_defines() -> frozenset[str]:
    """The globals Keras gives every lambda it re-creates (those of a module of its own):
    a lambda whose names are all among them runs as Keras re-creates it."""
    code = base64.encodebytes(marshal.dumps((lambda: None).__code__)).decode("ascii")
    probe = {"class_name": "__lambda__", "config": {"value": [code, None, None]}}
    function = keras.saving.deserialize_keras_object(probe, safe_mode=False)
    return frozenset(function.__globals__)


def missing_globals(found: SerializedLambda) -> list[str]:
    """The globals a lambda without a recorded module uses that Keras's re-creation of it
    lacks: with any, load_keras_model cannot re-create it."""
    if found.module is not None or not found.recreated_by_keras:
        return []
    return sorted(global_names(found.code) - _names_keras_defines())


def recreate(config: Any) -> dict[str, types.FunctionType]:
    """Re-creates each lambda of the config that records its module, with that module's
    globals: replaces its entry by a name and returns name -> function, to be given to
    Keras as custom objects (Keras looks a name found in a config up in them).

    Raises LambdaError naming the layer, the module or names and the fix when a lambda
    cannot be re-created: its module is unknown or cannot be imported, or lacks a name.
    """
    functions = {}
    for found in find_lambdas(config):
        missing = missing_globals(found)
        if missing:
            raise LambdaError(
                f"{found.owner} uses {_names(missing)} from the module its lambda was"
                f" written in, {_where(found.code.co_filename)}, which the export does"
                " not name because it cannot be imported by name, so the lambda cannot"
                " be re-created",
                _MOVE_THE_LAMBDA,
            )
        if found.module is None or not found.recreated_by_keras:
            continue
        module = _import(found)
        names = global_names(found.code)
        missing = sorted(name for name in names if name not in vars(module))
        if missing:
            raise LambdaError(
                f"{found.owner} uses {_names(missing)} from module '{found.module}'"
                f" ({getattr(module, '__file__', 'no file')}), which does not define"
                f" {'it' if len(missing) == 1 else 'them'}",
                f"define {_names(missing)} in '{found.module}' (if the module changed"
                " since the model was exported, export it again from the current code)",
            )
        name = f"<lambda {len(functions)} of the exported model>"
        functions[name] = found.function(vars(module))
        found.container[found.key] = name
    return functions


# How to make a lambda that uses its module's globals reloadable: in a note at export
# and in load_keras_model's error.
_MOVE_THE_LAMBDA = (
    "define the lambda in a module that can be imported (the builder's module, for"
    " instance) and export again; or use a function registered with"
    " @keras.saving.register_keras_serializable(), or a custom layer, instead of the"
    " lambda"
)


def note_for(found: SerializedLambda, missing: list[str]) -> str:
    """One paragraph for the export's notes about a lambda load_keras_model cannot
    re-create (the export itself serves, evaluates and trains as the model does)."""
    return (
        f"{found.owner} uses {_names(missing)} from the module its lambda was written"
        f" in, {_where(found.code.co_filename)}, which another process cannot import"
        " by name: the export serves, evaluates and trains like the model, but"
        " load_keras_model cannot re-create the model from it. To make it reloadable,"
        f" {_MOVE_THE_LAMBDA}."
    )


def _import(found: SerializedLambda) -> types.ModuleType:
    try:
        return importlib.import_module(found.module)
    except ModuleNotFoundError as e:
        raise LambdaError(
            f"{found.owner} runs code from module '{found.module}', which cannot be"
            f" imported here ({describe_exception(e)})",
            "put that module on the Python path before calling load_keras_model (under"
            " Bazel: its py_library in the deps of the binary or test that loads the"
            " export)",
        ) from None
    except Exception as e:  # noqa: BLE001 - user code: report whatever it raised
        raise LambdaError(
            f"{found.owner} runs code from module '{found.module}', and importing it"
            f" raised {describe_exception(e)}",
            "fix the error in that module",
        ) from None


def _names(names: list[str]) -> str:
    return ", ".join(names)


def _where(filename: str) -> str:
    """The module a lambda's code was written in, from its (portable) file name."""
    if filename == "__main__.py":
        return "__main__ (a script run as a program, or a notebook)"
    return (
        f"'{filename}' (the file of no module the exporter had imported: a notebook"
        " cell, or code compiled at run time)"
    )
