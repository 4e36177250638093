"""Builders of models whose training Keras runs in its own ways, written the way the
keras.io examples write them (tiny): labels of another rank than the outputs' (a (None,
1) sigmoid output trained on labels (n,), sparse labels (n, 1), masks (n, H, W, 1)), a
loss that does not reconcile ranks, a VAE trained with fit(x), knowledge distillation
through compute_loss, and a VAE without call().

Used as --builder=tests.export.training_models:NAME; the exporter seeds Keras first. Each
`<name>_batch()` returns (x, y) as the example feeds fit and evaluate (y None for fit(x)).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

MODULE = __name__
PACKAGE = "rules_keras_training_tests"
USERS, MOVIES = 12, 9


@keras.saving.register_keras_serializable(package=PACKAGE)
class RecommenderNet(keras.Model):
    """keras.io "Collaborative Filtering for Movie Recommendations": user and movie
    embeddings and biases, a sigmoid rating in [0, 1], shape (None, 1)."""

    def __init__(self, num_users, num_movies, embedding_size, **kwargs):
        super().__init__(**kwargs)
        self.num_users = num_users
        self.num_movies = num_movies
        self.embedding_size = embedding_size
        self.user_embedding = layers.Embedding(
            num_users,
            embedding_size,
            embeddings_initializer="he_normal",
            embeddings_regularizer=keras.regularizers.l2(1e-6),
        )
        self.user_bias = layers.Embedding(num_users, 1)
        self.movie_embedding = layers.Embedding(
            num_movies,
            embedding_size,
            embeddings_initializer="he_normal",
            embeddings_regularizer=keras.regularizers.l2(1e-6),
        )
        self.movie_bias = layers.Embedding(num_movies, 1)

    def call(self, inputs):
        user_vector = self.user_embedding(inputs[:, 0])
        user_bias = self.user_bias(inputs[:, 0])
        movie_vector = self.movie_embedding(inputs[:, 1])
        movie_bias = self.movie_bias(inputs[:, 1])
        dot_user_movie = ops.tensordot(user_vector, movie_vector, 2)
        x = dot_user_movie + user_bias + movie_bias
        return ops.nn.sigmoid(x)

    def get_config(self):
        return {
            **super().get_config(),
            "num_users": self.num_users,
            "num_movies": self.num_movies,
            "embedding_size": self.embedding_size,
        }


def recommender() -> keras.Model:
    model = RecommenderNet(USERS, MOVIES, 4)
    model(np.zeros((1, 2), "int64"))
    model.compile(
        loss=keras.losses.BinaryCrossentropy(),
        optimizer=keras.optimizers.Adam(learning_rate=0.05),
    )
    return model


def recommender_batch():
    rng = np.random.default_rng(1)
    x = np.stack([rng.integers(0, USERS, 7), rng.integers(0, MOVIES, 7)], axis=1)
    ratings = rng.integers(1, 6, 7).astype("float32")
    # Ratings scaled to [0, 1], kept as the example has them: shape (n,).
    return x.astype("float32"), (ratings - 1.0) / 4.0


def patch_classifier() -> keras.Model:
    """Vision Transformer style: patches, attention, logits; CIFAR labels are (n, 1)."""
    inputs = keras.Input((8, 8, 3), name="image")
    patches = layers.Conv2D(8, 4, strides=4, name="patches")(inputs)
    tokens = layers.Reshape((4, 8))(patches)
    attention = layers.MultiHeadAttention(num_heads=2, key_dim=4)(tokens, tokens)
    features = layers.GlobalAveragePooling1D()(layers.Add()([tokens, attention]))
    logits = layers.Dense(10, name="logits")(features)
    model = keras.Model(inputs, logits)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(5, name="top-5-accuracy"),
        ],
    )
    return model


def patch_classifier_batch():
    rng = np.random.default_rng(2)
    return rng.random((6, 8, 8, 3)).astype("float32"), rng.integers(0, 10, (6, 1))


def segmentation() -> keras.Model:
    """U-Net style: down, up, a softmax per pixel; masks are (n, H, W, 1)."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2DTranspose(8, 3, padding="same", activation="relu")(x)
    x = layers.UpSampling2D(2)(x)
    outputs = layers.Conv2D(3, 3, activation="softmax", padding="same", name="mask")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def segmentation_batch():
    rng = np.random.default_rng(3)
    images = rng.random((4, 8, 8, 3)).astype("float32")
    return images, rng.integers(0, 3, (4, 8, 8, 1)).astype("uint8")


