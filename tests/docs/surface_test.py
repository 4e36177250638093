"""One source of truth for the rules' surface, checked.

The settings table (export/settings.bzl) makes keras_saved_model's attributes, the
exporter's absl flags and ExportRequest's fields; this checks that they came out of it
(the attributes read by an aspect at analysis time, tests/docs/surface.bzl) and that
docs/rules.md and the macros' docstrings name the same things. The Starlark copies of
the modes' signature names and of the `module:symbol` syntax must agree with the Python
ones, and the action's environment must hold what the exporter relies on.
"""

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import unittest
from xml.etree import ElementTree

from absl import flags

from export import exporter
from export.lib import options, settings
from export.lib.errors import ExportError

_WORKSPACE = os.path.join(
    os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", "")
)

# Attributes set by the macro itself, never by a user: documented on the rule only.
_INTERNAL_ATTRS = {"private_stamp_detect"}
# keras_saved_model's attributes that are not settings of the exporter: the rule turns
# them into other flags (deps: --import_path; stamp: --version=timestamp).
_RULE_ONLY_ATTRS = {"deps", "stamp"}
# Arguments of every macro that pass through to Bazel's own attributes.
_COMMON_ARGS = {"name", "visibility", "tags", "testonly"}
# keras_saved_model's arguments that make targets of their own rather than set an
# attribute (contract: the contract test and update program).
_MACRO_ONLY_ARGS = {"contract"}
# Flags the docs and docstrings may name besides the exporter's: Bazel's, absl's,
# saved_model_cli's, and `--flag` itself in prose.
_OTHER_FLAGS = {
    # Placeholders and prefixes in the code that writes flags: `--name`, `--flag`,
    # `--no` + a bool's name.
    "flag",
    "name",
    "no",
    "help",
    # absl's, saved_model_cli's and bench/compare.py's.
    "flagfile",
    "helpfull",
    "quick",
    "repeat",
    "signature_def",
    "tag_set",
    "verbosity",
    # TF Serving's model server's, named where a push writes its models.config.
    "model_config_file",
    # The C++ benchmark's (cc/saved_model_benchmark.cc) and predict_cc's.
    "batch_sizes",
    "iterations",
    "json_out",
    "seed",
    "signature",
    "unknown_dim",
    "warmup",
    # pip's and uv's.
    "no-deps",
    "override",
    "require-hashes",
    # Bazel's, named where the docs say how to build.
    "experimental_sandbox_async_tree_delete_idle_threads",
    "nolegacy_external_runfiles",
    "repo_env",
    "sandbox_base",
    "stamp",
    "strategy",
    "worker_sandboxing",
}


def _read(path: str) -> str:
    with open(os.path.join(_WORKSPACE, path), encoding="utf-8") as f:
        return f.read()


