"""Converting a written SavedModel's serving signature to a TFLite flatbuffer.

`tf.lite.TFLiteConverter.from_saved_model` does the conversion. Its output is the same
for the same SavedModel, options and TensorFlow in every process and folder, except in
one place: an op that runs through TensorFlow (SELECT_TF_OPS, a "Flex" op) carries its
TensorFlow NodeDef serialized in its custom options, and the converter serializes the
NodeDef's `attr` map in the map's iteration order, which differs from process to
process. `canonical_flex_ops` rewrites each such NodeDef with protobuf's deterministic
(key-sorted) serialization: the same message, the same length, so it is replaced in
place and the flexbuffer around it is unchanged.
"""

import dataclasses

import numpy as np

from export.lib import conversion, outputs, settings
from export.lib.errors import (
    ExportError,
    describe_exception,
    format_traceback,
    setting,
)

SERVING_KEY = settings.SERVING_KEY
BUILTINS = "TFLITE_BUILTINS"
SELECT_TF_OPS = "SELECT_TF_OPS"
# The custom code of an op the Flex delegate runs: "Flex" + the TensorFlow op's name.
_FLEX_PREFIX = "Flex"


# A signature input or output: its name, TensorFlow's name of its type, its shape.
Tensor = conversion.Tensor


@dataclasses.dataclass(frozen=True)
class TfliteModel:
    """A converted model and what its flatbuffer says about itself."""

    content: bytes
    inputs: tuple[Tensor, ...]  # of the serving_default signature, in its order
    outputs: tuple[Tensor, ...]
    ops: tuple[str, ...]  # builtin op names, and custom codes (FlexStringLower), sorted
    select_tf_ops: tuple[str, ...]  # the TensorFlow ops among them (StringLower)

    @property
    def ops_sets(self) -> list[str]:
        return [BUILTINS, SELECT_TF_OPS] if self.select_tf_ops else [BUILTINS]

    def manifest(self, optimization: str) -> dict:
        """What `tflite_manifest_out` holds (keras_tflite_model's TfliteModelInfo)."""

        return {
            "signature": SERVING_KEY,
            "inputs": conversion.tensors_manifest(self.inputs),
            "outputs": conversion.tensors_manifest(self.outputs),
            "ops": list(self.ops),
            "select_tf_ops": list(self.select_tf_ops),
            "ops_sets": self.ops_sets,
            "optimization": optimization,
            "size": len(self.content),
        }


def convert(saved_model: str, optimization: str, allow_select_tf_ops: bool):
    """Converts the SavedModel's serving_default signature; returns a TfliteModel."""
    from tensorflow.lite.python.convert_phase import ConverterError

    export_dir = conversion.find_saved_model(saved_model)
    conversion.check_serving_signature(export_dir)
    try:
        content = _convert(export_dir, optimization, allow_select_tf_ops)
    except ConverterError as e:
        needed = () if allow_select_tf_ops else _select_tf_ops_needed(export_dir)
        if needed:
            raise ExportError(
                "allow_select_tf_ops",
                "the model needs TensorFlow ops that TFLite's builtin ops do not"
                f" cover: {', '.join(needed)} (only SELECT_TF_OPS runs them, through"
                " TFLite's Flex delegate, which the app must then link)",
                [
                    "set ",
                    setting("allow_select_tf_ops", True),
                    ", or build the model from layers TFLite covers",
                ],
            ) from None
        raise ExportError(
            "saved_model",
            f"TFLite's converter cannot convert its '{SERVING_KEY}' signature:"
            f" {describe_exception(e)}",
            "change the model to layers and ops TFLite supports"
            + ("" if allow_select_tf_ops else " or allow TensorFlow ops")
            + "; the converter's own message follows",
            str(e).strip() or format_traceback(e),
        ) from None
    return describe(canonical_flex_ops(content))


def _convert(export_dir: str, optimization: str, allow_select_tf_ops: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        export_dir, signature_keys=[SERVING_KEY]
    )
    if optimization in ("dynamic_range", "float16"):
        # Without a representative dataset, DEFAULT quantizes the weights only.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if optimization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    ops_sets = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if allow_select_tf_ops:
        ops_sets.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops_sets
    return bytes(converter.convert())


