"""One source of truth for the rules' surface, checked.

Each artifact format's settings table (export/formats.bzl lists them) makes its rule's
attributes and its program's absl flags, and export/settings.bzl also ExportRequest's
fields; this checks that they came out of it (the attributes read by an aspect at
analysis time, tests/docs/surface.bzl) and that docs/rules.md and the macros'
docstrings name the same things, for every format through one check
(ArtifactFormatsTest). The Starlark copies of the `module:symbol` syntax and of the
signatures eval adds must agree with the Python ones, and each action's environment
must hold what the programs rely on.
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

from export.lib import options, settings
from export.lib.errors import ExportError

_WORKSPACE = os.path.join(
    os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", "")
)

# Attributes set by the macro itself, never by a user: documented on the rule only.
_INTERNAL_PREFIX = "private_"
# keras_saved_model's attributes that are not settings of the exporter: the rule turns
# them into other flags (deps: --import_path; stamp: --version=timestamp).
_RULE_ONLY_ATTRS = {"keras_saved_model": {"deps", "stamp"}}
# The docs' words for the settings' types.
_TYPE_WORDS = {
    "string": "string",
    "label": "label",
    "bool": "bool",
    "int": "int",
    "string_list": "string list",
    "string_dict": "dict string → string",
}
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
    # The test macros' programs' (rules/private/artifact_files.py).
    "artifact_files",
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


class ArtifactFormatsTest(unittest.TestCase):
    """Every artifact format (export/formats.bzl) checked alike: its rule's attributes
    are its table's user settings, documented with their types; its macros document
    what they take; its program's flags are its table's; its action's environment."""

    @classmethod
    def setUpClass(cls):
        cls.surface = json.loads(_read("tests/docs/surface.json"))["formats"]
        cls.docs = _read("docs/rules.md")

    def _formats(self):
        self.assertEqual(
            sorted(self.surface), sorted(f.rule for f in settings.FORMATS)
        )  # tests/docs/BUILD has a target of each rule
        return [(f, self.surface[f.rule]) for f in settings.FORMATS]

    def _public_attrs(self, seen: dict) -> set[str]:
        return {a for a in seen["attrs"] if not a.startswith(("_", _INTERNAL_PREFIX))}

    def test_attributes_are_the_user_settings(self):
        for artifact, seen in self._formats():
            with self.subTest(format=artifact.rule):
                user = {
                    s.name for s in settings.TABLES[artifact.rule] if s.is_attribute
                }
                self.assertIn(min(user), seen["attrs"])  # the aspect saw the rule
                own = _RULE_ONLY_ATTRS.get(artifact.rule, set())
                self.assertEqual(self._public_attrs(seen) - own, user)

    def test_every_setting_and_rule_attribute_has_a_doc(self):
        for artifact, seen in self._formats():
            with self.subTest(format=artifact.rule):
                table = settings.TABLES[artifact.rule]
                self.assertEqual([s.name for s in table if not s.doc.strip()], [])
                bzl = _read(artifact.rule_file)
                own = _RULE_ONLY_ATTRS.get(artifact.rule, set())
                internal = {a for a in seen["attrs"] if a.startswith(_INTERNAL_PREFIX)}
                for name in own | internal:
                    self.assertRegex(
                        bzl, rf"(?s)\n        {name} = attr\.\w+\(.*?doc = "
                    )

    def test_docs_table_lists_every_attribute_with_its_type(self):
        for artifact, seen in self._formats():
            with self.subTest(format=artifact.rule):
                rows = _table(
                    _markdown_section(self.docs, f"## {artifact.rule}"), "attribute"
                )
                documented = {name for row in rows for name in _code_names(row[0])}
                params, _ = _starlark_function(_read(artifact.rule_file), artifact.rule)
                # The macro's own arguments (contract) make targets, not attributes.
                self.assertEqual(
                    documented - _COMMON_ARGS,
                    self._public_attrs(seen)
                    | (set(params) - _COMMON_ARGS - {"kwargs"}),
                )
                table = {s.name for s in settings.TABLES[artifact.rule]}
                for row in rows:
                    name = _code_names(row[0])[0]
                    if name in table:
                        with self.subTest(attribute=name):
                            self.assertEqual(
                                row[1], _TYPE_WORDS[settings.get(name).type]
                            )

    def test_macro_documents_what_it_takes(self):
        for artifact, _ in self._formats():
            with self.subTest(format=artifact.rule):
                params, documented = _starlark_function(
                    _read(artifact.rule_file), artifact.rule
                )
                self.assertEqual(documented, params, "Args: must follow the parameters")
                self.assertIn("kwargs", params, "the attributes pass through **kwargs")

    def test_test_macro_documents_every_argument(self):
        for artifact, _ in self._formats():
            with self.subTest(format=artifact.rule):
                params, documented = _starlark_function(
                    _read(artifact.test_file), artifact.test
                )
                self.assertEqual(documented, params)
                rows = _table(
                    _markdown_section(self.docs, f"## {artifact.test}"), "attribute"
                )
                in_docs = {name for row in rows for name in _code_names(row[0])}
                self.assertLessEqual(set(params) - {"name", "kwargs"}, in_docs)
                # The other documented rows are py_test's attributes passed through kwargs.
                self.assertLessEqual(in_docs - set(params), {"size", "tags", "timeout"})

    def test_action_environment(self):
        for artifact, seen in self._formats():
            with self.subTest(format=artifact.rule):
                env = seen["action_env"]
                # What the programs rely on; the bench reads the whole environment from
                # the action itself (bench/compare.py), so there is no copy to keep.
                self.assertEqual(env["KERAS_BACKEND"], "tensorflow")
                self.assertEqual(env["PYTHONHASHSEED"], "0")
                self.assertEqual(env["TF_CPP_MIN_LOG_LEVEL"], "2")
                self.assertNotIn("PYTHONPATH", env)
                self.assertEqual(env, self.surface["keras_saved_model"]["action_env"])

    def test_provider_is_documented_and_public(self):
        defs = _read("rules/defs.bzl")
        for artifact, _ in self._formats():
            with self.subTest(format=artifact.rule):
                for symbol in (artifact.rule, artifact.test, artifact.provider):
                    self.assertRegex(defs, rf"(?m)^{symbol} = _{symbol}$")
                self.assertIn(f"\n## {artifact.provider}\n", self.docs)

    def test_program_flags_are_its_settings(self):
        for artifact, _ in self._formats():
            with self.subTest(format=artifact.rule):
                self.assertEqual(
                    program_flags(artifact),
                    {
                        s.name
                        for s in settings.program_settings(artifact.program_name)
                        if s.has_flag
                    },
                )

    def test_docs_list_every_program_flag_that_is_not_an_attribute(self):
        for artifact, _ in self._formats():
            with self.subTest(format=artifact.rule):
                section = _markdown_section(self.docs, f"## {artifact.rule}")
                rows = _table(_markdown_section(section, artifact.flags_docs), "flag")
                documented = [
                    name.lstrip("-") for row in rows for name in _code_names(row[0])
                ]
                table = settings.TABLES[artifact.rule]
                others = {s.name for s in table if s.has_flag and not s.is_attribute}
                self.assertEqual(sorted(documented), sorted(others))


