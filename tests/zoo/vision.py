"""Images and video, at tiny sizes: a Vision Transformer, a U-Net and a ConvLSTM.

The styles of keras.io's "Image classification with Vision Transformer" (augmentation
and an adapted Normalization inside the model, patches, CIFAR's labels of shape (n, 1)),
"Image segmentation with a U-Net-like architecture" (a softmax per pixel, masks of
shape (n, H, W, 1)) and "Next-Frame Video Prediction with Convolutional LSTMs" (frames
of any count in, the next frames out).
"""

import keras
import numpy as np
from keras import layers, ops

# Vision Transformer: CIFAR-like 16x16 images, 10 classes.
VIT_CLASSES = 10
VIT_INPUT_SHAPE = (16, 16, 3)
VIT_IMAGE_SIZE = 24
VIT_PATCH_SIZE = 6
VIT_PATCHES = (VIT_IMAGE_SIZE // VIT_PATCH_SIZE) ** 2
VIT_PROJECTION_DIM = 16
VIT_HEADS = 2
VIT_TRANSFORMER_UNITS = [VIT_PROJECTION_DIM * 2, VIT_PROJECTION_DIM]
VIT_LAYERS = 2
VIT_HEAD_UNITS = [32, 16]


def _cifar_like(count: int, seed: int):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(count, *VIT_INPUT_SHAPE)).astype("float32")
    # CIFAR's labels come as a column: shape (n, 1).
    return images, rng.integers(0, VIT_CLASSES, size=(count, 1)).astype("uint8")


def _mlp(x, hidden_units, dropout_rate):
    for units in hidden_units:
        x = layers.Dense(units, activation=keras.activations.gelu)(x)
        x = layers.Dropout(dropout_rate)(x)
    return x


@keras.saving.register_keras_serializable(package="zoo")
class Patches(layers.Layer):
    def __init__(self, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size

    def call(self, images):
        input_shape = ops.shape(images)
        batch_size = input_shape[0]
        height = input_shape[1]
        width = input_shape[2]
        channels = input_shape[3]
        num_patches_h = height // self.patch_size
        num_patches_w = width // self.patch_size
        patches = keras.ops.image.extract_patches(images, size=self.patch_size)
        patches = ops.reshape(
            patches,
            (
                batch_size,
                num_patches_h * num_patches_w,
                self.patch_size * self.patch_size * channels,
            ),
        )
        return patches

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="zoo")
class PatchEncoder(layers.Layer):
    def __init__(self, num_patches, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_patches = num_patches
        self.projection_dim = projection_dim
        self.projection = layers.Dense(units=projection_dim)
        self.position_embedding = layers.Embedding(
            input_dim=num_patches, output_dim=projection_dim
        )

    def call(self, patch):
        positions = ops.expand_dims(
            ops.arange(start=0, stop=self.num_patches, step=1), axis=0
        )
        projected_patches = self.projection(patch)
        encoded = projected_patches + self.position_embedding(positions)
        return encoded

    def get_config(self):
        return {
            **super().get_config(),
            "num_patches": self.num_patches,
            "projection_dim": self.projection_dim,
        }


def vision_transformer() -> keras.Model:
    data_augmentation = keras.Sequential(
        [
            layers.Normalization(),
            layers.Resizing(VIT_IMAGE_SIZE, VIT_IMAGE_SIZE),
            layers.RandomFlip("horizontal"),
            layers.RandomRotation(factor=0.02),
            layers.RandomZoom(height_factor=0.2, width_factor=0.2),
        ],
        name="data_augmentation",
    )
    # Compute the mean and the variance of the training data for normalization.
    data_augmentation.layers[0].adapt(_cifar_like(32, seed=0)[0])

    inputs = keras.Input(shape=VIT_INPUT_SHAPE)
    augmented = data_augmentation(inputs)
    patches = Patches(VIT_PATCH_SIZE)(augmented)
    encoded_patches = PatchEncoder(VIT_PATCHES, VIT_PROJECTION_DIM)(patches)
    for _ in range(VIT_LAYERS):
        x1 = layers.LayerNormalization(epsilon=1e-6)(encoded_patches)
        attention_output = layers.MultiHeadAttention(
            num_heads=VIT_HEADS, key_dim=VIT_PROJECTION_DIM, dropout=0.1
        )(x1, x1)
        x2 = layers.Add()([attention_output, encoded_patches])
        x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
        x3 = _mlp(x3, hidden_units=VIT_TRANSFORMER_UNITS, dropout_rate=0.1)
        encoded_patches = layers.Add()([x3, x2])
    representation = layers.LayerNormalization(epsilon=1e-6)(encoded_patches)
    representation = layers.Flatten()(representation)
    representation = layers.Dropout(0.5)(representation)
    features = _mlp(representation, hidden_units=VIT_HEAD_UNITS, dropout_rate=0.5)
    logits = layers.Dense(VIT_CLASSES)(features)
    model = keras.Model(inputs=inputs, outputs=logits)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(5, name="top-5-accuracy"),
        ],
    )
    return model


