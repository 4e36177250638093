"""A builder whose model holds Python lambdas: Keras marshals their bytecode into the
model JSON (with the module whose globals one of them uses), so the reproducibility test
compares exports that carry code."""

import keras
from keras import layers, ops


def build() -> keras.Model:
    inputs = keras.Input((8, 8, 3), name="image")
    scaled = layers.Lambda(lambda t: t / 255.0 - 0.5, name="rescale")(inputs)
    hidden = layers.Conv2D(4, 3, activation="relu", name="conv")(scaled)
    pooled = layers.GlobalAveragePooling2D(name="pool")(hidden)
    # Its code uses this module's `ops`: the export names the module to import it from.
    squashed = layers.Lambda(
        lambda t: ops.sign(t) * ops.log1p(ops.abs(t)), name="signed_log"
    )(pooled)
    probs = layers.Dense(2, activation="softmax", name="probs")(squashed)
    return keras.Model(inputs, probs, name="lambda_model")