def _select_tf_ops_needed(export_dir: str) -> tuple[str, ...]:
    """The TensorFlow ops a failed builtins-only conversion needed, or () when it failed
    for another reason.

    The converter's messages name them in several ways (a list of "TF Select ops", a
    tensor-list lowering that failed); converting again with SELECT_TF_OPS and reading
    which Flex ops the result holds names exactly the ops that need them.
    """
    from tensorflow.lite.python.convert_phase import ConverterError

    try:
        content = _convert(export_dir, "none", allow_select_tf_ops=True)
    except ConverterError:
        return ()
    return describe(content).select_tf_ops


def canonical_flex_ops(content: bytes) -> bytes:
    """The model with each Flex op's NodeDef in protobuf's deterministic serialization.

    Sound because only the order of the NodeDef's map entries changes: the rewritten
    NodeDef parses to the same message (checked) and has the same length (checked), so
    it replaces the old bytes in place and the custom options' flexbuffer keeps its
    layout. The model is re-serialized as the converter itself does last (through
    flatbuffer_utils' object API, which it uses to add its metadata).
    """
    from flatbuffers import flexbuffers
    from tensorflow.core.framework import node_def_pb2
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    flex_codes = {
        index
        for index, code in enumerate(model.operatorCodes)
        if code.customCode and code.customCode.startswith(_FLEX_PREFIX.encode())
    }
    if not flex_codes:
        return content
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            if op.opcodeIndex not in flex_codes:
                continue
            # [op name, serialized NodeDef]: the Flex delegate's custom options.
            options = bytearray(bytes(op.customOptions))
            ref = flexbuffers.GetRoot(options).AsVector[1]
            node_def = flexbuffers.String(ref._Indirect(), ref._byte_width)
            old = bytes(node_def.Bytes)
            message = node_def_pb2.NodeDef.FromString(old)
            new = message.SerializeToString(deterministic=True)
            if len(new) != len(old) or node_def_pb2.NodeDef.FromString(new) != message:
                raise AssertionError(f"cannot reorder the NodeDef of {message.op}")
            node_def._buf[0 : len(new)] = new
            op.customOptions = np.frombuffer(bytes(options), dtype=np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def describe(content: bytes) -> TfliteModel:
    """Reads the serving signature's tensors and the ops from a TFLite flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    signatures = {s.signatureKey.decode(): s for s in model.signatureDefs or []}
    if SERVING_KEY not in signatures:
        raise AssertionError(f"the converted model has no {SERVING_KEY} signature")
    signature = signatures[SERVING_KEY]
    subgraph = model.subgraphs[signature.subgraphIndex]
    type_names = _enum_names(schema.TensorType)
    op_names = _enum_names(schema.BuiltinOperator)

    def tensors(entries) -> tuple[Tensor, ...]:
        result = []
        for entry in entries or []:
            tensor = subgraph.tensors[entry.tensorIndex]
            dims = tensor.shapeSignature if tensor.shapeSignature is not None else []
            if not len(dims):
                dims = tensor.shape if tensor.shape is not None else []
            result.append(
                Tensor(
                    entry.name.decode(),
                    type_names[tensor.type].lower(),
                    tuple(None if d < 0 else int(d) for d in dims),
                )
            )
        return tuple(result)

    ops = set()
    for code in model.operatorCodes or []:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.add(code.customCode.decode())
        else:
            ops.add(op_names[builtin])
    select_tf_ops = sorted(
        op.removeprefix(_FLEX_PREFIX) for op in ops if op.startswith(_FLEX_PREFIX)
    )
    return TfliteModel(
        content,
        tensors(signature.inputs),
        tensors(signature.outputs),
        tuple(sorted(ops)),
        tuple(select_tf_ops),
    )


def _enum_names(enum_class) -> dict[int, str]:
    return {
        value: name
        for name, value in vars(enum_class).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def write(model: TfliteModel, tflite_out: str, manifest_out: str | None, **manifest):
    """Writes the .tflite file and its manifest, each atomically
    (outputs.write_files), so a failure leaves neither half-written."""
    files = [(tflite_out, "tflite_out", model.content)]
    if manifest_out:
        text = outputs.json_text(model.manifest(**manifest))
        files.append((manifest_out, "tflite_manifest_out", text.encode()))
    outputs.write_files(files)
