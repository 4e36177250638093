"""A custom layer for the example model: Keras needs it as a custom object to reload."""

import keras


class ChannelScale(keras.layers.Layer):
    """Multiplies each channel by a learned scale (initialised to `initial`)."""

    def __init__(self, initial: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial = initial

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale",
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.initial),
        )

    def call(self, inputs):
        return inputs * self.scale

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}
