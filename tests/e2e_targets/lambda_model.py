"""A builder whose model holds Python lambdas: Keras marshals their bytecode into the
model JSON, so the reproducibility test compares exports that carry code."""

import keras
from keras import layers


def build() -> keras.Model:
    inputs = keras.Input((8, 8, 3), name="image")
    scaled = layers.Lambda(lambda t: t / 255.0 - 0.5, name="rescale")(inputs)
    hidden = layers.Conv2D(4, 3, activation="relu", name="conv")(scaled)
    pooled = layers.GlobalAveragePooling2D(name="pool")(hidden)
    probs = layers.Dense(2, activation="softmax", name="probs")(pooled)
    return keras.Model(inputs, probs, name="lambda_model")
