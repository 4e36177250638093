"""Models whose keras_saved_model targets fail in the export action (see BUILD)."""

import sys

import keras


class Scale(keras.layers.Layer):
    """Deliberately not registered: exporting it needs custom_objects = {"Scale": ...}."""

    def call(self, inputs):
        return inputs * 2.0


def unregistered_layer() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    return keras.Model(inputs, Scale(name="scale")(inputs), name="unregistered")


def raises() -> keras.Model:
    raise ValueError("no training data at /data/train.csv")


def classifier() -> keras.Model:
    """Compiled with a loss and an optimizer; its one output is `probs`."""
    inputs = keras.Input((4,), name="x")
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(inputs)
    model = keras.Model(inputs, probs, name="classifier")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def uncompiled() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2, name="y")(inputs))


def review_sentiment() -> keras.Model:
    """Raw text in, as keras.io's text classification tutorial: its TextVectorization
    splits and lowercases strings with TensorFlow ops that TFLite has no builtin for."""
    vectorize = keras.layers.TextVectorization(
        max_tokens=50, output_sequence_length=8, name="vectorize"
    )
    vectorize.adapt(["a great movie", "a dull plot", "great acting, dull ending"])
    text = keras.Input((1,), dtype="string", name="review")
    x = keras.layers.Embedding(50, 4, name="embed")(vectorize(text))
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    positive = keras.layers.Dense(1, activation="sigmoid", name="positive")(x)
    return keras.Model(text, positive, name="review_sentiment")


def save_lambda_model(path: str) -> None:
    """A .keras file holding a Lambda layer's Python code, which safe mode refuses."""
    inputs = keras.Input((3,), name="x")
    outputs = keras.layers.Lambda(lambda t: t * 3.0 + 1.0, name="affine")(inputs)
    keras.Model(inputs, outputs, name="lambda_model").save(path)


if __name__ == "__main__":
    save_lambda_model(sys.argv[1])
