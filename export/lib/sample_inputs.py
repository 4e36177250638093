"""Sample inputs: what they hold where a signature alone does not say, and the batches
made of them.

A signature gives shapes and dtypes; a concrete batch also needs a size for each
unknown dimension (the first the model accepts, from UNKNOWN_DIM down) and, for an
input read through a lookup layer, values that layer knows (its vocabulary's tokens;
sentences of them for TextVectorization). interface finds these once, while it
describes the model (`graph_sample_values`, `layer_sample_values`, `call_on_samples`),
as `SampleValues`. `zeros_for` and `random_for` make arrays of them, and
`sample_batches` makes, once per export, every batch the later stages feed the model:
the label probes', eval_state's probe, the warmup requests' and verify's.
"""

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

# Size first tried for unknown non-batch dims when a concrete tensor is needed (zeros,
# random verification inputs): big enough for typical convolution strides and pooling.
# A model that rejects it (a position table shorter than 32) gets the first of
# SMALLER_DIMS it accepts (see call_on_samples).
UNKNOWN_DIM = 32
SMALLER_DIMS = (16, 8, 4, 2, 1)
# Sample strings for a string input whose vocabulary cannot be found in the model.
FALLBACK_WORDS = ("a", "the", "one", "two", "yes", "no", "red", "blue")
# Tokens kept per vocabulary: the first (for adapted layers the most frequent) ones.
MAX_SAMPLE_TOKENS = 1000
# Words per sample text fed to a TextVectorization input: 1 to this many.
MAX_SAMPLE_WORDS = 6

# The batches of one export (sample_batches). The label probes try the model's steps
# on zeros of PROBE_BATCH: more than 1, so that labels of the wrong form rarely
# broadcast against the outputs. A second form of a label must give the logs of the
# first on a random batch of FORMS_BATCH (seed FORMS_SEED). eval_state's probe takes
# two random batches that differ in size, so that a state weighted wrongly by the
# batch size shows. Each warmup request holds one example (TF Serving's batcher then
# pads or joins it like any client request), and verify compares one: a batch of one
# keeps the eager Keras call's memory small (bench/README.md).
PROBE_BATCH = 2
FORMS_BATCH = 3
FORMS_SEED = 7
EVAL_PROBE_BATCHES = (3, 2)
EVAL_PROBE_SEED = 11
WARMUP_BATCH = 1
VERIFY_BATCH = 1


@dataclasses.dataclass(frozen=True)
class SampleValues:
    """What sample inputs hold where a signature alone does not say.

    One choice, made once per model by `interface.describe_model`, serves every
    concrete input the exporter and its tests make (the eval/train probes, verify,
    keras_saved_model_test).
    unknown_dim: the size given to every unknown non-batch dimension.
    vocabularies: input name -> the values its lookup layer knows (str or int tokens).
    text_inputs: inputs read by TextVectorization, which get sentences of those tokens.
    """

    unknown_dim: int = UNKNOWN_DIM
    vocabularies: tuple[tuple[str, tuple], ...] = ()
    text_inputs: frozenset[str] = frozenset()

    def vocabulary(self, name: str) -> tuple:
        return dict(self.vocabularies).get(name, ())


def has_unknown_dims(descs) -> bool:
    return any(d is None for desc in descs for d in desc.shape[1:])


def call_on_samples(
    model, struct, inputs, samples: SampleValues, separate_arguments: bool = False
):
    """Calls the model on a batch of sample zeros; returns (outputs, samples used).

    With unknown non-batch dims, sizes are tried from UNKNOWN_DIM down until the model
    accepts one (a 16-entry position table rejects 32); the first error is raised when
    none fits.
    """
    sizes = (samples.unknown_dim,)
    if has_unknown_dims(inputs):
        sizes = (UNKNOWN_DIM,) + SMALLER_DIMS
    first_error = None
    for size in sizes:
        trial = dataclasses.replace(samples, unknown_dim=size)
        zeros = [tf.constant(z) for z in zeros_for(inputs, samples=trial)]
        try:
            packed = keras.tree.pack_sequence_as(struct, zeros)
            if separate_arguments:
                outputs = model(*packed, training=False)
            else:
                outputs = model(packed, training=False)
        except Exception as e:  # noqa: BLE001 - user code: try the next size
            first_error = first_error or e
            continue
        return outputs, trial
    raise first_error


def _vocabulary_layer(layer) -> tuple[tuple, bool] | None:
    """(tokens, takes text) of a layer that maps raw values through a vocabulary."""
    if isinstance(layer, keras.layers.TextVectorization):
        text = True
    elif isinstance(layer, (keras.layers.StringLookup, keras.layers.IntegerLookup)):
        if layer.invert:
            return None
        text = False
    else:
        return None
    try:
        tokens = layer.get_vocabulary(include_special_tokens=False)
    except Exception:  # noqa: BLE001 - an uninitialized table has no vocabulary
        return None
    tokens = tuple(t for t in tokens[:MAX_SAMPLE_TOKENS] if t != "")
    return (tokens, text) if tokens else None


