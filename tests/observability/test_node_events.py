"""The executor's NodeEvents hook logs a node's request and response as the node's `logger` asks, and a
request's `written()` returns only once its events are committed to the spool."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from extproc.codecs import Payload
from extproc.config import NodeConfig, PredictorConfig
from extproc.events import NodeEvents
from payload_log import PayloadLogger, SpoolingNodeEvents
from tests.observability.conftest import fast_settings
from tests.observability.sink import RecordingSink, wait_for

SOURCE = "http://extproc.seldon:9002/"


def test_nodes_log_what_their_logger_mode_asks_to_their_url_or_the_default(
    tmp_path: Path, sink: RecordingSink
) -> None:
    own_url = RecordingSink()
    own_url.start()
    both = NodeConfig(name="transformer", logger_mode="all")
    requests_only = NodeConfig(name="classifier", logger_mode="request", logger_url=own_url.url)
    predictor = PredictorConfig(namespace="seldon", deployment="iris", name="default", graph=both)
    logger = PayloadLogger(fast_settings(tmp_path, sink.url))
    events: NodeEvents = SpoolingNodeEvents(logger, SOURCE)
    seldon = Payload.seldon({"data": {"ndarray": [[1.0, 2.0]]}, "meta": {"puid": "p-1"}})
    v2 = Payload.v2([{"name": "input-0", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}])
    logger.start()

    async def one_request() -> int:
        request = events.open(predictor, "p-1")
        request.request(both, seldon)
        request.request(requests_only, seldon)
        request.response(both, v2)
        await request.written()
        return logger.stats().accepted  # read before anything else could run: written means on disk

    try:
        assert asyncio.run(one_request()) == 3
        wait_for(lambda: len(sink.snapshot()) == 2 and len(own_url.snapshot()) == 1, 10, "three events")
    finally:
        logger.stop()
        own_url.stop()
    assert logger.stats().accepted == 3
    request, response = sorted(sink.snapshot(), key=lambda r: r.headers["Ce-Type"])
    assert request.headers["Ce-Type"] == "io.seldon.serving.inference.request"
    assert request.headers["Ce-Modelid"] == "transformer"
    assert request.headers["Ce-Requestid"] == "p-1"
    assert request.headers["Ce-Inferenceservicename"] == "iris"
    assert request.headers["Ce-Namespace"] == "seldon"
    assert request.headers["Ce-Endpoint"] == "default"
    assert request.headers["Ce-Protocol"] == "seldon"
    assert request.headers["Ce-Source"] == SOURCE
    assert json.loads(request.body) == {"data": {"ndarray": [[1.0, 2.0]]}}
    assert response.headers["Ce-Protocol"] == "v2"
    assert json.loads(response.body)["tensors"][0]["name"] == "input-0"
    (classifier,) = own_url.snapshot()
    assert classifier.headers["Ce-Modelid"] == "classifier"
    assert classifier.headers["Ce-Type"] == "io.seldon.serving.inference.request"
