"""Model builders for the exporter tests (used as --builder=tests.export.testmodels:NAME).

Builders take no arguments; the exporter seeds Keras before calling them, so weights are
the same in every process.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from tests.zoo import training

MODULE = __name__


def mlp() -> keras.Model:
    """Sequential MLP, not compiled: serve only."""
    return keras.Sequential(
        [
            keras.Input((8,), name="features"),
            layers.Dense(16, activation="relu", name="hidden"),
            layers.Dense(3, activation="softmax", name="probs"),
        ],
        name="mlp",
    )


def mlp_wider() -> keras.Model:
    """Same layer names as mlp() but other shapes: mlp's weights must not fit it."""
    return keras.Sequential(
        [
            keras.Input((8,), name="features"),
            layers.Dense(17, activation="relu", name="hidden"),
            layers.Dense(3, activation="softmax", name="probs"),
        ],
        name="mlp",
    )


def two_in_two_out() -> keras.Model:
    """Functional model with two named inputs and two named outputs."""
    image = keras.Input((6,), name="image_feats")
    meta = keras.Input((3,), name="meta")
    hidden = layers.Dense(12, activation="relu", name="trunk")(
        layers.Concatenate(name="concat")([image, meta])
    )
    score = layers.Dense(1, name="score")(hidden)
    cls = layers.Dense(4, activation="softmax", name="cls")(hidden)
    return keras.Model([image, meta], [score, cls], name="two_in_two_out")


def fixed_batch() -> keras.Model:
    """Its input has a fixed batch size of 1 (batch_shape), which TF Serving's batcher
    cannot batch."""
    return keras.Sequential(
        [
            keras.Input(batch_shape=(1, 4), name="features"),
            layers.Dense(2, name="scores"),
        ],
        name="fixed_batch",
    )


class Scale(layers.Layer):
    """Deliberately NOT registered: loading its config needs --custom_objects=Scale=..."""

    def __init__(self, factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.gain = self.add_weight(
            name="gain", shape=(input_shape[-1],), initializer="random_normal"
        )

    def call(self, inputs):
        return inputs * self.gain * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def custom_layer() -> keras.Model:
    inputs = keras.Input((5,), name="x")
    hidden = layers.Dense(4, name="dense")(inputs)
    outputs = Scale(factor=2.5, name="scaled")(hidden)
    return keras.Model(inputs, outputs, name="custom_layer")


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class Residual(keras.Model):
    """Subclassed model with get_config, so its JSON re-creates it."""

    def __init__(self, units: int = 6, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = layers.Dense(units, activation="tanh", name="inner")
        self.head = layers.Dense(2, name="head")

    def call(self, inputs):
        return self.head(inputs + self.inner(inputs))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def subclassed() -> keras.Model:
    model = Residual(units=6, name="residual")
    model.build((None, 6))
    return model


def compiled() -> keras.Model:
    """Compiled with loss, optimizer and a metric: serve, eval and train."""
    inputs = keras.Input((4,), name="x")
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    hidden = layers.BatchNormalization(name="bn")(hidden)
    probs = layers.Dense(3, activation="softmax", name="probs")(hidden)
    model = keras.Model(inputs, probs, name="compiled")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class ClippedStep(keras.Model):
    """A functional model with its own train_step, written the Keras 3 way (as `fit`
    runs it: tensor ops, no Python control flow on tensors): it clips the gradients and
    reports their norm next to the loss."""

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        grads = tape.gradient(loss, self.trainable_variables)
        grads, norm = tf.clip_by_global_norm(grads, 0.1)
        self.optimizer.apply(grads, self.trainable_variables)
        return {"loss": loss, "grad_norm": norm}


def custom_train_step() -> keras.Model:
    """Compiled, with a custom train_step: the train signature runs that step."""
    inputs = keras.Input((4,), name="x")
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    probs = layers.Dense(3, activation="softmax", name="probs")(hidden)
    model = ClippedStep(inputs, probs, name="custom_train_step")
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.5),
        loss="sparse_categorical_crossentropy",
    )
    return model


def guide_train_step() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    probs = layers.Dense(3, activation="softmax", name="probs")(hidden)
    # The Keras 3 guide's own train_step, as the zoo writes it.
    model = training.CustomModel(inputs, probs, name="guide_train_step")
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