def _all_layers(model) -> list:
    # Every layer, nested ones too (TextVectorization's own StringLookup), in Keras's
    # deterministic order.
    return model._flatten_layers(include_self=False, recursive=True)


def graph_sample_values(model, in_struct, inputs) -> SampleValues:
    """Per input, the vocabulary of the lookup layer it feeds (found through the graph)."""
    by_tensor = {
        id(tensor): desc
        for tensor, desc in zip(keras.tree.flatten(in_struct), inputs, strict=True)
    }
    vocabularies: dict[str, tuple] = {}
    text_inputs = set()
    for layer in _all_layers(model):
        found = _vocabulary_layer(layer)
        if found is None:
            continue
        tokens, text = found
        for node in getattr(layer, "_inbound_nodes", []):
            for name in _upstream_inputs(node.input_tensors, by_tensor):
                if name in vocabularies:
                    continue
                desc = next(d for d in inputs if d.name == name)
                if _fits(desc, tokens):
                    vocabularies[name] = tokens
                    if text:
                        text_inputs.add(name)
    unfed = [d for d in inputs if d.dtype == "string" and d.name not in vocabularies]
    if unfed:
        # A string input whose lookup cannot be traced through the graph (a custom
        # layer doing its own lookup) gets the model's string vocabularies.
        fallback = layer_sample_values(model, unfed)
        vocabularies.update(fallback.vocabularies)
        text_inputs |= fallback.text_inputs
    return SampleValues(
        vocabularies=tuple(
            (d.name, vocabularies[d.name]) for d in inputs if d.name in vocabularies
        ),
        text_inputs=frozenset(text_inputs),
    )


def _fits(desc, tokens: tuple) -> bool:
    if isinstance(tokens[0], str):
        return desc.dtype == "string"
    return tf.as_dtype(desc.dtype).is_integer


def _upstream_inputs(tensors, by_tensor: dict) -> set[str]:
    """Names of the model inputs that `tensors` are computed from."""
    names, seen, stack = set(), set(), list(tensors)
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if id(tensor) in by_tensor:
            names.add(by_tensor[id(tensor)].name)
            continue
        history = getattr(tensor, "_keras_history", None)
        operation = getattr(history, "operation", None)
        if operation is None or history.node_index >= len(operation._inbound_nodes):
            continue
        stack.extend(operation._inbound_nodes[history.node_index].input_tensors)
    return names


def layer_sample_values(model, inputs) -> SampleValues:
    """Every string input gets the tokens of all the model's string vocabularies."""
    tokens, text = [], False
    for layer in _all_layers(model):
        found = _vocabulary_layer(layer)
        if found and isinstance(found[0][0], str):
            tokens.extend(t for t in found[0] if t not in tokens)
            text = text or found[1]
    names = [d.name for d in inputs if d.dtype == "string"]
    if not tokens or not names:
        return SampleValues()
    return SampleValues(
        vocabularies=tuple((name, tuple(tokens)) for name in names),
        text_inputs=frozenset(names) if text else frozenset(),
    )


def concrete_shape(
    shape: Sequence[int | None], batch: int, unknown_dim: int = UNKNOWN_DIM
) -> tuple[int, ...]:
    if not shape:
        return ()
    return (batch,) + tuple(unknown_dim if d is None else d for d in shape[1:])


def zeros_for(
    descs, batch: int = 1, samples: SampleValues | None = None
) -> list[np.ndarray]:
    """Neutral inputs: zeros, and for strings the first token of the input's vocabulary
    (a word that means something to the model, not an empty string)."""
    samples = samples or SampleValues()
    arrays = []
    for desc in descs:
        shape = concrete_shape(desc.shape, batch, samples.unknown_dim)
        if desc.dtype == "string":
            words = samples.vocabulary(desc.name) or FALLBACK_WORDS
            arrays.append(np.full(shape, words[0].encode(), dtype=object))
        else:
            arrays.append(np.zeros(shape, dtype=tf.as_dtype(desc.dtype).as_numpy_dtype))
    return arrays


def random_for(
    descs, seed: int, batch: int = 2, samples: SampleValues | None = None
) -> list[np.ndarray]:
    """Seeded inputs: normal floats, small non-negative ints (safe for Embedding),
    values from the input's vocabulary where the model has one (strings: its tokens,
    sentences of them for TextVectorization; ints read by IntegerLookup: its values)."""
    samples = samples or SampleValues()
    rng = np.random.default_rng(seed)
    arrays = []
    for desc in descs:
        shape = concrete_shape(desc.shape, batch, samples.unknown_dim)
        dtype = tf.as_dtype(desc.dtype)
        vocabulary = samples.vocabulary(desc.name)
        if dtype == tf.string:
            words = vocabulary or FALLBACK_WORDS
            if desc.name in samples.text_inputs:
                arrays.append(_sample_texts(rng, words, shape))
            else:
                picks = rng.integers(0, len(words), shape)
                arrays.append(_to_bytes(np.asarray(words, dtype=object)[picks]))
        elif vocabulary and dtype.is_integer:
            picks = rng.integers(0, len(vocabulary), shape)
            arrays.append(np.asarray(vocabulary)[picks].astype(dtype.as_numpy_dtype))
        elif dtype.is_floating:
            arrays.append(rng.standard_normal(shape).astype(dtype.as_numpy_dtype))
        elif dtype.is_bool:
            arrays.append(rng.integers(0, 2, shape).astype(bool))
        elif dtype.is_integer:
            arrays.append(rng.integers(0, 2, shape).astype(dtype.as_numpy_dtype))
        else:
            arrays.append(np.full(shape, b"", dtype=object))
    return arrays


