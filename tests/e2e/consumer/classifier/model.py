"""A text-feature classifier of the consumer workspace, compiled: serve, eval, train."""

import keras


def build() -> keras.Model:
    features = keras.Input(shape=(32,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(features)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    model = keras.Model(features, score, name="consumer_classifier")
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["auc"])
    return model
