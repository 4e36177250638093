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


# keras.io "Structured data learning with Wide, Deep, and Cross networks": a few rows in
# the shape of the covertype table (numeric and string columns, one value per row).
COVERTYPE = {
    "elevation": [2596.0, 2590.0, 2804.0, 2785.0, 2595.0, 2579.0, 2606.0, 2605.0],
    "slope": [3.0, 2.0, 9.0, 18.0, 2.0, 6.0, 7.0, 4.0],
    "wilderness_area": ["area_1", "area_1", "area_3", "area_1"] * 2,
    "soil_type": ["soil_29", "soil_12", "soil_29", "soil_30"] * 2,
}
COVER_TYPES = [4, 4, 1, 1, 4, 1, 0, 2]
NUMERIC_FEATURE_NAMES = ["elevation", "slope"]
CATEGORICAL_FEATURES_WITH_VOCABULARY = {
    "wilderness_area": ["area_1", "area_2", "area_3", "area_4"],
    "soil_type": [f"soil_{i}" for i in range(1, 41)],
}
NUM_CLASSES = 7


def _create_model_inputs():
    inputs = {}
    for feature_name in COVERTYPE:
        if feature_name in NUMERIC_FEATURE_NAMES:
            inputs[feature_name] = layers.Input(
                name=feature_name, shape=(), dtype="float32"
            )
        else:
            inputs[feature_name] = layers.Input(
                name=feature_name, shape=(), dtype="string"
            )
    return inputs


def _encode_inputs(inputs, use_embedding=False):
    encoded_features = []
    for feature_name in inputs:
        if feature_name in CATEGORICAL_FEATURES_WITH_VOCABULARY:
            vocabulary = CATEGORICAL_FEATURES_WITH_VOCABULARY[feature_name]
            # Create a lookup to convert string values to integer indices.
            lookup = layers.StringLookup(
                vocabulary=vocabulary,
                mask_token=None,
                num_oov_indices=0,
                output_mode="int" if use_embedding else "one_hot",
            )
            if use_embedding:
                encoded_feature = lookup(inputs[feature_name])
                embedding_dims = int(np.sqrt(len(vocabulary)))
                embedding = layers.Embedding(
                    input_dim=len(vocabulary), output_dim=embedding_dims
                )
                encoded_feature = embedding(encoded_feature)
            else:
                encoded_feature = lookup(inputs[feature_name])
        else:
            # Use the numerical features as-is.
            encoded_feature = keras.ops.expand_dims(inputs[feature_name], -1)
        encoded_features.append(encoded_feature)
    return layers.concatenate(encoded_features)


def wide_deep_cross() -> keras.Model:
    """The example's deep & cross network, with its wide & deep one's wide part."""
    hidden_units = [16, 16]
    dropout_rate = 0.1
    inputs = _create_model_inputs()
    wide = _encode_inputs(inputs)
    wide = layers.BatchNormalization()(wide)

    x0 = _encode_inputs(inputs, use_embedding=True)
    cross = x0
    for _ in hidden_units:
        units = cross.shape[-1]
        x = layers.Dense(units)(cross)
        cross = x0 * x + cross
    cross = layers.BatchNormalization()(cross)

    deep = x0
    for units in hidden_units:
        deep = layers.Dense(units)(deep)
        deep = layers.BatchNormalization()(deep)
        deep = layers.ReLU()(deep)
        deep = layers.Dropout(dropout_rate)(deep)

    merged = layers.concatenate([wide, cross, deep])
    outputs = layers.Dense(units=NUM_CLASSES, activation="softmax")(merged)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def wide_deep_cross_batch():
    x = {
        name: np.array(
            values[:5], dtype=object if name not in NUMERIC_FEATURE_NAMES else "float32"
        )
        for name, values in COVERTYPE.items()
    }
    return x, np.array(COVER_TYPES[:5])


# keras.io "Collaborative Filtering for Movie Recommendations": user and movie ids in,
# a rating in [0, 1] out.
NUM_USERS, NUM_MOVIES = 12, 9


@keras.saving.register_keras_serializable(package="zoo")
class RecommenderNet(keras.Model):
    def __init__(self, num_users, num_movies, embedding_size, **kwargs):
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_movies = num_movies
        self.embedding_size = embedding_size
        self.user_embedding = layers.Embedding(
            num_users,
            embedding_size,
            embeddings_initializer="he_normal",
            embeddings_regularizer=keras.regularizers.l2(1e-6),
        )
        self.user_bias = layers.Embedding(num_users, 1)
        self.movie_embedding = layers.Embedding(
            num_movies,
            embedding_size,
            embeddings_initializer="he_normal",
            embeddings_regularizer=keras.regularizers.l2(1e-6),
        )
        self.movie_bias = layers.Embedding(num_movies, 1)

    def call(self, inputs):
        user_vector = self.user_embedding(inputs[:, 0])
        user_bias = self.user_bias(inputs[:, 0])
        movie_vector = self.movie_embedding(inputs[:, 1])
        movie_bias = self.movie_bias(inputs[:, 1])
        dot_user_movie = keras.ops.tensordot(user_vector, movie_vector, 2)
        # Add all the components (including bias)
        x = dot_user_movie + user_bias + movie_bias
        # The sigmoid activation forces the rating to between 0 and 1
        return keras.ops.nn.sigmoid(x)

    # Saving the model (model.save, or the exporter's JSON) needs its arguments.
    def get_config(self):
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_movies": self.num_movies,
            "embedding_size": self.embedding_size,
        }


def recommender() -> keras.Model:
    model = RecommenderNet(NUM_USERS, NUM_MOVIES, 4)
    model(np.zeros((1, 2), "int64"))  # fit builds it; an export needs it built
    model.compile(
        loss=keras.losses.BinaryCrossentropy(),
        optimizer=keras.optimizers.Adam(learning_rate=0.05),
    )
    return model


def recommender_batch():
    rng = np.random.default_rng(1)
    users, movies = rng.integers(0, NUM_USERS, 7), rng.integers(0, NUM_MOVIES, 7)
    ratings = rng.integers(1, 6, 7).astype("float32")
    x = np.stack([users, movies], axis=1).astype("float32")
    # Ratings scaled to [0, 1], as the example keeps them: shape (n,).
    return x, (ratings - 1.0) / 4.0


# keras.io "Imbalanced classification: credit card fraud detection", with AUCs.
FRAUD_FEATURES = 8


def fraud_detection() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(FRAUD_FEATURES,)),
            layers.Dense(16, activation="relu"),
            layers.Dense(16, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(16, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    metrics = [
        keras.metrics.FalseNegatives(name="fn"),
        keras.metrics.FalsePositives(name="fp"),
        keras.metrics.TrueNegatives(name="tn"),
        keras.metrics.TruePositives(name="tp"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.AUC(name="auc"),
        keras.metrics.AUC(name="prc", curve="PR"),
    ]
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="binary_crossentropy",
        metrics=metrics,
    )
    return model


def fraud_detection_batch():
    rng = np.random.default_rng(9)
    features = rng.standard_normal((8, FRAUD_FEATURES)).astype("float32")
    # One target per row, appended as [int(...)]: shape (n, 1).
    targets = np.array([[0], [0], [1], [0], [0], [1], [0], [0]], dtype="uint8")
    return features, targets


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