class LowLevelStep(keras.Model):
    """The guide's lower-level train_step: its own loss function and metrics (listed by
    the `metrics` property), compiled with an optimizer only. fit trains it; evaluate
    cannot run it (no compiled loss, no test_step of its own)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
        trainable_vars = self.trainable_variables
        gradients = tape.gradient(loss, trainable_vars)
        self.optimizer.apply(gradients, trainable_vars)
        self.loss_tracker.update_state(loss)
        self.accuracy_metric.update_state(y, y_pred)
        return {
            "loss": self.loss_tracker.result(),
            "accuracy": self.accuracy_metric.result(),
        }

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_metric]


def low_level_train_step() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    probs = layers.Dense(3, activation="softmax", name="probs")(hidden)
    model = LowLevelStep(inputs, probs, name="low_level_train_step")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    return model


def compiled_two_outputs() -> keras.Model:
    """Two outputs with per-output losses and metrics."""
    model = two_in_two_out()
    model.compile(
        optimizer="sgd",
        loss={"score": "mse", "cls": keras.losses.SparseCategoricalCrossentropy()},
        metrics={"score": ["mae"], "cls": ["accuracy"]},
    )
    return model


def lambda_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((3,), name="x"),
            layers.Lambda(lambda t: t * 3.0 + 1.0, name="affine"),
        ],
        name="lambda_model",
    )


def save_lambda_model(path: str) -> None:
    lambda_model().save(path)


# Broken builders, one per error the exporter must explain.

NOT_CALLABLE = 42


def raises() -> keras.Model:
    raise RuntimeError("builder exploded on purpose")


def returns_layer():
    return layers.Dense(3)


def unbuilt() -> keras.Model:
    return keras.Sequential([layers.Dense(3)], name="unbuilt")


class Opaque(keras.Model):
    """Takes an object in __init__ and has no get_config: cannot be serialized."""

    def __init__(self, helper, **kwargs):
        super().__init__(**kwargs)
        self.helper = helper
        self.dense = layers.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


def no_config() -> keras.Model:
    model = Opaque(helper=object())
    model(np.zeros((1, 4), np.float32))
    return model


class TwoArguments(keras.Model):
    """call() takes two tensors, and build() their shapes (Keras's own names for them)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(2)

    def build(self, a_shape, b_shape):
        self.dense.build(a_shape)

    def call(self, a, b):
        return self.dense(a + b)


def two_call_arguments() -> keras.Model:
    model = TwoArguments()
    x = np.zeros((1, 3), np.float32)
    model(x, x)
    return model


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class TwoArgumentsDefaultBuild(keras.Model):
    """call() takes two tensors of other shapes, and Keras's default build() records
    the first one's shape alone: the second must be declared by input_specs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.left = layers.Dense(2, name="left")
        self.right = layers.Dense(2, name="right")

    def call(self, a, b):
        return {"sum": self.left(a) + self.right(b), "a_norm": ops.sum(a * a, axis=-1)}


def two_arguments_default_build() -> keras.Model:
    model = TwoArgumentsDefaultBuild()
    model(np.ones((1, 3), np.float32), np.ones((1, 4), np.float32))
    return model


class PositiveOnly(keras.Model):
    """call() rejects the zeros the exporter calls a subclassed model on."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(2)

    def call(self, inputs):
        tf.debugging.assert_positive(inputs, message="inputs must be positive")
        return self.dense(inputs)


def rejects_zeros() -> keras.Model:
    model = PositiveOnly()
    model(np.ones((1, 3), np.float32))
    return model


def marked_built() -> keras.Model:
    """Marked built by hand, never called: no input shape recorded."""
    model = PositiveOnly()
    model.built = True
    return model


def nan_weights() -> keras.Model:
    model = mlp()
    kernel, bias = model.get_layer("probs").get_weights()
    kernel[0, 0] = np.nan
    model.get_layer("probs").set_weights([kernel, bias])
    return model


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class Noise(layers.Layer):
    """Adds fresh random noise even at inference: --verify must catch it."""

    def call(self, inputs):
        return inputs + tf.random.uniform(tf.shape(inputs))


def noisy() -> keras.Model:
    inputs = keras.Input((3,), name="x")
    return keras.Model(
        inputs, Noise(name="noise")(layers.Dense(2)(inputs)), name="noisy"
    )


class KerasIoStyle(keras.Model):
    """Subclassed the way keras.io's first examples write it: __init__ takes no
    **kwargs, so Keras cannot re-create it from its config (which carries trainable and
    dtype), even given as a custom object."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.hidden = layers.Dense(8, activation="relu")
        self.out = layers.Dense(num_classes)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def init_without_kwargs() -> keras.Model:
    model = KerasIoStyle()
    model(np.zeros((1, 5), np.float32))
    return model


# What a builder's module defines, and its lambdas read.
CLIP_AT = 3.0
FEATURE_WEIGHTS = (1.0, 0.5, 2.0, 0.25)


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class FeatureTransform(layers.Layer):
    """Applies the function it is given; Keras puts a lambda given to it in its config."""

    def __init__(self, transform, **kwargs):
        super().__init__(**kwargs)
        self.transform = transform

    def call(self, inputs):
        return self.transform(inputs)

    def get_config(self):
        return {**super().get_config(), "transform": self.transform}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["transform"] = keras.saving.deserialize_keras_object(config["transform"])
        return cls(**config)


def lambdas_using_their_module() -> keras.Model:
    """Lambdas whose code reads what their module imports and defines (keras.ops, tf,
    np, constants), also from nested code (a comprehension, a generator), in Lambda
    layers and in a custom layer's config."""
    inputs = keras.Input((4,), name="features")
    x = layers.Lambda(lambda t: ops.sign(t) * ops.log1p(ops.abs(t)), name="signed_log")(
        inputs
    )
    x = layers.Lambda(lambda t: tf.clip_by_value(t, -CLIP_AT, CLIP_AT), name="clip")(x)
    x = layers.Lambda(
        lambda t: ops.stack(
            [t[:, i] * w for i, w in enumerate(FEATURE_WEIGHTS)], axis=1
        ),
        name="weigh",
    )(x)
    x = FeatureTransform(
        lambda t: sum(t**power for power in (1, 2)) * np.float32(0.5), name="poly"
    )(x)
    x = layers.Dense(8, activation="relu", name="hidden")(x)
    outputs = layers.Dense(1, name="amount")(x)
    model = keras.Model(inputs, outputs, name="lambdas_using_their_module")
    model.compile(optimizer="adam", loss="mse")
    return model


@keras.saving.register_keras_serializable(package="rules_keras_tests")
class PositionEmbedding(layers.Layer):
    """Adds a learned vector per position, from a table of `positions` rows."""

    def __init__(self, positions: int, **kwargs):
        super().__init__(**kwargs)
        self.positions = positions

    def build(self, input_shape):
        self.table = self.add_weight(
            name="table", shape=(self.positions, input_shape[-1])
        )

    def call(self, inputs):
        return inputs + tf.gather(self.table, tf.range(tf.shape(inputs)[1]))

    def get_config(self):
        return {**super().get_config(), "positions": self.positions}


def position_table_too_short() -> keras.Model:
    """Sequences of 32 steps, a position table of 16: fails on every batch."""
    inputs = keras.Input((32, 4), name="tokens")
    hidden = PositionEmbedding(16, name="positions")(inputs)
    pooled = layers.GlobalAveragePooling1D(name="pool")(hidden)
    probs = layers.Dense(3, activation="softmax", name="probs")(pooled)
    model = keras.Model(inputs, probs, name="position_table_too_short")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


@keras.saving.register_keras_serializable(package="rules_keras_tests")
def offset_mse(y_true, y_pred):
    """A loss with a dtype bug: it adds an int32 to a float tensor, for any labels."""
    return tf.reduce_mean(tf.square(y_true - y_pred)) + tf.constant(1)


def broken_loss() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    outputs = layers.Dense(2, name="score")(inputs)
    model = keras.Model(inputs, outputs, name="broken_loss")
    model.compile(optimizer="sgd", loss=offset_mse)
    return model


class LogsNone(keras.Model):
    """A train_step that returns a log without a value."""

    def train_step(self, data):
        logs = super().train_step(data)
        return {**logs, "learning_rate_note": None}


def train_step_logs_none() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    probs = layers.Dense(3, activation="softmax", name="probs")(inputs)
    model = LogsNone(inputs, probs, name="logs_none")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def review_text() -> keras.Model:
    """Raw text in: TextVectorization splits and lowercases strings with TensorFlow ops
    that TFLite has no builtin for (a keras_tflite_model needs allow_select_tf_ops)."""
    vectorize = layers.TextVectorization(
        max_tokens=50, output_sequence_length=8, name="vectorize"
    )
    vectorize.adapt(["a great movie", "a dull plot", "great acting, dull ending"])
    text = keras.Input((1,), dtype="string", name="review")
    x = layers.Embedding(50, 4, name="embed")(vectorize(text))
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    positive = layers.Dense(1, activation="sigmoid", name="positive")(x)
    return keras.Model(text, positive, name="review_text")
