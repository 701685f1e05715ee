"""telemetry.spans: the spans `Tracing.span` makes without the SDK's span machinery read, once exported,
as the SDK's spans would (ids, parent, kind, attributes, events, status), and the sampler still decides
where its answer is not known in advance."""

from __future__ import annotations

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from telemetry.spans import LightSpan
from telemetry.tracing import Tracing, TracingSettings, attributes, carrier

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def _tracing(ratio: float = 1.0) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing(TracingSettings(sampling_ratio=ratio, batch=False), exporter=exporter), exporter


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_light_spans_continue_the_callers_trace_with_parent_links_and_attributes() -> None:
    tracing, exporter = _tracing()
    parent = tracing.extract({"traceparent": SAMPLED, "tracestate": "k=v"})
    with tracing.span("extproc predictions", parent, attributes("iris", "default")) as server:
        assert isinstance(server, LightSpan)
        server.set_attribute("seldon.code", "200")
        with tracing.span("node model predict", None, attributes("iris", "default", "model"), client=True):
            headers: dict[str, str] = {}
            tracing.inject(headers)
    spans = _by_name(exporter)
    server_span, client_span = spans["extproc predictions"], spans["node model predict"]
    assert server_span.context is not None and client_span.context is not None
    assert server_span.context.trace_id == client_span.context.trace_id == int(SAMPLED.split("-")[1], 16)
    assert server_span.parent is not None and server_span.parent.span_id == int(SAMPLED.split("-")[2], 16)
    assert server_span.parent.is_remote and dict(server_span.context.trace_state) == {"k": "v"}
    assert client_span.parent is not None and client_span.parent.span_id == server_span.context.span_id
    assert headers["traceparent"].split("-")[2] == f"{client_span.context.span_id:016x}"
    assert server_span.kind is SpanKind.SERVER and client_span.kind is SpanKind.CLIENT
    assert dict(server_span.attributes or {}) == {
        "seldon.deployment": "iris", "seldon.predictor": "default", "seldon.code": "200"
    }  # fmt: skip
    assert dict(client_span.attributes or {})["seldon.node"] == "model"
    assert server_span.start_time is not None and server_span.end_time is not None
    assert server_span.start_time <= client_span.start_time <= server_span.end_time  # type: ignore[operator]
    assert server_span.resource.attributes["service.name"] == "seldon-mesh"
    assert server_span.instrumentation_scope is not None
    assert server_span.instrumentation_scope.name == "seldon-mesh"


def test_a_new_trace_at_ratio_one_is_a_light_root_span() -> None:
    tracing, exporter = _tracing()
    with tracing.span("runtime predict", tracing.extract({}), attributes("iris", "default", "m")) as span:
        assert isinstance(span, LightSpan)
    (root,) = exporter.get_finished_spans()
    assert root.parent is None and root.context is not None and root.context.trace_flags.sampled


def test_an_exception_is_recorded_and_sets_an_error_status_as_the_sdk_does() -> None:
    tracing, exporter = _tracing()
    with pytest.raises(ValueError), tracing.span("runtime predict", None, attributes("d", "p")):
        raise ValueError("bad input")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: bad input"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None and event.attributes["exception.type"] == "ValueError"
    assert "bad input" in str(event.attributes["exception.stacktrace"])


def test_status_ok_is_final_and_unset_changes_nothing() -> None:
    tracing, exporter = _tracing()
    with tracing.span("a", None, attributes("d", "p")) as span:
        span.set_status(Status(StatusCode.UNSET))
        span.set_status(Status(StatusCode.OK))
        span.set_status(Status(StatusCode.ERROR, "late"))
    (ended,) = exporter.get_finished_spans()
    assert ended.status.status_code is StatusCode.OK
    span.set_attribute("after", "end")  # ignored once ended
    assert "after" not in (ended.attributes or {})


def test_the_sampler_decides_for_unsampled_parents_and_ratios_below_one() -> None:
    tracing, exporter = _tracing()
    with tracing.span("dropped", tracing.extract({"traceparent": UNSAMPLED}), attributes("d", "p")) as span:
        assert not isinstance(span, LightSpan) and not span.is_recording()
    never, never_exported = _tracing(ratio=0.0)
    with never.span("root", None, attributes("d", "p")) as span:
        assert not span.is_recording()
        with never.span("child", None, attributes("d", "p"), client=True) as child:
            assert not child.is_recording()
    assert exporter.get_finished_spans() == () and never_exported.get_finished_spans() == ()
    sampled_parent = never.extract({"traceparent": SAMPLED})
    with never.span("kept", sampled_parent, attributes("d", "p")) as span:
        assert isinstance(span, LightSpan) and trace.get_current_span() is span
    assert [s.name for s in never_exported.get_finished_spans()] == ["kept"]


