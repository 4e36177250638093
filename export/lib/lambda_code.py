"""Python lambdas in a Keras model config: finding them, reading and rewriting their code.

Keras serializes a Lambda layer's function as its marshalled bytecode (base64, under a
`__lambda__` class name). This module finds those functions in a config, rewrites the
absolute source paths the bytecode carries into import-relative ones (so the JSON has
the same bytes in every checkout), and lists the globals the code looks up. What is
allowed is decided by its callers.
"""

import base64
import builtins
import dis
import json
import marshal
import os
import sys
import types
from typing import Any


def lambda_codes(config: Any):
    """Yields every Python lambda Keras serialized in the config, as the dict that holds
    its base64 `code` (Lambda functions, output shapes, masks)."""
    if isinstance(config, dict):
        inner = config.get("config")
        if (
            config.get("class_name") == "__lambda__"
            and isinstance(inner, dict)
            and isinstance(inner.get("code"), str)
        ):
            yield inner
        for value in config.values():
            yield from lambda_codes(value)
    elif isinstance(config, list):
        for value in config:
            yield from lambda_codes(value)


def decode_code(text: str) -> types.CodeType:
    # Keras writes marshal.dumps(function.__code__) with the "base64" codec.
    return marshal.loads(base64.decodebytes(text.encode("ascii")))


def portable_lambda_code(text: str) -> str:
    """Rewrites each lambda's bytecode in the model JSON with a source path relative to
    the import path, so the JSON has the same bytes wherever the checkout is.

    Keras marshals a lambda's code object, which carries the absolute path of the file it
    was written in (under Bazel a sandbox or execroot path). Only that path changes: the
    code runs the same, and tracebacks name the module's file as imported.
    """
    if '"__lambda__"' not in text:
        return text  # no lambda: no JSON to parse
    for holder in lambda_codes(json.loads(text)):
        code = decode_code(holder["code"])
        portable = _with_filename(code, _import_relative_path(code.co_filename))
        if portable is code:
            continue
        encoded = base64.encodebytes(marshal.dumps(portable)).decode("ascii")
        # Replace the JSON string itself: the rest of Keras's JSON keeps its bytes.
        text = text.replace(json.dumps(holder["code"]), json.dumps(encoded))
    return text


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


def _import_relative_path(filename: str) -> str:
    """`pkg/mod.py` for the file of module pkg.mod, else the path relative to the
    deepest sys.path entry that holds it, else the file's base name."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            relative = name.replace(".", os.sep)
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


def layers_with_lambdas(config: Any):
    """Yields the serialized layers whose own config holds a Python lambda."""
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda" and any(
            True for _ in lambda_codes(config.get("config", {}))
        ):
            yield config
            return
        for value in config.values():
            yield from layers_with_lambdas(value)
    elif isinstance(config, list):
        for value in config:
            yield from layers_with_lambdas(value)
