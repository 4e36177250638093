"""Transformers as keras.io's examples write them, at tiny sizes.

The styles of "Text classification with Transformer" (token ids as floats, a fixed
length, a token and position embedding layer), "Timeseries classification with a
Transformer model" (an encoder written as a function of Keras tensors) and
"English-to-Spanish translation with a sequence-to-sequence Transformer" (two inputs, a
causal decoder, padding masks, token-level sparse labels).
"""

import keras
import numpy as np
from keras import layers, ops

# Text classification: reviews of MAXLEN token ids, 2 classes.
VOCAB_SIZE = 100
MAXLEN = 16


@keras.saving.register_keras_serializable(package="zoo")
class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.rate = (
            embed_dim,
            num_heads,
            ff_dim,
            rate,
        )
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential(
            [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)]
        )
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "rate": self.rate,
        }


@keras.saving.register_keras_serializable(package="zoo")
class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions

    def get_config(self):
        return {
            **super().get_config(),
            "maxlen": self.maxlen,
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
        }


def transformer_classifier() -> keras.Model:
    embed_dim = 8  # Embedding size for each token
    num_heads = 2  # Number of attention heads
    ff_dim = 8  # Hidden layer size in feed forward network inside transformer
    inputs = layers.Input(shape=(MAXLEN,))
    embedding_layer = TokenAndPositionEmbedding(MAXLEN, VOCAB_SIZE, embed_dim)
    x = embedding_layer(inputs)
    transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim)
    x = transformer_block(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def transformer_classifier_batch():
    rng = np.random.default_rng(4)
    sequences = [rng.integers(1, VOCAB_SIZE, size=n) for n in (5, 16, 9, 12)]
    x = keras.utils.pad_sequences(sequences, maxlen=MAXLEN)
    return x, np.array([0, 1, 1, 0])


# Timeseries classification: series of 3 channels (FordA has 1, whose layer
# normalizations over 1 feature leave the attention without gradients), classes 0, 1.
SERIES_LENGTH = 24
SERIES_CHANNELS = 3


def _transformer_encoder(inputs, head_size, num_heads, ff_dim, dropout=0):
    # Attention and Normalization
    x = layers.MultiHeadAttention(
        key_dim=head_size, num_heads=num_heads, dropout=dropout
    )(inputs, inputs)
    x = layers.Dropout(dropout)(x)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    res = x + inputs

    # Feed Forward Part
    x = layers.Conv1D(filters=ff_dim, kernel_size=1, activation="relu")(res)
    x = layers.Dropout(dropout)(x)
    x = layers.Conv1D(filters=inputs.shape[-1], kernel_size=1)(x)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    return x + res


def timeseries_transformer() -> keras.Model:
    n_classes = 2
    inputs = keras.Input(shape=(SERIES_LENGTH, SERIES_CHANNELS))
    x = inputs
    for _ in range(2):
        x = _transformer_encoder(x, head_size=8, num_heads=2, ff_dim=4, dropout=0.25)
    x = layers.GlobalAveragePooling1D(data_format="channels_last")(x)
    for dim in [16]:
        x = layers.Dense(dim, activation="relu")(x)
        x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def timeseries_transformer_batch():
    rng = np.random.default_rng(5)
    t = np.linspace(0, 4 * np.pi, SERIES_LENGTH, dtype="float32")
    labels = np.array([0, 1, 1, 0, 1])
    series = np.stack(
        [
            np.stack(
                [np.sin(t * (1 + k) + phase) for phase in range(SERIES_CHANNELS)], -1
            )
            for k in labels
        ]
    )
    series += 0.1 * rng.standard_normal(series.shape)
    return series.astype("float32"), labels


# Translation: token ids of two vocabularies, 0 is the padding.
SEQ2SEQ_VOCAB = 40
SEQ2SEQ_LENGTH = 10
SEQ2SEQ_EMBED = 8
SEQ2SEQ_LATENT = 16
SEQ2SEQ_HEADS = 2


@keras.saving.register_keras_serializable(package="zoo")
class TransformerEncoder(layers.Layer):
    def __init__(self, embed_dim, dense_dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.dense_dim = dense_dim
        self.num_heads = num_heads
        self.attention = layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=embed_dim
        )
        self.dense_proj = keras.Sequential(
            [
                layers.Dense(dense_dim, activation="relu"),
                layers.Dense(embed_dim),
            ]
        )
        self.layernorm_1 = layers.LayerNormalization()
        self.layernorm_2 = layers.LayerNormalization()
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            padding_mask = ops.cast(mask[:, None, :], dtype="int32")
        else:
            padding_mask = None

        attention_output = self.attention(
            query=inputs, value=inputs, key=inputs, attention_mask=padding_mask
        )
        proj_input = self.layernorm_1(inputs + attention_output)
        proj_output = self.dense_proj(proj_input)
        return self.layernorm_2(proj_input + proj_output)

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "dense_dim": self.dense_dim,
            "num_heads": self.num_heads,
        }


