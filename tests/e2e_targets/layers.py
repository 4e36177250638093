"""A custom layer for tests/e2e_targets: the export only reloads with it as a custom object."""

import keras


class GatedDense(keras.layers.Layer):
    """A dense layer whose output is multiplied by a learned sigmoid gate."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        features = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(features, self.units), initializer="glorot_uniform"
        )
        self.gate = self.add_weight(
            name="gate", shape=(features, self.units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer="zeros"
        )

    def call(self, inputs):
        value = keras.ops.matmul(inputs, self.kernel) + self.bias
        return value * keras.ops.sigmoid(keras.ops.matmul(inputs, self.gate))

    def get_config(self):
        return {**super().get_config(), "units": self.units}
