"""Converting a written SavedModel's serving signature to ONNX (keras_onnx_model).

tf2onnx converts the SavedModel's `serving_default` signature, read from the SavedModel
(not from the Keras model: Keras's own ONNX export turns an adapted `Normalization`'s
constants into extra graph inputs that onnxruntime then demands). The graph's inputs
and outputs keep the signature's names.

tf2onnx's output is not the same from process to process (onnx/tensorflow-onnx #1789,
#2006). Two causes, two fixes:
- tf2onnx keeps its graph's nodes in sets and dicts hashed by identity, so in the order
  of their memory addresses. That order decides which of its optimizers' rewrites run
  (one removes an Identity or not, by the order it meets them) and which number its one
  global name counter gives each node it inserts (`Transpose__22`, `const_axes__13`).
  `_hashed_by_creation` hashes them by creation order during the conversion instead,
  which, with the action's fixed PYTHONHASHSEED, makes tf2onnx's own output the same.
- What still depends on the counter or on tie-breaks between equal nodes is made
  canonical after the conversion: `canonical` orders the nodes by what computes what
  and renames every node, tensor, initializer and symbolic dimension (`unk__21`) by
  order of first use, leaving the graph's input and output names alone, and clears the
  doc strings. Either fix alone left differences (measured: bench/README.md).
- Lookup tables (StringLookup, IntegerLookup) reach tf2onnx in the order of TensorFlow's
  hash map, which differs between processes: `_sorted_table` sorts them by key.
The same SavedModel, opset and packages then give the same bytes.

tf2onnx and onnx are imported only when a conversion runs (the optional feature
`onnx`, declared in formats/onnx/settings.bzl).
"""

import collections
import contextlib
import dataclasses
import itertools

from export.lib import conversion, outputs, packages, settings
from export.lib.errors import ExportError, describe_exception, setting

SERVING_KEY = settings.SERVING_KEY
# The optional features of formats/onnx/settings.bzl (ONNX_OPTIONAL_FEATURES): tf2onnx
# and onnx to convert, onnxruntime to run the result.
CONVERTER = "onnx"
RUNTIME = "onnx_runtime"
# The opsets tf2onnx 1.17 writes models for (formats/onnx/settings.bzl says why these).
OPSETS = range(13, 19)
DEFAULT_OPSET = settings.get("opset").default
# What tf2onnx writes into the model's graph name and doc string: fixed, so that the
# SavedModel's path (which differs between output bases) never reaches the file.
_GRAPH_NAME = SERVING_KEY


# A graph input or output: its name, TensorFlow's name of its type, its shape.
Tensor = conversion.Tensor


@dataclasses.dataclass(frozen=True)
class OnnxModel:
    """A converted model and what its graph says about itself."""

    content: bytes
    inputs: tuple[Tensor, ...]  # the graph's inputs, in its order
    outputs: tuple[Tensor, ...]
    ops: tuple[str, ...]  # op types, `domain.Op` outside the default domain, sorted
    opset: int

    def manifest(self) -> dict:
        """What `onnx_manifest_out` holds (keras_onnx_model's OnnxModelInfo)."""

        return {
            "signature": SERVING_KEY,
            "inputs": conversion.tensors_manifest(self.inputs),
            "outputs": conversion.tensors_manifest(self.outputs),
            "ops": list(self.ops),
            "opset": self.opset,
            "size": len(self.content),
        }


