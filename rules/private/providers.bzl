"""Providers of rules_keras."""

SavedModelInfo = provider(
    doc = "A Keras model exported as a TensorFlow SavedModel by keras_saved_model.",
    fields = {
        "base_dir": "File: the tree artifact `<name>/` in TF Serving's layout; it " +
                    "holds one `<version>/` folder (point `model_base_path` here).",
        "version": "int: the version folder's name, or None when it is stamped with " +
                   "the build time (`stamp`) and only known after the build.",
        "signature_names": "list of string, or None: the signatures that `modes` " +
                           "decides at analysis time, in the exporter's " +
                           "order (`serving_default` always, then `eval`, `train`, and with " +
                           "`eval` its data-set signatures `eval_state`, `eval_result`, which " +
                           "the exporter leaves out, with a note, of a model whose " +
                           "metric states do not add up over batches); " +
                           "None when `modes` is unset and the model decides at build " +
                           "time: then `signatures` lists them.",
        "signatures": "File: JSON written by the exporter naming every signature it " +
                      "wrote, with each input's and output's shape and dtype.",
        "export_info": "File: JSON of what the export was made from (builder, model " +
                       "file, weights, custom objects, seed), as runfiles-relative " +
                       "paths; keras_saved_model_test reads it to rebuild the model. " +
                       "Its keys are listed in keras_saved_model.bzl's `_export_info`.",
        "builder": "string or None: `builder` (\"package.module:function\"), None " +
                   "when the model comes from `src`.",
        "src": "File or None: the `src` model file (its label is `src.owner`), None " +
               "when the model comes from `builder`. Not in the target's runfiles.",
        "weights": "File or None: the `weights` file. Not in the target's runfiles.",
        "provenance": "File: `<name>.provenance.json`, an in-toto Statement v1 with a " +
                      "SLSA v1 provenance predicate: every file of the version folder " +
                      "with its SHA-256 (the subject), the target, its settings and the " +
                      "SHA-256 of what it was built from (model file or builder modules, " +
                      "weights, custom objects, the exporter, the requirements lock, the " +
                      "Python toolchain). Byte-identical for the same inputs; in the " +
                      "target's runfiles and its `provenance` output group.",
    },
)
