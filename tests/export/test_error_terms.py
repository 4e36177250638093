"""ExportError in the user's own terms: flags on the command line, attributes under Bazel.

The same error reads `--label_spec: ... --label_spec=probs=None:int64` from the command
line and `//pkg:x: attribute label_specs: ... label_specs = {"probs": "None:int64"}`
from a keras_saved_model target (tests/e2e/bazel_errors_test.sh checks real targets).
"""

import ast
import glob
import os
import re

from absl import flags
from absl.testing import absltest

from export import exporter
from export.lib import errors
from export.lib.errors import ExportError
from tests.export import testutil

# Never imported: the bad label spec fails before the builder is looked at.
BUILDER = "tests.export.testmodels:mlp"
TARGET = "//pkg:my_export"

# (flag, cause, fix) -> (command-line message, Bazel message) for TARGET.
RENDERINGS = [
    (
        (
            "--safe_mode",
            "'m.keras' contains Python code",
            "if you trust it, pass --nosafe_mode",
        ),
        "--safe_mode: 'm.keras' contains Python code. If you trust it, pass --nosafe_mode.",
        (
            f"{TARGET}: attribute allow_unsafe_deserialization: 'm.keras' contains Python"
            " code. If you trust it, pass allow_unsafe_deserialization = True."
        ),
    ),
    (
        ("--verify", "output 'y' differs", "--noverify skips the check"),
        "--verify: output 'y' differs. --noverify skips the check.",
        f"{TARGET}: attribute verify: output 'y' differs. verify = False skips the check.",
    ),
    (
        (
            "--label_spec",
            "'probs=x' is not of the form OUTPUT_NAME=SHAPE:DTYPE",
            "write it like --label_spec=probs=None,10:float32 (or --label_spec=p=None:int64)",
        ),
        (
            "--label_spec: 'probs=x' is not of the form OUTPUT_NAME=SHAPE:DTYPE. Write it"
            " like --label_spec=probs=None,10:float32 (or --label_spec=p=None:int64)."
        ),
        (
            f"{TARGET}: attribute label_specs: 'probs=x' is not of the form"
            ' OUTPUT_NAME=SHAPE:DTYPE. Write it like label_specs = {"probs":'
            ' "None,10:float32"} (or label_specs = {"p": "None:int64"}).'
        ),
    ),
    (
        (
            "--custom_objects",
            "'Scale' is unknown",
            "pass --custom_objects=Scale=m.n:Scale",
        ),
        "--custom_objects: 'Scale' is unknown. Pass --custom_objects=Scale=m.n:Scale.",
        (
            f"{TARGET}: attribute custom_objects: 'Scale' is unknown. Pass custom_objects ="
            ' {"Scale": "m.n:Scale"}.'
        ),
    ),
    (
        (
            "--modes",
            "'train' needs a loss",
            "drop 'train' from --modes, or --modes=serve,eval",
        ),
        "--modes: 'train' needs a loss. Drop 'train' from --modes, or --modes=serve,eval.",
        (
            f"{TARGET}: attribute modes: 'train' needs a loss. Drop 'train' from modes, or"
            ' modes = ["serve", "eval"].'
        ),
    ),
    (
        (
            "--builder/--model_file",
            "neither was given",
            "pass either --builder=pkg.mod:build or --model_file=PATH.keras",
        ),
        (
            "--builder/--model_file: neither was given. Pass either --builder=pkg.mod:build"
            " or --model_file=PATH.keras."
        ),
        (
            f"{TARGET}: attribute builder/src: neither was given. Pass either builder ="
            ' "pkg.mod:build" or src = "PATH.keras".'
        ),
    ),
    (
        (
            "--weights",
            "they do not fit",
            "pass --weights saved from what --builder builds",
        ),
        "--weights: they do not fit. Pass --weights saved from what --builder builds.",
        (
            f"{TARGET}: attribute weights: they do not fit. Pass weights saved from what"
            " builder builds."
        ),
    ),
    (
        (
            "--seed",
            "'-1' is negative",
            "pass e.g. --seed=0; pick another --version=timestamp",
        ),
        "--seed: '-1' is negative. Pass e.g. --seed=0; pick another --version=timestamp.",
        (
            f"{TARGET}: attribute seed: '-1' is negative. Pass e.g. seed = 0; pick another"
            " stamp = 1."
        ),
    ),
    (
        # Set by the rule itself: named as the exporter's flag, and said so.
        ("--output_dir", "'out' is a file", "point --output_dir at a folder"),
        "--output_dir: 'out' is a file. Point --output_dir at a folder.",
        (
            f"{TARGET}: the exporter's --output_dir (set by keras_saved_model): 'out' is a"
            " file. Point --output_dir at a folder."
        ),
    ),
]


