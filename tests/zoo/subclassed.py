"""Subclassed models that a signature cannot guess: raw strings in, several tensors in.

ReviewModel is keras.io's "Text classification from scratch" written as a subclass: a
TextVectorization adapted on the corpus, called once on strings (Keras records the
shape it was called on, not that it was strings: the export declares them with
`input_specs`). PairScorer's call() takes two tensors, `call(self, query, document)`,
as Keras's own export tests write it; Keras's fit hands a model its inputs as one
structure, so it trains through its own train_step (the Keras guide "Customizing what
happens in fit()"), which unpacks the pair.

Both are also committed as `.keras` files written by make_keras_files.py.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tests.zoo.text import REVIEWS, SENTIMENTS


@keras.saving.register_keras_serializable(package="zoo")
class ReviewModel(keras.Model):
    """Raw review strings (one per example) to the probability that it is positive."""

    def __init__(self, max_tokens=200, sequence_length=24, **kwargs):
        super().__init__(**kwargs)
        self.max_tokens, self.sequence_length = max_tokens, sequence_length
        self.vectorize = layers.TextVectorization(
            max_tokens=max_tokens,
            output_mode="int",
            output_sequence_length=sequence_length,
        )
        self.embedding = layers.Embedding(max_tokens, 16)
        self.dropout = layers.Dropout(0.5)
        self.conv = layers.Conv1D(16, 3, padding="valid", activation="relu")
        self.pool = layers.GlobalMaxPooling1D()
        self.classify = layers.Dense(1, activation="sigmoid")

    def build(self, input_shape):
        # What the first call on strings builds, without calling (a float placeholder
        # cannot go through TextVectorization): .keras files re-create it this way.
        tokens = (input_shape[0], self.sequence_length)
        self.embedding.build(tokens)
        embedded = (*tokens, 16)
        self.conv.build(embedded)
        self.classify.build(self.conv.compute_output_shape(embedded)[:1] + (16,))

    def call(self, text, training=False):
        x = self.embedding(self.vectorize(text))
        x = self.dropout(x, training=training)
        return self.classify(self.pool(self.conv(x)))

    def get_config(self):
        return {
            **super().get_config(),
            "max_tokens": self.max_tokens,
            "sequence_length": self.sequence_length,
        }


def review_model() -> keras.Model:
    model = ReviewModel()
    model.vectorize.adapt(REVIEWS)
    model(tf.constant(REVIEWS[:2]))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def review_model_batch():
    x = np.array(REVIEWS[:4] + ["An unseen word: zyzzyva."])
    y = np.array([[s] for s in SENTIMENTS[:4]] + [[1]], dtype="float32")
    return x, y


@keras.saving.register_keras_serializable(package="zoo")
class PairScorer(keras.Model):
    """A query and a document, each embedded by its own tower, scored by a dot product."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query_tower = layers.Dense(units, activation="tanh")
        self.document_tower = layers.Dense(units, activation="tanh")
        self.score = layers.Dense(1, activation="sigmoid")

    def build(self, query_shape, document_shape):
        self.query_tower.build(query_shape)
        self.document_tower.build(document_shape)
        self.score.build((query_shape[0], 1))

    def call(self, query, document):
        similarity = keras.ops.sum(
            self.query_tower(query) * self.document_tower(document),
            axis=-1,
            keepdims=True,
        )
        return self.score(similarity)

    def train_step(self, data):
        (query, document), y = data
        with tf.GradientTape() as tape:
            y_pred = self(query, document, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(loss, y, y_pred)

    def test_step(self, data):
        (query, document), y = data
        y_pred = self(query, document, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        return self._update_metrics(loss, y, y_pred)

    def _update_metrics(self, loss, y, y_pred):
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def pair_scorer() -> keras.Model:
    model = PairScorer()
    query, document = pair_batch()[0]
    model(query, document)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def pair_batch():
    rng = np.random.default_rng(11)
    query = rng.standard_normal((6, 5)).astype("float32")
    document = rng.standard_normal((6, 7)).astype("float32")
    return (query, document), np.array([[1], [0], [1], [1], [0], [0]], "float32")
