"""Every artifact format: the one list of the rules, their programs and settings tables.

An artifact rule (rules/private/artifact_rule.bzl) runs its program in one build action
and passes it the settings of its table as flags. Starlark loads this list to find a
rule's program and mnemonic; Python reads it as a literal (export/lib/settings.py) to
find every table, define each program's flags and name a setting in an error. So it
holds only literals.

Keys of each entry:
  rule: the public rule (the macro users call), e.g. "keras_tflite_model".
  program: the py_binary in //export that the rule's action runs (`<program>.py`).
  library: the module of export/lib that does the format's work (`export/lib/<library>.py`),
    importable on the core packages alone like the program and the test's program.
  table: the file in export/ holding the format's settings table (its docstring and
    export/settings.bzl's say what a setting is).
  settings: the name of the table's list in that file.
  mnemonic: the action's mnemonic (`--strategy=<mnemonic>=sandboxed` turns its
    persistent worker off).
  test: the format's test macro; its program is rules/private/<test>_main.py.
  provider: the rule's public provider (documented in docs/rules.md under its name).
  flags_docs: the heading, in the rule's section of docs/rules.md, of the table of the
    program's flags that are no attribute.

docs/rules.md has a section `## <rule>`, with a table of the attributes, and sections
`## <provider>` and `## <test>` (//tests/docs:surface_test checks each format the same
way).
"""

FORMATS = [
    {
        "rule": "keras_saved_model",
        "program": "exporter",
        "library": "api",
        "table": "settings.bzl",
        "settings": "SETTINGS",
        "mnemonic": "KerasSavedModel",
        "test": "keras_saved_model_test",
        "provider": "SavedModelInfo",
        "flags_docs": "### The exporter's flags",
    },
    {
        "rule": "keras_tflite_model",
        "program": "tflite_converter",
        "library": "tflite",
        "table": "tflite_settings.bzl",
        "settings": "TFLITE_SETTINGS",
        "mnemonic": "KerasTfliteModel",
        "test": "keras_tflite_model_test",
        "provider": "TfliteModelInfo",
        "flags_docs": "### The converter's flags",
    },
    {
        "rule": "keras_onnx_model",
        "program": "onnx_converter",
        "library": "onnx_model",
        "table": "onnx_settings.bzl",
        "settings": "ONNX_SETTINGS",
        "mnemonic": "KerasOnnxModel",
        "test": "keras_onnx_model_test",
        "provider": "OnnxModelInfo",
        "flags_docs": "### The ONNX converter's flags",
    },
]
