"""The detector server's contract with stand-in detectors (the real alibi-detect ones run in
test_detectors_mesh.py, in their own environment): answers, reply events, metrics, batching, and that an
event counts once whatever the logger redelivers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from detector_server.detectors import Detector, DriftDetector, Kind, OutlierDetector
from detector_server.metrics import DetectorMetrics
from detector_server.server import DetectorServer
from detector_server.settings import Settings
from tests.observability.sink import RecordingSink, wait_for

REQUEST = "io.seldon.serving.inference.request"


class SumOutliers:
    """Flags a row whose sum is over 10; scores it by that sum. Takes what IForest's predict takes."""

    def predict(self, x: npt.NDArray[Any], return_instance_score: bool = True) -> dict[str, Any]:
        sums = x.sum(axis=1)
        data = {"instance_score": sums if return_instance_score else None, "is_outlier": (sums > 10) * 1}
        return {"data": data, "meta": {"name": "SumOutliers", "detector_type": "outlier"}}


class MeanDrift:
    """Drift when the batch's mean is over 1; remembers the size of every batch it tested."""

    def __init__(self) -> None:
        self.tested: list[int] = []

    def predict(self, x: npt.NDArray[Any]) -> dict[str, Any]:
        self.tested.append(len(x))
        drift = int(x.mean() > 1)
        p_val = np.full(x.shape[1], 0.001 if drift else 0.5)
        data = {"is_drift": drift, "p_val": p_val, "distance": p_val * 0, "threshold": 0.05}
        return {"data": data, "meta": {"name": "MeanDrift", "detector_type": "drift"}}


@dataclass
class Running:
    url: str
    sink: RecordingSink
    session: aiohttp.ClientSession

    async def post(self, body: object, **headers: str) -> tuple[int, bytes]:
        base = {"Ce-Type": REQUEST, "Ce-Protocol": "seldon", "Content-Type": "application/json"}
        async with self.session.post(self.url, data=json.dumps(body), headers={**base, **headers}) as r:
            return r.status, await r.read()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with self.session.get(self.url + "v1/metrics") as response:
            text = await response.text()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                own = ("model_name", "detector")
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in own))
                out[(s.name, labels)] = s.value
        return out


def rows(*values: float) -> dict[str, Any]:
    return {"data": {"ndarray": [[v, v] for v in values]}}


Factory = Callable[[Detector, Kind], Any]


