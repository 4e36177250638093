"""Layer-level features: adapted Normalization, BatchNormalization with Dropout, a layer
written with keras.ops, mixed precision and a Lambda.

The styles of the TensorFlow/keras.io regression tutorial (a Normalization adapted on
the training features), keras.io's "Simple MNIST convnet", "Making new layers and models
via subclassing" and "Mixed precision".
"""

import keras
import numpy as np
from keras import layers, ops

FEATURES = 9


def _car_features():
    rng = np.random.default_rng(1)
    # Columns on very different scales, as in the fuel-efficiency data.
    scale = np.array([8, 400, 200, 5000, 25, 82, 1, 1, 1], dtype="float32")
    return rng.random(size=(64, FEATURES)).astype("float32") * scale


def normalized_regression() -> keras.Model:
    normalizer = layers.Normalization(axis=-1)
    normalizer.adapt(_car_features())
    model = keras.Sequential(
        [
            keras.Input(shape=(FEATURES,), name="car"),
            normalizer,
            layers.Dense(64, activation="relu"),
            layers.Dense(64, activation="relu"),
            layers.Dense(1, name="mpg"),
        ]
    )
    model.compile(loss="mean_absolute_error", optimizer=keras.optimizers.Adam(1e-3))
    return model


def car_batch():
    x = _car_features()[:6]
    return x, np.linspace(10, 40, 6, dtype="float32")[:, None]


def batchnorm_convnet() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1), name="image"),
            layers.Conv2D(16, kernel_size=(3, 3), use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(32, kernel_size=(3, 3), use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax", name="digit"),
        ]
    )
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )
    return model


def mnist_batch():
    rng = np.random.default_rng(2)
    return rng.random(size=(4, 28, 28, 1)).astype("float32"), np.array([7, 2, 1, 0])


@keras.saving.register_keras_serializable(package="zoo")
class RMSNorm(layers.Layer):
    """Root-mean-square normalization, written with keras.ops only."""

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale", shape=(input_shape[-1],), initializer="ones"
        )

    def call(self, x):
        mean_square = ops.mean(ops.square(x), axis=-1, keepdims=True)
        return x * ops.rsqrt(mean_square + self.epsilon) * self.scale

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="zoo")
class GatedLinearUnit(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], 2 * self.units)
        )
        self.bias = self.add_weight(
            name="bias", shape=(2 * self.units,), initializer="zeros"
        )

    def call(self, x):
        value, gate = ops.split(ops.matmul(x, self.kernel) + self.bias, 2, axis=-1)
        return value * ops.sigmoid(gate)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def ops_layers() -> keras.Model:
    inputs = keras.Input(shape=(24,), name="signal")
    x = GatedLinearUnit(32)(inputs)
    x = RMSNorm()(x)
    x = GatedLinearUnit(16)(x)
    outputs = layers.Dense(3, activation="softmax", name="kind")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def signal_batch():
    rng = np.random.default_rng(4)
    return rng.standard_normal(size=(5, 24)).astype("float32"), np.array(
        [0, 1, 2, 1, 0]
    )


def mixed_precision_mlp() -> keras.Model:
    """Built under mixed_float16; the global policy is restored for whoever runs next."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input(shape=(784,), name="digits")
        x = layers.Dense(256, activation="relu")(inputs)
        x = layers.Dense(256, activation="relu")(x)
        x = layers.Dense(10)(x)
        # The last activation in float32 keeps the softmax numerically stable.
        outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
        model = keras.Model(inputs, outputs)
        model.compile(
            loss="sparse_categorical_crossentropy",
            optimizer=keras.optimizers.RMSprop(),
            metrics=["accuracy"],
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return model


def mixed_digits_batch():
    rng = np.random.default_rng(6)
    return rng.random(size=(4, 784)).astype("float32"), np.array([3, 1, 4, 1])


def lambda_rescale() -> keras.Model:
    inputs = keras.Input(shape=(8, 8, 1), name="pixels")
    x = layers.Lambda(lambda t: t / 255.0 - 0.5)(inputs)
    x = layers.Flatten()(x)
    outputs = layers.Dense(4, activation="softmax", name="shape_class")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def pixels_batch():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, size=(3, 8, 8, 1)).astype("float32")
    return x, np.array([0, 3, 2])
