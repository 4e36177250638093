"""Public API of rules_keras: Keras models as TensorFlow SavedModel build artifacts.

    load("@rules_keras//rules:defs.bzl", "keras_saved_model", "keras_saved_model_test")
"""

load("//rules/private:keras_saved_model.bzl", _keras_saved_model = "keras_saved_model")
load("//rules/private:keras_saved_model_test.bzl", _keras_saved_model_test = "keras_saved_model_test")
load("//rules/private:providers.bzl", _SavedModelInfo = "SavedModelInfo")

SavedModelInfo = _SavedModelInfo

def keras_saved_model(name, builder = None, src = None, deps = [], **kwargs):
    """Exports a Keras model as a TensorFlow SavedModel in one build action.

    The output is a folder `<name>/` in TF Serving's layout, holding `<version>/` with
    `saved_model.pb` (or `.pbtxt`), `variables/`, `assets/saved_model.json` (the Keras
    config) and `fingerprint.pb`. It is byte-identical for the same inputs and seed.
    Signatures: `serving_default` always; `eval` when the model is compiled with a
    loss; `train` (one optimizer step) when it also has an optimizer.

    Besides `<name>`, the macro makes `<name>.deps`, a py_library of the exporter's
    library plus `deps`, which keras_saved_model_test reuses. The action runs the
    shared `@rules_keras//export:exporter` with those deps' folders on its Python
    path, as a persistent worker by default (`--strategy=KerasSavedModel=sandboxed`
    turns workers off).

    Args:
      name: the target, and the name of the output folder.
      builder: "package.module:function" returning a keras.Model (compiled or not);
        its py_library goes in `deps`. Exactly one of `builder` and `src`.
      src: a `.keras` (or legacy `.h5`) model file label.
      deps: py_library targets the builder (or the model's custom objects) imports.
      **kwargs: further attributes:
        weights: a `.weights.h5` label loaded into the model after it is built.
        custom_objects: dict of name to "package.module:symbol", for objects the
          model's config names but Keras does not know.
        modes: list among "serve", "eval", "train"; default: every mode the model
          supports.
        label_specs: dict of output name to "SHAPE:DTYPE" (e.g. "None,10:float32",
          "None:int64") for the eval/train targets, where the guess from the loss
          is wrong.
        as_text: write `saved_model.pbtxt` instead of `saved_model.pb`.
        version: the version folder, an int >= 0 (default 1).
        stamp: 0 uses `version`; 1 uses the build time (BUILD_TIMESTAMP); -1 follows
          `--stamp`. As in rules_pkg.
        seed: random seed for weight initialisation (default 0).
        allow_unsafe_deserialization: load `src` files with Lambda code (default
          False: they are refused).
        verify: reload the SavedModel in the action and compare its outputs with the
          Keras model's (default True).
        visibility, tags, testonly: as usual, also applied to the helper targets.

    Provides `DefaultInfo` (the folder, also as runfiles) and `SavedModelInfo`.
    """
    _keras_saved_model(name = name, builder = builder, src = src, deps = deps, **kwargs)

def keras_saved_model_test(name, saved_model, golden = None, signatures = [], tolerance = None, deps = [], **kwargs):
    """A py_test that loads a keras_saved_model export in its own process and checks it.

    It checks that the expected signatures exist, that the serving outputs equal the
    Keras model's (rebuilt from the same builder or src, seed and weights) on seeded
    random inputs, or the outputs stored in `golden`, and that `load_keras_model`
    round-trips to the same predictions.

    Args:
      name: the test.
      saved_model: label of a keras_saved_model target.
      golden: optional `.npz` holding `input:<name>` and `output:<name>` arrays for
        the serving signature; its outputs are compared instead of the rebuilt model's.
      signatures: signature names that must exist, besides those the export lists.
      tolerance: max abs difference allowed (default 1e-5).
      deps: extra py_library deps for the test (the export's own deps are included).
      **kwargs: passed to py_test (size, tags, timeout, ...).
    """
    _keras_saved_model_test(
        name = name,
        saved_model = saved_model,
        golden = golden,
        signatures = signatures,
        tolerance = tolerance,
        deps = deps,
        **kwargs
    )
