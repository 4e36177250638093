"""ExportError in the user's own terms: flags on the command line, attributes under Bazel.

An error carries the setting at fault and the values it suggests as data; the same
error reads `--label_specs: ... --label_specs=probs=None:int64` from the command line
and `//pkg:x: attribute label_specs: ... label_specs = {"probs": "None:int64"}` from a
keras_saved_model target (tests/e2e/bazel_errors_test.sh checks real targets). Nothing
is translated from prose: a message names a setting only through `setting(...)`.
"""

import ast
import glob
import os
import re

from absl.testing import absltest

from export import exporter
from export.lib import errors, settings
from export.lib.errors import ExportError, setting
from tests.export import testutil

# Never imported: the bad label spec fails before the builder is looked at.
BUILDER = "tests.export.testmodels:mlp"
TARGET = "//pkg:my_export"

# (setting, value) -> (on the command line, in a target), one per kind of setting.
MENTIONS = [
    (("verify", False), "--noverify", "verify = False"),
    (("verify", True), "--verify", "verify = True"),
    (
        ("allow_unsafe_deserialization", True),
        "--allow_unsafe_deserialization",
        "allow_unsafe_deserialization = True",
    ),
    (
        ("label_specs", {"probs": "None:int64"}),
        "--label_specs=probs=None:int64",
        'label_specs = {"probs": "None:int64"}',
    ),
    (
        ("label_specs", {"a": "None:int64", "b": "None,2:float32"}),
        "--label_specs=a=None:int64 --label_specs=b=None,2:float32",
        'label_specs = {"a": "None:int64", "b": "None,2:float32"}',
    ),
    (("modes", ["serve", "eval"]), "--modes=serve,eval", 'modes = ["serve", "eval"]'),
    (("seed", 0), "--seed=0", "seed = 0"),
    (("version", 3), "--version=3", "version = 3"),
    # The exporter's timestamp is the rule's stamp.
    (("version", "timestamp"), "--version=timestamp", "stamp = 1"),
    (("builder", "m.n:build"), "--builder=m.n:build", 'builder = "m.n:build"'),
    (("src", "model.keras"), "--src=model.keras", 'src = "model.keras"'),
    # Set by the rule itself: there is no attribute to name, so the flag stays.
    (("output_dir", "DIR"), "--output_dir=DIR", "--output_dir=DIR"),
    (("verify",), "--verify", "verify"),
    # keras_tflite_model's, from formats/tflite/settings.bzl.
    (
        ("allow_select_tf_ops", True),
        "--allow_select_tf_ops",
        "allow_select_tf_ops = True",
    ),
    (("optimization", "float16"), "--optimization=float16", 'optimization = "float16"'),
]


