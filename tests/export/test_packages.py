"""The exporter runs on its core packages alone; each optional feature names its own.

export/lib/packages.py lists the core (TensorFlow, Keras, absl) and each optional
feature's PyPI package. Here: the programs import without any optional package (a
module-level import of one would make every export need it); a target that asks for a
feature whose package is missing fails with one paragraph naming its attribute, the
package and the line to add, before anything is written; and docs/rules.md and
requirements.in name the same packages as the table.
"""

import contextlib
import importlib
import os
import re
import subprocess
import sys

from absl.testing import absltest

from export.lib import packages, settings
from export.lib.errors import ExportError
from tests.export import testmodels, testutil

TARGET = "//ml:ranker"

# What Bazel runs on the core alone: each artifact format's library and test program,
# and the exporter (one program a process: each defines the programs' flags).
PROGRAM_MODULES = ["export.exporter"] + [
    module for f in settings.FORMATS for module in (f.library_module, f.test_module)
]

# Makes every optional feature's top-level package unimportable, as in a Python that
# never installed it, then imports the modules named on the command line.
_WITHOUT_OPTIONAL_PACKAGES = """
import importlib, sys
from export.lib import packages

blocked = {f.module.split(".")[0] for f in packages.OPTIONAL_FEATURES.values()}

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Missing())
for module in sys.argv[1:]:
    importlib.import_module(module)
print("imported", len(sys.argv) - 1)
"""


def _workspace_file(path: str) -> str:
    root = os.path.join(
        os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", "")
    )
    return os.path.join(root, path) if os.environ.get("TEST_SRCDIR") else path


class _Missing:
    """An import finder for which a package is not installed."""

    def __init__(self, top: str):
        self.top = top

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == self.top:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@contextlib.contextmanager
def _missing_package(feature: packages.OptionalFeature):
    """The feature's package is not installed, in this process, for the block.

    Only its own modules leave sys.modules (and come back after): the rest stays, so
    that TensorFlow's modules are never imported twice.
    """
    top = feature.module.split(".")[0]
    imported = {n: m for n, m in sys.modules.items() if n.split(".")[0] == top}
    for name in imported:
        del sys.modules[name]
    finder = _Missing(top)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        sys.modules.update(imported)


class CoreAloneTest(absltest.TestCase):
    def test_the_programs_import_without_any_optional_package(self):
        result = subprocess.run(
            [sys.executable, "-c", _WITHOUT_OPTIONAL_PACKAGES, *PROGRAM_MODULES],
            env=testutil.child_env(),
            capture_output=True,
            text=True,
            timeout=testutil.TIMEOUT_S,
            check=False,
        )
        self.assertEqual(
            result.returncode,
            0,
            "a program imports an optional package to start (import it through"
            f" export/lib/packages.py when used):\n{result.stderr[-3000:]}",
        )
        self.assertIn(f"imported {len(PROGRAM_MODULES)}", result.stdout)


class MissingPackageTest(absltest.TestCase):
    def test_each_feature_names_its_attribute_package_and_line(self):
        for name, feature in packages.OPTIONAL_FEATURES.items():
            with self.subTest(feature=name):
                with (
                    _missing_package(feature),
                    self.assertRaises(ExportError) as caught,
                ):
                    packages.require(name)
                error = caught.exception
                self.assertEqual(error.settings, (feature.setting,))
                text = error.render(TARGET)
                self.assertNotIn("\n", text)
                self.assertStartsWith(text, f"{TARGET}: attribute {feature.setting}:")
                self.assertIn(f"needs the PyPI package {feature.package}", text)
                self.assertIn(f'requirement("{feature.package}")', text)
                self.assertIn(f'"@pypi//{feature.bazel_name}"', text)
                self.assertIn(packages.LIBRARY_FLAG, text)
                self.assertIn(f"No module named '{feature.module.split('.')[0]}'", text)

    def test_an_export_with_warmup_requests_fails_first_without_its_package(self):
        from export.lib import api

        feature = packages.OPTIONAL_FEATURES[packages.WARMUP_RECORDS]
        out = self.create_tempdir().full_path
        request = api.ExportRequest(
            builder=f"{testmodels.MODULE}:mlp", output_dir=out, warmup_requests=2
        )
        with _missing_package(feature), self.assertRaises(ExportError) as caught:
            api.export_saved_model(request)
        text = caught.exception.render(TARGET)
        self.assertStartsWith(text, f"{TARGET}: attribute warmup_requests:")
        self.assertIn("tensorflow-serving-api", text)
        self.assertIn("or set warmup_requests = 0.", text)
        self.assertEqual(os.listdir(out), [], "nothing is written")

    def test_an_export_without_warmup_requests_needs_no_serving_package(self):
        from export.lib import api

        feature = packages.OPTIONAL_FEATURES[packages.WARMUP_RECORDS]
        out = self.create_tempdir().full_path
        request = api.ExportRequest(builder=f"{testmodels.MODULE}:mlp", output_dir=out)
        with _missing_package(feature):
            path = api.export_saved_model(request)
        self.assertTrue(os.path.isfile(os.path.join(path, "saved_model.pb")))


class TableTest(absltest.TestCase):
    def test_each_optional_module_belongs_to_an_importable_package_here(self):
        # rules_keras's own venv installs every optional package (requirements.in).
        for name, feature in packages.OPTIONAL_FEATURES.items():
            with self.subTest(feature=name):
                importlib.import_module(feature.module)

    def test_requirements_in_lists_the_core_and_every_optional_package(self):
        with open(_workspace_file("requirements.in"), encoding="utf-8") as f:
            listed = {
                re.split(r"[~=<>!\[ ]", line.strip())[0].lower()
                for line in f
                if line.strip() and not line.startswith("#")
            }
        wanted = set(packages.CORE_PACKAGES.values()) | {
            f.package for f in packages.OPTIONAL_FEATURES.values()
        }
        # keras comes with tensorflow-cpu, which requires it.
        self.assertEmpty(wanted - listed - {"keras"})

    def test_docs_name_the_core_and_every_optional_package(self):
        with open(_workspace_file("docs/rules.md"), encoding="utf-8") as f:
            docs = f.read()
        section = docs.split("### Optional features", 1)[-1].split("\n#", 1)[0]
        rows = {
            tuple(cell.strip().strip("`") for cell in line.strip("|").split("|"))
            for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| feature")
        }
        for name, feature in packages.OPTIONAL_FEATURES.items():
            with self.subTest(feature=name):
                self.assertIn(
                    (name, feature.setting, feature.package),
                    {row[:3] for row in rows},
                    "docs/rules.md, Optional features: add the row"
                    f" | `{name}` | `{feature.setting}` | `{feature.package}` | ... |",
                )
        self.assertLen(rows, len(packages.OPTIONAL_FEATURES), "a row of no feature")
        core = section.split("\n|", 1)[0]
        for package in packages.CORE_PACKAGES.values():
            self.assertIn(f"`{package}`", core)


if __name__ == "__main__":
    absltest.main()
