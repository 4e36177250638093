"""A model large enough to fill a small filesystem, for test_faults.py.

keras.io's "Text classification from scratch" classifier with its 20,000-word
vocabulary: 11.2 MB of float32 weights, most of them in the embedding, and a write and
verification long enough (a second or more) for a test to stop the exporter during it.
"""

import keras
from keras import layers

MODULE = __name__
VOCABULARY_SIZE = 20000
EMBEDDING_DIM = 128


def text_classifier() -> keras.Model:
    inputs = keras.Input(shape=(None,), dtype="int64", name="tokens")
    x = layers.Embedding(VOCABULARY_SIZE, EMBEDDING_DIM)(inputs)
    x = layers.Dropout(0.5)(x)
    x = layers.Conv1D(128, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.Conv1D(128, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)
    return keras.Model(inputs, predictions)
