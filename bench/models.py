"""Benchmark models for bench/compare.py: builder functions taking no arguments.

Each returns a model compiled with a loss and an optimizer, so an export can hold all
three modes (serve, eval, train). They are also the `builder`s of the
keras_saved_model targets in bench/BUILD.
"""

import keras


def _compiled_classifier(model: keras.Model) -> keras.Model:
    """Adam, sparse cross-entropy and accuracy: what the classifiers here train with."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def mlp() -> keras.Model:
    """A small Sequential MLP: 32 features -> 10 classes."""
    model = keras.Sequential(
        [
            keras.Input(shape=(32,), name="features"),
            keras.layers.Dense(128, activation="relu", name="hidden1"),
            keras.layers.Dense(64, activation="relu", name="hidden2"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="bench_mlp",
    )
    return _compiled_classifier(model)


def two_inputs() -> keras.Model:
    """A functional model with two inputs (dense features and an image) and one output."""
    features = keras.Input(shape=(16,), name="features")
    image = keras.Input(shape=(32, 32, 3), name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv")(image)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    y = keras.layers.Dense(32, activation="relu", name="dense_features")(features)
    z = keras.layers.Concatenate(name="concat")([x, y])
    z = keras.layers.Dense(32, activation="relu", name="dense_joint")(z)
    score = keras.layers.Dense(1, name="score")(z)
    model = keras.Model([features, image], score, name="bench_two_inputs")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.MeanSquaredError(),
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
    )
    return model


def _mobilenet_v2(size: int) -> keras.Model:
    model = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), weights=None, classes=1000
    )
    return _compiled_classifier(model)


def mobilenet_v2() -> keras.Model:
    """keras.applications.MobileNetV2(weights=None) at 224x224x3, 1000 classes."""
    return _mobilenet_v2(224)


def mobilenet_v2_128() -> keras.Model:
    """The same at 128x128x3: same weights, smaller activations (a cheaper variant)."""
    return _mobilenet_v2(128)
