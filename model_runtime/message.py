"""The transport-neutral Seldon message the dataplane core works on.

The JSON codec (`codecs.json_message`) and the proto codec (`codecs.proto_message`) both decode into these
values and encode from them, so `dataplane` never sees a dict or a protobuf unless a user's `*_raw`
method asks for the wire form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

DataKind = Literal["ndarray", "tensor", "tftensor"]
ArrayLike = np.ndarray[Any, Any] | list[Any]


@dataclass(slots=True)
class DefaultData:
    """`data`: an array with optional column names, and the encoding it came in (or should go out in)."""

    kind: DataKind
    array: ArrayLike
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BinData:
    value: bytes


@dataclass(frozen=True, slots=True)
class StrData:
    value: str


@dataclass(frozen=True, slots=True)
class JsonData:
    value: Any


@dataclass(frozen=True, slots=True)
class CustomData:
    """`customData` (a protobuf Any, or its JSON form); only `*_raw` methods can make sense of it."""

    value: Any


Payload = DefaultData | BinData | StrData | JsonData | CustomData


@dataclass(slots=True)
class Meta:
    puid: str = ""
    tags: dict[str, Any] = field(default_factory=dict)
    routing: dict[str, int] = field(default_factory=dict)
    request_path: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Status:
    code: int
    info: str
    reason: str = ""
    flag: Literal["SUCCESS", "FAILURE"] = "SUCCESS"


@dataclass(slots=True)
class Message:
    payload: Payload | None = None
    meta: Meta = field(default_factory=Meta)
    status: Status | None = None


@dataclass(slots=True)
class Feedback:
    request: Message | None
    response: Message | None
    reward: float
    truth: Message | None


@dataclass(slots=True)
class Request:
    """What an adapter hands to the core: the wire form, how to decode it, and the caller's puid.

    `raw` is a JSON value or a protobuf; `decode` turns it into a `Message` (or a list of them, or a
    `Feedback`). Decoding is lazy so a `*_raw` user method gets the wire form without a decode.
    """

    raw: Any
    decode: Callable[[Any], Any]
    puid: str | None = None
    _decoded: Any = None

    def decoded(self) -> Any:
        if self._decoded is None:
            self._decoded = self.decode(self.raw)
        return self._decoded


@dataclass(slots=True)
class Reply:
    """What the core hands back: a `Message`, or the untouched return value of a `*_raw` method."""

    puid: str
    message: Message | None = None
    raw: Any = None