def _markdown_section(text: str, heading: str) -> str:
    """The lines after `heading` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading) + 1
    for end in range(start, len(lines)):
        if re.match(rf"^#{{1,{level}}} ", lines[end]):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def _table(section: str, first_header: str) -> list[list[str]]:
    """The rows of the first table in `section` whose header starts with first_header."""
    rows: list[list[str]] = []
    in_table = False
    for line in section.splitlines():
        if line.startswith(f"| {first_header} |"):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set(cells[0]) <= {"-"}:
                rows.append(cells)
    if not rows:
        raise AssertionError(f"no table with a '{first_header}' column in the section")
    return rows


def _code_names(cell: str) -> list[str]:
    """`a`, `b` -> [a, b]: the names a table cell gives in backticks."""
    return re.findall(r"`([^`]+)`", cell)


def _starlark_function(text: str, name: str) -> tuple[list[str], list[str]]:
    """(parameter names, names in the docstring's Args:) of `def name(...)` in text."""
    match = re.search(
        rf"^def {name}\((.*?)\):\n    \"\"\"(.*?)\"\"\"", text, re.DOTALL | re.MULTILINE
    )
    if not match:
        raise AssertionError(f"no `def {name}` with a docstring")
    params = [
        p.strip().split("=")[0].strip().lstrip("*")
        for p in match.group(1).split(",")
        if p.strip()
    ]
    args = match.group(2).split("\n    Args:\n", 1)
    if len(args) != 2:
        raise AssertionError(f"`{name}`'s docstring has no Args: section")
    documented = re.findall(r"^      (\*{0,2}\w+):", args[1], re.MULTILINE)
    return params, [d.lstrip("*") for d in documented]


def _release_flags():
    """The flags of keras_saved_model's `.sign`, `.verify` and `.push` programs."""
    import importlib.util

    folder = os.path.join(_WORKSPACE, "rules", "private")
    # release.py imports its sibling provenance.py, as it does in its own binary.
    if folder not in sys.path:
        sys.path.insert(0, folder)
    path = os.path.join(folder, "release.py")
    spec = importlib.util.spec_from_file_location("release", path)
    release = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(release)
    return {a.dest for a in release.build_parser()._actions}


class SurfaceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.surface = json.loads(_read("tests/docs/surface.json"))
        cls.docs = _read("docs/rules.md")
        cls.rule_bzl = _read("rules/private/keras_saved_model.bzl")
        cls.test_bzl = _read("rules/private/keras_saved_model_test.bzl")
        cls.attrs = set(cls.surface["attrs"]) - {
            a for a in cls.surface["attrs"] if a.startswith("_")
        }
        cls.public_attrs = cls.attrs - _INTERNAL_ATTRS
        cls.flags = {
            f.name for f in flags.FLAGS.get_key_flags_for_module(exporter.__name__)
        }
        cls.flag_rows = _table(
            _markdown_section(cls.docs, "### The exporter's flags"), "flag"
        )
        cls.tflite_bzl = _read("rules/private/keras_tflite_model.bzl")
        cls.tflite_test_bzl = _read("rules/private/keras_tflite_model_test.bzl")
        cls.tflite_attrs = {
            a for a in cls.surface["tflite_attrs"] if not a.startswith("_")
        }
        cls.converter_flags = _converter_flags()

    def test_the_aspect_saw_the_rule(self):
        # Guards the test itself: an empty dump would make every check below pass.
        self.assertIn("builder", self.attrs)
        self.assertIn("verify", self.attrs)
        self.assertNotIn("name", self.attrs)

    # This test and the flags' and request fields' below compare two things made
    # from settings.bzl (they catch a generator that drops or adds a setting); the
    # independent check is test_docs_table_lists_every_attribute's, against the
    # hand-written docs/rules.md.
    def test_attributes_are_the_user_settings(self):
        user = {s.name for s in settings.SETTINGS if s.is_attribute}
        self.assertEqual(self.public_attrs - _RULE_ONLY_ATTRS, user)

    def test_every_setting_and_rule_attribute_has_a_doc(self):
        self.assertEqual([s.name for s in settings.SETTINGS if not s.doc.strip()], [])
        for name in _RULE_ONLY_ATTRS | _INTERNAL_ATTRS:
            with self.subTest(attribute=name):
                self.assertRegex(
                    self.rule_bzl, rf"(?s)\n        {name} = attr\.\w+\(.*?doc = "
                )

    def test_docs_table_lists_every_attribute(self):
        rows = _table(_markdown_section(self.docs, "## keras_saved_model"), "attribute")
        documented = [name for row in rows for name in _code_names(row[0])]
        self.assertEqual(
            sorted(set(documented) - _COMMON_ARGS),
            sorted(self.public_attrs | _MACRO_ONLY_ARGS),
        )

    def test_docs_table_gives_each_settings_type(self):
        rows = _table(_markdown_section(self.docs, "## keras_saved_model"), "attribute")
        words = {
            "string": "string",
            "label": "label",
            "bool": "bool",
            "int": "int",
            "string_list": "string list",
            "string_dict": "dict string → string",
        }
        for row in rows:
            name = _code_names(row[0])[0]
            if name in settings.BY_NAME:
                with self.subTest(attribute=name):
                    self.assertEqual(row[1], words[settings.get(name).type])

    def test_macro_documents_what_it_takes(self):
        params, documented = _starlark_function(self.rule_bzl, "keras_saved_model")
        self.assertEqual(documented, params, "Args: must follow the parameters")
        self.assertIn("kwargs", params, "the attributes pass through **kwargs")
        self.assertLessEqual(
            set(params) - {"kwargs"}, _COMMON_ARGS | {"deps"} | _MACRO_ONLY_ARGS
        )

    def test_public_file_only_forwards(self):
        defs = _read("rules/defs.bzl")
        self.assertNotRegex(defs, r"(?m)^def ", "rules/defs.bzl must only forward")
        for symbol in (
            "keras_saved_model",
            "keras_saved_model_test",
            "keras_model_eval_test",
            "SavedModelInfo",
            "keras_tflite_model",
            "keras_tflite_model_test",
            "TfliteModelInfo",
        ):
            self.assertRegex(defs, rf"(?m)^{symbol} = _{symbol}$")

    def test_test_macro_documents_every_argument(self):
        params, documented = _starlark_function(self.test_bzl, "keras_saved_model_test")
        self.assertEqual(documented, params)
        rows = _table(
            _markdown_section(self.docs, "## keras_saved_model_test"), "attribute"
        )
        in_docs = {name for row in rows for name in _code_names(row[0])}
        self.assertLessEqual(set(params) - {"name", "kwargs"}, in_docs)
        # The other documented rows are py_test's own attributes passed through kwargs.
        self.assertLessEqual(in_docs - set(params), {"size", "tags", "timeout"})

    def test_eval_test_macro_documents_every_argument(self):
        bzl = _read("rules/private/keras_model_eval_test.bzl")
        params, documented = _starlark_function(bzl, "keras_model_eval_test")
        self.assertEqual(documented, params)
        rows = _table(
            _markdown_section(self.docs, "## keras_model_eval_test"), "attribute"
        )
        in_docs = {name for row in rows for name in _code_names(row[0])}
        self.assertLessEqual(set(params) - {"name", "kwargs"}, in_docs)
        self.assertLessEqual(in_docs - set(params), {"size", "tags", "timeout"})

    def test_flags_are_the_settings_with_flags(self):
        self.assertEqual(self.flags, {s.name for s in settings.SETTINGS if s.has_flag})

    def test_request_fields_are_the_settings_in_requests(self):
        fields = [f.name for f in dataclasses.fields(options.ExportRequest)]
        self.assertEqual(
            sorted(fields), sorted(s.name for s in settings.SETTINGS if s.in_request)
        )

    def test_docs_list_every_flag_that_is_not_an_attribute(self):
        documented = [
            name.lstrip("-") for row in self.flag_rows for name in _code_names(row[0])
        ]
        others = {
            s.name for s in settings.SETTINGS if s.has_flag and not s.is_attribute
        }
        self.assertEqual(sorted(documented), sorted(others))

    def test_docs_list_every_request_field_without_a_flag(self):
        rows = _table(_markdown_section(self.docs, "### The exporter's flags"), "field")
        documented = {_code_names(row[0])[0] for row in rows}
        self.assertEqual(
            documented, {s.name for s in settings.SETTINGS if not s.has_flag}
        )
        self.assertTrue(all(row[1] for row in rows), "an empty reason")

    def test_docs_and_sources_name_only_real_flags(self):
        programs = self.flags | self.converter_flags
        known = programs | {"no" + f for f in programs} | _OTHER_FLAGS
        known |= _release_flags()
        paths = [
            "docs/rules.md",
            "export/settings.bzl",
            "export/tflite_settings.bzl",
            "rules/private/keras_saved_model.bzl",
            "rules/private/keras_tflite_model.bzl",
            "export/exporter.py",
            "export/tflite_converter.py",
        ]
        export_lib = os.path.join(_WORKSPACE, "export", "lib")
        paths += [
            f"export/lib/{n}"
            for n in sorted(os.listdir(export_lib))
            if n.endswith(".py")
        ]
        unknown = {}
        for path in paths:
            # `--name` in backticks, quotes or prose; not `---` table rules.
            for name in re.findall(r"(?<![-\w])--([a-z][a-z_-]*[a-z_])", _read(path)):
                if name not in known:
                    unknown.setdefault(path, set()).add(name)
        self.assertEqual(unknown, {}, "flags that the exporter does not define")

    def test_signature_of_each_mode_matches_the_exporter(self):
        from export.lib import signatures  # imports TensorFlow

        self.assertEqual(self.surface["signature_of_mode"], signatures.SIGNATURE_KEYS)
        self.assertEqual(tuple(signatures.SIGNATURE_KEYS), options.MODES)

    def test_data_set_signatures_match_the_exporter(self):
        from export.lib import evaluation  # imports TensorFlow

        match = re.search(r"(?m)^_DATA_SET_SIGNATURES = (\[.*\])$", self.rule_bzl)
        self.assertIsNotNone(match, "keras_saved_model.bzl: no _DATA_SET_SIGNATURES")
        self.assertEqual(tuple(json.loads(match.group(1))), evaluation.DATA_SET_KEYS)

    def test_warmup_limit_matches_the_exporter(self):
        match = re.search(r"(?m)^_MAX_WARMUP_REQUESTS = (\d+)$", self.rule_bzl)
        self.assertIsNotNone(match, "keras_saved_model.bzl: no _MAX_WARMUP_REQUESTS")
        self.assertEqual(int(match.group(1)), options.MAX_WARMUP_REQUESTS)

    def test_lib_readme_lists_the_public_api(self):
        from export.lib import api  # imports TensorFlow

        readme = _read("export/lib/README.md")
        public = readme.split("**Public:**", 1)[1].split("(its `__all__`)", 1)[0]
        self.assertEqual(
            sorted(re.findall(r"`(\w+)`", public)),
            sorted(api.__all__),
            "export/lib/README.md's public names and api.__all__ differ",
        )

    def test_lib_readme_lists_every_module(self):
        readme = _read("export/lib/README.md")
        listed = set(re.findall(r"(?m)^\| `(\w+)` \|", readme))
        modules = {
            name.removesuffix(".py")
            for name in os.listdir(os.path.join(_WORKSPACE, "export/lib"))
            if name.endswith(".py") and name != "__init__.py"
        }
        self.assertEqual(listed, modules, "export/lib/README.md's module table")

    def test_action_environment(self):
        env = self.surface["action_env"]
        # What the exporter relies on; the bench reads the whole environment from the
        # action itself (bench/compare.py), so there is no copy to keep in step.
        self.assertEqual(env["KERAS_BACKEND"], "tensorflow")
        self.assertEqual(env["PYTHONHASHSEED"], "0")
        self.assertEqual(env["TF_CPP_MIN_LOG_LEVEL"], "2")
        self.assertNotIn("PYTHONPATH", env)

    # keras_tflite_model: its table (export/tflite_settings.bzl), the converter's flags.

    def test_tflite_attributes_are_the_tflite_user_settings(self):
        self.assertIn("saved_model", self.tflite_attrs)  # the aspect saw the rule
        user = {s.name for s in settings.TFLITE_SETTINGS if s.is_attribute}
        self.assertEqual(self.tflite_attrs, user)

    def test_tflite_action_has_the_exports_environment(self):
        self.assertEqual(self.surface["tflite_action_env"], self.surface["action_env"])

    def test_tflite_docs_table_lists_every_attribute_with_its_type(self):
        rows = _table(
            _markdown_section(self.docs, "## keras_tflite_model"), "attribute"
        )
        documented = {name for row in rows for name in _code_names(row[0])}
        self.assertEqual(documented - _COMMON_ARGS, self.tflite_attrs)
        for row in rows:
            name = _code_names(row[0])[0]
            if name in self.tflite_attrs:
                with self.subTest(attribute=name):
                    self.assertEqual(row[1], settings.get(name).type)

    def test_tflite_macro_documents_what_it_takes(self):
        params, documented = _starlark_function(self.tflite_bzl, "keras_tflite_model")
        self.assertEqual(documented, params, "Args: must follow the parameters")
        self.assertLessEqual(set(params) - {"kwargs"}, _COMMON_ARGS | {"saved_model"})

    def test_tflite_test_macro_documents_every_argument(self):
        params, documented = _starlark_function(
            self.tflite_test_bzl, "keras_tflite_model_test"
        )
        self.assertEqual(documented, params)
        rows = _table(
            _markdown_section(self.docs, "## keras_tflite_model_test"), "attribute"
        )
        in_docs = {name for row in rows for name in _code_names(row[0])}
        self.assertLessEqual(set(params) - {"name", "kwargs"}, in_docs)
        self.assertLessEqual(in_docs - set(params), {"size", "tags", "timeout"})

    def test_converter_flags_are_its_settings(self):
        self.assertEqual(
            self.converter_flags,
            {s.name for s in settings.CONVERTER_SETTINGS if s.has_flag},
        )

    def test_docs_list_every_converter_flag_that_is_not_an_attribute(self):
        rows = _table(_markdown_section(self.docs, "### The converter's flags"), "flag")
        documented = {name.lstrip("-") for row in rows for name in _code_names(row[0])}
        self.assertEqual(
            documented,
            {s.name for s in settings.TFLITE_SETTINGS if not s.is_attribute},
        )

    def test_tflite_bounds_are_the_tests(self):
        main = _read("rules/private/keras_tflite_model_test_main.py")
        (assignment,) = [
            node
            for node in ast.parse(main).body
            if isinstance(node, ast.Assign)
            and getattr(node.targets[0], "id", None) == "TOLERANCES"
        ]
        bounds = ast.literal_eval(assignment.value)
        self.assertEqual(set(bounds), set(settings.get("optimization").values))
        rows = _table(
            _markdown_section(self.docs, "## keras_tflite_model_test"), "`optimization`"
        )
        self.assertEqual(
            {_code_names(row[0])[0]: float(row[1]) for row in rows}, bounds
        )
        in_docstring = re.findall(r"`(\w+)` ([0-9][0-9.e-]*)", self.tflite_test_bzl)
        self.assertEqual({name: float(x) for name, x in in_docstring}, bounds)


def _converter_flags() -> set[str]:
    """The flags //export:tflite_converter defines from the settings, read from its
    --helpxml (it cannot be imported next to the exporter: both define --quiet)."""
    program = os.path.join(_WORKSPACE, "export", "tflite_converter")
    proc = subprocess.run(
        [program, "--helpxml"], capture_output=True, text=True, check=False
    )
    names = set()
    for flag in ElementTree.fromstring(proc.stdout).iter("flag"):
        if flag.findtext("file") == "export.lib.settings":
            names.add(flag.findtext("name"))
    if not names:
        raise AssertionError(f"no flags in the converter's --helpxml: {proc.stderr}")
    return names


class SymbolSyntaxTest(unittest.TestCase):
    """One table (tests/docs/BUILD) run through the Starlark and the Python check."""

    @classmethod
    def setUpClass(cls):
        cls.verdicts = json.loads(_read("tests/docs/symbol_syntax.json"))

    def test_table_is_not_empty(self):
        for kind in ("symbol_references", "custom_object_names"):
            verdicts = {v["expected"] for v in self.verdicts[kind].values()}
            self.assertEqual(verdicts, {"good", "bad"}, kind)

    def test_symbol_references(self):
        for text, verdict in self.verdicts["symbol_references"].items():
            try:
                options.parse_symbol_reference("builder", text, "pkg.mod:build")
                python = "good"
            except ExportError:
                python = "bad"
            with self.subTest(text=text):
                self.assertEqual(verdict["starlark"], verdict["expected"], "Starlark")
                self.assertEqual(python, verdict["expected"], "Python")

    def test_custom_object_names(self):
        for text, verdict in self.verdicts["custom_object_names"].items():
            try:
                options.parse_custom_object(f"{text}=models.layers:ChannelScale")
                from_flag = "good"
            except ExportError:
                from_flag = "bad"
            try:
                options.parse_custom_objects({text: object()})
                from_library = "good"
            except ExportError:
                from_library = "bad"
            with self.subTest(text=text):
                self.assertEqual(verdict["starlark"], verdict["expected"], "Starlark")
                self.assertEqual(from_flag, verdict["expected"], "--custom_objects")
                self.assertEqual(from_library, verdict["expected"], "ExportRequest")


if __name__ == "__main__":
    sys.argv[1:] = []
    unittest.main()
