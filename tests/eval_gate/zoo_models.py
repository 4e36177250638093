"""Zoo models (tests/zoo) fitted on small generated data sets, for the zoo's eval
gates: keras.io's imbalanced fraud classifier (AUC, precision, recall), the
heart-disease model with lookup layers (numeric, integer and string columns), the
review classifier (raw strings), a BatchNorm convnet (images) and the English-to-Spanish
transformer (a dict of token sequences). The gates' data (testdata/, make_testdata.py) is drawn the same way with other seeds."""

import keras
import numpy as np
import tensorflow as tf

from tests.zoo import basics, structured, text, transformers

FRAUD_DIRECTION = np.linspace(-1, 1, structured.FRAUD_FEATURES)
THAL = ("fixed", "normal", "reversible")


def fraud_examples(seed: int, n: int):
    """Fraud where a fixed direction of the features is large: about 1 in 8."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, structured.FRAUD_FEATURES)).astype("float32")
    y = (x @ FRAUD_DIRECTION > 1.8).astype("float32")[:, None]
    return x, y


def fraud_detection_trained() -> keras.Model:
    model = structured.fraud_detection()
    x, y = fraud_examples(1, 512)
    model.fit(x, y, epochs=10, batch_size=64, verbose=0)
    return model


def patients(seed: int, n: int):
    """Columns as structured.PATIENTS's (its vocabularies), and the disease where the
    thallium test is reversible or an older patient has chest pain of type 4."""
    rng = np.random.default_rng(seed)
    columns = {
        "age": rng.integers(35, 76, n).astype("float32"),
        "chol": rng.integers(180, 360, n).astype("float32"),
        "sex": rng.integers(0, 2, n).astype("int64"),
        "cp": rng.integers(1, 5, n).astype("int64"),
        "thal": rng.choice(THAL, n),
    }
    disease = (columns["thal"] == "reversible") | (
        (columns["age"] > 55) & (columns["cp"] == 4)
    )
    return columns, disease.astype("float32")


def heart_lookups_trained() -> keras.Model:
    model = structured.heart_lookups()
    columns, disease = patients(1, 512)
    x = {name: values[:, None] for name, values in columns.items()}
    data = tf.data.Dataset.from_tensor_slices((x, disease[:, None])).batch(32)
    model.fit(data, epochs=25, verbose=0)
    return model


# Reviews drawn from text.REVIEWS's own words (its TextVectorization is adapted on
# them): two words of one sentiment among neutral ones.
POSITIVE_WORDS = ("wonderful", "great", "loved", "funny", "clever", "kind")
NEGATIVE_WORDS = ("terrible", "boring", "slow", "worst", "dull", "avoid")
NEUTRAL_WORDS = ("the", "film", "story", "cast", "movie", "acting", "music", "a")


def reviews(seed: int, n: int):
    rng = np.random.default_rng(seed)
    sentiment = rng.integers(0, 2, n)
    texts = []
    for positive in sentiment:
        words = list(rng.choice(NEUTRAL_WORDS, 6))
        for word in rng.choice(POSITIVE_WORDS if positive else NEGATIVE_WORDS, 2):
            words.insert(int(rng.integers(0, len(words) + 1)), str(word))
        texts.append(" ".join(words).capitalize() + ".")
    return np.array(texts), sentiment.astype("float32")


def review_classifier_trained() -> keras.Model:
    model = text.review_classifier()
    texts, sentiment = reviews(1, 512)
    data = tf.data.Dataset.from_tensor_slices((texts[:, None], sentiment[:, None]))
    model.fit(data.batch(32), epochs=8, verbose=0)
    return model


def digit_images(seed: int, n: int):
    """28x28 images, dark with noise; the class is which of ten 6x6 places is lit."""
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 10, n)
    images = rng.uniform(0, 0.2, size=(n, 28, 28, 1)).astype("float32")
    for image, digit in zip(images, digits, strict=True):
        row, column = 3 + 12 * (digit // 5), 1 + 5 * (digit % 5)
        image[row : row + 6, column : column + 5, 0] += 0.8
    # Quantized to 1/10: the TFRecord holds short decimals (it compresses better).
    return np.round(images, 1), digits.astype("int64")


def batchnorm_convnet_trained() -> keras.Model:
    model = basics.batchnorm_convnet()
    images, digits = digit_images(1, 512)
    model.fit(images, digits, epochs=8, batch_size=16, verbose=0)
    return model


# A fixed word-for-word dictionary: token t translates to SPANISH[t].
SPANISH = np.concatenate(
    [[0, 1], 2 + np.random.default_rng(0).permutation(transformers.SEQ2SEQ_VOCAB - 2)]
)


def translations(seed: int, n: int):
    """English of 3 to 9 tokens; its "Spanish" is each token's fixed translation in the
    same order, after the [start] token (1), padded as seq2seq_transformer_batch pads."""
    rng = np.random.default_rng(seed)
    length = transformers.SEQ2SEQ_LENGTH
    english, spanish = [], []
    for size in rng.integers(3, length, n):
        tokens = rng.integers(2, transformers.SEQ2SEQ_VOCAB, size)
        english.append(tokens)
        spanish.append([1, *SPANISH[tokens]])
    english = keras.utils.pad_sequences(english, maxlen=length, padding="post")
    spanish = keras.utils.pad_sequences(spanish, maxlen=length + 1, padding="post")
    inputs = {"encoder_inputs": english, "decoder_inputs": spanish[:, :-1]}
    return inputs, spanish[:, 1:]


def seq2seq_transformer_trained() -> keras.Model:
    model = transformers.seq2seq_transformer()
    inputs, targets = translations(1, 1024)
    model.fit(inputs, targets, epochs=20, batch_size=32, verbose=0)
    return model
