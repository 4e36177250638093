"""Reading `<name>.export.json`: what a keras_saved_model export was made from.

keras_saved_model writes it next to the `<name>/` folder (keras_saved_model.bzl's
_export_info documents its keys); the rules' tests rebuild the Keras model from it.
"""

import json
import os

from export.lib import options, settings, tensor_specs

# Its keys: the target's label and every setting a user sets, files as runfiles paths.
KEYS = {"label"} | {s.name for s in settings.SETTINGS if s.is_attribute}

# The tests' inputs: they differ from the exporter's own verification inputs (seed 0).
INPUT_SEED = 20261123


def read(base_dir: str) -> dict:
    """The `.export.json` of the export folder `base_dir` (a runfiles path)."""
    with open(base_dir + ".export.json", encoding="utf-8") as f:
        info = json.load(f)
    if set(info) != KEYS:
        raise AssertionError(
            f"{base_dir}.export.json has the keys {sorted(info)}, the tests read"
            f" {sorted(KEYS)}: update both keras_saved_model.bzl and"
            " rules/private/export_info.py"
        )
    return info


def model_source(info: dict) -> options.ModelSource:
    """Where the export's Keras model comes from: its builder or model file, weights,
    custom objects, seed and declared input specs."""
    specs, _ = options.parse_custom_objects(
        [f"{name}={ref}" for name, ref in info["custom_objects"].items()]
    )
    return options.ModelSource(
        builder=info["builder"],
        src=info["src"] and _runfile(info["src"]),
        weights=info["weights"] and _runfile(info["weights"]),
        custom_objects=specs,
        allow_unsafe_deserialization=info["allow_unsafe_deserialization"],
        seed=info["seed"],
        input_specs=tensor_specs.parse_input_specs(info["input_specs"]),
    )


def _runfile(path: str) -> str:
    return os.path.normpath(
        os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"], path)
    )
