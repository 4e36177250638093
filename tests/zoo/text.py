"""Text models: raw strings in, a TextVectorization layer, masked RNNs, a small encoder.

The styles of keras.io's "Text classification from scratch", "Understanding masking and
padding" and "Text classification with Transformer", and of keras_hub's backbones (a
position table with a fixed maximum length over inputs of any length).
"""

import keras
import numpy as np
from keras import layers, ops

REVIEWS = [
    "A wonderful film, the cast is great and the story moved me.",
    "Terrible plot. I walked out after twenty minutes!",
    "Great acting, great music, a great night at the movies.",
    "Boring, slow and far too long; the ending made no sense.",
    "I loved every minute of it and would watch it again.",
    "The worst film I have seen this year, avoid it.",
    "Funny, clever and kind: a small wonder of a movie.",
    "Dull characters and a story that goes nowhere.",
]
SENTIMENTS = [1, 0, 1, 0, 1, 0, 1, 0]


def review_classifier() -> keras.Model:
    """Takes raw review strings; the vocabulary is adapted on the corpus above."""
    vectorize = layers.TextVectorization(
        max_tokens=200, output_mode="int", output_sequence_length=24
    )
    vectorize.adapt(REVIEWS)
    inputs = keras.Input(shape=(1,), dtype="string", name="review")
    x = vectorize(inputs)
    x = layers.Embedding(200, 16)(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Conv1D(16, 3, padding="valid", activation="relu")(x)
    x = layers.GlobalMaxPooling1D()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="sentiment")(x)
    model = keras.Model(inputs, outputs)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def review_batch():
    x = np.array([[r] for r in REVIEWS[:4]] + [["An unseen word: zyzzyva."]])
    y = np.array([[s] for s in SENTIMENTS[:4]] + [[1]], dtype="float32")
    return x, y


def masked_lstm() -> keras.Model:
    """Variable-length token ids padded with 0; the Embedding masks the padding."""
    inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(input_dim=100, output_dim=16, mask_zero=True)(inputs)
    x = layers.LSTM(16)(x)
    outputs = layers.Dense(1, name="score")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    return model


def masked_lstm_batch():
    sequences = [[12, 5, 77], [3, 9, 41, 8, 2, 60], [7], [15, 15, 90, 4]]
    padded = keras.utils.pad_sequences(sequences, maxlen=8, padding="post")
    return padded.astype("int32"), np.array([[0.5], [1.0], [-0.2], [0.3]], "float32")


@keras.saving.register_keras_serializable(package="zoo")
class PositionEmbedding(layers.Layer):
    """Learned positions for sequences of up to `sequence_length` tokens."""

    def __init__(self, sequence_length, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer="glorot_uniform",
        )

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        positions = ops.slice(self.position_embeddings, (0, 0), (length, -1))
        return ops.broadcast_to(positions, ops.shape(inputs))

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length}


@keras.saving.register_keras_serializable(package="zoo")
class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, causal=False, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim = embed_dim, num_heads, ff_dim
        self.rate, self.causal = rate, causal
        self.attention = layers.MultiHeadAttention(num_heads, embed_dim // num_heads)
        self.feed_forward = keras.Sequential(
            [layers.Dense(ff_dim, activation="gelu"), layers.Dense(embed_dim)]
        )
        self.norm1 = layers.LayerNormalization(epsilon=1e-6)
        self.norm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs, training=False):
        attended = self.attention(inputs, inputs, use_causal_mask=self.causal)
        x = self.norm1(inputs + self.dropout1(attended, training=training))
        fed = self.feed_forward(x)
        return self.norm2(x + self.dropout2(fed, training=training))

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "rate": self.rate,
            "causal": self.causal,
        }


MAX_SEQUENCE_LENGTH = 16
VOCABULARY_SIZE = 64


def _embed_tokens(token_ids):
    tokens = layers.Embedding(input_dim=VOCABULARY_SIZE, output_dim=32)(token_ids)
    return tokens + PositionEmbedding(MAX_SEQUENCE_LENGTH)(tokens)


def tiny_encoder() -> keras.Model:
    """A 2-layer BERT-like classifier over token ids of any length up to 16."""
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = _embed_tokens(token_ids)
    for _ in range(2):
        x = TransformerBlock(embed_dim=32, num_heads=2, ff_dim=64)(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(2, activation="softmax", name="label")(x)
    model = keras.Model(token_ids, outputs)
    model.compile(
        optimizer=keras.optimizers.AdamW(5e-4),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def tiny_encoder_batch():
    rng = np.random.default_rng(3)
    tokens = rng.integers(1, VOCABULARY_SIZE, size=(3, 12)).astype("int32")
    return tokens, np.array([0, 1, 1], dtype="int64")


def tiny_causal_lm() -> keras.Model:
    """A 2-layer GPT-like language model: next-token logits at every position."""
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = _embed_tokens(token_ids)
    for _ in range(2):
        x = TransformerBlock(embed_dim=32, num_heads=2, ff_dim=64, causal=True)(x)
    logits = layers.Dense(VOCABULARY_SIZE, name="next_token")(x)
    model = keras.Model(token_ids, logits)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def tiny_causal_lm_batch():
    rng = np.random.default_rng(12)
    text = rng.integers(1, VOCABULARY_SIZE, size=(2, 11)).astype("int32")
    return text[:, :-1], text[:, 1:].astype("int64")
