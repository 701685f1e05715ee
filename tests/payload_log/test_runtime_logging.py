"""Runtime-side payload logging keeps what the logger guarantees: a real runtime (`--logger-mode all`)
answers while its sink is down and delivers every event once it is back; a full spool refuses (counted in
the runtime's metrics), answers all the same, and delivers everything it accepted; a SIGKILL of the
runtime loses no event of an answered request (the next process on the same spool root delivers them)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.mesh import wait_for
from tests.helpers.ports import free_port
from tests.helpers.runtime import RunningRuntime, start_runtime
from tests.observability.sink import RecordingSink
from tests.payload_log.conftest import BODY, GRAPHS, REQUEST, RESPONSE

ENV = {"SELDON_DEPLOYMENT_ID": "iris", "PREDICTOR_ID": "main", "SELDON_NAMESPACE": "default"}


def _args(sink: RecordingSink, spool: Path, metrics_port: int, *extra: str) -> list[str]:
    return [
        "--class", "Affine", "--code-dir", str(GRAPHS), "--name", "model", "--gateway-facing",
        "--logger-mode", "all", "--logger-url", sink.url, "--logger-spool-dir", str(spool),
        "--metrics-port", str(metrics_port), *extra,
    ]  # fmt: skip


def _predict(runtime: RunningRuntime, count: int, prefix: str) -> list[str]:
    answered = []
    with httpx.Client(base_url=runtime.http_url, timeout=30) as client:
        for i in range(count):
            puid = f"{prefix}-{i}"
            response = client.post("/api/v1.0/predictions", json=BODY, headers={"seldon-puid": puid})
            assert response.status_code == 200, response.text
            answered.append(puid)
    return answered


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/prometheus", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        total += sum(s.value for s in family.samples if s.name == name)
    return total


def _delivered_in_order(sink: RecordingSink, puids: list[str]) -> bool:
    seen: dict[str, list[str]] = {}
    for event in sink.snapshot():
        seen.setdefault(event.headers["Ce-Requestid"], []).append(event.headers["Ce-Type"])
    return all(seen.get(puid, [])[:2] == [REQUEST, RESPONSE] for puid in puids)


def test_a_sink_down_while_the_runtime_answers_gets_every_event_in_order_once_back(tmp_path: Path) -> None:
    sink = RecordingSink()  # not started: connection refused
    metrics = free_port()
    with start_runtime(_args(sink, tmp_path / "spool", metrics), env=ENV) as runtime:
        answered = _predict(runtime, 300, "down")
        assert sink.snapshot() == []
        sink.start()
        try:
            wait_for(lambda: _delivered_in_order(sink, answered), 60, "600 events after the outage")
            assert _metric(metrics, "seldon_mesh_payload_log_retried_total") > 0
        finally:
            sink.stop()


def test_a_full_spool_refuses_counted_answers_anyway_and_delivers_all_it_accepted(tmp_path: Path) -> None:
    sink = RecordingSink()
    metrics = free_port()
    args = _args(sink, tmp_path / "spool", metrics, "--logger-max-spool-bytes", "20000")
    with start_runtime(args, env=ENV) as runtime:
        _predict(runtime, 200, "full")  # about 450 bytes an event: the spool fills early
        refused = _metric(metrics, "seldon_mesh_payload_log_refused_total")
        accepted = _metric(metrics, "seldon_mesh_payload_log_accepted_total")
        assert refused > 0 and accepted > 0
        sink.start()
        try:
            wait_for(lambda: len(sink.snapshot()) >= accepted, 60, f"the {accepted:.0f} accepted events")
            wait_for(
                lambda: _metric(metrics, "seldon_mesh_payload_log_delivered_total") == accepted,
                30,
                "every accepted event counted delivered",
            )
            assert len(sink.ids()) == accepted
        finally:
            sink.stop()


def test_sigkill_of_the_runtime_loses_no_event_of_an_answered_request(tmp_path: Path) -> None:
    sink = RecordingSink()  # down: the killed runtime's events are all still spooled
    spool = tmp_path / "spool"
    with start_runtime(_args(sink, spool, free_port()), env=ENV) as runtime:
        answered = _predict(runtime, 200, "killed")
        runtime.process.send_signal(signal.SIGKILL)
        runtime.process.wait()
    sink.start()
    try:
        with start_runtime(_args(sink, spool, free_port()), env=ENV):
            wait_for(lambda: _delivered_in_order(sink, answered), 60, "the killed runtime's events")
    finally:
        sink.stop()
