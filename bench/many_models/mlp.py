"""A small compiled MLP: a typical light model of a monorepo, for the worker benchmark."""

import keras


def build() -> keras.Model:
    features = keras.Input(shape=(64,), name="features")
    hidden = keras.layers.Dense(128, activation="relu", name="hidden1")(features)
    hidden = keras.layers.Dense(64, activation="relu", name="hidden2")(hidden)
    scores = keras.layers.Dense(10, activation="softmax", name="scores")(hidden)
    model = keras.Model(features, scores, name="bench_mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
