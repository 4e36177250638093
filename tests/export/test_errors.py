"""One test per bad input: a one-paragraph ExportError naming the flag, nothing written.

These run in-process through the library; test_cli.py checks the exit status and stderr
of the command line for a few of them.
"""

import json
import os

import keras
import numpy as np
from absl.testing import absltest

from export.lib import api, errors, model_json
from export.lib.errors import ExportError
from tests.export import testmodels, testutil

M = testmodels.MODULE
# keras.io's text classifier as a subclass: raw strings in (tests/zoo/subclassed.py).
TEXT_SUBCLASS = "tests.zoo.subclassed:review_model"


class ErrorTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = self.create_tempdir().full_path
        self.out = os.path.join(self.tmp, "out")
        self.manifest = os.path.join(self.tmp, "manifest.json")

    def assertExportError(self, flag: str, phrases, **kwargs) -> ExportError:
        """Export must fail with `flag` and every phrase, writing nothing."""
        kwargs.setdefault("output_dir", self.out)
        request = api.ExportRequest(manifest_out=self.manifest, **kwargs)
        with self.assertRaises(ExportError) as cm:
            api.export_saved_model(request)
        error = cm.exception
        message = str(error)
        self.assertEqual(testutil.flags_named(error), flag, message)
        paragraph = message.split("\n\n", 1)[0]
        self.assertNotIn("\n", paragraph, "the explanation must be one paragraph")
        self.assertTrue(paragraph.startswith(flag + ": "), paragraph)
        for phrase in [phrases] if isinstance(phrases, str) else phrases:
            self.assertIn(phrase, message)
        self.assertFalse(os.path.exists(self.out), f"{self.out} was written")
        self.assertFalse(os.path.exists(self.manifest), "manifest was written")
        return error

    def _file(self, name: str, content: bytes) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    # Model source.

    def test_both_sources(self):
        path = self._file("m.keras", b"x")
        self.assertExportError(
            "--builder/--src",
            "both were given",
            builder=f"{M}:mlp",
            src=path,
        )

    def test_no_source(self):
        self.assertExportError("--builder/--src", "neither was given")

    def test_builder_syntax(self):
        self.assertExportError("--builder", "package.module:symbol", builder=f"{M}.mlp")

    def test_builder_module_not_importable(self):
        self.assertExportError(
            "--builder",
            ["cannot import module 'tests.export.no_such_module'", "Python path"],
            builder="tests.export.no_such_module:build",
        )

    def test_builder_attribute_missing(self):
        self.assertExportError(
            "--builder",
            "has no attribute 'no_such_builder'",
            builder=f"{M}:no_such_builder",
        )

    def test_builder_not_callable(self):
        self.assertExportError(
            "--builder", "of type int, not a function", builder=f"{M}:NOT_CALLABLE"
        )

    def test_builder_raises_with_traceback(self):
        error = self.assertExportError(
            "--builder",
            [
                "RuntimeError: builder exploded on purpose",
                "Traceback (most recent call last)",
            ],
            builder=f"{M}:raises",
        )
        self.assertIn("in raises", error.details)

    def test_builder_returns_non_model(self):
        self.assertExportError(
            "--builder", "not a keras.Model", builder=f"{M}:returns_layer"
        )

    def test_model_never_built(self):
        self.assertExportError(
            "--builder",
            ["never built", "keras.Input(shape=...)"],
            builder=f"{M}:unbuilt",
        )

    def test_model_class_without_call(self):
        # keras.io's VAE as written: fit runs its train_step; nothing can serve it.
        error = self.assertExportError(
            "--builder",
            [
                "VAE defines no call()",
                "call(self, inputs) to VAE",
                "encoder and decoder",
            ],
            builder="tests.export.training_models:vae_without_call",
        )
        self.assertNotIn("never built", str(error))

    def test_subclassed_without_get_config(self):
        self.assertExportError(
            "--builder",
            ["get_config() in Opaque", "from_config"],
            builder=f"{M}:no_config",
        )

    # input_specs: what a subclassed model does not record.

    def test_subclassed_string_input_guessed_float(self):
        self.assertExportError(
            "--builder/--input_specs",
            [
                "calling the subclassed model ReviewModel on zeros",
                "Cast float to string",
                "not their dtypes",
                "took them as float32, which they may not be",
                "--input_specs=input_1=None:string",
            ],
            builder=TEXT_SUBCLASS,
        )

    def test_input_spec_naming_no_input(self):
        self.assertExportError(
            "--input_specs",
            [
                "text is not an input of the model ReviewModel",
                "names them: input_1",
                "--input_specs=input_1=None:string",
            ],
            builder=TEXT_SUBCLASS,
            input_specs={"text": "None:string"},
        )

    def test_bad_input_specs_syntax(self):
        for spec, phrase in (
            ("input_1=None:str", "the dtype 'str', which is not one of"),
            ("input_1=None,x:string", "dimension 'x'"),
            ("input_1", "INPUT_NAME=SHAPE:DTYPE"),
        ):
            with self.subTest(spec=spec):
                self.assertExportError(
                    "--input_specs",
                    [phrase, "--input_specs=input_1=None:string"],
                    builder=TEXT_SUBCLASS,
                    input_specs=[spec],
                )

    def test_input_spec_contradicting_the_recorded_shape(self):
        self.assertExportError(
            "--input_specs",
            [
                "the input spec 'None,3:string' of 'input_1' contradicts the model",
                "was called on the shape None there",
                "--input_specs=input_1=None:string",
            ],
            builder=TEXT_SUBCLASS,
            input_specs={"input_1": "None,3:string"},
        )

    def test_input_spec_contradicting_a_functional_input(self):
        self.assertExportError(
            "--input_specs",
            [
                "'None,8:int32' of 'features' contradicts the model",
                "takes None,8:float32 there",
                "--input_specs=features=None,8:float32",
            ],
            builder=f"{M}:mlp",
            input_specs={"features": "None,8:int32"},
        )

    def test_declared_input_the_model_rejects(self):
        self.assertExportError(
            "--builder/--input_specs",
            ["on sample inputs of its input specs (input_1 None:int64)"],
            builder=TEXT_SUBCLASS,
            input_specs={"input_1": "None:int64"},
        )

    def test_second_call_argument_without_shape(self):
        self.assertExportError(
            "--builder/--input_specs",
            [
                "takes a, b in call(), but Keras recorded the shape of a alone",
                "--input_specs=b=None,8:float32",
                "build(self, a_shape, b_shape)",
            ],
            builder=f"{M}:two_arguments_default_build",
        )

    def test_subclassed_without_input_shape(self):
        self.assertExportError(
            "--builder",
            ["records no input shape", "model.build(input_shape)"],
            builder=f"{M}:marked_built",
        )

    def test_subclassed_call_fails_on_zeros(self):
        # Zeros of a guessed dtype: the input may not be float, which input_specs says.
        self.assertExportError(
            "--builder/--input_specs",
            [
                "calling the subclassed model PositiveOnly on zeros",
                "must be positive",
                "--input_specs=input_1=None,3:string",
            ],
            builder=f"{M}:rejects_zeros",
        )

    def test_builder_class_unknown_to_keras(self):
        # The model JSON is re-created when it holds code from outside Keras.
        self.assertExportError(
            "--custom_objects",
            [
                "'ClippedStep'",
                "--custom_objects=ClippedStep=package.module:ClippedStep",
            ],
            builder=f"{M}:custom_train_step",
        )

    def test_src_missing(self):
        self.assertExportError(
            "--src",
            "does not exist",
            src=os.path.join(self.tmp, "nope.keras"),
        )

    def test_src_corrupt_keras(self):
        path = self._file("broken.keras", b"this is not a zip archive")
        self.assertExportError("--src", "not a valid .keras file", src=path)

    def test_src_corrupt_h5(self):
        path = self._file("broken.h5", b"this is not hdf5")
        self.assertExportError("--src", "cannot be read", src=path)

    def test_src_unknown_extension(self):
        path = self._file("model.onnx", b"x")
        self.assertExportError("--src", "unknown extension", src=path)

    def test_src_is_weights_only(self):
        path = self._file("model.weights.h5", b"x")
        self.assertExportError("--src", "weights only", src=path)

    def test_lambda_refused_without_allow_unsafe_deserialization(self):
        path = os.path.join(self.tmp, "lambda.keras")
        testmodels.save_lambda_model(path)
        self.assertExportError(
            "--allow_unsafe_deserialization",
            ["Lambda", "--allow_unsafe_deserialization"],
            src=path,
        )

    # Custom objects.

    def test_custom_object_syntax(self):
        self.assertExportError(
            "--custom_objects",
            "NAME=package.module:symbol",
            builder=f"{M}:mlp",
            custom_objects=["Scale"],
        )

    def test_custom_object_not_importable(self):
        self.assertExportError(
            "--custom_objects",
            "cannot import module 'tests.export.nope'",
            builder=f"{M}:custom_layer",
            custom_objects=["Scale=tests.export.nope:Scale"],
        )

    def test_custom_object_needed_for_builder(self):
        self.assertExportError(
            "--custom_objects", "--custom_objects=Scale=", builder=f"{M}:custom_layer"
        )

    def test_custom_object_needed_for_src(self):
        keras.backend.clear_session()
        path = os.path.join(self.tmp, "custom.keras")
        testmodels.custom_layer().save(path)
        self.assertExportError("--custom_objects", "'Scale'", src=path)

    # Weights.

    def _mlp_weights(self, poison: bool = False) -> str:
        keras.backend.clear_session()
        model = testmodels.mlp()
        if poison:
            weights = model.get_weights()
            weights[0][1, 2] = np.inf
            model.set_weights(weights)
        path = os.path.join(self.tmp, "mlp.weights.h5")
        model.save_weights(path)
        return path

    def test_weights_do_not_fit(self):
        self.assertExportError(
            "--weights",
            ["do not fit", "same architecture"],
            builder=f"{M}:mlp_wider",
            weights=self._mlp_weights(),
        )

    def test_weights_missing(self):
        self.assertExportError(
            "--weights",
            "does not exist",
            builder=f"{M}:mlp",
            weights=os.path.join(self.tmp, "no.weights.h5"),
        )

    def test_weights_file_with_inf(self):
        self.assertExportError(
            "--weights",
            ["NaN or Inf", "hidden/kernel"],
            builder=f"{M}:mlp",
            weights=self._mlp_weights(poison=True),
        )

    def test_builder_weights_with_nan(self):
        self.assertExportError(
            "--builder", ["NaN or Inf", "probs/kernel"], builder=f"{M}:nan_weights"
        )

    # Output location and version.

    def test_version_folder_exists(self):
        existing = os.path.join(self.out, "1")
        os.makedirs(existing)
        self._file("out/1/keep.txt", b"keep")
        request = api.ExportRequest(output_dir=self.out, builder=f"{M}:mlp")
        with self.assertRaises(ExportError) as cm:
            api.export_saved_model(request)
        self.assertEqual(testutil.flags_named(cm.exception), "--output_dir")
        self.assertIn("already exists", str(cm.exception))
        self.assertEqual(os.listdir(self.out), ["1"])
        self.assertEqual(os.listdir(existing), ["keep.txt"])

    def test_bad_versions(self):
        for version in ("abc", "-3", "1.5", "", "timestamps"):
            with self.subTest(version=version):
                self.assertExportError(
                    "--version", "is not a version", builder=f"{M}:mlp", version=version
                )

    def test_status_file_without_timestamp(self):
        status = self._file("stable-status.txt", b"BUILD_EMBED_LABEL \nBUILD_HOST h\n")
        self.assertExportError(
            "--workspace_status_file",
            "no BUILD_TIMESTAMP line",
            builder=f"{M}:mlp",
            version="timestamp",
            workspace_status_file=status,
        )

    # Modes and labels.

    def test_bad_modes_syntax(self):
        for modes in ("serve,predict", "serve,,eval"):
            with self.subTest(modes=modes):
                self.assertExportError(
                    "--modes", "is not a mode", builder=f"{M}:mlp", modes=modes
                )

    def test_mode_the_model_cannot_do(self):
        self.assertExportError(
            "--modes",
            ["'train'", "not compiled with a loss", "model.compile"],
            builder=f"{M}:mlp",
            modes="serve,train",
        )

    def test_bad_label_specs_syntax(self):
        for spec, phrase in (
            ("probs", "OUTPUT_NAME=SHAPE:DTYPE"),
            ("probs=None,x:float32", "dimension 'x'"),
            ("probs=None:float99", "dtype 'float99'"),
        ):
            with self.subTest(spec=spec):
                self.assertExportError(
                    "--label_specs", phrase, builder=f"{M}:compiled", label_specs=[spec]
                )

    def test_label_spec_for_unknown_output(self):
        self.assertExportError(
            "--label_specs",
            ["nope is not an output", "probs"],
            builder=f"{M}:compiled",
            label_specs=["nope=None:int64"],
        )

    def test_label_spec_that_does_not_fit_the_loss(self):
        # Re-tried with sparse labels, the loss runs: the labels are the cause, and the
        # fix names the spec that works.
        error = self.assertExportError(
            "--label_specs",
            ["fail on labels", "--label_specs=probs=None:int64"],
            builder=f"{M}:compiled",
            label_specs=["probs=None,7,2:float32"],
        )
        self.assertNotIn("\x1b", str(error))

    # What tracing eval or train really failed on: not blamed on the labels.

    def test_model_failing_on_every_batch_is_not_blamed_on_labels(self):
        error = self.assertExportError(
            "--builder/--src",
            ["sample batch of its declared inputs", "not in [0, 16)"],
            builder=f"{M}:position_table_too_short",
        )
        self.assertNotIn("--label_specs", str(error).split("\n\n", 1)[0])

    def test_loss_failing_whatever_the_labels_is_not_blamed_on_labels(self):
        error = self.assertExportError(
            "--builder/--src",
            ["compiled loss or metrics", "the labels are not the cause", "int32"],
            builder=f"{M}:broken_loss",
        )
        self.assertNotIn("--label_specs", str(error).split("\n\n", 1)[0])

    def test_train_step_log_that_is_not_a_tensor(self):
        error = self.assertExportError(
            "--builder/--src",
            ["train_step returned the log 'learning_rate_note'", "NoneType"],
            builder=f"{M}:train_step_logs_none",
            custom_objects=[f"LogsNone={M}:LogsNone"],
        )
        self.assertNotIn("--label_specs", str(error).split("\n\n", 1)[0])

    # Models that Keras cannot re-create from their JSON (load_keras_model would fail).

    def test_subclassed_init_without_kwargs_given_as_custom_object(self):
        self.assertExportError(
            "--builder",
            [
                "KerasIoStyle.__init__() does not accept the keyword argument 'trainable'",
                "take **kwargs and pass them on with super().__init__(**kwargs)",
            ],
            builder=f"{M}:init_without_kwargs",
            custom_objects=[f"KerasIoStyle={M}:KerasIoStyle"],
        )

    # Verification.

    def test_verify_catches_mismatch_and_cleans_up(self):
        self.assertExportError(
            "--verify",
            ["max abs diff", "tolerance", "--noverify"],
            builder=f"{M}:noisy",
        )

    def test_more_warmup_requests_than_tf_serving_reads(self):
        self.assertExportError(
            "--warmup_requests",
            [
                "'1001' is not a number of requests from 0 to 1000",
                "TF Serving reads at most 1000 warmup records",
                "--warmup_requests=4",
            ],
            builder=f"{M}:mlp",
            warmup_requests=1001,
        )

    def test_an_input_without_a_batch_dimension_when_batching_is_required(self):
        self.assertExportError(
            "--require_batchable_inputs",
            [
                (
                    "TF Serving's batcher cannot batch the input(s) 'features' (shape"
                    " [1, 4], in serving_default)"
                ),
                "the first dimension, which must be dynamic (None)",
                "keras.Input(shape=...)",
                "--norequire_batchable_inputs",
            ],
            builder=f"{M}:fixed_batch",
            require_batchable_inputs=True,
        )


