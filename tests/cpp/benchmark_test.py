"""`bazel run //models:my_export.benchmark` prints and writes latency percentiles and
throughput per batch size (their format, never their values: times are measured in
bench/, not asserted in tests)."""

import json
import os
import subprocess

from absl.testing import absltest

_WORKSPACE = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"])
_BENCHMARK = os.path.join(_WORKSPACE, "models", "my_export.benchmark.sh")
_NUMBER = r"\d+(\.\d+)?"


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as in a user's shell
    return subprocess.run(
        [_BENCHMARK, *args],
        cwd=_WORKSPACE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


class BenchmarkTest(absltest.TestCase):
    def test_prints_and_writes_percentiles_per_batch_size(self):
        json_out = os.path.join(self.create_tempdir().full_path, "b.json")
        result = run(
            "--batch_sizes=1,4",
            "--iterations=3",
            "--warmup=1",
            f"--json_out={json_out}",
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn("signature serving_default", lines[0])
        self.assertEqual(
            lines[1].split(),
            ["batch", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "examples/s"],
        )
        for line, batch in zip(lines[2:4], ("1", "4"), strict=True):
            fields = line.split()
            self.assertEqual(fields[:2], [batch, "3"], line)
            for field in fields[2:]:
                self.assertRegex(field, f"^{_NUMBER}$", line)
        self.assertEqual(lines[4], f"wrote {json_out}")
        self.assertEqual(result.stderr, "")  # TensorFlow's logs are quiet
        with open(json_out) as f:
            written = json.load(f)
        self.assertEqual(written["signature"], "serving_default")
        self.assertEqual([r["batch_size"] for r in written["results"]], [1, 4])
        for row in written["results"]:
            self.assertEqual(
                sorted(row),
                sorted(
                    [
                        "batch_size",
                        "iterations",
                        "p50_ms",
                        "p90_ms",
                        "p99_ms",
                        "mean_ms",
                        "examples_per_s",
                    ]
                ),
            )
            self.assertLessEqual(row["p50_ms"], row["p90_ms"])
            self.assertLessEqual(row["p90_ms"], row["p99_ms"])

    def test_a_bad_flag_is_named_in_one_line(self):
        result = run("--batch_sizes=1,zero")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            "saved_model_benchmark: --batch_sizes wants a positive number, not 'zero'\n",
        )


if __name__ == "__main__":
    absltest.main()
