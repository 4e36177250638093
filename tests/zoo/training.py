"""Models that train their own way: several outputs, custom losses, metrics and steps.

The styles of keras.io's "The Functional API" (a ticket classifier with two outputs and
`loss_weights`), "Training & evaluation with the built-in methods" (a custom loss
function and metric class), "Customizing what happens in fit()" (Keras 3, TensorFlow
backend), "Making new layers and models via subclassing", "Variational AutoEncoder"
(trained with fit(x)) and "Knowledge Distillation" (a compute_loss of its own).
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


# keras.io "Variational AutoEncoder", on 16x16 digits.
LATENT_DIM = 2
DIGIT_SIZE = 16


@keras.saving.register_keras_serializable(package="zoo")
class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def vae_encoder_decoder() -> tuple[keras.Model, keras.Model]:
    encoder_inputs = keras.Input(shape=(DIGIT_SIZE, DIGIT_SIZE, 1))
    x = layers.Conv2D(8, 3, activation="relu", strides=2, padding="same")(
        encoder_inputs
    )
    x = layers.Conv2D(16, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    z_mean = layers.Dense(LATENT_DIM, name="z_mean")(x)
    z_log_var = layers.Dense(LATENT_DIM, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")

    side = DIGIT_SIZE // 4
    latent_inputs = keras.Input(shape=(LATENT_DIM,))
    x = layers.Dense(side * side * 16, activation="relu")(latent_inputs)
    x = layers.Reshape((side, side, 16))(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(8, 3, activation="relu", strides=2, padding="same")(x)
    decoder_outputs = layers.Conv2DTranspose(
        1, 3, activation="sigmoid", padding="same"
    )(x)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")
    return encoder, decoder


@keras.saving.register_keras_serializable(package="zoo")
class VAE(keras.Model):
    """As the example writes it: its own train_step, on the images alone (fit(x))."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss"
        )
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [
            self.total_loss_tracker,
            self.reconstruction_loss_tracker,
            self.kl_loss_tracker,
        ]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(
                    keras.losses.binary_crossentropy(data, reconstruction),
                    axis=(1, 2),
                )
            )
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }

    # Saving the model (model.save, or the exporter's JSON) needs its parts' configs.
    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="zoo")
class ServableVAE(VAE):
    """The VAE with the call() that serving needs: each image's reconstruction from its
    z_mean (sampling z would make the served outputs random)."""

    def call(self, inputs):
        z_mean, _, _ = self.encoder(inputs)
        return self.decoder(z_mean)


def vae() -> keras.Model:
    model = ServableVAE(*vae_encoder_decoder())
    model.compile(optimizer=keras.optimizers.Adam())
    model(np.zeros((1, DIGIT_SIZE, DIGIT_SIZE, 1), "float32"))  # fit would build it
    return model


def digits_images_batch():
    """Images in [0, 1], as fit(x) takes them: no labels."""
    rng = np.random.default_rng(11)
    images = np.zeros((4, DIGIT_SIZE, DIGIT_SIZE, 1), "float32")
    for i, row in enumerate(rng.integers(2, DIGIT_SIZE - 6, size=4)):
        images[i, row : row + 5, 4:12, 0] = 1.0
    return images, None


# keras.io "Knowledge Distillation", on 16x16 digits.


@keras.saving.register_keras_serializable(package="zoo")
class Distiller(keras.Model):
    def __init__(self, student, teacher, **kwargs):
        super().__init__(**kwargs)
        self.teacher = teacher
        self.student = student

    def compile(
        self,
        optimizer,
        metrics,
        student_loss_fn,
        distillation_loss_fn,
        alpha=0.1,
        temperature=3,
    ):
        """Configure the distiller.

        Args:
            optimizer: Keras optimizer for the student weights
            metrics: Keras metrics for evaluation
            student_loss_fn: Loss function of difference between student
                predictions and ground-truth
            distillation_loss_fn: Loss function of difference between soft
                student predictions and soft teacher predictions
            alpha: weight to student_loss_fn and 1-alpha to distillation_loss_fn
            temperature: Temperature for softening probability distributions.
                Larger temperature gives softer distributions.
        """
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False
    ):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)

        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature**2)

        loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
        return loss

    def call(self, x):
        return self.student(x)

    # Saving the model (model.save, or the exporter's JSON) needs its parts' configs.
    def get_config(self):
        return {
            **super().get_config(),
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
        }

    @classmethod
    def from_config(cls, config):
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        config["teacher"] = keras.saving.deserialize_keras_object(config["teacher"])
        return cls(**config)


def _digit_convnet(name: str, filters: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(DIGIT_SIZE, DIGIT_SIZE, 1)),
            layers.Conv2D(filters, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Conv2D(filters * 2, (3, 3), strides=(2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name=name,
    )


def distiller() -> keras.Model:
    teacher = _digit_convnet("teacher", 16)
    student = _digit_convnet("student", 4)
    model = Distiller(student=student, teacher=teacher)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.1,
        temperature=10,
    )
    model(np.zeros((1, DIGIT_SIZE, DIGIT_SIZE, 1), "float32"))  # fit would build it
    return model


def distiller_batch():
    rng = np.random.default_rng(12)
    images = rng.random((5, DIGIT_SIZE, DIGIT_SIZE, 1)).astype("float32")
    return images, np.array([3, 1, 4, 1, 5])  # MNIST's labels: shape (n,)
