"""Turning what a user method returned into a `Message` payload, the way Seldon's wrapper does.

str → strData, bytes → binData, dict → jsonData, anything array-like → data, whose encoding mirrors the
request (tensor → tensor, tftensor → tftensor, otherwise ndarray; non-numeric output is always ndarray).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from model_runtime.errors import UserCodeError
from model_runtime.message import (
    ArrayLike,
    BinData,
    DataKind,
    DefaultData,
    JsonData,
    Payload,
    StrData,
)

NamesFor = Callable[[int | None], list[str]]


def to_payload(output: Any, request_kind: DataKind | None, names_for: NamesFor) -> Payload | None:
    """`names_for(columns)` gives `data.names` for an array with that many columns (None when 1-D)."""
    if output is None:
        return None
    if isinstance(output, str):
        return StrData(output)
    if isinstance(output, bytes | bytearray):
        return BinData(bytes(output))
    if isinstance(output, dict):
        return JsonData(output)
    array = _array(output)
    kind = request_kind if request_kind in ("tensor", "tftensor") else "ndarray"
    if kind != "ndarray" and not _numeric(array):
        kind = "ndarray"
    return DefaultData(kind, array, names_for(_columns(array)))


def default_names(columns: int | None) -> list[str]:
    """Seldon's default column names `t:0` … `t:n-1`; none for a 1-D result."""
    return [] if columns is None else [f"t:{i}" for i in range(columns)]


def _array(output: Any) -> ArrayLike:
    if isinstance(output, np.ndarray):
        return output if output.ndim else output.reshape(1)
    if isinstance(output, list):
        return output
    if isinstance(output, tuple):
        return list(output)
    if isinstance(output, int | float | np.generic):
        return np.asarray([output])
    try:
        return np.asarray(output)
    except (TypeError, ValueError) as exc:
        raise UserCodeError(f"cannot encode a {type(output).__name__} returned by user code") from exc


def _numeric(array: ArrayLike) -> bool:
    if isinstance(array, np.ndarray):
        return array.dtype.kind in "biuf"
    try:
        return np.asarray(array).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False


def _columns(array: ArrayLike) -> int | None:
    if isinstance(array, np.ndarray):
        return int(array.shape[1]) if array.ndim >= 2 else None
    if array and isinstance(array[0], list | tuple | np.ndarray):
        return len(array[0])
    return None