class RenderTest(absltest.TestCase):
    def test_each_kind_of_mention(self):
        for args, command_line, target in MENTIONS:
            with self.subTest(mention=args):
                mention = setting(*args)
                self.assertEqual(mention.for_command_line(), command_line)
                self.assertEqual(mention.for_target(), target)

    def test_a_whole_message(self):
        error = ExportError(
            "label_specs",
            ["the loss fails on the labels of ", setting("label_specs")],
            ["state them, e.g. ", setting("label_specs", {"probs": "None:int64"})],
        )
        self.assertEqual(
            str(error),
            "--label_specs: the loss fails on the labels of --label_specs. State them,"
            " e.g. --label_specs=probs=None:int64.",
        )
        self.assertEqual(error.render(), str(error))
        self.assertEqual(
            error.render(TARGET),
            f"{TARGET}: attribute label_specs: the loss fails on the labels of"
            ' label_specs. State them, e.g. label_specs = {"probs": "None:int64"}.',
        )

    def test_a_fix_starting_with_a_setting_keeps_its_case(self):
        error = ExportError("verify", "output 'y' differs", [setting("verify", False)])
        self.assertEqual(error.render(), "--verify: output 'y' differs. --noverify.")
        self.assertEqual(
            error.render(TARGET),
            f"{TARGET}: attribute verify: output 'y' differs. verify = False.",
        )

    def test_two_settings_at_fault(self):
        error = ExportError(("builder", "src"), "neither was given", "give one")
        self.assertStartsWith(str(error), "--builder/--src: neither was given.")
        self.assertStartsWith(
            error.render(TARGET), f"{TARGET}: attribute builder/src: neither was given."
        )

    def test_a_setting_the_rule_sets(self):
        error = ExportError("output_dir", "'out' is a file", "point it at a folder")
        self.assertEqual(
            error.render(TARGET),
            f"{TARGET}: the exporter's --output_dir (set by keras_saved_model): 'out' is"
            " a file. Point it at a folder.",
        )

    def test_a_setting_the_tflite_rule_sets(self):
        error = ExportError("tflite_out", "'out' is a folder", "point it at a file")
        self.assertEqual(
            error.render("//pkg:my_tflite"),
            "//pkg:my_tflite: the tflite_converter's --tflite_out (set by"
            " keras_tflite_model): 'out' is a folder. Point it at a file.",
        )

    def test_details_follow_in_both(self):
        error = ExportError("builder", "it raised", "fix it", "Traceback: --builder")
        self.assertEqual(
            error.render(TARGET),
            f"{TARGET}: attribute builder: it raised. Fix it.\n\nTraceback: --builder",
        )

    def test_prose_is_never_rewritten(self):
        error = ExportError(
            "modes", "x--modes and --unknown_flag", "see saved_model_cli --tag_set"
        )
        self.assertEqual(
            error.render(TARGET),
            f"{TARGET}: attribute modes: x--modes and --unknown_flag. See saved_model_cli"
            " --tag_set.",
        )

    def test_an_unknown_setting_is_a_bug(self):
        with self.assertRaises(KeyError):
            ExportError("label_spec", "cause", "fix")
        with self.assertRaises(KeyError):
            setting("safe_mode", False)


def _literal_flags(source: str) -> set[str]:
    """Every `--name` written as text inside an ExportError(...) call of `source`."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "ExportError"
        ):
            for part in ast.walk(node):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    names |= set(re.findall(r"(?<![\w-])--(\w+)", part.value))
    return names


class VocabularyTest(absltest.TestCase):
    def test_messages_name_settings_only_through_mentions(self):
        # A flag written as text would reach a Bazel user as a flag.
        names = {s.name for table in settings.TABLES.values() for s in table}
        lib = os.path.dirname(errors.__file__)
        root = os.path.dirname(os.path.dirname(exporter.__file__))
        paths = sorted(glob.glob(os.path.join(lib, "*.py"))) + [
            os.path.join(root, path)
            for f in settings.FORMATS
            for path in (f.program, f.library)
        ]
        self.assertGreater(len(paths), 10)
        for path in paths:
            with open(path, encoding="utf-8") as f:
                used = _literal_flags(f.read())
            with self.subTest(file=os.path.basename(path)):
                self.assertEmpty(
                    {f for f in used if f.removeprefix("no") in names},
                    "settings written as flags instead of setting(...)",
                )

    def test_the_check_sees_flags_written_as_text(self):
        source = (
            'raise ExportError("verify", f"x {y}", ["pass --noverify or", " --seed=1"])'
        )
        self.assertEqual(_literal_flags(source), {"noverify", "seed"})


class CommandLineTest(absltest.TestCase):
    """The exporter prints flags, or with --target_label the target's attributes."""

    def _error(self, *extra: str) -> str:
        out = self.create_tempdir().full_path
        proc = testutil.run_exporter(
            [
                f"--builder={BUILDER}",
                f"--output_dir={out}",
                "--label_specs=probs=None,ten:int64",
                *extra,
            ]
        )
        self.assertEqual(proc.returncode, 1, proc.stderr)
        (line,) = [
            l for l in proc.stderr.splitlines() if l.startswith("exporter: error: ")
        ]
        return line

    def test_flags_on_the_command_line(self):
        line = self._error()
        self.assertStartsWith(line, "exporter: error: --label_specs: ")
        self.assertIn("--label_specs=probs=None,10:float32", line)

    def test_attributes_for_a_target(self):
        line = self._error("--target_label=//pkg:my_export")
        self.assertStartsWith(
            line, "exporter: error: //pkg:my_export: attribute label_specs: "
        )
        self.assertIn('label_specs = {"probs": "None,10:float32"}', line)
        self.assertNotIn("--", line)


if __name__ == "__main__":
    absltest.main()
