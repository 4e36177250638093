"""keras.applications models at small input sizes, trained from scratch (weights=None)."""

import keras
import numpy as np

NUM_CLASSES = 10


def _compile(model: keras.Model) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def mobilenet_v2() -> keras.Model:
    return _compile(
        keras.applications.MobileNetV2(
            input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=NUM_CLASSES
        )
    )


def efficientnet_b0() -> keras.Model:
    return _compile(
        keras.applications.EfficientNetB0(
            input_shape=(64, 64, 3), weights=None, classes=NUM_CLASSES
        )
    )


def densenet121() -> keras.Model:
    return _compile(
        keras.applications.DenseNet121(
            input_shape=(64, 64, 3), weights=None, classes=NUM_CLASSES
        )
    )


def _images(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    images = rng.uniform(0, 255, size=(4, size, size, 3)).astype("float32")
    # The applications expect their own preprocessing: scale to [-1, 1] as a user would.
    images = keras.applications.mobilenet_v2.preprocess_input(images)
    return images, np.array([1, 4, 7, 9], dtype="int64")


def mobilenet_v2_batch():
    return _images(96)


def small_image_batch():
    return _images(64)
