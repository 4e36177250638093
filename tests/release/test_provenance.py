"""`<name>.provenance.json` of the example export says what the export holds and what
it was built from: the digests are recomputed here from the files themselves."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from runfiles import runfiles

RUNFILES = runfiles.Create()


def rlocation(path):
    return RUNFILES.Rlocation(os.path.join(os.environ["TEST_WORKSPACE"], path))


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class ProvenanceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(rlocation("models/my_export.provenance.json"), encoding="utf-8") as f:
            cls.text = f.read()
        cls.statement = json.loads(cls.text)
        cls.export = rlocation("models/my_export")

    def test_is_an_in_toto_statement_with_slsa_provenance(self):
        self.assertEqual(self.statement["_type"], "https://in-toto.io/Statement/v1")
        self.assertEqual(
            self.statement["predicateType"], "https://slsa.dev/provenance/v1"
        )
        # Written with sorted keys and a final newline: one text for one statement.
        self.assertEqual(
            self.text, json.dumps(self.statement, indent=2, sort_keys=True) + "\n"
        )

    def test_subject_is_every_file_of_the_export_with_its_sha256(self):
        (version,) = os.listdir(self.export)
        folder = os.path.join(self.export, version)
        on_disk = {}
        for root, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                on_disk[os.path.relpath(path, folder)] = sha256_of(path)
        claimed = {s["name"]: s["digest"]["sha256"] for s in self.statement["subject"]}
        self.assertIn("saved_model.pb", on_disk)
        self.assertEqual(claimed, on_disk)
        self.assertEqual(
            self.statement["predicate"]["buildDefinition"]["externalParameters"][
                "version"
            ],
            int(version),
        )

    def test_names_the_target_and_its_settings(self):
        parameters = self.statement["predicate"]["buildDefinition"][
            "externalParameters"
        ]
        self.assertEqual(parameters["target"], "//models:my_export")
        self.assertEqual(parameters["settings"]["builder"], "models.my_model:build")
        self.assertEqual(parameters["settings"]["modes"], ["serve", "eval", "train"])
        self.assertEqual(parameters["settings"]["warmup_requests"], 4)
        self.assertFalse(parameters["stamped"])
        # No clock: a build at another time gives the same statement.
        self.assertEqual(self.statement["predicate"]["runDetails"]["metadata"], {})

    def test_digests_what_it_was_built_from(self):
        built_from = {
            d["name"]: d["digest"]["sha256"]
            for d in self.statement["predicate"]["buildDefinition"][
                "resolvedDependencies"
            ]
        }
        # The builder's module, the custom object's module, the exporter and the lock.
        for path in [
            "models/my_model.py",
            "models/layers.py",
            "export/exporter.py",
            "export/lib/writer.py",
        ]:
            self.assertEqual(built_from.get(path), sha256_of(rlocation(path)), path)
        self.assertEqual(
            built_from.get("//:requirements_lock.txt"),
            sha256_of(rlocation("requirements_lock.txt")),
        )
        (interpreter,) = self.statement["predicate"]["runDetails"]["builder"][
            "builderDependencies"
        ]
        self.assertRegex(interpreter["digest"]["sha256"], "^[0-9a-f]{64}$")
        self.assertIn("python_version", interpreter["annotations"])


class StampTest(unittest.TestCase):
    """The program of the provenance action, on a stamped copy of the example export."""

    def write(self, export, *flags):
        output = os.path.join(self.tmp, "out.json")
        subprocess.run(
            [
                rlocation("rules/private/provenance"),
                f"--export_dir={export}",
                f"--export_info={rlocation('models/my_export.export.json')}",
                "--target=//models:my_export",
                f"--interpreter={sys.executable}",
                "--interpreter_name=python3",
                f"--output={output}",
                *flags,
            ],
            check=True,
        )
        with open(output, "rb") as f:
            return f.read()

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def test_only_stamp_puts_a_time_in_it_and_that_time_is_the_version(self):
        export = os.path.join(self.tmp, "my_export")
        (version,) = os.listdir(rlocation("models/my_export"))
        # 2026-12-07T01:02:03Z, as a stamped export's version folder.
        shutil.copytree(
            os.path.join(rlocation("models/my_export"), version),
            os.path.join(export, "1796605323"),
        )
        stamped = json.loads(self.write(export, "--stamped"))
        self.assertEqual(
            stamped["predicate"]["runDetails"]["metadata"],
            {"startedOn": "2026-12-07T01:02:03Z"},
        )
        self.assertTrue(
            stamped["predicate"]["buildDefinition"]["externalParameters"]["stamped"]
        )
        unstamped = self.write(export)
        self.assertEqual(
            json.loads(unstamped)["predicate"]["runDetails"]["metadata"], {}
        )
        # The same inputs, the same bytes.
        self.assertEqual(self.write(export), unstamped)


if __name__ == "__main__":
    unittest.main()
