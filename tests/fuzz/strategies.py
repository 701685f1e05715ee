"""Hypothesis strategies for what a client may send: Seldon v1 messages and feedback, V2 inference requests,
mostly in the protocol's shape with any value where a value goes (deep or ragged arrays, huge and
negative numbers, odd strings, wrong types), plus any JSON at all."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

Json = Any

_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64, -(2**63) - 1, 1e308, -1e-308]),
)
_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "a\nb", "a\r\nb", "\x00", "é", "t:0", "../../etc", "%0d%0a", "\u2028"]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)
ANY_JSON: st.SearchStrategy[Json] = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=20,
)


def _nested(depth: int, leaf: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    value = leaf
    for _ in range(depth):
        value = st.lists(value, min_size=1, max_size=2)
    return value


def _deep(depth: int) -> Json:
    value: Json = 1
    for _ in range(depth):
        value = [value]
    return value


# arrays as a model gets them (rows of 4 numbers), ragged or oddly typed, or nested very deep
NDARRAY = st.one_of(
    st.lists(st.lists(_NUMBERS, min_size=4, max_size=4), min_size=1, max_size=3),
    st.lists(st.lists(_SCALARS, max_size=5), max_size=3),
    st.integers(min_value=1, max_value=8).flatmap(lambda d: _nested(d, _NUMBERS)),
    st.sampled_from([40, 64, 65, 120, 250, 253, 254, 255, 300, 1000]).map(_deep),
    ANY_JSON,
)
TENSOR = st.fixed_dictionaries(
    {
        "shape": st.lists(st.integers(min_value=-3, max_value=2**40), max_size=4),
        "values": st.lists(_NUMBERS, max_size=8),
    }
)
META = st.fixed_dictionaries(
    {},
    optional={
        "puid": st.one_of(_TEXT, _NUMBERS, ANY_JSON),
        "tags": st.one_of(st.dictionaries(_TEXT, ANY_JSON, max_size=3), ANY_JSON),
        "routing": st.one_of(st.dictionaries(_TEXT, st.one_of(_NUMBERS, ANY_JSON), max_size=3), ANY_JSON),
        "requestPath": st.one_of(st.dictionaries(_TEXT, _TEXT, max_size=3), ANY_JSON),
        "metrics": st.one_of(st.lists(ANY_JSON, max_size=2), ANY_JSON),
    },
)
DATA = st.fixed_dictionaries(
    {},
    optional={
        "names": st.one_of(st.lists(_TEXT, max_size=5), ANY_JSON),
        "ndarray": NDARRAY,
        "tensor": st.one_of(TENSOR, ANY_JSON),
    },
)
_B64 = st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
SELDON_MESSAGE: st.SearchStrategy[Json] = st.one_of(
    st.fixed_dictionaries({"data": DATA}, optional={"meta": META}),
    st.fixed_dictionaries({"meta": META}, optional={"data": st.one_of(DATA, ANY_JSON)}),
    st.fixed_dictionaries({"binData": st.one_of(_B64, _TEXT, ANY_JSON)}, optional={"meta": META}),
    st.fixed_dictionaries({"strData": st.one_of(_TEXT, ANY_JSON)}, optional={"meta": META}),
    st.fixed_dictionaries({"jsonData": ANY_JSON}, optional={"meta": META}),
    ANY_JSON,
)
FEEDBACK: st.SearchStrategy[Json] = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "request": SELDON_MESSAGE,
            "response": SELDON_MESSAGE,
            "reward": st.one_of(_NUMBERS, ANY_JSON),
            "truth": SELDON_MESSAGE,
        },
    ),
    ANY_JSON,
)

DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"]
DATATYPES += ["FP16", "FP32", "FP64", "BYTES"]
V2_TENSOR = st.fixed_dictionaries(
    {
        "name": st.one_of(_TEXT, ANY_JSON),
        "shape": st.one_of(st.lists(st.integers(min_value=-2, max_value=2**40), max_size=3), ANY_JSON),
        "datatype": st.one_of(st.sampled_from(DATATYPES), _TEXT),
        "data": st.one_of(st.lists(_SCALARS, max_size=8), NDARRAY),
    },
    optional={"parameters": st.one_of(st.dictionaries(_TEXT, ANY_JSON, max_size=2), ANY_JSON)},
)
V2_REQUEST: st.SearchStrategy[Json] = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.lists(V2_TENSOR, min_size=1, max_size=2)},
        optional={
            "id": st.one_of(_TEXT, ANY_JSON),
            "parameters": st.one_of(st.dictionaries(_TEXT, ANY_JSON, max_size=2), ANY_JSON),
            "outputs": st.one_of(st.lists(st.fixed_dictionaries({"name": _TEXT}), max_size=2), ANY_JSON),
        },
    ),
    st.fixed_dictionaries({"inputs": ANY_JSON}),
    ANY_JSON,
)


_I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_SHAPE = st.lists(st.one_of(st.integers(min_value=-2, max_value=6), _I64), max_size=3)
_CONTENTS = st.one_of(
    st.builds(lambda v: {"bool_contents": v}, st.lists(st.booleans(), max_size=8)),
    st.builds(lambda v: {"int_contents": v}, st.lists(st.integers(-(2**31), 2**31 - 1), max_size=8)),
    st.builds(lambda v: {"int64_contents": v}, st.lists(_I64, max_size=8)),
    st.builds(lambda v: {"uint64_contents": v}, st.lists(st.integers(0, 2**64 - 1), max_size=8)),
    st.builds(lambda v: {"fp32_contents": v}, st.lists(st.floats(width=32), max_size=8)),
    st.builds(lambda v: {"fp64_contents": v}, st.lists(st.floats(), max_size=8)),
    st.builds(lambda v: {"bytes_contents": v}, st.lists(st.binary(max_size=8), max_size=4)),
)
V2_PROTO_INPUT = st.fixed_dictionaries(
    {
        "name": st.text(max_size=8),
        "datatype": st.one_of(st.sampled_from(DATATYPES), st.text(max_size=6)),
        "shape": _SHAPE,
        "contents": _CONTENTS,
    }
)
V2_PROTO_REQUEST = st.fixed_dictionaries(
    {"id": st.text(max_size=10), "inputs": st.lists(V2_PROTO_INPUT, max_size=2)},
    optional={"raw_input_contents": st.lists(st.binary(max_size=16), max_size=2)},
)