class DescribeTest(absltest.TestCase):
    """errors.describe_exception on Keras's own exceptions: the cause kept, the noise dropped."""

    def test_colour_codes_and_argument_echo_are_dropped(self):
        layer = keras.layers.Lambda(lambda t: t * undefined_name)  # noqa: F821
        with self.assertRaises(Exception) as cm:
            layer(keras.Input((3,)))
        self.assertIn("\x1b[", str(cm.exception))  # Keras's bold, or nothing to test
        text = errors.describe_exception(cm.exception)
        self.assertNotIn("\x1b", text)
        self.assertNotIn("•", text)
        self.assertIn("We could not automatically infer the shape", text)

    def test_embedded_config_is_elided_and_the_last_line_kept(self):
        model = testmodels.init_without_kwargs()
        with self.assertRaises(TypeError) as cm:
            keras.saving.deserialize_keras_object(
                json.loads(model.to_json()),
                custom_objects={"KerasIoStyle": testmodels.KerasIoStyle},
            )
        self.assertGreater(len(str(cm.exception)), errors._MAX_CAUSE_CHARS)
        text = errors.describe_exception(cm.exception)
        self.assertLessEqual(len(text), errors._MAX_CAUSE_CHARS)
        self.assertIn("could not be deserialized properly", text)
        self.assertIn("got an unexpected keyword argument 'trainable'", text)
        self.assertNotIn("'registered_name'", text)

    def test_long_message_keeps_both_ends(self):
        text = errors.describe_exception(
            ValueError("start " + "x" * 2000 + " end"), limit=100
        )
        self.assertLessEqual(len(text), 100)
        self.assertTrue(text.startswith("ValueError: start"), text)
        self.assertTrue(text.endswith(" end"), text)


def _double(x):
    return x * 2.0


class RecreationCheckTest(absltest.TestCase):
    """Which builder models get their JSON re-created: those with code from outside Keras."""

    def _outside(self, model: keras.Model) -> bool:
        return model_json.uses_code_outside_keras(json.loads(model.to_json()))

    def test_keras_only_models_are_trusted(self):
        self.assertFalse(self._outside(testmodels.compiled()))
        self.assertFalse(self._outside(testmodels.two_in_two_out()))

    def test_user_code_is_checked(self):
        self.assertTrue(self._outside(testmodels.custom_layer()))
        self.assertTrue(self._outside(testmodels.custom_train_step()))
        self.assertTrue(self._outside(testmodels.lambda_model()))
        activation = keras.Sequential(
            [keras.Input((2,)), keras.layers.Dense(2, activation=_double)]
        )
        self.assertTrue(self._outside(activation))


if __name__ == "__main__":
    absltest.main()
