"""Models that train their own way: several outputs, custom losses, metrics and steps.

The styles of keras.io's "The Functional API" (a ticket classifier with two outputs and
`loss_weights`), "Training & evaluation with the built-in methods" (a custom loss
function and metric class), "Customizing what happens in fit()" (Keras 3, TensorFlow
backend) and "Making new layers and models via subclassing".
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

NUM_WORDS = 500
NUM_TAGS = 12
NUM_DEPARTMENTS = 4


def ticket_classifier() -> keras.Model:
    title = keras.Input(shape=(None,), name="title", dtype="int32")
    body = keras.Input(shape=(None,), name="body", dtype="int32")
    tags = keras.Input(shape=(NUM_TAGS,), name="tags")
    title_features = layers.LSTM(16)(layers.Embedding(NUM_WORDS, 16)(title))
    body_features = layers.LSTM(8)(layers.Embedding(NUM_WORDS, 16)(body))
    x = layers.concatenate([title_features, body_features, tags])
    priority = layers.Dense(1, name="priority")(x)
    department = layers.Dense(NUM_DEPARTMENTS, name="department")(x)
    model = keras.Model(
        inputs=[title, body, tags],
        outputs={"priority": priority, "department": department},
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(1e-3),
        loss={
            "priority": keras.losses.BinaryCrossentropy(from_logits=True),
            "department": keras.losses.CategoricalCrossentropy(from_logits=True),
        },
        loss_weights={"priority": 1.0, "department": 0.2},
        metrics={"department": ["categorical_accuracy"]},
    )
    return model


def ticket_batch():
    rng = np.random.default_rng(5)
    x = {
        "title": rng.integers(0, NUM_WORDS, size=(3, 10)).astype("int32"),
        "body": rng.integers(0, NUM_WORDS, size=(3, 40)).astype("int32"),
        "tags": rng.integers(0, 2, size=(3, NUM_TAGS)).astype("float32"),
    }
    y = {
        "priority": rng.random(size=(3, 1)).astype("float32"),
        "department": keras.utils.to_categorical([0, 3, 1], NUM_DEPARTMENTS),
    }
    return x, y


def custom_mean_squared_error(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class CategoricalTruePositives(keras.metrics.Metric):
    """How many samples were correctly classified as belonging to a given class."""

    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(
            shape=(), name="ctp", initializer="zeros"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
        y_true = ops.reshape(ops.argmax(y_true, axis=1), (-1, 1))
        values = ops.cast(y_true == y_pred, "float32")
        if sample_weight is not None:
            values = ops.multiply(values, ops.cast(sample_weight, "float32"))
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        return self.true_positives

    def reset_state(self):
        self.true_positives.assign(0.0)


def custom_loss_and_metric() -> keras.Model:
    inputs = keras.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.RMSprop(1e-3),
        loss=custom_mean_squared_error,
        metrics=[CategoricalTruePositives()],
    )
    return model


def digits_batch():
    rng = np.random.default_rng(8)
    x = rng.random(size=(6, 784)).astype("float32")
    return x, keras.utils.to_categorical([0, 1, 2, 3, 8, 9], 10)


class CustomModel(keras.Model):
    """train_step as the Keras 3 guide "Customizing what happens in fit()" writes it: it
    updates every metric itself and returns {m.name: m.result() for m in self.metrics},
    where the compiled metrics' results come as one nested dict under "compile_metrics".
    """

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        trainable_vars = self.trainable_variables
        gradients = tape.gradient(loss, trainable_vars)
        self.optimizer.apply(gradients, trainable_vars)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def custom_train_step() -> keras.Model:
    inputs = keras.Input(shape=(32,), name="x")
    outputs = layers.Dense(1, name="y")(inputs)
    model = CustomModel(inputs, outputs)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def regression_batch():
    rng = np.random.default_rng(9)
    return (
        rng.random(size=(5, 32)).astype("float32"),
        rng.random(size=(5, 1)).astype("float32"),
    )


class MLP(keras.Model):
    """A subclassed model: layers made in __init__, wired in call."""

    def __init__(self, hidden=64, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.classes = hidden, classes
        self.dense_1 = layers.Dense(hidden, activation="relu")
        self.dropout = layers.Dropout(0.2)
        self.dense_2 = layers.Dense(classes)

    def call(self, inputs, training=False):
        x = self.dense_1(inputs)
        return self.dense_2(self.dropout(x, training=training))

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "classes": self.classes}


def subclassed_mlp() -> keras.Model:
    model = MLP()
    model(np.zeros((1, 20), dtype="float32"))
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def mlp_batch():
    rng = np.random.default_rng(10)
    return rng.random(size=(4, 20)).astype("float32"), np.array([0, 9, 3, 3])
