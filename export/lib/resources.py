"""The TensorFlow resources the signatures use besides variables: the hash tables of
StringLookup, IntegerLookup and TextVectorization, with their initializers and
vocabulary files, which the saved root must track (signatures.ExportModule's
`model_resources`) for the SavedModel to hold them.
"""

import hashlib
import os

import tensorflow as tf

from export.lib.errors import ExportError


def captured_resources(model, functions, tracked_variables) -> list:
    """The TensorFlow resources `functions` capture besides `tracked_variables`.

    Keras keeps lookup tables (StringLookup, IntegerLookup, TextVectorization) and the
    odd plain tf.Variable outside model.variables; a SavedModel must track every resource
    its functions use. They are found among the objects the model tracks and returned in
    the order the functions first capture them, which is the same in every process.
    Raises ExportError for a resource nothing in the model holds.
    """
    known = {id(v.handle) for v in tracked_variables}
    needed = []
    for function in functions:
        for tensor in function.captured_inputs:
            if tensor.dtype == tf.resource and id(tensor) not in known:
                known.add(id(tensor))
                needed.append(tensor)
    if not needed:
        return []
    owners = {}
    for trackable in tf.train.TrackableView(model).descendants():
        if isinstance(trackable, tf.saved_model.experimental.TrackableResource):
            owners.setdefault(id(trackable.resource_handle), trackable)
        elif isinstance(trackable, tf.Variable):
            owners.setdefault(id(trackable.handle), trackable)
    missing = [t for t in needed if id(t) not in owners]
    if missing:
        # TensorFlow notes on a resource's handle which object made it.
        makers = [getattr(t, "_parent_trackable", lambda: None)() for t in missing]
        kinds = sorted({type(m).__name__ for m in makers if m is not None})
        what = ", ".join(kinds) if kinds else "a lookup table, tf.Variable or the like"
        raise ExportError(
            ("builder", "src"),
            f"the model's functions use {len(missing)} TensorFlow resource(s) ({what})"
            " that no layer of the model holds, so the SavedModel cannot save them",
            "create each such object inside a layer (in __init__ or build) and keep it as"
            " an attribute of that layer, rather than in the builder or a closure",
        )
    resources = [owners[id(t)] for t in needed]
    for resource in resources:
        _check_files(resource)
        _name_table_by_contents(resource)
    return resources


def _files_of(resource) -> list[str]:
    """Paths of the files (tf.saved_model.Asset) a resource is initialized from."""
    return [
        os.fsdecode(t.asset_path.numpy())
        for t in tf.train.TrackableView(resource).descendants()
        if isinstance(t, tf.saved_model.Asset)
    ]


def _check_files(resource) -> None:
    # tf.saved_model.save skips a missing file without a word; the table then fails
    # to initialize when the SavedModel is loaded.
    for path in _files_of(resource):
        if not os.path.isfile(path):
            raise ExportError(
                ("builder", "src"),
                f"the file '{path}' that a lookup table of the model was built from (a"
                " vocabulary file) no longer exists, so the SavedModel cannot include it",
                "keep the file in place until the export is done (not in a temporary"
                " folder the builder deletes), or give the vocabulary as a list",
            )


def _name_table_by_contents(resource) -> None:
    """A table read from a file is named after the file's path (`hash_table_/abs/path
    /vocab.txt_-2_-1`), which differs between checkouts, sandboxes and machines, and
    would reach saved_model.pb. The path is replaced by a digest of the file's contents:
    the same bytes wherever the file is, and tables of equal contents may share."""
    initializer = getattr(resource, "_initializer", None)
    if not isinstance(initializer, tf.lookup.TextFileInitializer):
        return
    path = getattr(initializer, "_filename_arg", None)
    name = getattr(resource, "_shared_name", None)
    if not isinstance(path, str) or not isinstance(name, str) or path not in name:
        return
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    resource._shared_name = name.replace(path, f"file_{digest}")