def _sample_texts(rng, words, shape) -> np.ndarray:
    flat = []
    for _ in range(int(np.prod(shape, dtype=np.int64))):
        count = int(rng.integers(1, MAX_SAMPLE_WORDS + 1))
        flat.append(" ".join(words[i] for i in rng.integers(0, len(words), count)))
    return _to_bytes(np.asarray(flat, dtype=object).reshape(shape))


def _to_bytes(values: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: str(v).encode(), otypes=[object])(values)


def random_labels(rng, desc, output, batch: int) -> np.ndarray:
    """Random labels of `desc`: class ids below the output's class count for integer
    labels that are ids, 0/1 for other integers and booleans, [0, 1) for floats."""
    shape = concrete_shape(desc.shape, batch)
    dtype = tf.as_dtype(desc.dtype)
    if dtype.is_integer:
        classes = output.shape[-1] if output.shape else None
        are_ids = len(desc.shape) < len(output.shape) or desc.shape[-1:] == (1,)
        high = classes if are_ids and classes and classes > 1 else 2
        return rng.integers(0, high, shape).astype(dtype.as_numpy_dtype)
    if dtype.is_bool:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.random(shape).astype(dtype.as_numpy_dtype)


@dataclasses.dataclass(frozen=True)
class SeededBatch:
    """Random inputs made with `seed`; the labels made for them take the same seed."""

    seed: int
    batch: int
    arrays: tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class SampleBatches:
    """Every batch of inputs one export feeds the model, as arrays, made once.

    probe_zeros: the zeros (batch PROBE_BATCH) the label probes try the steps on.
    open_dim_zeros: zeros of batch 1, whose dimensions the probes shorten one at a
      time to find the input dimension a label's open one follows.
    forms: the random batch on which two forms of a label must give the same logs.
    eval_probe: the two random batches eval_state's probe evaluates.
    warmup: each warmup request's inputs, by name.
    verify: the inputs verify compares the Keras model and the SavedModel on.
    Those of a stage that does not run are empty.
    """

    probe_zeros: tuple[np.ndarray, ...] = ()
    open_dim_zeros: tuple[np.ndarray, ...] = ()
    forms: SeededBatch | None = None
    eval_probe: tuple[SeededBatch, ...] = ()
    warmup: tuple[dict[str, np.ndarray], ...] = ()
    verify: tuple[np.ndarray, ...] = ()


def sample_batches(
    inputs,
    samples: SampleValues,
    modes: Sequence[str],
    seed: int,
    warmup_count: int,
    verify: bool,
) -> SampleBatches:
    """The batches an export of `modes` feeds a model of `inputs` (interface's
    TensorDescs), for warmup_count warmup requests and verify if asked."""

    def seeded(batch: int, batch_seed: int) -> SeededBatch:
        return SeededBatch(
            batch_seed, batch, tuple(random_for(inputs, batch_seed, batch, samples))
        )

    probing = bool(set(modes) - {"serve"})
    return SampleBatches(
        probe_zeros=tuple(zeros_for(inputs, PROBE_BATCH, samples)) if probing else (),
        open_dim_zeros=tuple(zeros_for(inputs, 1, samples)) if probing else (),
        forms=seeded(FORMS_BATCH, FORMS_SEED) if probing else None,
        eval_probe=tuple(
            seeded(batch, EVAL_PROBE_SEED + i)
            for i, batch in enumerate(EVAL_PROBE_BATCHES)
        )
        if "eval" in modes
        else (),
        warmup=tuple(warmup_feeds(inputs, samples, seed, warmup_count)),
        verify=tuple(random_for(inputs, seed, VERIFY_BATCH, samples)) if verify else (),
    )


def warmup_feeds(
    inputs, samples: SampleValues, seed: int, count: int
) -> list[dict[str, np.ndarray]]:
    """The inputs of each warmup request, by name: request i holds the sample inputs
    verify would use with seed + i (so request 0 holds verify's own)."""
    names = [d.name for d in inputs]
    return [
        dict(
            zip(names, random_for(inputs, seed + i, WARMUP_BATCH, samples), strict=True)
        )
        for i in range(count)
    ]
