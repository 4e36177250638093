"""Providers of rules_keras."""

SavedModelInfo = provider(
    doc = "A Keras model exported as a TensorFlow SavedModel by keras_saved_model.",
    fields = {
        "base_dir": "File: the tree artifact `<name>/` in TF Serving's layout; it " +
                    "holds one `<version>/` folder (point `model_base_path` here).",
        "version": "int: the version folder's name, or None when it is stamped with " +
                   "the build time (`stamp`) and only known after the build.",
        "signature_names": "list of string: the signatures requested through `modes` " +
                           "(`serving_default`, `eval`, `train`); empty when `modes` " +
                           "is unset and the model decides at build time (see " +
                           "`signatures`).",
        "signatures": "File: JSON written by the exporter naming every signature it " +
                      "wrote, with each input's and output's shape and dtype.",
        "export_info": "File: JSON of what the export was made from (builder, model " +
                       "file, weights, custom objects, seed), as runfiles-relative " +
                       "paths; keras_saved_model_test reads it to rebuild the model.",
        "source": "Label of `src`, or the `builder` string (`module:function`).",
    },
)
