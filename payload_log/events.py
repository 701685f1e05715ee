"""The payload event: what one logged request, response or feedback becomes, and its CloudEvents 1.0
binary-mode rendering (attributes as `Ce-*` headers, payload as the body), matching Seldon Core's request
logger header for header so existing consumers (Knative brokers, the Elasticsearch logger) keep working.

Pure: no I/O. `logger` spools these; `sinks` deliver their rendering.
"""

from __future__ import annotations

import functools
import gzip
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

SPEC_VERSION = "1.0"
SKIP_LOGGING_HEADER = "seldon-skip-logging"
_HEADER_LINES = 12  # in `PayloadEvent.headers`


class EventType(StrEnum):
    REQUEST = "io.seldon.serving.inference.request"
    RESPONSE = "io.seldon.serving.inference.response"
    FEEDBACK = "io.seldon.serving.feedback"


class WireProtocol(StrEnum):
    """`Ce-Protocol` values, as Seldon's executor names its protocols."""

    SELDON = "seldon"
    TENSORFLOW = "tensorflow"
    V2 = "v2"


def _new_id() -> str:
    """A random (version 4) UUID. From `random`, not `os.urandom` as `uuid.uuid4` does: ids need to be
    unique, not secret, and this costs a tenth. `random` is reseeded in a forked child, so workers differ."""
    value = random.getrandbits(128)
    value = (value & ~(0xF000 << 64)) | (4 << 76)  # version 4
    value = (value & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=2)
def _second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _now() -> str:
    """RFC 3339 UTC with microseconds; the part up to the second is formatted once per second."""
    now = time.time()
    second = int(now)
    return f"{_second(second)}.{int((now - second) * 1_000_000):06d}Z"


# Not frozen: a frozen dataclass's __init__ sets each of these 13 fields through object.__setattr__, which
# made one event cost the event loop about 5 us against 3 (its id and time included); nothing mutates them.
@dataclass(slots=True)
class PayloadEvent:
    """One event. `destination` is the node's `logger.url`; None means the logger's default endpoint."""

    type: EventType
    body: bytes
    content_type: str
    request_id: str
    model_id: str
    deployment: str
    namespace: str
    predictor: str
    protocol: str = WireProtocol.SELDON
    source: str = "seldon-mesh"
    destination: str | None = None
    id: str = field(default_factory=_new_id)
    time: str = field(default_factory=_now)

    def headers(self) -> dict[str, str]:
        """The CloudEvents binary-mode headers, spelled as Seldon's executor sends them."""
        return {
            "Ce-Id": self.id,
            "Ce-Specversion": SPEC_VERSION,
            "Ce-Source": self.source,
            "Ce-Type": str(self.type),
            "Ce-Time": self.time,
            "Ce-Modelid": self.model_id,
            "Ce-Requestid": self.request_id,
            "Ce-Inferenceservicename": self.deployment,
            "Ce-Namespace": self.namespace,
            "Ce-Endpoint": self.predictor,
            "Ce-Protocol": str(self.protocol),
            "Content-Type": self.content_type,
        }

    def head(self) -> bytes:
        """`headers` as HTTP/1.1 header lines, each ended by CRLF: what the spool keeps and an HTTP sink is
        sent. A line break inside a value (which no HTTP client can send us) becomes a space, so a value
        can never add a header line of its own."""
        text = (
            f"Ce-Id: {self.id}\r\nCe-Specversion: {SPEC_VERSION}\r\nCe-Source: {self.source}\r\n"
            f"Ce-Type: {self.type}\r\nCe-Time: {self.time}\r\nCe-Modelid: {self.model_id}\r\n"
            f"Ce-Requestid: {self.request_id}\r\nCe-Inferenceservicename: {self.deployment}\r\n"
            f"Ce-Namespace: {self.namespace}\r\nCe-Endpoint: {self.predictor}\r\n"
            f"Ce-Protocol: {self.protocol}\r\nContent-Type: {self.content_type}\r\n"
        )
        if text.count("\n") != _HEADER_LINES or text.count("\r") != _HEADER_LINES:
            text = "".join(f"{name}: {_one_line(value)}\r\n" for name, value in self.headers().items())
        return text.encode()


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


class EventTemplate:
    """What the events of one logged node have in common, rendered once: `head` then renders an event's
    header lines (as `PayloadEvent.head`, header for header) from what differs, its type and request id,
    with a fresh id and time. For hot paths (a runtime logging every prediction): no `PayloadEvent` to
    build per event."""

    __slots__ = ("_after_source", "_after_time", "_tail", "destination")

    def __init__(
        self,
        *,
        model_id: str,
        deployment: str,
        namespace: str,
        predictor: str,
        protocol: str = WireProtocol.SELDON,
        source: str = "seldon-mesh",
        destination: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.destination = destination
        self._after_source = (
            f"\r\nCe-Specversion: {SPEC_VERSION}\r\nCe-Source: {_one_line(source)}\r\nCe-Type: "
        )
        self._after_time = f"\r\nCe-Modelid: {_one_line(model_id)}\r\nCe-Requestid: "
        self._tail = (
            f"\r\nCe-Inferenceservicename: {_one_line(deployment)}\r\nCe-Namespace: {_one_line(namespace)}"
            f"\r\nCe-Endpoint: {_one_line(predictor)}\r\nCe-Protocol: {_one_line(str(protocol))}"
            f"\r\nContent-Type: {_one_line(content_type)}\r\n"
        )

    def head(self, kind: EventType, request_id: str) -> bytes:
        if "\r" in request_id or "\n" in request_id:
            request_id = _one_line(request_id)
        return (
            f"Ce-Id: {_new_id()}{self._after_source}{kind}\r\nCe-Time: {_now()}"
            f"{self._after_time}{request_id}{self._tail}"
        ).encode()


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """The payload as sent to sinks: gzipped bodies (Triton clients compress) are inflated first."""
    if content_encoding is not None and content_encoding.strip().lower() == "gzip":
        return gzip.decompress(body)
    return body


def skip_logging_requested(headers: Mapping[str, str]) -> bool:
    """True when the request carries a non-empty `Seldon-Skip-Logging` header (keys lower-cased,
    as HTTP/2 and Envoy's ext_proc deliver them)."""
    return bool(headers.get(SKIP_LOGGING_HEADER, "").strip())