class SurfaceTest(unittest.TestCase):
    """keras_saved_model's own surface: the request, the modes, the library."""

    @classmethod
    def setUpClass(cls):
        cls.surface = json.loads(_read("tests/docs/surface.json"))
        cls.docs = _read("docs/rules.md")
        cls.tflite_test_bzl = _read(_format("keras_tflite_model").test_file)

    def test_public_file_only_forwards(self):
        defs = _read("rules/defs.bzl")
        self.assertNotRegex(defs, r"(?m)^def ", "rules/defs.bzl must only forward")
        # Each format's rule, test and provider: ArtifactFormatsTest.
        self.assertRegex(defs, r"(?m)^keras_model_eval_test = _keras_model_eval_test$")

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

    def test_request_fields_are_the_settings_in_requests(self):
        fields = [f.name for f in dataclasses.fields(options.ExportRequest)]
        self.assertEqual(
            sorted(fields), sorted(s.name for s in settings.SETTINGS if s.in_request)
        )

    def test_docs_list_every_request_field_without_a_flag(self):
        rows = _table(_markdown_section(self.docs, "### The exporter's flags"), "field")
        documented = {_code_names(row[0])[0] for row in rows}
        self.assertEqual(
            documented, {s.name for s in settings.SETTINGS if not s.has_flag}
        )
        self.assertTrue(all(row[1] for row in rows), "an empty reason")

    def test_docs_and_sources_name_only_real_flags(self):
        programs = set().union(*(program_flags(f) for f in settings.FORMATS))
        known = programs | {"no" + f for f in programs} | _OTHER_FLAGS
        known |= _release_flags()
        paths = ["docs/rules.md"]
        for artifact in settings.FORMATS:
            paths += [artifact.table, artifact.rule_file, artifact.program]
        export_lib = os.path.join(_WORKSPACE, "export", "lib")
        paths += [
            f"export/lib/{n}"
            for n in sorted(os.listdir(export_lib))
            if n.endswith(".py")
        ] + [f.library for f in settings.FORMATS if not f.library.startswith("export/")]
        unknown = {}
        for path in paths:
            # `--name` in backticks, quotes or prose; not `---` table rules.
            for name in re.findall(r"(?<![-\w])--([a-z][a-z_-]*[a-z_])", _read(path)):
                if name not in known:
                    unknown.setdefault(path, set()).add(name)
        self.assertEqual(unknown, {}, "flags that the exporter does not define")

    def test_signature_of_each_mode_matches_the_exporter(self):
        from export.lib import signatures  # imports TensorFlow

        # The rule's and the library's, both read from export/settings.bzl; the modes'
        # order and names are options.MODES'.
        self.assertEqual(self.surface["signature_of_mode"], settings.SIGNATURE_OF_MODE)
        self.assertEqual(signatures.SIGNATURE_KEYS, settings.SIGNATURE_OF_MODE)
        self.assertEqual(signatures.SERVING_KEY, settings.SERVING_KEY)
        self.assertEqual(tuple(signatures.SIGNATURE_KEYS), options.MODES)

    def test_data_set_signatures_match_the_exporter(self):
        from export.lib import evaluation  # imports TensorFlow

        self.assertEqual(settings.DATA_SET_SIGNATURES, evaluation.DATA_SET_KEYS)

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

    def test_tflite_bounds_are_the_tests(self):
        main = _read(_format("keras_tflite_model").test_program)
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


def _format(rule: str) -> settings.Format:
    return next(f for f in settings.FORMATS if f.rule == rule)


def program_flags(artifact: settings.Format) -> set[str]:
    """The flags the format's program defines from the settings, read from its
    --helpxml (two programs cannot be imported together: both define --quiet)."""
    name = artifact.program_name
    program = os.path.join(_WORKSPACE, artifact.program.removesuffix(".py"))
    proc = subprocess.run(
        [program, "--helpxml"], capture_output=True, text=True, check=False
    )
    names = set()
    for flag in ElementTree.fromstring(proc.stdout).iter("flag"):
        if flag.findtext("file") == "export.lib.settings":
            names.add(flag.findtext("name"))
    if not names:
        raise AssertionError(f"no flags in the {name}'s --helpxml: {proc.stderr}")
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
