"""Zoo models (tests/zoo) fitted on small generated data sets, for the zoo's eval
gates: keras.io's imbalanced fraud classifier (AUC, precision, recall) and the
heart-disease model with lookup layers (numeric, integer and string columns). The
gates' data (testdata/, make_testdata.py) is drawn the same way with other seeds."""

import keras
import numpy as np
import tensorflow as tf

from tests.zoo import structured

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
