"""A ranking model of the monorepo, compiled: exported with serve, eval and train."""

import keras


def build() -> keras.Model:
    query = keras.Input(shape=(8,), name="query")
    item = keras.Input(shape=(8,), name="item")
    joined = keras.layers.Concatenate(name="joined")([query, item])
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(joined)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    model = keras.Model([query, item], score, name="ranker")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model