@pytest_asyncio.fixture
async def start(tmp_path: Path) -> AsyncIterator[Factory]:
    sink = RecordingSink()
    sink.start()
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def factory(detector: Detector, kind: Kind) -> Running:
        settings = Settings(kind=kind, storage_uri=tmp_path, model_name="d", reply_url=sink.url)
        server = DetectorServer(settings, detector, DetectorMetrics("d", kind))
        runner = web.AppRunner(server.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return Running(f"http://127.0.0.1:{port}/", sink, session)

    yield factory
    await session.close()
    for runner in runners:
        await runner.cleanup()
    sink.stop()


@pytest.mark.asyncio
async def test_an_outlier_is_flagged_in_the_answer_the_reply_event_and_the_metrics(start: Factory) -> None:
    running: Running = await start(OutlierDetector(SumOutliers()), Kind.OUTLIER)
    status, body = await running.post(
        rows(1, 20), **{"Ce-Id": "e1", "Ce-Requestid": "puid-1", "Ce-Inferenceservicename": "iris"}
    )
    assert status == 200
    answer = json.loads(body)
    assert answer["data"]["is_outlier"] == [0, 1]
    assert "instance_score" not in answer["data"]  # not asked for (Alibi-Detect-Return-Instance-Score)
    wait_for(lambda: len(running.sink.snapshot()) == 1, 10, "the reply event")
    (event,) = running.sink.snapshot()
    assert event.headers["Ce-Id"] == "e1"
    assert event.headers["Ce-Type"] == "io.seldon.serving.inference.outlier"
    assert event.headers["Ce-Source"] == "io.seldon.serving.d"
    assert event.headers["Ce-Requestid"] == "puid-1"
    assert event.headers["Ce-Inferenceservicename"] == "iris"
    assert json.loads(event.body)["data"]["is_outlier"] == [0, 1]
    metrics = await running.metrics()
    assert metrics[("seldon_mesh_detector_outliers_total", ())] == 1
    assert metrics[("seldon_mesh_detector_instances_total", ())] == 2
    assert metrics[("seldon_metric_outlier_instance_score", (("index", "1"),))] == 40
    assert metrics[("seldon_metric_outlier_is_outlier", (("index", "0"),))] == 0


@pytest.mark.asyncio
async def test_scores_are_answered_when_asked_for(start: Factory) -> None:
    running: Running = await start(OutlierDetector(SumOutliers()), Kind.OUTLIER)
    status, body = await running.post(rows(3), **{"Alibi-Detect-Return-Instance-Score": "true"})
    assert status == 200
    assert json.loads(body)["data"]["instance_score"] == [6]


@pytest.mark.asyncio
async def test_a_redelivered_event_is_acknowledged_and_counted_once(start: Factory) -> None:
    running: Running = await start(OutlierDetector(SumOutliers()), Kind.OUTLIER)
    for _ in range(3):
        status, _body = await running.post(rows(20), **{"Ce-Id": "same"})
        assert status == 200
    metrics = await running.metrics()
    assert metrics[("seldon_mesh_detector_outliers_total", ())] == 1
    assert metrics[("seldon_mesh_detector_events_total", (("outcome", "duplicate"),))] == 2
    assert len(running.sink.snapshot()) == 1


@pytest.mark.asyncio
async def test_responses_and_feedback_are_ignored(start: Factory) -> None:
    running: Running = await start(OutlierDetector(SumOutliers()), Kind.OUTLIER)
    for event_type in ("io.seldon.serving.inference.response", "io.seldon.serving.feedback"):
        status, body = await running.post(rows(20), **{"Ce-Type": event_type})
        assert (status, body) == (200, b"")
    metrics = await running.metrics()
    assert metrics[("seldon_mesh_detector_events_total", (("outcome", "ignored"),))] == 2
    assert metrics[("seldon_mesh_detector_outliers_total", ())] == 0


@pytest.mark.asyncio
async def test_a_body_the_detector_cannot_read_is_refused_for_good(start: Factory) -> None:
    running: Running = await start(OutlierDetector(SumOutliers()), Kind.OUTLIER)
    status, body = await running.post({"data": {"ndarray": [[1, 2], [3]]}})
    assert status == 400  # the payload logger dead-letters a 4xx: retrying cannot help
    assert json.loads(body)["status"]["status"] == "FAILURE"
    assert not running.sink.snapshot()


@pytest.mark.asyncio
async def test_a_reply_url_that_is_down_refuses_the_event_for_a_retry(start: Factory) -> None:
    running: Running = await start(OutlierDetector(SumOutliers()), Kind.OUTLIER)
    running.sink.status = 503
    status, _body = await running.post(rows(20), **{"Ce-Id": "retry-me"})
    assert status == 503  # the logger retries a 5xx
    assert (await running.metrics())[("seldon_mesh_detector_outliers_total", ())] == 0
    running.sink.status = 200
    status, _body = await running.post(rows(20), **{"Ce-Id": "retry-me"})
    assert status == 200
    metrics = await running.metrics()
    assert metrics[("seldon_mesh_detector_outliers_total", ())] == 1
    assert metrics[("seldon_mesh_detector_events_total", (("outcome", "reply_failed"),))] == 1


@pytest.mark.asyncio
async def test_drift_is_tested_once_a_batch_is_full_then_a_new_batch_starts(start: Factory) -> None:
    model = MeanDrift()
    running: Running = await start(DriftDetector(model, batch_size=4), Kind.DRIFT)
    for value in (0.1, 0.2, 0.3):
        status, body = await running.post(rows(value))
        assert (status, body) == (200, b"")  # the batch fills: nothing to report yet
    status, body = await running.post(rows(0.4))
    assert status == 200
    assert json.loads(body)["data"]["is_drift"] == 0
    for _ in range(2):
        status, body = await running.post(rows(5, 5))
    assert json.loads(body)["data"]["is_drift"] == 1
    assert model.tested == [4, 4]
    wait_for(lambda: len(running.sink.snapshot()) == 2, 10, "two drift events")
    types = [e.headers["Ce-Type"] for e in running.sink.snapshot()]
    assert types == ["io.seldon.serving.inference.drift"] * 2
    metrics = await running.metrics()
    assert metrics[("seldon_mesh_detector_drift_tests_total", (("drift", "true"),))] == 1
    assert metrics[("seldon_mesh_detector_drift_tests_total", (("drift", "false"),))] == 1
    assert metrics[("seldon_metric_drift_p_val", (("index", "1"),))] == 0.001


@pytest.mark.asyncio
async def test_a_batch_whose_reply_failed_is_not_lost_nor_doubled(start: Factory) -> None:
    model = MeanDrift()
    running: Running = await start(DriftDetector(model, batch_size=2), Kind.DRIFT)
    assert (await running.post(rows(5), **{"Ce-Id": "a"}))[0] == 200
    running.sink.status = 500
    assert (await running.post(rows(5), **{"Ce-Id": "b"}))[0] == 503
    running.sink.status = 200
    assert (await running.post(rows(5), **{"Ce-Id": "b"}))[0] == 200  # the logger's redelivery
    assert model.tested == [2, 2]  # tested again on the same two events, not three
    assert len(running.sink.snapshot()) == 2  # the refused reply (500) and the delivered one
    assert json.loads(running.sink.snapshot()[-1].body)["data"]["is_drift"] == 1


@pytest.mark.asyncio
async def test_rows_of_another_width_cannot_join_a_batch(start: Factory) -> None:
    running: Running = await start(DriftDetector(MeanDrift(), batch_size=10), Kind.DRIFT)
    assert (await running.post(rows(1)))[0] == 200
    status, _body = await running.post({"data": {"ndarray": [[1, 2, 3]]}})
    assert status == 400


class Broken:
    def predict(self, x: npt.NDArray[Any]) -> dict[str, Any]:
        raise RuntimeError("out of luck")


@pytest.mark.asyncio
async def test_a_detector_that_fails_answers_500_and_the_server_stays_up(start: Factory) -> None:
    running: Running = await start(OutlierDetector(Broken()), Kind.OUTLIER)
    for _ in range(2):
        status, body = await running.post(rows(1))
        assert status == 500  # retried by the logger: the failure may be the detector's passing trouble
        assert json.loads(body)["status"]["reason"] == "DETECTOR_ERROR"
    metrics = await running.metrics()
    assert metrics[("seldon_mesh_detector_events_total", (("outcome", "failed"),))] == 2
