"""Keras layer state that lives outside the variables: saved beside the SavedModel,
restored by load_keras_model.

Some layers keep state that neither `get_config()` nor their variables hold: an adapted
StringLookup, IntegerLookup or TextVectorization keeps its vocabulary in a hash table,
which Keras's own `.keras` format saves through the layer's `save_assets(dir)` and
restores through `load_assets(dir)`. The export calls the same hooks, one folder per
layer under `assets/keras_layers/`, named by the layer's path of names from the model
(`text_vectorization/string_lookup`), so the re-created model finds each one again.

Other layers finish their state after their variables are loaded, in their own
`load_own_variables` (an adapted Normalization computes the mean and variance it uses
from its restored variables). Restoring through `tf.train.Checkpoint` bypasses that, so
those layers have their restored variables passed through their own hook afterwards;
what their `save_own_variables` stores besides variables (a TF-IDF lookup's weights) is
saved in their folder.
"""

import json
import os

import keras
import numpy as np

LAYER_ASSETS_DIR = "keras_layers"
# Per layer: store key -> {"variable": index in layer.variables} or {"file": "N.npy"}.
_OWN_STATE_INDEX = "own_variables.json"


def named_layers(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """Every nested layer once, with its path of names, in Keras's own layer order."""
    result, seen = [], {id(model)}
    stack = [("", model)]
    while stack:
        prefix, parent = stack.pop(0)
        used: dict[str, int] = {}
        children = []
        for child in parent._layers:  # Keras's tracked sublayers, in creation order
            if id(child) in seen:
                continue
            seen.add(id(child))
            name = child.name
            if name in used:  # two sublayers of one parent may share a name
                used[name] += 1
                name = f"{name}_{used[name]}"
            used.setdefault(name, 0)
            path = f"{prefix}/{name}" if prefix else name
            result.append((path, child))
            children.append((path, child))
        stack[:0] = children
    return result


def write_layer_assets(model: keras.Model, assets_dir: str) -> None:
    """Writes each layer's Keras assets (an adapted vocabulary) and the part of its own
    saved state that is not one of its variables, under assets_dir."""
    root = os.path.join(assets_dir, LAYER_ASSETS_DIR)
    for path, layer in named_layers(model):
        folder = os.path.join(root, *path.split("/"))
        os.makedirs(folder, exist_ok=True)
        if hasattr(layer, "save_assets"):
            layer.save_assets(folder)
        if _has_own_loading(layer):
            _write_own_state(layer, folder)
        # Nothing written (a vocabulary given in the config): leave no empty folder.
        while folder != root and not os.listdir(folder):
            os.rmdir(folder)
            folder = os.path.dirname(folder)
    if os.path.isdir(root) and not os.listdir(root):
        os.rmdir(root)


def restore_layer_state(
    model: keras.Model, assets_dir: str, with_assets: bool = True
) -> None:
    """Runs the layers' own loading hooks once the checkpoint is restored; without
    `with_assets` when load_layer_assets has already given them their assets."""
    root = os.path.join(assets_dir, LAYER_ASSETS_DIR)
    for path, layer in named_layers(model):
        folder = os.path.join(root, *path.split("/"))
        if _has_own_loading(layer):
            layer.load_own_variables(_own_store(layer, folder))
        if with_assets and hasattr(layer, "load_assets") and os.path.isdir(folder):
            layer.load_assets(folder)


def load_layer_assets(model: keras.Model, assets_dir: str) -> None:
    """Gives the layers their assets (vocabularies) alone: what a model needs before
    it can be called on its inputs, when its variables are not yet restored."""
    root = os.path.join(assets_dir, LAYER_ASSETS_DIR)
    for path, layer in named_layers(model):
        folder = os.path.join(root, *path.split("/"))
        if hasattr(layer, "load_assets") and os.path.isdir(folder):
            layer.load_assets(folder)


def _has_own_loading(layer) -> bool:
    return type(layer).load_own_variables is not keras.layers.Layer.load_own_variables


def _write_own_state(layer, folder: str) -> None:
    """Saves what the layer's save_own_variables stores besides its variables (a
    TF-IDF lookup's weights); the variables themselves are in the checkpoint."""
    store: dict = {}
    layer.save_own_variables(store)
    positions = {id(v): i for i, v in enumerate(layer.variables)}
    if all(id(value) in positions for value in store.values()):
        return
    index = {}
    for number, (key, value) in enumerate(store.items()):
        if id(value) in positions:
            index[key] = {"variable": positions[id(value)]}
        else:
            index[key] = {"file": f"{number}.npy"}
            np.save(os.path.join(folder, f"{number}.npy"), np.asarray(value))
    with open(os.path.join(folder, _OWN_STATE_INDEX), "w", encoding="utf-8") as f:
        json.dump(index, f, sort_keys=True, indent=1)


def _own_store(layer, folder: str) -> dict:
    """The store the layer's load_own_variables expects, as save_own_variables made it."""
    index_path = os.path.join(folder, _OWN_STATE_INDEX)
    if not os.path.isfile(index_path):
        # Only variables, which the checkpoint restored: the layer's own hook derives
        # whatever else it keeps from them.
        store: dict = {}
        layer.save_own_variables(store)
        return store
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    return {
        key: layer.variables[entry["variable"]]
        if "variable" in entry
        else np.load(os.path.join(folder, entry["file"]))
        for key, entry in index.items()
    }
