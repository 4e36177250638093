"""A churn classifier over a few numeric columns, the way keras.io's structured-data
examples write one. Its package is importable only through the `imports` folder."""

import keras

from tabular.features import FEATURE_NAMES


def build() -> keras.Model:
    features = keras.Input(shape=(len(FEATURE_NAMES),), name="features")
    x = keras.layers.Dense(16, activation="relu", name="hidden")(features)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    churn = keras.layers.Dense(1, activation="sigmoid", name="churn")(x)
    model = keras.Model(features, churn, name="churn_classifier")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model
