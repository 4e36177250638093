"""Library behind //export:exporter.

Modules: `api` (export_saved_model), `loader` (load_keras_model), `options` (request and
flag syntax), `sources` (model loading and checks), `signatures` (serve/eval/train),
`writer` (deterministic, atomic SavedModel writing), `verify`, `errors`.
Only `errors` and `options` are free of TensorFlow imports.
"""
