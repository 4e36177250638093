"""A deliberately non-reproducible model: the negative control of tests/e2e.

Its weights come from os.urandom, so no seed makes two exports equal. The reproducibility
check must report its outputs from two builds as different; if it does not, the check
cannot fail and proves nothing. Never build this with a shared cache you care about.
"""

import os

import keras
import numpy as np


def build() -> keras.Model:
    inputs = keras.Input(shape=(4,), name="x")
    outputs = keras.layers.Dense(2, name="y")(inputs)
    model = keras.Model(inputs, outputs, name="nondeterministic")
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    model.set_weights(
        [rng.standard_normal(w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model