def vision_transformer_batch():
    return _cifar_like(4, seed=1)


# U-Net: 32x32 images, 3 classes per pixel (the pets' trimaps: pet, border, background).
UNET_SIZE = (32, 32)
UNET_CLASSES = 3


def unet_segmentation() -> keras.Model:
    inputs = keras.Input(shape=UNET_SIZE + (3,))

    # [First half of the network: downsampling inputs]
    x = layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x  # Set aside residual

    # Blocks 1, 2 are identical apart from the feature depth.
    for filters in [8, 16]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        # Project residual
        residual = layers.Conv2D(filters, 1, strides=2, padding="same")(
            previous_block_activation
        )
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    # [Second half of the network: upsampling inputs]
    for filters in [16, 8, 4]:
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.UpSampling2D(2)(x)
        # Project residual
        residual = layers.UpSampling2D(2)(previous_block_activation)
        residual = layers.Conv2D(filters, 1, padding="same")(residual)
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    # Add a per-pixel classification layer
    outputs = layers.Conv2D(UNET_CLASSES, 3, activation="softmax", padding="same")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy"
    )
    return model


def unet_segmentation_batch():
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, size=(3, *UNET_SIZE, 3)).astype("float32")
    # Trimaps read as one channel and shifted to 0, 1, 2: shape (n, H, W, 1).
    masks = rng.integers(0, UNET_CLASSES, size=(3, *UNET_SIZE, 1)).astype("uint8")
    return images, masks


# ConvLSTM: moving squares on 8x8 frames.
FRAME_SIZE = 8


def _moving_squares(count: int, frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    video = np.zeros((count, frames, FRAME_SIZE, FRAME_SIZE, 1), "float32")
    for i in range(count):
        row, col = rng.integers(0, FRAME_SIZE - 2, size=2)
        step = rng.integers(-1, 2, size=2)
        for t in range(frames):
            r = int(np.clip(row + t * step[0], 0, FRAME_SIZE - 2))
            c = int(np.clip(col + t * step[1], 0, FRAME_SIZE - 2))
            video[i, t, r : r + 2, c : c + 2, 0] = 1.0
    return video


def convlstm_next_frame() -> keras.Model:
    # Construct the input layer with no definite frame size.
    inp = layers.Input(shape=(None, FRAME_SIZE, FRAME_SIZE, 1))
    x = layers.ConvLSTM2D(
        filters=4,
        kernel_size=(5, 5),
        padding="same",
        return_sequences=True,
        activation="relu",
    )(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ConvLSTM2D(
        filters=4,
        kernel_size=(3, 3),
        padding="same",
        return_sequences=True,
        activation="relu",
    )(x)
    x = layers.BatchNormalization()(x)
    x = layers.ConvLSTM2D(
        filters=4,
        kernel_size=(1, 1),
        padding="same",
        return_sequences=True,
        activation="relu",
    )(x)
    x = layers.Conv3D(
        filters=1, kernel_size=(3, 3, 3), activation="sigmoid", padding="same"
    )(x)
    model = keras.models.Model(inp, x)
    model.compile(
        loss=keras.losses.binary_crossentropy,
        optimizer=keras.optimizers.Adam(),
    )
    return model


def convlstm_next_frame_batch():
    video = _moving_squares(3, 6, seed=3)
    # Each frame is to predict the next one.
    return video[:, :-1], video[:, 1:]
