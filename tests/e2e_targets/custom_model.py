"""A small tabular classifier built around the custom GatedDense layer.

Exported by //tests/e2e_targets:custom_layer_export with
custom_objects = {"GatedDense": "tests.e2e_targets.layers:GatedDense"}.
"""

import keras

from tests.e2e_targets.layers import GatedDense


def build() -> keras.Model:
    features = keras.Input(shape=(6,), name="features")
    x = GatedDense(8, name="gated")(features)
    scores = keras.layers.Dense(3, activation="softmax", name="scores")(x)
    model = keras.Model(features, scores, name="gated_classifier")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model
