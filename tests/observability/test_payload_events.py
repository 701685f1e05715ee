"""The Ce-* headers and bodies of logged events are Seldon's (reference section 5.1)."""

from __future__ import annotations

import gzip
import json
import re
import uuid
from pathlib import Path

from payload_log import (
    EventType,
    LogOutcome,
    PayloadEvent,
    PayloadLogger,
    decode_body,
    skip_logging_requested,
)
from payload_log.spool import Spool
from tests.observability.conftest import fast_settings
from tests.observability.events import REQUEST_BODY, RESPONSE_BODY, pair
from tests.observability.sink import RecordingSink, wait_for

CE_HEADERS = {
    "Ce-Id",
    "Ce-Specversion",
    "Ce-Source",
    "Ce-Type",
    "Ce-Time",
    "Ce-Modelid",
    "Ce-Requestid",
    "Ce-Inferenceservicename",
    "Ce-Namespace",
    "Ce-Endpoint",
    "Ce-Protocol",
}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_request_and_response_events_carry_seldons_headers_and_bodies(
    tmp_path: Path, sink: RecordingSink
) -> None:
    logger = PayloadLogger(fast_settings(tmp_path, sink.url))
    logger.start()
    try:
        request, response = pair("puid-1")
        assert logger.log(request) is LogOutcome.ACCEPTED
        assert logger.log(response) is LogOutcome.ACCEPTED
        wait_for(lambda: len(sink.snapshot()) == 2, 10, "both events")
    finally:
        logger.stop()

    got = {r.headers["Ce-Type"]: r for r in sink.snapshot()}
    assert set(got) == {"io.seldon.serving.inference.request", "io.seldon.serving.inference.response"}
    for received, body in (
        (got["io.seldon.serving.inference.request"], REQUEST_BODY),
        (got["io.seldon.serving.inference.response"], RESPONSE_BODY),
    ):
        headers = received.headers
        assert set(headers) >= CE_HEADERS
        uuid.UUID(headers["Ce-Id"])
        assert headers["Ce-Specversion"] == "1.0"
        assert headers["Ce-Source"] == "http://gateway.seldon:8000/"
        assert RFC3339.match(headers["Ce-Time"]), headers["Ce-Time"]
        assert headers["Ce-Modelid"] == "classifier"
        assert headers["Ce-Requestid"] == "puid-1"
        assert headers["Ce-Inferenceservicename"] == "iris"
        assert headers["Ce-Namespace"] == "seldon"
        assert headers["Ce-Endpoint"] == "default"
        assert headers["Ce-Protocol"] == "seldon"
        assert headers["Content-Type"] == "application/json"
        assert json.loads(received.body) == body
    assert (
        got["io.seldon.serving.inference.request"].headers["Ce-Id"]
        != (got["io.seldon.serving.inference.response"].headers["Ce-Id"])
    )


def test_feedback_type_and_gzip_payloads_are_inflated() -> None:
    raw = b'{"reward": 1.0}'
    event = PayloadEvent(
        type=EventType.FEEDBACK,
        body=decode_body(gzip.compress(raw), "gzip"),
        content_type="application/json",
        request_id="r",
        model_id="m",
        deployment="d",
        namespace="n",
        predictor="p",
    )
    assert event.headers()["Ce-Type"] == "io.seldon.serving.feedback"
    assert event.body == raw
    assert decode_body(raw, None) == raw


def test_skip_logging_header_suppresses_the_event(tmp_path: Path, sink: RecordingSink) -> None:
    assert skip_logging_requested({"seldon-skip-logging": "true"})
    assert not skip_logging_requested({"seldon-skip-logging": ""})
    assert not skip_logging_requested({})
    logger = PayloadLogger(fast_settings(tmp_path, sink.url))
    logger.start()
    try:
        request, _ = pair("skipped")
        assert logger.log(request, skip_logging=True) is LogOutcome.SKIPPED
        marker, _ = pair("marker")
        assert logger.log(marker) is LogOutcome.ACCEPTED
        wait_for(lambda: len(sink.snapshot()) == 1, 10, "the marker event")
    finally:
        logger.stop()
    assert [r.headers["Ce-Requestid"] for r in sink.snapshot()] == ["marker"]
    assert logger.stats().accepted == 1


def test_node_logger_url_overrides_the_default_endpoint_and_none_at_all_is_refused(
    tmp_path: Path, sink: RecordingSink
) -> None:
    logger = PayloadLogger(fast_settings(tmp_path, None))
    logger.start()
    try:
        orphan, _ = pair("orphan")
        assert logger.log(orphan) is LogOutcome.REFUSED_NO_DESTINATION
        routed, _ = pair("routed", destination=sink.url)
        assert logger.log(routed) is LogOutcome.ACCEPTED
        wait_for(lambda: len(sink.snapshot()) == 1, 10, "the routed event")
    finally:
        logger.stop()
    assert logger.stats().refused == 1


def test_json_lines_sink_writes_cloudevents_json(tmp_path: Path) -> None:
    out = tmp_path / "out" / "events.jsonl"
    logger = PayloadLogger(fast_settings(tmp_path / "spool", f"file://{out}"))
    logger.start()
    try:
        request, response = pair("puid-file")
        assert logger.log(request).accepted
        assert logger.log(response).accepted
        wait_for(lambda: out.exists() and len(out.read_bytes().splitlines()) == 2, 10, "two lines")
    finally:
        logger.stop()
    lines = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["type"] for line in lines] == [
        "io.seldon.serving.inference.request",
        "io.seldon.serving.inference.response",
    ]
    assert lines[0]["specversion"] == "1.0"
    assert lines[0]["requestid"] == "puid-file"
    assert lines[0]["inferenceservicename"] == "iris"
    assert lines[0]["datacontenttype"] == "application/json"
    assert lines[0]["data"] == REQUEST_BODY
    assert lines[1]["data"] == RESPONSE_BODY


def test_rejected_events_are_dead_lettered_not_dropped(tmp_path: Path) -> None:
    rejecting = RecordingSink(status=400)
    rejecting.start()
    logger = PayloadLogger(fast_settings(tmp_path, rejecting.url))
    logger.start()
    try:
        request, _ = pair("bad")
        assert logger.log(request).accepted
        wait_for(lambda: logger.stats().dead_lettered == 1, 10, "a dead letter")
    finally:
        logger.stop()
        rejecting.stop()
    stats = logger.stats()
    assert stats.spooled_events == 0
    assert stats.delivered == 0
    spool = Spool(tmp_path, writer=False)
    try:
        assert spool.dead_letter_count() == 1  # kept on disk for an operator, not dropped
    finally:
        spool.close()


def test_json_lines_sink_writes_every_event_of_a_batch_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out" / "events.jsonl"
    logger = PayloadLogger(fast_settings(tmp_path / "spool", f"file://{out}"))
    logger.start()
    try:
        events = [e for n in range(100) for e in pair(f"puid-{n}")]
        for event in events:  # posted as node events are: gathered into a few batches
            logger.post(event)
        wait_for(lambda: out.exists() and len(out.read_bytes().splitlines()) == 200, 10, "200 lines")
    finally:
        logger.stop()
    lines = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(e.id for e in events)
    kinds: dict[str, list[str]] = {}
    for line in lines:
        kinds.setdefault(line["requestid"], []).append(line["type"].rsplit(".", 1)[1])
    assert all(order == ["request", "response"] for order in kinds.values())  # in order per request
