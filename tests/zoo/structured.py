"""Structured data: a dict of float, int and string columns in, preprocessing inside.

The styles of keras.io's "Structured data classification from scratch" (lookup layers
and CategoryEncoding, a Normalization adapted per column) and "Structured data
classification with FeatureSpace".
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

# A few rows in the shape of the heart-disease table of the keras.io tutorials.
PATIENTS = {
    "age": [63.0, 67.0, 41.0, 56.0, 57.0, 44.0, 52.0, 60.0],
    "chol": [233.0, 286.0, 204.0, 236.0, 354.0, 263.0, 199.0, 206.0],
    "sex": [1, 1, 0, 1, 0, 1, 1, 0],
    "cp": [1, 4, 2, 2, 4, 2, 3, 4],
    "thal": [
        "fixed",
        "normal",
        "normal",
        "reversible",
        "normal",
        "reversible",
        "fixed",
        "reversible",
    ],
}
HAS_DISEASE = [0, 1, 0, 1, 1, 0, 0, 1]
NUMERIC = ("age", "chol")
INTEGER_CATEGORIES = ("sex", "cp")


def _column(name):
    values = PATIENTS[name]
    if isinstance(values[0], str):
        return np.array(values, dtype=object)
    return np.array(
        values, dtype="float32" if isinstance(values[0], float) else "int64"
    )


def heart_lookups() -> keras.Model:
    inputs, encoded = {}, []
    for name in NUMERIC:
        inputs[name] = keras.Input(shape=(1,), name=name)
        normalizer = layers.Normalization()
        normalizer.adapt(_column(name)[:, None])
        encoded.append(normalizer(inputs[name]))
    for name in INTEGER_CATEGORIES:
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="int64")
        lookup = layers.IntegerLookup(output_mode="one_hot")
        lookup.adapt(_column(name))
        encoded.append(lookup(inputs[name]))
    inputs["thal"] = keras.Input(shape=(1,), name="thal", dtype="string")
    string_lookup = layers.StringLookup(output_mode="int")
    string_lookup.adapt(_column("thal"))
    one_hot = layers.CategoryEncoding(
        num_tokens=string_lookup.vocabulary_size(), output_mode="one_hot"
    )
    encoded.append(one_hot(string_lookup(inputs["thal"])))
    x = layers.concatenate(encoded)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    output = layers.Dense(1, activation="sigmoid", name="disease")(x)
    model = keras.Model(inputs, output)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model


def _patients_batch():
    x = {name: _column(name)[:5, None] for name in PATIENTS}
    # A category the vocabulary has never seen goes to the out-of-vocabulary index.
    x["thal"][4, 0] = "unknown"
    return x, np.array(HAS_DISEASE[:5], dtype="float32")[:, None]


def heart_lookups_batch():
    return _patients_batch()


def heart_feature_space() -> keras.Model:
    feature_space = keras.utils.FeatureSpace(
        features={
            "sex": keras.utils.FeatureSpace.integer_categorical(num_oov_indices=1),
            "cp": keras.utils.FeatureSpace.integer_categorical(num_oov_indices=1),
            "thal": keras.utils.FeatureSpace.string_categorical(num_oov_indices=1),
            "age": keras.utils.FeatureSpace.float_discretized(num_bins=3),
            "chol": keras.utils.FeatureSpace.float_normalized(),
        },
        crosses=[
            keras.utils.FeatureSpace.cross(feature_names=("sex", "age"), crossing_dim=8)
        ],
        output_mode="concat",
    )
    columns = {name: _column(name) for name in PATIENTS}
    feature_space.adapt(tf.data.Dataset.from_tensor_slices(columns).batch(4))
    inputs = feature_space.get_inputs()
    encoded = feature_space.get_encoded_features()
    x = layers.Dense(16, activation="relu")(encoded)
    x = layers.Dropout(0.5)(x)
    output = layers.Dense(1, activation="sigmoid", name="disease")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model


def heart_feature_space_batch():
    return _patients_batch()
