"""One source of truth for the rules' surface, checked.

docs/rules.md, keras_saved_model's attributes (read by an aspect at analysis time,
tests/docs/surface.bzl), the macros' docstrings, the exporter's absl flags and
ExportRequest's fields must name the same things; the Starlark copies of the modes'
signature names and of the `module:symbol` syntax must agree with the Python ones, and
the action's environment must hold what the exporter relies on.
"""

import dataclasses
import json
import os
import re
import sys
import unittest

from absl import flags

from export import exporter
from export.lib import options
from export.lib.errors import ExportError

_WORKSPACE = os.path.join(
    os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", "")
)

# Attributes set by the macro itself, never by a user: documented on the rule only.
_INTERNAL_ATTRS = {"private_stamp_detect"}
# Arguments of every macro that pass through to Bazel's own attributes.
_COMMON_ARGS = {"name", "visibility", "tags", "testonly"}
# Flags the docs and docstrings may name besides the exporter's: Bazel's, absl's,
# saved_model_cli's, and `--flag` itself in prose.
_OTHER_FLAGS = {
    # Placeholders in errors.py's description of flag-to-attribute translation.
    "flag",
    "name",
    "noflag",
    # absl's, saved_model_cli's and bench/compare.py's.
    "flagfile",
    "helpfull",
    "quick",
    "repeat",
    "signature_def",
    "tag_set",
    "verbosity",
    # pip's.
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


def _rule_attrs_source(text: str, rule_name: str) -> dict[str, str]:
    """Attribute name -> its `attr.x(...)` source, in the `attrs` of `rule_name`."""
    start = text.index(f"{rule_name} = rule(")
    body = text[text.index("attrs = {", start) :]
    attrs = {}
    for match in re.finditer(r'^        "(\w+)": (attr\.\w+\()', body, re.MULTILINE):
        depth, i = 0, match.start(2)
        while True:
            depth += {"(": 1, ")": -1}.get(body[i], 0)
            i += 1
            if depth == 0 and body[i - 1] == ")":
                break
        attrs[match.group(1)] = body[match.start(2) : i]
        if body[i:].startswith(",\n    },"):
            break
    return attrs


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
            f.name for f in flags.FLAGS.get_flags_for_module(exporter.__name__)
        }
        cls.flag_rows = _table(
            _markdown_section(cls.docs, "### The exporter's flags"), "flag"
        )

    def test_the_aspect_saw_the_rule(self):
        # Guards the test itself: an empty dump would make every check below pass.
        self.assertIn("builder", self.attrs)
        self.assertIn("verify", self.attrs)
        self.assertNotIn("name", self.attrs)

    def test_every_attribute_has_a_doc(self):
        sources = _rule_attrs_source(self.rule_bzl, "keras_saved_model_rule")
        public = {n: s for n, s in sources.items() if not n.startswith("_")}
        self.assertEqual(set(public), self.attrs)
        undocumented = [
            name for name, source in public.items() if "doc = " not in source
        ]
        self.assertEqual(undocumented, [], "attributes without doc = ...")

    def test_docs_table_lists_every_attribute(self):
        rows = _table(_markdown_section(self.docs, "## keras_saved_model"), "attribute")
        documented = {name for row in rows for name in _code_names(row[0])}
        self.assertEqual(documented - _COMMON_ARGS, self.public_attrs)

    def test_macro_takes_and_documents_every_attribute(self):
        params, documented = _starlark_function(self.rule_bzl, "keras_saved_model")
        self.assertEqual(set(params) - _COMMON_ARGS - {"kwargs"}, self.public_attrs)
        self.assertEqual(documented, params, "Args: must follow the parameters")

    def test_public_file_only_forwards(self):
        defs = _read("rules/defs.bzl")
        self.assertNotRegex(defs, r"(?m)^def ", "rules/defs.bzl must only forward")
        for symbol in ("keras_saved_model", "keras_saved_model_test", "SavedModelInfo"):
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

    def test_docs_list_every_flag(self):
        documented = [
            name.lstrip("-") for row in self.flag_rows for name in _code_names(row[0])
        ]
        self.assertEqual(sorted(documented), sorted(self.flags))

    def test_flag_table_names_real_attributes_and_every_attribute(self):
        named = {
            name
            for row in self.flag_rows
            for name in _code_names(row[1])
            if "<" not in name
        }
        self.assertEqual(named - self.public_attrs, set(), "not attributes of the rule")
        self.assertEqual(self.public_attrs - named, set(), "attributes without a flag")

    def test_flag_table_agrees_with_the_error_translation(self):
        # errors.BAZEL_ATTRIBUTES, where it exists, turns a flag in an error message into
        # the attribute to set; the docs' table must name the same attribute first.
        from export.lib import errors

        translation = getattr(errors, "BAZEL_ATTRIBUTES", None)
        if translation is None:
            self.skipTest("this export/lib/errors.py has no BAZEL_ATTRIBUTES")
        documented = {
            _code_names(row[0])[0].lstrip("-"): _code_names(row[1])
            for row in self.flag_rows
        }
        for flag, attribute in translation.items():
            with self.subTest(flag=flag):
                self.assertIn(flag, documented, "not in docs/rules.md's flag table")
                self.assertEqual(documented[flag][:1], [attribute.name])
        for flag in errors.FLAGS_THE_RULE_SETS:
            with self.subTest(flag=flag):
                self.assertIn(flag, documented, "not in docs/rules.md's flag table")
                self.assertEqual(
                    [a for a in documented[flag] if "<" not in a], [], "set by the rule"
                )

    def test_every_request_field_has_a_flag_or_a_reason(self):
        fields = {f.name for f in dataclasses.fields(options.ExportRequest)}
        with_flag = {name for row in self.flag_rows for name in _code_names(row[2])}
        without = _table(
            _markdown_section(self.docs, "### The exporter's flags"), "field"
        )
        reasons = {_code_names(row[0])[0]: row[1] for row in without}
        self.assertEqual(with_flag - fields, set(), "not fields of ExportRequest")
        self.assertEqual(with_flag & set(reasons), set(), "a flag and a reason")
        self.assertEqual(fields - with_flag - set(reasons), set(), "no flag, no reason")
        self.assertEqual(set(reasons) - fields, set(), "reasons for no field")
        self.assertTrue(all(reasons.values()), "an empty reason")

    def test_docs_and_sources_name_only_real_flags(self):
        known = self.flags | {"no" + f for f in self.flags} | _OTHER_FLAGS
        paths = [
            "docs/rules.md",
            "rules/private/keras_saved_model.bzl",
            "export/exporter.py",
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

    def test_action_environment(self):
        env = self.surface["action_env"]
        # What the exporter relies on; the bench reads the whole environment from the
        # action itself (bench/compare.py), so there is no copy to keep in step.
        self.assertEqual(env["KERAS_BACKEND"], "tensorflow")
        self.assertEqual(env["PYTHONHASHSEED"], "0")
        self.assertEqual(env["TF_CPP_MIN_LOG_LEVEL"], "2")
        self.assertNotIn("PYTHONPATH", env)


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
                options.parse_symbol_reference(
                    "--builder", text, "--builder=pkg.mod:build"
                )
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
