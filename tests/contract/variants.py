"""Variants of the example model (models/my_model.py), each one change to its serving
API, exported and checked against the example's contract file by contract_test.py."""

import keras

from models import my_model


def _with_input(image: keras.KerasTensor) -> keras.Model:
    """The example model rebuilt on another input, compiled as the example is."""
    example = my_model.build()
    variant = keras.models.clone_model(example, input_tensors=image)
    variant.compile_from_config(example.get_compile_config())
    return variant


def renamed_input() -> keras.Model:
    """Breaking: a client sends `image`, which the export no longer takes."""
    return _with_input(keras.Input(shape=my_model.IMAGE_SHAPE, name="pixels"))


def any_image_size() -> keras.Model:
    """Compatible: images of any height and width, so 28x28 ones too (the layers after
    the input do not depend on its size: convolutions and a global pooling)."""
    return _with_input(keras.Input(shape=(None, None, 1), name="image"))
