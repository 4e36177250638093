"""A model that takes strings and converts to TFLite with builtin ops only.

In the style of keras.io's "Structured data classification from scratch": a categorical
string feature one-hot encoded by a StringLookup with a fixed vocabulary (TFLite's
builtin HASHTABLE ops run it) beside a numeric one.
"""

import keras


def pet_adoption() -> keras.Model:
    animal = keras.Input((1,), dtype="string", name="animal")
    age = keras.Input((1,), name="age")
    encoded = keras.layers.StringLookup(
        vocabulary=["cat", "dog", "rabbit", "hamster"],
        output_mode="one_hot",
        name="animal_lookup",
    )(animal)
    x = keras.layers.Concatenate(name="features")([encoded, age])
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    adopted = keras.layers.Dense(1, activation="sigmoid", name="adopted")(x)
    model = keras.Model({"animal": animal, "age": age}, adopted, name="pet_adoption")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model
