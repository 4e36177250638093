"""Writes the eval gate's small deterministic data sets (checked in): one data set of
fraud_classifier's examples (features, fraud_target) as CSV, .npz and GZIP TFRecord,
and a few broken files; and the zoo gates' data sets (zoo_data). Run from the
repository root to rewrite them (`python -m tests.eval_gate.make_testdata`)."""

import csv
import gzip
import os

import numpy as np
import tensorflow as tf

OUT = "tests/eval_gate/testdata"
EXAMPLES = 203  # batch 32: six full batches and a partial one of 11


def examples():
    rng = np.random.default_rng(27)
    x = rng.normal(size=(EXAMPLES, 6)).astype("float32")
    # Fraud where a fixed direction of the features is large: learnable, imbalanced.
    y = (x @ np.linspace(-1, 1, 6) > 1.2).astype("float32")[:, None]
    return x, y


def main():
    x, y = examples()
    np.savez(os.path.join(OUT, "fraud.npz"), features=x, fraud_target=y)
    # CSV holds scalar columns: the six features as one column each (feature_map
    # stacks them into the `features` input) and the label under another name.
    with open(os.path.join(OUT, "fraud_columns.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{i}" for i in range(6)] + ["is_fraud"])
        for row, label in zip(x, y, strict=True):
            writer.writerow([repr(float(v)) for v in row] + [int(label[0])])
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(os.path.join(OUT, "fraud.tfrecord.gz"), options) as w:
        for row, label in zip(x, y, strict=True):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "features": tf.train.Feature(
                            float_list=tf.train.FloatList(value=row)
                        ),
                        "fraud_target": tf.train.Feature(
                            float_list=tf.train.FloatList(value=label)
                        ),
                    }
                )
            )
            # deterministic: the features map in one order (else it varies by run).
            w.write(example.SerializeToString(deterministic=True))
    np.savez(os.path.join(OUT, "missing_label.npz"), features=x[:5])
    np.savez(os.path.join(OUT, "empty.npz"), features=x[:0], fraud_target=y[:0])
    np.savez(
        os.path.join(OUT, "wrong_label_shape.npz"),
        features=x[:5],
        fraud_target=np.concatenate([y[:5], y[:5]], axis=1),
    )
    with open(os.path.join(OUT, "text_in_a_number_column.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{i}" for i in range(6)] + ["is_fraud"])
        writer.writerow([0.5, 0.1, 0.2, "n/a", 0.3, 0.4, 1])
    np.savez(
        os.path.join(OUT, "extra_feature.npz"),
        features=x[:5],
        fraud_target=y[:5],
        customer_id=np.arange(5),
    )
    with_nan = x[:5].copy()
    with_nan[2, 3] = np.nan
    np.savez(
        os.path.join(OUT, "nan_feature.npz"), features=with_nan, fraud_target=y[:5]
    )
    # A record cut short in the middle, as a copy interrupted.
    with gzip.open(os.path.join(OUT, "fraud.tfrecord.gz"), "rb") as f:
        records = f.read()
    # mtime=0: the gzip header holds no time, so the file is the same on every run.
    with gzip.GzipFile(os.path.join(OUT, "truncated.tfrecord.gz"), "wb", mtime=0) as f:
        f.write(records[:100])
    zoo_data()


def zoo_data():
    """The zoo gates' data: drawn as zoo_models draws its training sets, other seeds."""
    from tests.eval_gate import zoo_models

    x, y = zoo_models.fraud_examples(2, 160)
    np.savez(os.path.join(OUT, "zoo_fraud.npz"), features=x, is_fraud=y)
    columns, disease = zoo_models.patients(2, 120)
    with open(os.path.join(OUT, "zoo_patients.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "disease"])
        for i, label in enumerate(disease):
            row = [columns[name][i] for name in columns]
            # Strings as they are; the numbers are whole (ages, mg/dl, categories).
            writer.writerow(
                [v if isinstance(v, str) else int(v) for v in row] + [int(label)]
            )
    texts, sentiment = zoo_models.reviews(2, 96)
    with open(os.path.join(OUT, "zoo_reviews.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        writer.writerows(zip(texts, sentiment.astype(int), strict=True))
    images, digits = zoo_models.digit_images(2, 80)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    path = os.path.join(OUT, "zoo_digits.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options) as w:
        for image, digit in zip(images, digits, strict=True):
            feature = {
                "image": tf.train.Feature(
                    float_list=tf.train.FloatList(value=image.ravel())
                ),
                "digit": tf.train.Feature(int64_list=tf.train.Int64List(value=[digit])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            w.write(example.SerializeToString(deterministic=True))
    # .npz: the token sequences have a length known only per example, which the gate
    # does not read from TFRecord.
    inputs, spanish = zoo_models.translations(2, 64)
    np.savez(os.path.join(OUT, "zoo_translations.npz"), **inputs, spanish=spanish)


if __name__ == "__main__":
    main()