@keras.saving.register_keras_serializable(package=PACKAGE)
class SquaredGap(keras.losses.Loss):
    """A Loss subclass: Keras hands its call the labels as they come, without the rank
    reconciliation its built-in losses do, so labels (n,) against outputs (n, 1)
    broadcast into another number."""

    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)


def unreconciled_loss() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    outputs = layers.Dense(1, name="score")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=SquaredGap())
    return model


def unreconciled_loss_batch():
    rng = np.random.default_rng(4)
    return rng.random((5, 4)).astype("float32"), rng.random((5, 1)).astype("float32")


# keras.io "Variational AutoEncoder", at 8x8.
LATENT = 2


@keras.saving.register_keras_serializable(package=PACKAGE)
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


def _encoder_decoder():
    encoder_inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Conv2D(4, 3, activation="relu", strides=2, padding="same")(
        encoder_inputs
    )
    x = layers.Flatten()(x)
    x = layers.Dense(8, activation="relu")(x)
    z_mean = layers.Dense(LATENT, name="z_mean")(x)
    z_log_var = layers.Dense(LATENT, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")
    latent_inputs = keras.Input(shape=(LATENT,))
    x = layers.Dense(4 * 4 * 4, activation="relu")(latent_inputs)
    x = layers.Reshape((4, 4, 4))(x)
    decoder_outputs = layers.Conv2DTranspose(
        1, 3, activation="sigmoid", strides=2, padding="same"
    )(x)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")
    return encoder, decoder


@keras.saving.register_keras_serializable(package=PACKAGE)
class VAE(keras.Model):
    """As the example writes it: its own train_step on the images alone, no call()."""

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
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
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


@keras.saving.register_keras_serializable(package=PACKAGE)
class ServableVAE(VAE):
    """The VAE with a call(): the reconstruction of each image's z_mean (sampling z
    would make serving random)."""

    def call(self, inputs):
        z_mean, _, _ = self.encoder(inputs)
        return self.decoder(z_mean)


def vae() -> keras.Model:
    model = ServableVAE(*_encoder_decoder())
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01))
    model(np.zeros((1, 8, 8, 1), "float32"))
    return model


def vae_without_call() -> keras.Model:
    model = VAE(*_encoder_decoder())
    model.compile(optimizer=keras.optimizers.Adam())
    return model


def vae_batch():
    return np.random.default_rng(5).random((6, 8, 8, 1)).astype("float32"), None


# keras.io "Knowledge Distillation", at 8x8.


@keras.saving.register_keras_serializable(package=PACKAGE)
class Distiller(keras.Model):
    """Trains a student on the labels and on a teacher's softened predictions, through
    compute_loss; compile takes the losses and the temperature as its own arguments."""

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
        return self.alpha * student_loss + (1 - self.alpha) * distillation_loss

    def call(self, x):
        return self.student(x)

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


def _convnet(name: str, filters: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(filters, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name=name,
    )


def distiller() -> keras.Model:
    teacher = _convnet("teacher", 8)
    student = _convnet("student", 4)
    model = Distiller(student=student, teacher=teacher)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.1,
        temperature=10,
    )
    model(np.zeros((1, 8, 8, 1), "float32"))
    return model


def distiller_batch():
    rng = np.random.default_rng(6)
    return rng.random((6, 8, 8, 1)).astype("float32"), rng.integers(0, 10, 6)
