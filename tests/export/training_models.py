"""Builders of models whose training Keras runs in its own ways, beside the zoo's
keras.io models (a (None, 1) sigmoid output trained on labels (n,), a VAE trained with
fit(x), a Distiller with its own compute_loss): sparse labels (n, 1) in the Vision
Transformer's style, masks (n, H, W, 1) in the U-Net's, a loss that does not reconcile
ranks, labels as long as one of two inputs of any length, and keras.io's VAE exactly as
written (no call()).

Used as --builder=tests.export.training_models:NAME; the exporter seeds Keras first. Each
`<name>_batch()` returns (x, y) as the example feeds fit and evaluate.
"""

import keras
import numpy as np
from keras import layers, ops

from tests.zoo import training

MODULE = __name__


def patch_classifier() -> keras.Model:
    """Vision Transformer style: patches, attention, logits; CIFAR labels are (n, 1)."""
    inputs = keras.Input((8, 8, 3), name="image")
    patches = layers.Conv2D(8, 4, strides=4, name="patches")(inputs)
    tokens = layers.Reshape((4, 8))(patches)
    attention = layers.MultiHeadAttention(num_heads=2, key_dim=4)(tokens, tokens)
    features = layers.GlobalAveragePooling1D()(layers.Add()([tokens, attention]))
    logits = layers.Dense(10, name="logits")(features)
    model = keras.Model(inputs, logits)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(5, name="top-5-accuracy"),
        ],
    )
    return model


def patch_classifier_batch():
    rng = np.random.default_rng(2)
    return rng.random((6, 8, 8, 3)).astype("float32"), rng.integers(0, 10, (6, 1))


def segmentation() -> keras.Model:
    """U-Net style: down, up, a softmax per pixel; masks are (n, H, W, 1)."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2DTranspose(8, 3, padding="same", activation="relu")(x)
    x = layers.UpSampling2D(2)(x)
    outputs = layers.Conv2D(3, 3, activation="softmax", padding="same", name="mask")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def segmentation_batch():
    rng = np.random.default_rng(3)
    images = rng.random((4, 8, 8, 3)).astype("float32")
    return images, rng.integers(0, 3, (4, 8, 8, 1)).astype("uint8")


@keras.saving.register_keras_serializable(package="rules_keras_training_tests")
class SquaredGap(keras.losses.Loss):
    """A Loss subclass: Keras hands its call the labels as they come, without the rank
    reconciliation its built-in losses do, so labels (n,) against outputs (n, 1)
    broadcast into another number."""

    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


def unreconciled_loss() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    outputs = layers.Dense(1, name="score")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=SquaredGap())
    return model


def unreconciled_loss_batch():
    rng = np.random.default_rng(4)
    return rng.random((5, 4)).astype("float32"), rng.random((5, 1)).astype("float32")


def vae_without_call() -> keras.Model:
    model = training.VAE(*training.vae_encoder_decoder())
    model.compile(optimizer=keras.optimizers.Adam())
    return model


def per_step_regression() -> keras.Model:
    """A value per step of a sequence of any length, read with a context of another
    length (its summary starts the LSTM, as keras.io's LSTM seq2seq passes states):
    labels (n, T, 1) are as long as the steps, not the context."""
    context = keras.Input((None, 2), name="context")
    steps = keras.Input((None, 2), name="steps")
    summary = layers.GlobalAveragePooling1D()(layers.Dense(4)(context))
    x = layers.LSTM(4, return_sequences=True)(steps, initial_state=[summary, summary])
    outputs = layers.Dense(1, name="value")(x)
    model = keras.Model([context, steps], outputs)
    model.compile(optimizer="adam", loss="mse")
    return model


def per_step_regression_batch():
    rng = np.random.default_rng(8)
    context = rng.random((4, 3, 2)).astype("float32")
    steps = rng.random((4, 6, 2)).astype("float32")
    return [context, steps], rng.random((4, 6, 1)).astype("float32")
