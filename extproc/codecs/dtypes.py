"""V2 datatypes, numpy dtypes and TensorFlow DataType names: the table every translation shares."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

# V2 datatype -> numpy dtype (BYTES is handled as Python str/bytes, never as a numpy buffer).
V2_TO_NUMPY = MappingProxyType(
    {
        "BOOL": np.dtype(np.bool_),
        "UINT8": np.dtype(np.uint8),
        "UINT16": np.dtype(np.uint16),
        "UINT32": np.dtype(np.uint32),
        "UINT64": np.dtype(np.uint64),
        "INT8": np.dtype(np.int8),
        "INT16": np.dtype(np.int16),
        "INT32": np.dtype(np.int32),
        "INT64": np.dtype(np.int64),
        "FP16": np.dtype(np.float16),
        "FP32": np.dtype(np.float32),
        "FP64": np.dtype(np.float64),
    }
)
NUMPY_TO_V2 = MappingProxyType({dtype: name for name, dtype in V2_TO_NUMPY.items()})

# V2 datatype <-> tensorflow.DataType enum name, and the TensorProto JSON field holding its values.
V2_TO_TF = MappingProxyType(
    {
        "BOOL": ("DT_BOOL", "boolVal"),
        "UINT8": ("DT_UINT8", "intVal"),
        "UINT16": ("DT_UINT16", "intVal"),
        "UINT32": ("DT_UINT32", "uint32Val"),
        "UINT64": ("DT_UINT64", "uint64Val"),
        "INT8": ("DT_INT8", "intVal"),
        "INT16": ("DT_INT16", "intVal"),
        "INT32": ("DT_INT32", "intVal"),
        "INT64": ("DT_INT64", "int64Val"),
        "FP16": ("DT_HALF", "halfVal"),
        "FP32": ("DT_FLOAT", "floatVal"),
        "FP64": ("DT_DOUBLE", "doubleVal"),
        "BYTES": ("DT_STRING", "stringVal"),
    }
)
TF_TO_V2 = MappingProxyType({tf: (v2, field) for v2, (tf, field) in V2_TO_TF.items()})

# V2 datatype -> the InferTensorContents field that carries it on gRPC.
V2_CONTENTS_FIELD = MappingProxyType(
    {
        "BOOL": "bool_contents",
        "UINT8": "uint_contents",
        "UINT16": "uint_contents",
        "UINT32": "uint_contents",
        "UINT64": "uint64_contents",
        "INT8": "int_contents",
        "INT16": "int_contents",
        "INT32": "int_contents",
        "INT64": "int64_contents",
        "FP32": "fp32_contents",
        "FP64": "fp64_contents",
        "BYTES": "bytes_contents",
    }
)


def v2_datatype(array: np.ndarray) -> str:
    """The V2 datatype of a numpy array; strings and objects are BYTES."""
    if array.dtype.kind in "USO":
        return "BYTES"
    found = NUMPY_TO_V2.get(array.dtype)
    if found is None:
        raise ValueError(f"numpy dtype {array.dtype} has no V2 datatype")
    return found
