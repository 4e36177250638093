"""What TF Serving needs besides the SavedModel: warmup requests, batchable inputs.

keras_saved_model_test replays the warmup requests of real exports through TF
Serving's loader; here the file's records are checked as TF Serving reads them, and the
note about an input the batcher cannot batch, in the library and on the command line.
"""

import os

import numpy as np
import tensorflow as tf
from absl.testing import absltest
from tensorflow_serving.apis import prediction_log_pb2

from export.lib import api, options, sample_inputs, serving, sources
from tests.export import stateful_models, testmodels, testutil

M = testmodels.MODULE
TEXT = f"{stateful_models.__name__}:text_classifier"


class WarmupTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tmp = testutil.make_tempdir()
        cls.result = api.export_with_result(
            api.ExportRequest(builder=TEXT, output_dir=tmp, warmup_requests=3)
        )
        cls.path = os.path.join(
            cls.result.path, serving.WARMUP_DIR, serving.WARMUP_FILE
        )

    def test_records_are_prediction_logs_of_predict_requests_on_serving_default(self):
        records = list(tf.data.TFRecordDataset(self.path).as_numpy_iterator())
        self.assertLen(records, 3)
        for record in records:
            log = prediction_log_pb2.PredictionLog.FromString(record)
            self.assertEqual(log.WhichOneof("log_type"), "predict_log")
            request = log.predict_log.request
            self.assertEqual(request.model_spec.signature_name, "serving_default")
            self.assertEqual(list(request.inputs), ["review"])
            review = tf.make_ndarray(request.inputs["review"])
            self.assertEqual(review.shape, (1, 1), "one example per request")
            self.assertEqual(review.dtype, object)

    def test_requests_hold_verifys_sample_inputs_from_the_model_vocabulary(self):
        requests = serving.read_warmup_requests(self.result.path)
        self.assertLen(requests, 3)
        model = sources.load_model(options.ModelSource(builder=TEXT))
        vocabulary = set(model.interface.samples.vocabulary("review"))
        self.assertNotEmpty(vocabulary)
        for index, request in enumerate(requests):
            review = tf.make_ndarray(request.inputs["review"])
            # Request i holds what verify feeds with seed + i (verify's seed is 0).
            want = sample_inputs.random_for(
                model.interface.inputs, index, 1, model.interface.samples
            )[0]
            np.testing.assert_array_equal(review, want)
            words = review[0, 0].decode().split()
            self.assertNotEmpty(words)
            self.assertContainsSubset(words, vocabulary)

    def test_no_file_without_warmup_requests(self):
        tmp = self.create_tempdir().full_path
        path = api.export_saved_model(
            api.ExportRequest(builder=f"{M}:mlp", output_dir=tmp)
        )
        self.assertFalse(os.path.exists(os.path.join(path, serving.WARMUP_DIR)))
        self.assertEqual(serving.read_warmup_requests(path), [])


class BatchableInputsTest(absltest.TestCase):
    def test_an_input_with_a_fixed_batch_size_is_a_note(self):
        tmp = self.create_tempdir().full_path
        result = api.export_with_result(
            api.ExportRequest(builder=f"{M}:fixed_batch", output_dir=tmp)
        )
        self.assertLen(result.notes, 1)
        self.assertIn(
            "TF Serving's batcher cannot batch the input(s) 'features' (shape [1, 4],"
            " in serving_default)",
            result.notes[0],
        )
        self.assertIn("require_batchable_inputs makes this an error", result.notes[0])

    def test_inputs_with_a_batch_dimension_make_no_note(self):
        tmp = self.create_tempdir().full_path
        result = api.export_with_result(
            api.ExportRequest(builder=f"{M}:compiled", output_dir=tmp)
        )
        self.assertEqual(result.notes, ())

    def test_the_command_line_prints_the_note_even_when_quiet(self):
        tmp = self.create_tempdir().full_path
        proc = testutil.run_exporter(
            [f"--builder={M}:fixed_batch", f"--output_dir={tmp}", "--quiet"]
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-4000:])
        lines = proc.stderr.splitlines()
        self.assertLen(lines, 1, proc.stderr)
        self.assertStartsWith(lines[0], "exporter: note: ")
        self.assertIn("cannot batch the input(s) 'features'", lines[0])
        self.assertEqual(proc.stdout, "")


if __name__ == "__main__":
    absltest.main()
