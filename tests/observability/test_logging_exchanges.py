"""Single-model payload logging from observability-mode ext_proc streams, in process: the messages Envoy
sends on such a stream (request headers and body, response headers and body) become Seldon's request and
response CloudEvents for the predictor's node, delivered to a real HTTP sink; extproc answers nothing."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.config import NodeConfig, PredictorConfig
from extproc.graph import GraphError
from extproc.server.exchanges import (
    OBSERVED_REQUEST_HEADERS,
    OBSERVED_RESPONSE_HEADERS,
    ExchangeLog,
    is_observe_stream,
)
from generated.seldon import prediction_pb2 as v1_pb
from payload_log import PayloadLogger, SpoolingNodeEvents
from tests.observability.conftest import fast_settings
from tests.observability.sink import Received, RecordingSink, wait_for
from xds_controller.translate.extproc import OBSERVED_HEADERS, observe_filter

PATH = "/seldon/seldon/iris/api/v1.0/predictions"
REQUEST = b'{"data":{"ndarray":[[1.0,2.0]]}}'
RESPONSE = b'{"data":{"names":["t:0"],"ndarray":[[0.9]]},"meta":{}}'
METADATA = {"x-seldon-predictor": "default", "x-seldon-observe": "1"}


def _predictor(mode: str | None = "all") -> PredictorConfig:
    return PredictorConfig("seldon", "iris", "default", NodeConfig(name="classifier", logger_mode=mode))


def _lookup(namespace: str, name: str, predictor: str | None) -> PredictorConfig:
    if (namespace, name, predictor) == ("seldon", "iris", "default"):
        return _predictor()
    if name == "quiet":
        return PredictorConfig(namespace, name, "default", NodeConfig(name="classifier"))
    raise GraphError(503, "UNAVAILABLE", f"no graph for {namespace}/{name}")


def _headers(message: dict[str, str], end: bool = False) -> ep.HttpHeaders:
    values = [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in message.items()]
    return ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=values), end_of_stream=end)


def _exchange(
    request_headers: dict[str, str], request: bytes, status: str, response: bytes, **response_headers: str
) -> list[ep.ProcessingRequest]:
    return [
        ep.ProcessingRequest(request_headers=_headers(request_headers), observability_mode=True),
        ep.ProcessingRequest(
            request_body=ep.HttpBody(body=request, end_of_stream=True), observability_mode=True
        ),
        ep.ProcessingRequest(
            response_headers=_headers({":status": status, **response_headers}), observability_mode=True
        ),
        ep.ProcessingRequest(
            response_body=ep.HttpBody(body=response, end_of_stream=True), observability_mode=True
        ),
    ]


def _rest(puid: str, **extra: str) -> dict[str, str]:
    return {
        ":method": "POST",
        ":path": PATH,
        "content-type": "application/json",
        "x-request-id": puid,
        **extra,
    }


async def _stream(
    messages: list[ep.ProcessingRequest], read: list[int]
) -> AsyncIterator[ep.ProcessingRequest]:
    for message in messages:
        read[0] += 1
        yield message


def _consume(
    log: ExchangeLog, messages: list[ep.ProcessingRequest], metadata: dict[str, str] = METADATA
) -> int:
    """Run one stream through `log`; the number of messages it read."""
    read = [0]
    asyncio.run(log.consume(_stream(messages, read), metadata))
    return read[0]


@pytest.fixture
def logged(tmp_path: Path, sink: RecordingSink) -> Iterator[ExchangeLog]:
    logger = PayloadLogger(fast_settings(tmp_path, sink.url))
    logger.start()
    try:
        yield ExchangeLog(_lookup, SpoolingNodeEvents(logger, "http://extproc:9002/"))
    finally:
        logger.stop(drain_seconds=5)


def _events(sink: RecordingSink, puid: str, count: int) -> dict[str, Received]:
    """The events of `puid` by kind (request, response), once `count` of them arrived."""

    def of_puid() -> list[Received]:
        return [r for r in sink.snapshot() if r.headers["Ce-Requestid"] == puid]

    wait_for(lambda: len(of_puid()) >= count, 10, f"{count} events of {puid}")
    return {r.headers["Ce-Type"].rsplit(".", 1)[1]: r for r in of_puid()}


def test_only_streams_of_the_observe_filter_are_taken_for_logging() -> None:
    assert is_observe_stream(METADATA)
    assert not is_observe_stream({"x-seldon-predictor": "default"})
    assert not is_observe_stream({"x-seldon-observe": "0"})


def test_a_rest_exchange_logs_the_raw_request_and_response_as_seldon_does(
    logged: ExchangeLog, sink: RecordingSink
) -> None:
    assert _consume(logged, _exchange(_rest("r-1"), REQUEST, "200", RESPONSE)) == 4
    events = _events(sink, "r-1", 2)
    assert set(events) == {"request", "response"}
    assert events["request"].body == REQUEST  # the bytes the client sent, not a re-serialisation
    assert events["response"].body == RESPONSE
    for event in events.values():
        headers = event.headers
        assert headers["Ce-Modelid"] == "classifier"
        assert headers["Ce-Inferenceservicename"] == "iris"
        assert headers["Ce-Namespace"] == "seldon"
        assert headers["Ce-Endpoint"] == "default"
        assert headers["Ce-Protocol"] == "seldon"
        assert headers["Ce-Source"] == "http://extproc:9002/"
        assert headers["Ce-Specversion"] == "1.0"
        assert headers["Content-Type"] == "application/json"


def test_the_clients_seldon_puid_wins_over_the_request_id(logged: ExchangeLog, sink: RecordingSink) -> None:
    _consume(logged, _exchange(_rest("envoy-id", **{"seldon-puid": "client-puid"}), REQUEST, "200", RESPONSE))
    assert set(_events(sink, "client-puid", 2)) == {"request", "response"}


def test_gzip_bodies_are_inflated_and_v2_paths_are_v2(logged: ExchangeLog, sink: RecordingSink) -> None:
    headers = _rest("v2-1", **{"content-encoding": "gzip"}) | {
        ":path": "/seldon/seldon/iris/v2/models/m/infer"
    }
    v2 = b'{"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1.0]}]}'
    _consume(
        logged,
        _exchange(headers, gzip.compress(v2), "200", gzip.compress(v2), **{"content-encoding": "gzip"}),
    )
    events = _events(sink, "v2-1", 2)
    assert events["request"].body == v2 and events["response"].body == v2
    assert events["request"].headers["Ce-Protocol"] == "v2"


def test_streamed_chunks_are_joined_and_a_grpc_message_ends_by_its_length_not_trailers(
    logged: ExchangeLog, sink: RecordingSink
) -> None:
    message = v1_pb.SeldonMessage()
    message.data.ndarray.values.add().list_value.values.add().number_value = 3.0
    data = message.SerializeToString()
    framed = b"\x00" + len(data).to_bytes(4, "big") + data
    headers = {
        ":method": "POST",
        ":path": "/seldon.protos.Seldon/Predict",
        "content-type": "application/grpc",
        "seldon": "iris",
        "namespace": "seldon",
        "x-request-id": "g-1",
    }
    observe = {"observability_mode": True}
    messages = [
        ep.ProcessingRequest(request_headers=_headers(headers), **observe),
        ep.ProcessingRequest(request_body=ep.HttpBody(body=framed[:3]), **observe),
        ep.ProcessingRequest(request_body=ep.HttpBody(body=framed[3:], end_of_stream=True), **observe),
        ep.ProcessingRequest(
            response_headers=_headers({":status": "200", "content-type": "application/grpc"}), **observe
        ),
        # the response's DATA frame; its trailers (grpc-status) end the stream, and are not sent here
        ep.ProcessingRequest(response_body=ep.HttpBody(body=framed[:7]), **observe),
        ep.ProcessingRequest(response_body=ep.HttpBody(body=framed[7:]), **observe),
    ]
    assert _consume(logged, messages) == 6
    events = _events(sink, "g-1", 2)
    for event in events.values():
        assert json.loads(event.body) == {"data": {"ndarray": [[3.0]]}}
    # REST in chunks, the last with end_of_stream
    rest = [
        ep.ProcessingRequest(request_headers=_headers(_rest("c-1")), **observe),
        *(
            ep.ProcessingRequest(request_body=ep.HttpBody(body=REQUEST[i : i + 5]), **observe)
            for i in range(0, 30, 5)
        ),
        ep.ProcessingRequest(request_body=ep.HttpBody(body=REQUEST[30:], end_of_stream=True), **observe),
        ep.ProcessingRequest(response_headers=_headers({":status": "200"}), **observe),
        ep.ProcessingRequest(response_body=ep.HttpBody(body=RESPONSE[:10]), **observe),
        ep.ProcessingRequest(response_body=ep.HttpBody(body=RESPONSE[10:], end_of_stream=True), **observe),
    ]
    _consume(logged, rest)
    chunked = _events(sink, "c-1", 2)
    assert chunked["request"].body == REQUEST and chunked["response"].body == RESPONSE


def test_an_error_response_logs_the_request_only(logged: ExchangeLog, sink: RecordingSink) -> None:
    _consume(logged, _exchange(_rest("e-1"), REQUEST, "500", b'{"status":{"code":500}}'))
    _consume(logged, _exchange(_rest("e-2"), REQUEST, "200", RESPONSE))
    _events(sink, "e-2", 2)  # the later exchange is through, so the first one's events are too
    assert set(_events(sink, "e-1", 1)) == {"request"}


def test_skip_logging_unknown_predictors_other_paths_and_silent_nodes_log_nothing(
    logged: ExchangeLog, sink: RecordingSink
) -> None:
    skipped = _rest("s-1", **{"seldon-skip-logging": "true"})
    # each stream is left after its request headers: nothing of it will be logged
    assert _consume(logged, _exchange(skipped, REQUEST, "200", RESPONSE)) == 1
    unknown = _rest("s-2") | {":path": "/seldon/seldon/nobody/api/v1.0/predictions"}
    assert _consume(logged, _exchange(unknown, REQUEST, "200", RESPONSE)) == 1
    metadata_call = _rest("s-3") | {":method": "GET", ":path": "/seldon/seldon/iris/api/v1.0/metadata"}
    assert _consume(logged, _exchange(metadata_call, b"", "200", RESPONSE)) == 1
    quiet = _rest("s-4") | {":path": "/seldon/seldon/quiet/api/v1.0/predictions"}
    assert _consume(logged, _exchange(quiet, REQUEST, "200", RESPONSE)) == 1
    _consume(logged, _exchange(_rest("s-5"), REQUEST, "200", RESPONSE))
    _events(sink, "s-5", 2)
    assert {r.headers["Ce-Requestid"] for r in sink.snapshot()} == {"s-5"}


def test_a_garbled_stream_ends_quietly(logged: ExchangeLog, sink: RecordingSink) -> None:
    grpc = {":method": "POST", ":path": "/seldon.protos.Seldon/Predict", "content-type": "application/grpc",
            "seldon": "iris", "namespace": "seldon", "x-request-id": "bad-1"}  # fmt: skip
    # a body too short to be a gRPC message, a response body with no headers before it
    assert _consume(logged, _exchange(grpc, b"\x00\x00", "200", b"\x01\x00\x00\x00\x09xx")) == 4
    body_first = [ep.ProcessingRequest(response_body=ep.HttpBody(body=b"x", end_of_stream=True))]
    assert _consume(logged, body_first) == 1
    _consume(logged, _exchange(_rest("ok-1"), REQUEST, "200", RESPONSE))
    _events(sink, "ok-1", 2)
    assert {r.headers["Ce-Requestid"] for r in sink.snapshot()} == {"ok-1"}


def test_the_observe_filter_forwards_exactly_the_headers_an_exchange_reads() -> None:
    forwarded = set(OBSERVED_HEADERS)
    assert forwarded == OBSERVED_REQUEST_HEADERS | OBSERVED_RESPONSE_HEADERS
    config = ext_proc_pb2.ExternalProcessor()
    observe_filter().typed_config.Unpack(config)
    assert {p.exact for p in config.forward_rules.allowed_headers.patterns} == forwarded