@keras.saving.register_keras_serializable(package="zoo")
class PositionalEmbedding(layers.Layer):
    def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_embeddings = layers.Embedding(
            input_dim=vocab_size, output_dim=embed_dim
        )
        self.position_embeddings = layers.Embedding(
            input_dim=sequence_length, output_dim=embed_dim
        )
        self.sequence_length = sequence_length
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim

    def call(self, inputs):
        length = ops.shape(inputs)[-1]
        positions = ops.arange(0, length, 1)
        embedded_tokens = self.token_embeddings(inputs)
        embedded_positions = self.position_embeddings(positions)
        return embedded_tokens + embedded_positions

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
        }


@keras.saving.register_keras_serializable(package="zoo")
class TransformerDecoder(layers.Layer):
    def __init__(self, embed_dim, latent_dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.latent_dim = latent_dim
        self.num_heads = num_heads
        self.attention_1 = layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=embed_dim
        )
        self.attention_2 = layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=embed_dim
        )
        self.dense_proj = keras.Sequential(
            [
                layers.Dense(latent_dim, activation="relu"),
                layers.Dense(embed_dim),
            ]
        )
        self.layernorm_1 = layers.LayerNormalization()
        self.layernorm_2 = layers.LayerNormalization()
        self.layernorm_3 = layers.LayerNormalization()
        self.supports_masking = True

    def call(self, inputs, mask=None):
        inputs, encoder_outputs = inputs

        if mask is None:
            inputs_padding_mask, encoder_outputs_padding_mask = None, None
        else:
            inputs_padding_mask, encoder_outputs_padding_mask = mask

        # The example tiles a causal mask of its own, whose shape Keras 3.15 cannot
        # infer (ops.tile by a tensor); the attention layer makes the same mask.
        attention_output_1 = self.attention_1(
            query=inputs,
            value=inputs,
            key=inputs,
            use_causal_mask=True,
            query_mask=inputs_padding_mask,
        )
        out_1 = self.layernorm_1(inputs + attention_output_1)

        attention_output_2 = self.attention_2(
            query=out_1,
            value=encoder_outputs,
            key=encoder_outputs,
            query_mask=inputs_padding_mask,
            key_mask=encoder_outputs_padding_mask,
        )
        out_2 = self.layernorm_2(out_1 + attention_output_2)

        proj_output = self.dense_proj(out_2)
        return self.layernorm_3(out_2 + proj_output)

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "latent_dim": self.latent_dim,
            "num_heads": self.num_heads,
        }


def seq2seq_transformer() -> keras.Model:
    encoder_inputs = keras.Input(shape=(None,), dtype="int64", name="encoder_inputs")
    x = PositionalEmbedding(SEQ2SEQ_LENGTH, SEQ2SEQ_VOCAB, SEQ2SEQ_EMBED)(
        encoder_inputs
    )
    encoder_outputs = TransformerEncoder(SEQ2SEQ_EMBED, SEQ2SEQ_LATENT, SEQ2SEQ_HEADS)(
        x
    )

    decoder_inputs = keras.Input(shape=(None,), dtype="int64", name="decoder_inputs")
    x = PositionalEmbedding(SEQ2SEQ_LENGTH, SEQ2SEQ_VOCAB, SEQ2SEQ_EMBED)(
        decoder_inputs
    )
    x = TransformerDecoder(SEQ2SEQ_EMBED, SEQ2SEQ_LATENT, SEQ2SEQ_HEADS)(
        [x, encoder_outputs]
    )
    x = layers.Dropout(0.5)(x)
    decoder_outputs = layers.Dense(SEQ2SEQ_VOCAB, activation="softmax")(x)
    transformer = keras.Model(
        {"encoder_inputs": encoder_inputs, "decoder_inputs": decoder_inputs},
        decoder_outputs,
        name="transformer",
    )
    transformer.compile(
        "rmsprop",
        loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0),
        metrics=["accuracy"],
    )
    return transformer


def seq2seq_transformer_batch():
    rng = np.random.default_rng(6)
    lengths = [(4, 6), (7, 9), (3, 3)]
    english = keras.utils.pad_sequences(
        [rng.integers(2, SEQ2SEQ_VOCAB, size=n) for n, _ in lengths],
        maxlen=SEQ2SEQ_LENGTH,
        padding="post",
    )
    # Spanish with its [start] (1) token; the decoder reads one token ahead of the label.
    spanish = keras.utils.pad_sequences(
        [[1, *rng.integers(2, SEQ2SEQ_VOCAB, size=n)] for _, n in lengths],
        maxlen=SEQ2SEQ_LENGTH + 1,
        padding="post",
    )
    inputs = {"encoder_inputs": english, "decoder_inputs": spanish[:, :-1]}
    return inputs, spanish[:, 1:]
