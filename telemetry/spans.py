"""A sampled span without the SDK span's per-span machinery.

The SDK's `Tracer.start_span` + `Span` cost about 55-65 us per span here (sampler, attribute limits
behind a lock, each value cleaned, bounded event and link lists, a readable copy at the end); a mesh
process makes one to three per request. `LightSpan` keeps what an exporter reads (name, ids, parent,
kind, times, attributes, events, status) in plain fields and hands the span processor a `ReadableSpan`
when it ends, so exporters, `InMemorySpanExporter` and the OTLP encoder see what the SDK would give.

`Tracing.span` uses it only where the sampler's answer is known without asking: a sampled parent, or a
new trace at a ratio of 1.0; everything else goes through the SDK. Attribute values are taken as given
(the mesh sets strings, numbers and booleans only), with no limits.

A finished `LightSpan` reads as a `ReadableSpan` does (`name`, `parent`, `attributes`, ...), so the OTLP
encoder takes it as it is: when the process exports OTLP itself (`SpanOrigin.batch`), the span is handed
to the batch when it ends, with no `ReadableSpan` copy and no SDK span processor.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from time import time_ns
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes, AttributeValue

_UNSET = Status(StatusCode.UNSET)


class LightSpan(trace.Span):
    __slots__ = (
        "_attributes",
        "_context",
        "_end",
        "_events",
        "_kind",
        "_links",
        "_name",
        "_origin",
        "_parent",
        "_start",
        "_status",
    )

    def __init__(
        self,
        origin: SpanOrigin,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._origin = origin
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, Any] = dict(attributes)
        self._events: list[Event] = []
        self._links: list[Link] = []
        self._status = _UNSET
        self._start = time_ns()
        self._end: int | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end is None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._end is None:
            self._attributes.update(attributes)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self._end is None:
            self._events.append(Event(name, attributes, timestamp or time_ns()))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._end is None and context.is_valid:
            self._links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK: OK is final, UNSET changes nothing."""
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return
        new = status if isinstance(status, Status) else Status(status, description)
        if new.status_code is not StatusCode.UNSET:
            self._status = new

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The SDK's `exception` event: type, message, stack trace, escaped."""
        stacktrace = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        values: dict[str, Any] = {
            "exception.type": type(exception).__name__,
            "exception.message": str(exception),
            "exception.stacktrace": stacktrace,
            "exception.escaped": str(escaped),
        }
        if attributes:
            values.update(attributes)
        self.add_event("exception", values, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time or time_ns()
        origin = self._origin
        if origin.batch is not None:
            origin.batch.add(self)
        elif origin.processor is not None:
            origin.processor.on_end(self.readable())

    def readable(self) -> ReadableSpan:
        """The SDK's copy of this span, as its span processors take it."""
        origin = self._origin
        return ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=origin.resource,
            attributes=self._attributes,
            events=tuple(self._events),
            links=tuple(self._links),
            kind=self._kind,
            status=self._status,
            start_time=self._start,
            end_time=self._end,
            instrumentation_scope=origin.scope,
        )

    # --- read as a ReadableSpan (by the OTLP encoder) ---------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def context(self) -> SpanContext:
        return self._context

    @property
    def parent(self) -> SpanContext | None:
        return self._parent

    @property
    def kind(self) -> SpanKind:
        return self._kind

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self._attributes

    @property
    def events(self) -> list[Event]:
        return self._events

    @property
    def links(self) -> list[Link]:
        return self._links

    @property
    def status(self) -> Status:
        return self._status

    @property
    def start_time(self) -> int:
        return self._start

    @property
    def end_time(self) -> int | None:
        return self._end

    @property
    def resource(self) -> Resource:
        return self._origin.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        return self._origin.scope

    dropped_attributes = dropped_events = dropped_links = 0


class SpanBatch(Protocol):
    def add(self, span: LightSpan) -> None:
        """Take a span that just ended (called on the request's thread: cheap, no I/O)."""


class SpanOrigin:
    """What every span of one process shares: resource, instrumentation scope, and where a span goes when
    it ends: `batch` if set, else `processor` (as a `ReadableSpan`)."""

    __slots__ = ("batch", "processor", "resource", "scope")

    def __init__(
        self,
        resource: Resource,
        scope: InstrumentationScope,
        processor: SpanProcessor | None,
        batch: SpanBatch | None = None,
    ):
        self.resource = resource
        self.scope = scope
        self.processor = processor
        self.batch = batch
