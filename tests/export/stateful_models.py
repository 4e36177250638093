"""Builders of models that carry their own preprocessing and state, written the way the
keras.io tutorials write them: lookup layers (adapted or given a vocabulary), a
structured-data model over a dict of raw features, a FeatureSpace, an adapted
Normalization, mixed precision, and a position table shorter than the exporter's first
guess for an unknown sequence length.

Used as --builder=tests.export.stateful_models:NAME; the exporter seeds Keras first.
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from keras import layers

MODULE = __name__
COLORS_FILE = os.path.join(os.path.dirname(__file__), "testdata", "colors.txt")

REVIEWS = [
    "the movie was great and the actors were great",
    "a terrible film with a terrible plot",
    "great plot and fine acting",
    "the worst movie of the year",
    "fine but long",
    "i loved the music and the story",
]
# A few rows in the style of the heart-disease data the keras.io structured data
# tutorials use: numeric, integer-coded and string features.
HEART = {
    "age": np.array([[63.0], [67.0], [41.0], [56.0], [57.0], [44.0]], np.float32),
    "sex": np.array([[1], [0], [1], [1], [0], [1]], np.int64),
    "thal": np.array(
        [["fixed"], ["normal"], ["reversible"], ["normal"], ["fixed"], ["normal"]]
    ),
}
MAX_POSITIONS = 16


def text_classifier() -> keras.Model:
    """TextVectorization adapted on raw text inside the model: serving takes strings."""
    vectorize = layers.TextVectorization(
        max_tokens=40, output_sequence_length=8, name="vectorize"
    )
    vectorize.adapt(REVIEWS)
    text = keras.Input((1,), dtype="string", name="review")
    hidden = layers.Embedding(40, 8, name="embed")(vectorize(text))
    hidden = layers.GlobalAveragePooling1D(name="pool")(hidden)
    probs = layers.Dense(3, activation="softmax", name="probs")(hidden)
    model = keras.Model(text, probs, name="text_classifier")
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def tf_idf_text() -> keras.Model:
    """TextVectorization in TF-IDF mode: its adapted weights are neither a Keras
    variable nor in its config."""
    vectorize = layers.TextVectorization(
        max_tokens=30, output_mode="tf_idf", name="vectorize"
    )
    vectorize.adapt(REVIEWS)
    text = keras.Input((1,), dtype="string", name="review")
    scores = layers.Dense(2, name="scores")(vectorize(text))
    return keras.Model(text, scores, name="tf_idf_text")


def string_lookup_vocabulary() -> keras.Model:
    """StringLookup given its vocabulary as a list (it is in the layer's config)."""
    color = keras.Input((1,), dtype="string", name="color")
    one_hot = layers.StringLookup(
        vocabulary=["red", "green", "blue"], output_mode="one_hot", name="lookup"
    )(color)
    return keras.Model(color, layers.Dense(2, name="logits")(one_hot))


def vocabulary_file() -> keras.Model:
    """StringLookup reading its vocabulary from a file: the file becomes an asset."""
    color = keras.Input((1,), dtype="string", name="color")
    one_hot = layers.StringLookup(
        vocabulary=COLORS_FILE, output_mode="one_hot", name="lookup"
    )(color)
    return keras.Model(color, layers.Dense(2, name="logits")(one_hot))


def integer_lookup_adapted() -> keras.Model:
    """IntegerLookup adapted on codes that are not small integers."""
    code = keras.Input((1,), dtype="int64", name="code")
    lookup = layers.IntegerLookup(output_mode="one_hot", name="lookup")
    lookup.adapt(np.array([[3], [7], [7], [42], [1000]]))
    return keras.Model(code, layers.Dense(2, name="logits")(lookup(code)))


def structured_data() -> keras.Model:
    """A dict of raw float, int and string features through Normalization, lookups and
    CategoryEncoding, as in keras.io's structured data classification from scratch."""
    inputs = {
        "age": keras.Input((1,), name="age"),
        "sex": keras.Input((1,), name="sex", dtype="int64"),
        "thal": keras.Input((1,), name="thal", dtype="string"),
    }
    age = layers.Normalization(name="age_norm")
    age.adapt(HEART["age"])
    sex = layers.IntegerLookup(output_mode="one_hot", name="sex_lookup")
    sex.adapt(HEART["sex"])
    thal = layers.StringLookup(name="thal_lookup")
    thal.adapt(HEART["thal"])
    thal_one_hot = layers.CategoryEncoding(
        num_tokens=thal.vocabulary_size(), output_mode="one_hot", name="thal_one_hot"
    )
    features = layers.concatenate(
        [
            age(inputs["age"]),
            sex(inputs["sex"]),
            thal_one_hot(thal(inputs["thal"])),
        ],
        name="features",
    )
    hidden = layers.Dense(8, activation="relu", name="hidden")(features)
    target = layers.Dense(1, activation="sigmoid", name="target")(hidden)
    model = keras.Model(inputs, target, name="structured_data")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def feature_space() -> keras.Model:
    """keras.utils.FeatureSpace adapted on a tf.data dataset, as in keras.io's structured
    data classification with FeatureSpace (no OOV index: inputs must be known)."""
    space = keras.utils.FeatureSpace(
        features={
            "age": keras.utils.FeatureSpace.float_normalized(),
            "sex": keras.utils.FeatureSpace.integer_categorical(num_oov_indices=0),
            "thal": keras.utils.FeatureSpace.string_categorical(num_oov_indices=0),
        },
        output_mode="concat",
    )
    rows = {key: value[:, 0] for key, value in HEART.items()}
    space.adapt(tf.data.Dataset.from_tensor_slices(rows).batch(3))
    encoded = space.get_encoded_features()
    hidden = layers.Dense(8, activation="relu", name="hidden")(encoded)
    target = layers.Dense(1, activation="sigmoid", name="target")(hidden)
    model = keras.Model(space.get_inputs(), target, name="feature_space")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def adapted_normalization() -> keras.Model:
    """Normalization adapted on data far from zero mean and unit variance."""
    x = keras.Input((3,), name="x")
    norm = layers.Normalization(name="norm")
    norm.adapt(np.array([[1, 10, 100], [3, 30, 300], [5, 50, 700]], np.float32))
    return keras.Model(x, layers.Dense(2, name="out")(norm(x)), name="normalized")


def mixed_precision() -> keras.Model:
    """Built and compiled under mixed_float16, the float32 head as the guide says; the
    global policy is put back so it does not leak into later models."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        x = keras.Input((4,), name="x")
        hidden = layers.Dense(8, activation="relu", name="hidden")(x)
        out = layers.Dense(2, dtype="float32", name="out")(hidden)
        model = keras.Model(x, out, name="mixed")
        model.compile(optimizer="adam", loss="mse")
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    return model


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding of each position: a table with max_length rows looked up
    at keras.ops.arange(sequence length), so longer sequences fail."""

    def __init__(self, max_length: int, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length

    def build(self, input_shape):
        self.table = self.add_weight(
            name="table",
            shape=(self.max_length, input_shape[-1]),
            initializer="random_normal",
        )

    def call(self, inputs):
        positions = keras.ops.arange(keras.ops.shape(inputs)[1])
        return inputs + keras.ops.take(self.table, positions, axis=0)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


def short_positions() -> keras.Model:
    """A per-token classifier over sequences of unknown length, at most MAX_POSITIONS."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    hidden = layers.Embedding(50, 8, name="embed")(tokens)
    hidden = PositionEmbedding(MAX_POSITIONS, name="positions")(hidden)
    tags = layers.Dense(5, activation="softmax", name="tags")(hidden)
    model = keras.Model(tokens, tags, name="short_positions")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class TopClass(layers.Layer):
    """The index of the highest score (keras.ops.argmax as a layer)."""

    def call(self, scores):
        return keras.ops.argmax(scores, axis=-1)

    def compute_output_spec(self, scores):
        return keras.KerasTensor(scores.shape[:-1], dtype="int64")


def label_names() -> keras.Model:
    """Returns class names as strings, through StringLookup(invert=True)."""
    x = keras.Input((4,), name="x")
    scores = layers.Dense(3, name="scores")(x)
    names = layers.StringLookup(
        vocabulary=["cat", "dog", "bird"], invert=True, num_oov_indices=0, name="names"
    )(TopClass(name="top")(scores))
    return keras.Model(x, {"scores": scores, "label": names}, name="label_names")


# Broken builders, one per error the exporter must explain.

_GLOBAL_TABLE = []


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class GlobalTableLookup(layers.Layer):
    """Looks strings up in a table kept in a module global, which no layer holds."""

    def call(self, inputs):
        return tf.cast(_GLOBAL_TABLE[0].lookup(inputs), "float32")

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")


def table_outside_the_model() -> keras.Model:
    _GLOBAL_TABLE[:] = [
        tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["red", "green"], [0, 1], tf.string),
            default_value=-1,
        )
    ]
    color = keras.Input((1,), dtype="string", name="color")
    ids = GlobalTableLookup(name="global_lookup")(color)
    return keras.Model(color, layers.Dense(2)(ids))


def vocabulary_file_deleted() -> keras.Model:
    """Builds the lookup from a vocabulary file in a folder it then deletes."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "colors.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("red\ngreen\nblue\n")
        color = keras.Input((1,), dtype="string", name="color")
        one_hot = layers.StringLookup(vocabulary=path, output_mode="one_hot")(color)
        return keras.Model(color, layers.Dense(2)(one_hot))


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class NonNegativeOnly(layers.Layer):
    """Checks its inputs at run time: zeros pass, negative values fail."""

    def call(self, inputs):
        tf.debugging.assert_non_negative(inputs, message="inputs must be >= 0")
        return inputs


def checks_its_inputs() -> keras.Model:
    x = keras.Input((3,), name="x")
    return keras.Model(x, layers.Dense(2)(NonNegativeOnly(name="check")(x)))
