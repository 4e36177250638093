"""Every artifact format: the one list of the rules, their programs and settings tables.

An artifact rule (rules/private/artifact_rule.bzl) runs its program in one build action
and passes it the settings of its table as flags. Starlark loads this list to find a
rule's program and mnemonic, and every list of the formats' files derives from it (the
`programs` filegroup of export/BUILD, rules/private/BUILD's `test_programs`, the
targets tests/docs/BUILD checks); Python reads it as a literal (export/lib/settings.py)
to find every table, define each program's flags and name a setting in an error. So it
holds only literals.

A converted format lives in its own folder, formats/<format>/ (CONTRIBUTING.md, "Add an
artifact format"); the SavedModel's files are the core's, in export/ and rules/private/.
Paths are from the workspace root.

Keys of each entry:
  rule: the public rule (the macro users call), e.g. "keras_tflite_model".
  rule_file: the .bzl file defining the rule and its macro.
  program: the source of the program the rule's action runs: `<folder>/<name>.py`, the
    py_binary `//<folder>:<name>`; `<name>` is how the program names itself.
  library: the module that does the format's work, importable on the core packages
    alone like the program and the test's program; its py_library is
    `//<folder>:<module>` (export/lib's modules: //export:lib).
  table: the file holding the format's settings table (its docstring and
    export/settings.bzl's say what a setting is).
  settings: the name of the table's list in that file.
  optional_features (optional): the name of a dict in the table's file of the PyPI
    packages the format needs beyond the core: rows of export/lib/packages.py's
    OPTIONAL_FEATURES (an OptionalFeature's fields), by the feature's name.
  mnemonic: the action's mnemonic (`--strategy=<mnemonic>=sandboxed` turns its
    persistent worker off).
  test: the format's test macro.
  test_file: the .bzl file defining it.
  test_program: the test macro's program.
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
        "rule_file": "rules/private/keras_saved_model.bzl",
        "program": "export/exporter.py",
        "library": "export/lib/api.py",
        "table": "export/settings.bzl",
        "settings": "SETTINGS",
        "mnemonic": "KerasSavedModel",
        "test": "keras_saved_model_test",
        "test_file": "rules/private/keras_saved_model_test.bzl",
        "test_program": "rules/private/keras_saved_model_test_main.py",
        "provider": "SavedModelInfo",
        "flags_docs": "### The exporter's flags",
    },
    {
        "rule": "keras_tflite_model",
        "rule_file": "formats/tflite/keras_tflite_model.bzl",
        "program": "formats/tflite/tflite_converter.py",
        "library": "formats/tflite/tflite.py",
        "table": "formats/tflite/settings.bzl",
        "settings": "TFLITE_SETTINGS",
        "mnemonic": "KerasTfliteModel",
        "test": "keras_tflite_model_test",
        "test_file": "formats/tflite/keras_tflite_model_test.bzl",
        "test_program": "formats/tflite/keras_tflite_model_test_main.py",
        "provider": "TfliteModelInfo",
        "flags_docs": "### The converter's flags",
    },
    {
        "rule": "keras_onnx_model",
        "rule_file": "formats/onnx/keras_onnx_model.bzl",
        "program": "formats/onnx/onnx_converter.py",
        "library": "formats/onnx/onnx_model.py",
        "table": "formats/onnx/settings.bzl",
        "settings": "ONNX_SETTINGS",
        "optional_features": "ONNX_OPTIONAL_FEATURES",
        "mnemonic": "KerasOnnxModel",
        "test": "keras_onnx_model_test",
        "test_file": "formats/onnx/keras_onnx_model_test.bzl",
        "test_program": "formats/onnx/keras_onnx_model_test_main.py",
        "provider": "OnnxModelInfo",
        "flags_docs": "### The ONNX converter's flags",
    },
]
