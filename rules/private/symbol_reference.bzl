"""The syntax of `package.module:symbol` references and of custom-object names.

The exporter checks the same syntax again in export/lib/options.py (_DOTTED and
CUSTOM_OBJECT_NAME); //tests/docs:surface_test runs one table of good and bad strings
through both.
"""

_IDENTIFIER_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_IDENTIFIER_CHARS = _IDENTIFIER_START + "0123456789"

def _is_identifier(text):
    """True for an ASCII Python identifier such as `MyLayer`."""
    if not text or text[0] not in _IDENTIFIER_START:
        return False
    for char in text.elems():
        if char not in _IDENTIFIER_CHARS:
            return False
    return True

def _is_dotted_name(text):
    """True for a dotted Python name such as `models.my_model`."""
    for part in text.split("."):
        if not _is_identifier(part):
            return False
    return True

def is_symbol_reference(text):
    """Whether `text` is `package.module:symbol`, as `builder` and custom objects are.

    Args:
      text: the string to check; the symbol may be dotted (`module:Class.create`).

    Returns:
      True when both halves are dotted names of ASCII Python identifiers.
    """
    parts = text.split(":")
    return len(parts) == 2 and _is_dotted_name(parts[0]) and _is_dotted_name(parts[1])

def is_custom_object_name(text):
    """Whether `text` is a name a Keras config gives a custom object.

    `keras.saving.register_keras_serializable(package = ...)` names an object
    `package>Name`; Keras looks `custom_objects` up by that name or by the class name.

    Args:
      text: a key of the `custom_objects` attribute.

    Returns:
      True for an identifier (`MyLayer`) or a registered name (`my_package>MyLayer`).
    """
    package, sep, name = text.rpartition(">")
    if not sep:
        return _is_identifier(text)
    if not package or not _is_identifier(name):
        return False
    for char in package.elems():
        if char not in _IDENTIFIER_CHARS + ".-":
            return False
    return True