def convert(export: str, opset: int = DEFAULT_OPSET) -> OnnxModel:
    """Converts the SavedModel's serving_default signature; returns an OnnxModel.

    `export` is a SavedModel folder (holding saved_model.pb) or an export holding one.
    """
    if opset not in OPSETS:
        raise ExportError(
            "opset",
            f"tf2onnx 1.17 writes ONNX opsets {OPSETS.start} to {OPSETS.stop - 1},"
            f" not {opset}",
            [
                "set ",
                setting("opset", DEFAULT_OPSET),
                " or another opset in that range",
            ],
        )
    tf2onnx = packages.import_module(CONVERTER, "tf2onnx")
    onnx = packages.import_module(CONVERTER, "onnx")
    export_dir = conversion.find_saved_model(export, "export")
    conversion.check_serving_signature(export_dir, "export")
    model = _convert(tf2onnx, export_dir, opset)
    unconverted = unconverted_ops(model)
    if unconverted:
        raise ExportError(
            "export",
            f"tf2onnx cannot convert its '{SERVING_KEY}' signature to ONNX opset"
            f" {opset}: it has no ONNX equivalent for the TensorFlow ops"
            f" {', '.join(unconverted)}",
            "build the model from layers whose ops tf2onnx converts (string"
            " splitting, regular expressions and ragged tensors have none), or keep"
            " this model to the SavedModel and TFLite formats",
        )
    model = canonical(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ExportError(
            "opset",
            "tf2onnx wrote a model that ONNX's checker refuses at opset"
            f" {opset}: {describe_exception(e)}",
            ["try another opset, e.g. ", setting("opset", DEFAULT_OPSET)],
        ) from None
    return describe(model.SerializeToString())


def _convert(tf2onnx, export_dir: str, opset: int):
    """tf2onnx's conversion of the serving signature, as `python -m tf2onnx.convert
    --saved_model` does it (tf2onnx 1.17 has no public function for a SavedModel)."""
    try:
        with _hashed_by_creation():
            return _convert_signature(export_dir, opset)
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - tf2onnx raises what its op handlers raise
        raise ExportError(
            "export",
            f"tf2onnx {tf2onnx.__version__} cannot convert its '{SERVING_KEY}'"
            f" signature to ONNX opset {opset}: {describe_exception(e)}",
            [
                "try another opset (",
                setting("opset"),
                ") or build the model from layers whose ops tf2onnx converts",
            ],
        ) from None


def _convert_signature(export_dir: str, opset: int):
    import tensorflow as tf
    from tf2onnx import convert as tf2onnx_convert
    from tf2onnx import tf_loader

    graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
        export_dir,
        None,
        None,
        tag="serve",
        signatures=[SERVING_KEY],
        return_initialized_tables=True,
        return_tensors_to_rename=True,
    )
    # A lookup table's entries, as TensorFlow exports them, come in its hash map's
    # order, which differs between processes; tf2onnx writes them in that order.
    tables = {name: _sorted_table(*table) for name, table in sorted(tables.items())}
    with tf.device("/cpu:0"):
        model, _ = tf2onnx_convert._convert_common(
            graph_def,
            name=_GRAPH_NAME,
            opset=opset,
            input_names=inputs,
            output_names=outputs,
            tensors_to_rename=renames,
            initialized_tables=tables,
        )
    return model


def _sorted_table(keys, values):
    import numpy as np

    order = np.argsort(keys, kind="stable")
    return keys[order], values[order]


@contextlib.contextmanager
def _hashed_by_creation():
    """tf2onnx's Node and Graph objects hash by the order they were made in, not by
    their address, while the block runs (they compare by identity, so any hash that
    never changes for an object is sound)."""
    from tf2onnx import graph

    originals = []
    for cls in (graph.Node, graph.Graph):
        made = itertools.count()
        init = cls.__init__

        def numbered_init(self, *args, _init=init, _made=made, **kwargs):
            self._creation_order = next(_made)
            _init(self, *args, **kwargs)

        originals.append((cls, init))
        cls.__init__ = numbered_init
        cls.__hash__ = lambda self: self._creation_order
    try:
        yield
    finally:
        for cls, init in originals:
            cls.__init__ = init
            del cls.__hash__


def unconverted_ops(model) -> list[str]:
    """The op types left in the graph that ONNX does not define: the TensorFlow ops
    tf2onnx had no handler for (it keeps them, logs them, and carries on)."""
    from onnx import defs

    return sorted(
        {
            node.op_type
            for node in _all_nodes(model.graph)
            if not defs.has(node.op_type, node.domain)
        }
    )


def _all_nodes(graph):
    """The graph's nodes and those of its subgraphs (Loop and If bodies), depth first."""
    for node in graph.node:
        yield node
        for subgraph in _subgraphs(node):
            yield from _all_nodes(subgraph)


def _subgraphs(node):
    from onnx import AttributeProto

    for attribute in node.attribute:
        if attribute.type == AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == AttributeProto.GRAPHS:
            yield from attribute.graphs


class _Names:
    """Canonical names, given in order of first use; the graph's inputs and outputs
    keep theirs."""

    def __init__(self, kept):
        self.kept = set(kept)
        self.new = {}
        self.counts = collections.Counter()

    def __call__(self, name: str, kind: str) -> str:
        if not name or name in self.kept:
            return name  # "" is an omitted optional input
        while name not in self.new:
            new = f"{kind}_{self.counts[kind]}"
            self.counts[kind] += 1
            if new not in self.kept:  # an input may be called `t_0`
                self.new[name] = new
        return self.new[name]


def canonical(model):
    """The model with its nodes in a canonical order and every generated name replaced
    by one given in order of first use (`Conv_3`, `t_12`, `const_4`, `dim_0`), and doc
    strings cleared. A model that differs from another only in those names and in the
    order of its nodes gives the same bytes."""
    graph = model.graph
    _sort_nodes(graph)
    names = _Names([t.name for t in graph.input] + [t.name for t in graph.output])
    dims = _Names([])
    initializers = {t.name for t in graph.initializer}
    _rename_graph(graph, names, dims, initializers)
    model.doc_string = ""
    graph.name = _GRAPH_NAME
    return model


