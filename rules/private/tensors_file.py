"""The tensors file in which keras_saved_model_test exchanges arrays with the C++
checker (cc/saved_model_checker.cc; the format is read and written by
cc/saved_model.cc too): a uint32 count, then per tensor a uint32-prefixed name, its
TF_DataType (uint32), its rank (uint32) and dims (int64), and its values: raw
little-endian numbers, or a uint64 length and the bytes of each string."""

import struct

import numpy as np
import tensorflow as tf


def write(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<I", len(arrays)))
        for name in sorted(arrays):
            array = np.asarray(arrays[name])
            dtype = tf.as_dtype(
                array.dtype if array.dtype.kind not in "OSU" else tf.string
            )
            encoded = name.encode()
            f.write(struct.pack("<I", len(encoded)) + encoded)
            f.write(struct.pack("<II", dtype.as_datatype_enum, array.ndim))
            f.write(struct.pack(f"<{array.ndim}q", *array.shape))
            if dtype == tf.string:
                for value in array.reshape(-1):
                    data = value.encode() if isinstance(value, str) else bytes(value)
                    f.write(struct.pack("<Q", len(data)) + data)
            else:
                f.write(
                    np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
                )


def read(path: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        data = f.read()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return values

    arrays = {}
    (count,) = take("<I")
    for _ in range(count):
        (size,) = take("<I")
        name = data[offset : offset + size].decode()
        offset += size
        enum, rank = take("<II")
        shape = take(f"<{rank}q")
        dtype = tf.as_dtype(enum)
        elements = int(np.prod(shape, dtype=np.int64))
        if dtype == tf.string:
            values = []
            for _ in range(elements):
                (size,) = take("<Q")
                values.append(data[offset : offset + size])
                offset += size
            array = np.array(values, dtype=object).reshape(shape)
        else:
            numpy_dtype = np.dtype(dtype.as_numpy_dtype).newbyteorder("<")
            size = elements * numpy_dtype.itemsize
            array = np.frombuffer(data, numpy_dtype, elements, offset).reshape(shape)
            offset += size
        arrays[name] = array
    return arrays
