"""Models for the data-set evaluation tests (eval_state, eval_result): Keras's
stateful metrics, as keras.io's "Imbalanced classification: credit card fraud
detection" and "Training & evaluation with the built-in methods" compile them."""

import keras
import numpy as np
from keras import layers, ops

MODULE = "tests.export.evaluation_models"
FEATURES = 6
CLASSES = 5


def fraud_classifier() -> keras.Model:
    """A binary classifier with AUC, precision, recall and confusion counts."""
    inputs = keras.Input(shape=(FEATURES,), name="features")
    x = layers.Dense(8, activation="relu")(inputs)
    outputs = layers.Dense(1, activation="sigmoid", name="fraud")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=[
            keras.metrics.AUC(name="auc"),
            keras.metrics.AUC(name="prc", curve="PR"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
            keras.metrics.FalseNegatives(name="fn"),
            keras.metrics.TruePositives(name="tp"),
            "accuracy",
        ],
    )
    return model


def topk_classifier() -> keras.Model:
    """Sparse class ids, top-k and a weighted-by-batch loss."""
    inputs = keras.Input(shape=(FEATURES,), name="features")
    x = layers.Dense(8, activation="relu")(inputs)
    outputs = layers.Dense(CLASSES, activation="softmax", name="classes")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=[
            keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2"),
            "accuracy",
        ],
    )
    return model


@keras.saving.register_keras_serializable(package="evaluation_models")
class LargestError(keras.metrics.Metric):
    """The largest absolute error seen: a running max, whose state does not add up."""

    def __init__(self, name="largest_error", **kwargs):
        super().__init__(name=name, **kwargs)
        self.largest = self.add_variable(shape=(), initializer="zeros", name="largest")

    def update_state(self, y_true, y_pred, sample_weight=None):
        error = ops.max(ops.abs(ops.cast(y_true, "float32") - y_pred))
        self.largest.assign(ops.maximum(self.largest, error))

    def result(self):
        return self.largest


def running_max_metric() -> keras.Model:
    inputs = keras.Input(shape=(FEATURES,), name="features")
    outputs = layers.Dense(1, name="value")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse", metrics=[LargestError()])
    return model


def _fraud_training_set():
    """Examples like tests/eval_gate/testdata's (another seed): fraud where a fixed
    direction of the features is large."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(512, FEATURES)).astype("float32")
    y = (x @ np.linspace(-1, 1, FEATURES) > 1.2).astype("float32")[:, None]
    return x, y


def fraud_trained() -> keras.Model:
    """fraud_classifier fitted on its training set (a few seconds)."""
    model = fraud_classifier()
    x, y = _fraud_training_set()
    model.fit(x, y, epochs=30, batch_size=64, verbose=0)
    return model


def fraud_perturbed() -> keras.Model:
    """fraud_trained made worse: noise added to every kernel."""
    model = fraud_trained()
    rng = np.random.default_rng(2)
    for variable in model.trainable_variables:
        if "kernel" in variable.path:
            value = variable.numpy()
            variable.assign(value + rng.normal(scale=1.0, size=value.shape))
    return model