class RenderTest(absltest.TestCase):
    def test_both_renderings(self):
        for args, command_line, bazel in RENDERINGS:
            with self.subTest(flag=args[0]):
                error = ExportError(*args)
                self.assertEqual(str(error), command_line)
                self.assertEqual(error.render(), command_line)
                self.assertEqual(error.render(TARGET), bazel)

    def test_details_follow_in_both(self):
        error = ExportError("--builder", "it raised", "fix it", "Traceback: --builder")
        self.assertEqual(
            error.render(TARGET),
            f"{TARGET}: attribute builder: it raised. Fix it.\n\nTraceback: --builder",
        )

    def test_unknown_dashes_are_left_alone(self):
        error = ExportError(
            "--modes", "x--modes and --unknown_flag", "see saved_model_cli --tag_set"
        )
        self.assertEqual(
            error.render(TARGET),
            f"{TARGET}: attribute modes: x--modes and --unknown_flag. See saved_model_cli"
            " --tag_set.",
        )


def _exporter_flags() -> set[str]:
    return {f.name for f in flags.FLAGS.get_flags_for_module(exporter)}


def _bazel_attributes() -> set[str]:
    """The attributes of keras_saved_model_rule, read from its .bzl file."""
    path = os.path.join(
        os.environ["TEST_SRCDIR"],
        os.environ["TEST_WORKSPACE"],
        "rules/private/keras_saved_model.bzl",
    )
    with open(path, encoding="utf-8") as f:
        return set(re.findall(r'^\s+"(\w+)": attr\.', f.read(), re.MULTILINE))


def _flags_in_error_texts() -> dict[str, set[str]]:
    """Every `--name` written in an ExportError(...) call of the exporter, by file."""
    lib = os.path.dirname(errors.__file__)
    found = {}
    for path in sorted(glob.glob(os.path.join(lib, "*.py"))) + [exporter.__file__]:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        names = set()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "ExportError"
            ):
                for arg in node.args:
                    for part in ast.walk(arg):
                        if isinstance(part, ast.Constant) and isinstance(
                            part.value, str
                        ):
                            names |= set(re.findall(r"(?<![\w-])--(\w+)", part.value))
        found[os.path.basename(path)] = names
    return found


class TableTest(absltest.TestCase):
    def test_every_flag_has_an_attribute_or_is_set_by_the_rule(self):
        mapped = set(errors.BAZEL_ATTRIBUTES) | errors.FLAGS_THE_RULE_SETS
        self.assertEqual(_exporter_flags(), mapped)
        self.assertEmpty(set(errors.BAZEL_ATTRIBUTES) & errors.FLAGS_THE_RULE_SETS)

    def test_every_attribute_named_exists(self):
        named = {a.name for a in errors.BAZEL_ATTRIBUTES.values()}
        named |= {
            s.split(" = ")[0]
            for a in errors.BAZEL_ATTRIBUTES.values()
            for _, s in a.special_values
        }
        self.assertContainsSubset(named, _bazel_attributes())

    def test_error_texts_name_only_real_flags(self):
        # Only the exporter's flags are turned into attributes; any other `--name` in a
        # message would reach a Bazel user as it is.
        known = _exporter_flags()
        for name, used in _flags_in_error_texts().items():
            with self.subTest(file=name):
                unknown = {
                    f
                    for f in used
                    if f not in known and f.removeprefix("no") not in known
                }
                self.assertEmpty(
                    unknown, f"flags that do not exist in ExportErrors of {name}"
                )
        self.assertIn("label_spec", _flags_in_error_texts()["options.py"])


class CommandLineTest(absltest.TestCase):
    """The exporter prints flags, or with --target_label the target's attributes."""

    def _error(self, *extra: str) -> str:
        out = self.create_tempdir().full_path
        proc = testutil.run_exporter(
            [
                f"--builder={BUILDER}",
                f"--output_dir={out}",
                "--label_spec=probs=None,ten:int64",
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
        self.assertStartsWith(line, "exporter: error: --label_spec: ")
        self.assertIn("--label_spec=probs=None,10:float32", line)

    def test_attributes_for_a_target(self):
        line = self._error("--target_label=//pkg:my_export")
        self.assertStartsWith(
            line, "exporter: error: //pkg:my_export: attribute label_specs: "
        )
        self.assertIn('label_specs = {"probs": "None,10:float32"}', line)
        self.assertNotIn("--", line)


if __name__ == "__main__":
    absltest.main()