def test_open_and_close_make_the_span_current_between_them_and_restore_the_context_after() -> None:
    tracing, exporter = _tracing()
    before = trace.get_current_span()
    span, token = tracing.open("runtime predict", tracing.extract({"traceparent": SAMPLED}), {})
    assert trace.get_current_span() is span
    with tracing.span("node m", None, attributes("d", "p", "m"), client=True) as child:
        assert trace.get_current_span() is child
    assert trace.get_current_span() is span
    tracing.close(span, token, KeyboardInterrupt())  # not an Exception: not recorded, as use_span
    assert trace.get_current_span() is before
    spans = _by_name(exporter)
    assert spans["node m"].parent == spans["runtime predict"].context
    assert spans["runtime predict"].status.status_code is StatusCode.UNSET
    assert spans["runtime predict"].events == ()


def test_open_under_headers_gives_the_span_open_gives_under_their_extracted_context() -> None:
    carriers = [
        {"traceparent": SAMPLED},  # what Envoy sends, with and without an empty tracestate
        {"traceparent": SAMPLED, "tracestate": ""},
        {"traceparent": SAMPLED, "tracestate": "k=v"},
        {"traceparent": UNSAMPLED},
        {"traceparent": SAMPLED.replace("-01", "-03")},  # sampled, with a flag bit we do not know
        {"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01"},  # invalid ids: a new trace
        {"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"uber-trace-id": "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1", "traceparent": SAMPLED},
        {"b3": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"},
        {},
    ]
    for headers in carriers:
        tracing, exporter = _tracing()
        before = trace.get_current_span()
        span, token = tracing.open_under("runtime predict", headers, attributes("d", "p", "n"))
        assert trace.get_current_span() is span
        tracing.close(span, token)
        assert trace.get_current_span() is before
        parent = tracing.extract_lowercase(headers)
        expected, token = tracing.open("runtime predict", parent, {})
        tracing.close(expected, token)
        ours, theirs = span.get_span_context(), expected.get_span_context()
        assert type(span) is type(expected), headers
        assert ours.trace_flags == theirs.trace_flags and ours.trace_state == theirs.trace_state, headers
        if trace.get_current_span(parent).get_span_context().is_valid:  # else both start a new trace
            assert ours.trace_id == theirs.trace_id, headers
        (got,) = [s for s in exporter.get_finished_spans() if s.context == ours] or [None]
        (want,) = [s for s in exporter.get_finished_spans() if s.context == theirs] or [None]
        assert (got is None) == (want is None), headers  # both exported, or both sampled out
        if got is not None and want is not None:
            assert got.parent == want.parent and got.kind == want.kind == SpanKind.SERVER, headers


def test_the_carrier_of_raw_headers_is_what_a_look_at_each_name_gives() -> None:
    def each_name(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
        names = {"traceparent", "tracestate", "uber-trace-id", "b3"} | {
            f"x-b3-{n}" for n in ("traceid", "spanid")
        }
        names |= {"x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"}
        return {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in raw
            if k.decode("latin-1") in names or k.startswith(b"uberctx-")
        }

    raws = [
        [(b"host", b"h"), (b"traceparent", SAMPLED.encode()), (b"x-seldon-mesh-caller", b"extproc")],
        [(b"traceparent", b"first"), (b"tracestate", b"k=v"), (b"traceparent", SAMPLED.encode())],
        [(b"uberctx-user", b"alice"), (b"uber-trace-id", b"1:2:0:1"), (b"x-b3-sampled", b"1")],
        [(b"x-uberctx-not-baggage", b"x"), (b"b3", b"1-2-1"), (b"traceparent", b"\xe9")],
        [(b"content-type", b"application/json")],
        [],
    ]
    for raw in raws:
        assert carrier(raw) == each_name(raw), raw


def test_extract_reads_header_names_in_any_case() -> None:
    tracing, _ = _tracing()
    for headers in (
        {"Traceparent": SAMPLED},
        {"traceparent": UNSAMPLED, "TRACEPARENT": SAMPLED},
        {"traceparent": SAMPLED, "X-B3-TraceId": "4bf92f3577b34da6a3ce929d0e0e4736"},
        {"traceparent": SAMPLED, "user-agent": "curl"},
    ):
        lowered = {k.lower(): v for k, v in headers.items()}
        ours = trace.get_current_span(tracing.extract(headers)).get_span_context()
        assert ours == trace.get_current_span(tracing.extract_lowercase(lowered)).get_span_context()
        assert ours.is_valid, headers


def test_a_span_made_current_keeps_the_rest_of_the_current_context() -> None:
    tracing, _ = _tracing()
    token = context.attach(context.set_value("tenant", "acme"))
    try:
        span, opened = tracing.open("runtime predict", tracing.extract({"traceparent": SAMPLED}), {})
        assert trace.get_current_span() is span and context.get_value("tenant") == "acme"
        child, child_opened = tracing.open("node m", None, {}, client=True)
        assert trace.get_current_span() is child and context.get_value("tenant") == "acme"
        tracing.close(child, child_opened)
        tracing.close(span, opened)
        assert trace.get_current_span() is trace.INVALID_SPAN and context.get_value("tenant") == "acme"
    finally:
        context.detach(token)
