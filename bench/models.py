"""Benchmark models for bench/compare.py: builder functions taking no arguments.

Each returns a model compiled with a loss and an optimizer, so an export can hold all
three modes (serve, eval, train). They are also the `builder`s of the
keras_saved_model targets in bench/BUILD.
"""

import keras


def _compiled_classifier(model: keras.Model) -> keras.Model:
    """Adam, sparse cross-entropy and accuracy: what the classifiers here train with."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def mlp() -> keras.Model:
    """A small Sequential MLP: 32 features -> 10 classes."""
    model = keras.Sequential(
        [
            keras.Input(shape=(32,), name="features"),
            keras.layers.Dense(128, activation="relu", name="hidden1"),
            keras.layers.Dense(64, activation="relu", name="hidden2"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="bench_mlp",
    )
    return _compiled_classifier(model)


def two_inputs() -> keras.Model:
    """A functional model with two inputs (dense features and an image) and one output."""
    features = keras.Input(shape=(16,), name="features")
    image = keras.Input(shape=(32, 32, 3), name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv")(image)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    y = keras.layers.Dense(32, activation="relu", name="dense_features")(features)
    z = keras.layers.Concatenate(name="concat")([x, y])
    z = keras.layers.Dense(32, activation="relu", name="dense_joint")(z)
    score = keras.layers.Dense(1, name="score")(z)
    model = keras.Model([features, image], score, name="bench_two_inputs")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.MeanSquaredError(),
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
    )
    return model


def _mobilenet_v2(size: int) -> keras.Model:
    model = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), weights=None, classes=1000
    )
    return _compiled_classifier(model)


def mobilenet_v2() -> keras.Model:
    """keras.applications.MobileNetV2(weights=None) at 224x224x3, 1000 classes."""
    return _mobilenet_v2(224)


def mobilenet_v2_128() -> keras.Model:
    """The same at 128x128x3: same weights, smaller activations (a cheaper variant)."""
    return _mobilenet_v2(128)


# Scale models for bench/scale.py: the same architecture at three sizes, each 4x the
# weights of the one before (about 67 MB, 268 MB and 1.07 GB of float32 weights).
SCALE_SIZES = ("67mb", "268mb", "1gb")
_MLP_WIDTH = {"67mb": 2048, "268mb": 4096, "1gb": 8192}
_TRANSFORMER_WIDTH = {"67mb": 512, "268mb": 1024, "1gb": 2048}


def _wide_mlp(size: str) -> keras.Model:
    """4 Dense layers of width w on w features, w classes: 4w^2 + 4w weights."""
    width = _MLP_WIDTH[size]
    model = keras.Sequential(
        [keras.Input(shape=(width,), name="features")]
        + [
            keras.layers.Dense(width, activation="relu", name=f"hidden{i}")
            for i in range(1, 4)
        ]
        + [keras.layers.Dense(width, activation="softmax", name="probs")],
        name=f"wide_mlp_{size}",
    )
    return _compiled_classifier(model)


def wide_mlp_67mb() -> keras.Model:
    return _wide_mlp("67mb")


def wide_mlp_268mb() -> keras.Model:
    return _wide_mlp("268mb")


def wide_mlp_1gb() -> keras.Model:
    return _wide_mlp("1gb")


@keras.saving.register_keras_serializable(package="bench")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus a learned position embedding (as in keras.io's text
    classification with a Transformer)."""

    def __init__(self, sequence_length, vocabulary_size, width, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.vocabulary_size = vocabulary_size
        self.width = width
        self.tokens = keras.layers.Embedding(vocabulary_size, width, name="tokens")
        self.positions = keras.layers.Embedding(
            sequence_length, width, name="positions"
        )

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((self.sequence_length,))

    def call(self, token_ids):
        positions = keras.ops.arange(keras.ops.shape(token_ids)[-1])
        return self.tokens(token_ids) + self.positions(positions)

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "vocabulary_size": self.vocabulary_size,
            "width": self.width,
        }


def _transformer_block(x, width: int, heads: int, index: int):
    """Post-norm encoder block: self-attention and a 4x-wide feed-forward network."""
    attention = keras.layers.MultiHeadAttention(
        heads, width // heads, dropout=0.1, name=f"attention{index}"
    )(x, x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"norm{index}a")(
        x + keras.layers.Dropout(0.1, name=f"dropout{index}a")(attention)
    )
    ffn = keras.layers.Dense(4 * width, activation="gelu", name=f"ffn{index}a")(x)
    ffn = keras.layers.Dense(width, name=f"ffn{index}b")(ffn)
    return keras.layers.LayerNormalization(epsilon=1e-6, name=f"norm{index}b")(
        x + keras.layers.Dropout(0.1, name=f"dropout{index}b")(ffn)
    )


def _transformer(size: str) -> keras.Model:
    """A text classifier: 4 encoder blocks of width w over a 16w-token vocabulary,
    about 12w^2 weights per block plus 16w^2 of token embedding (64w^2 in all)."""
    width = _TRANSFORMER_WIDTH[size]
    sequence_length = 32
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = TokenAndPositionEmbedding(sequence_length, 16 * width, width, name="embedding")(
        token_ids
    )
    for index in range(1, 5):
        x = _transformer_block(x, width, 8, index)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    probs = keras.layers.Dense(2, activation="softmax", name="probs")(x)
    model = keras.Model(token_ids, probs, name=f"transformer_{size}")
    return _compiled_classifier(model)


def transformer_67mb() -> keras.Model:
    return _transformer("67mb")


def transformer_268mb() -> keras.Model:
    return _transformer("268mb")


def transformer_1gb() -> keras.Model:
    return _transformer("1gb")
