"""A small regressor of the bzlmod smoke workspace, compiled: serve, eval, train."""

import keras


def build() -> keras.Model:
    readings = keras.Input(shape=(8,), name="readings")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(readings)
    level = keras.layers.Dense(1, name="level")(hidden)
    model = keras.Model(readings, level, name="smoke_regressor")
    model.compile(optimizer="sgd", loss="mean_squared_error")
    return model