def _sort_nodes(graph) -> list[str]:
    """Puts the graph's nodes (and its subgraphs', first) in an order that depends only
    on what computes what: depth first from the graph's outputs, in their order, each
    node after the producers of its inputs, in its inputs' order. Returns the names
    the graph reads from outside itself (a subgraph's outer-scope tensors), in order.

    tf2onnx's own order is a topological sort that breaks ties by its varying names.
    """
    producer = {}
    for node in graph.node:
        for name in node.output:
            producer[name] = node
    defined = set(producer) | {t.name for t in graph.input}
    defined |= {t.name for t in graph.initializer}
    reads = {}  # node -> the tensors it reads, its subgraphs' outer ones included
    for node in graph.node:
        names = list(node.input)
        for subgraph in _subgraphs(node):
            names += _sort_nodes(subgraph)
        reads[id(node)] = [n for n in names if n]
    ordered, done = [], set()
    roots = [producer[t.name] for t in graph.output if t.name in producer]
    # Nodes no output needs (tf2onnx removes them; kept, in their order, if any).
    roots += list(graph.node)
    for root in roots:
        stack = [(root, 0)]
        while stack:
            node, next_input = stack.pop()
            if id(node) in done:
                continue
            names = reads[id(node)]
            while next_input < len(names) and (
                names[next_input] not in producer
                or id(producer[names[next_input]]) in done
            ):
                next_input += 1
            if next_input < len(names):
                stack.append((node, next_input + 1))
                stack.append((producer[names[next_input]], 0))
                continue
            done.add(id(node))
            ordered.append(node)
    outer = []
    for node in ordered:
        outer += [n for n in reads[id(node)] if n not in defined and n not in outer]
    ordered = [_copy(node) for node in ordered]
    del graph.node[:]
    graph.node.extend(ordered)
    return outer


def _copy(message):
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _rename_graph(graph, names, dims, initializers) -> None:
    """Renames in place: declared inputs first, then each node's inputs, subgraphs and
    outputs in graph order, then the initializers and value infos that name them,
    sorted by the new names' order."""
    local = initializers | {t.name for t in graph.initializer}

    def tensor(name: str) -> str:
        return names(name, "const" if name in local else "t")

    for value in graph.input:
        value.name = tensor(value.name)
        _rename_dims(value.type, dims)
    for node in graph.node:
        node.name = names(node.name or f"{node.op_type}-unnamed", node.op_type)
        node.doc_string = ""
        node.input[:] = [tensor(n) for n in node.input]
        for subgraph in _subgraphs(node):
            _rename_graph(subgraph, names, dims, local)
        node.output[:] = [tensor(n) for n in node.output]
        attributes = sorted(node.attribute, key=lambda a: a.name)
        del node.attribute[:]
        node.attribute.extend(attributes)
    for value in graph.output:
        value.name = tensor(value.name)
        _rename_dims(value.type, dims)
    order = {new: i for i, new in enumerate(names.new.values())}
    for field in (graph.initializer, graph.value_info):
        entries = list(field)
        for entry in entries:
            entry.name = tensor(entry.name)
            if hasattr(entry, "type"):
                _rename_dims(entry.type, dims)
        entries.sort(key=lambda e: order.get(e.name, len(order)))
        del field[:]
        field.extend(entries)
    graph.doc_string = ""


def _rename_dims(type_proto, dims) -> None:
    """Canonical names for the symbolic dimensions (`unk__21`) of a tensor's type."""
    if type_proto.HasField("tensor_type"):
        for dim in type_proto.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = dims(dim.dim_param, "dim")
    elif type_proto.HasField("sequence_type"):
        _rename_dims(type_proto.sequence_type.elem_type, dims)
    elif type_proto.HasField("optional_type"):
        _rename_dims(type_proto.optional_type.elem_type, dims)


def describe(content: bytes) -> OnnxModel:
    """Reads the graph's inputs, outputs, ops and opset from an ONNX file's bytes."""
    onnx = packages.import_module(CONVERTER, "onnx")
    from onnx import helper

    model = onnx.load_model_from_string(content)
    initializers = {t.name for t in model.graph.initializer}

    def tensors(values) -> tuple[Tensor, ...]:
        result = []
        for value in values:
            if value.name in initializers:
                continue
            tensor_type = value.type.tensor_type
            dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
            result.append(
                Tensor(
                    value.name,
                    "string" if dtype.kind == "O" else dtype.name,
                    tuple(
                        d.dim_value if d.HasField("dim_value") else None
                        for d in tensor_type.shape.dim
                    ),
                )
            )
        return tuple(result)

    ops = {
        f"{node.domain}.{node.op_type}" if node.domain else node.op_type
        for node in _all_nodes(model.graph)
    }
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return OnnxModel(
        content,
        tensors(model.graph.input),
        tensors(model.graph.output),
        tuple(sorted(ops)),
        opset,
    )


def write(model: OnnxModel, onnx_out: str, manifest_out: str | None) -> None:
    """Writes the .onnx file and its manifest, each atomically
    (outputs.write_files), so a failure leaves neither half-written."""
    files = [(onnx_out, "onnx_out", model.content)]
    if manifest_out:
        text = outputs.json_text(model.manifest())
        files.append((manifest_out, "onnx_manifest_out", text.encode()))
    outputs.write_files(files)
