"""The example model: a small convnet classifying 28x28 grayscale images into 10 classes.

keras_saved_model calls `build()` inside the build action; it returns a compiled model,
so the export has the serve, eval and train signatures.
"""

import keras

from models.layers import ChannelScale

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def build() -> keras.Model:
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv1")(image)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = ChannelScale(initial=0.5, name="scale1")(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool2")(x)
    x = keras.layers.Dropout(0.25, name="dropout")(x)
    probs = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)
    model = keras.Model(image, probs, name="digits")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model
