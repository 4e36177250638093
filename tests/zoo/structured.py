"""Structured data: a dict of float, int and string columns in, preprocessing inside.

The styles of keras.io's "Structured data classification from scratch" (lookup layers
and CategoryEncoding, a Normalization adapted per column) and "Structured data
classification with FeatureSpace"; and a table of heavy-tailed numbers compressed by a
signed log in a Lambda layer.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

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


# Heavy-tailed columns of a tabular regression (amounts spanning orders of magnitude,
# signed): the kind a signed log compresses before the dense layers.
TRANSACTIONS = {
    "amount": [12.5, 830.0, 4.2, 15200.0, 61.0, 2.9, 540.0, 98000.0],
    "balance_change": [-40.0, 1200.0, -3.5, -26000.0, 15.0, 0.0, -880.0, 51000.0],
    "items": [1.0, 12.0, 1.0, 140.0, 3.0, 1.0, 7.0, 900.0],
    "account_days": [3.0, 410.0, 1.0, 2900.0, 45.0, 12.0, 730.0, 5100.0],
}
FRAUD_SCORE = [0.1, 0.3, 0.0, 0.9, 0.2, 0.0, 0.4, 1.0]


def signed_log_features() -> keras.Model:
    """Dense layers over signed-log features: the Lambda's code uses `ops`, imported
    at the top of this module, as the most common Lambda does."""
    inputs = keras.Input(shape=(len(TRANSACTIONS),), name="transaction")
    x = layers.Lambda(lambda t: ops.sign(t) * ops.log1p(ops.abs(t)))(inputs)
    x = layers.Dense(16, activation="relu")(x)
    output = layers.Dense(1, name="fraud_score")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def signed_log_features_batch():
    x = np.stack([TRANSACTIONS[name] for name in TRANSACTIONS], axis=1)
    y = np.array(FRAUD_SCORE, dtype="float32")[:, None]
    return x.astype("float32"), y
