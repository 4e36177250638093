"""Library behind //export:exporter. Public API: `export.lib.api`; the rest is internal.

See README.md here.

Modules: `api` (export_saved_model), `loader` (load_keras_model), `options` (request and
flag syntax), `sources` (model loading and checks), `interface` (a model's inputs and
outputs as flat named tensors), `signatures` (serve/eval/train), `writer`
(deterministic, atomic SavedModel writing), `verify`, `worker` (Bazel's persistent
worker protocol), `errors`. Only `errors`, `options` and `worker` are free of
TensorFlow imports.
"""
