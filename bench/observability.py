"""Observability benchmarks: the payload spool's write path (our segment files against a bare segment file,
and its CPU per event against a bare SQLite commit, the spool before), the payload logger's accept and
delivery rates against the issue's 2,000 events/s, and the cost of a traced span.

The issue's overhead targets (logging every request and response costs under 10 % of throughput, tracing
at 100 % under 15 %) are measured here on the real graph executor in-process, over instant fake nodes: an
upper bound on the Python-side cost, since real node calls add network time that dilutes it, and end to
end (`_end_to_end`): real `seldon-mesh up`s, a two-node graph (transformer -> model, Python class
runtimes) through the gateway, plain against the same graph with both nodes logging every request and
response to a local HTTP sink, and against a second mesh, up at the same time, with
`OTEL_EXPORTER_OTLP_ENDPOINT` at 100 % sampling exporting to a local OTLP receiver; and a single-model
predictor (served by Envoy directly) against the same model logging every request and response (its
runtime logs them in process, `model_runtime.payloads`); the cases are interleaved in each round.
Throughput with 16 requests in flight; the best of the rounds per case. Beside it, the CPU each request
costs all processes of the mesh and the sink (the OTLP receiver runs in this process and is not counted),
the least of the rounds: steadier than throughput when other work shares the machine; beside that, the
mesh's processes alone (without the sink) and the split per process kind (envoy, extproc, runtime, the
`up` process, sink) of the round with the least total, so the note can say where logging and tracing
spend. A single-model predictor traced at 100 % (Envoy's span and the runtime's) runs in the traced mesh
too. Beside extproc's CPU per logged single-model request, the floor of its transport: the server CPU of
a bare grpc.aio ExternalProcessor reading observe-shaped streams (6 messages, no logging),
`_bare_stream_us`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.report import Row, print_table, write_results
from bench.runtime import run_wrk

if TYPE_CHECKING:
    from payload_log import FsyncPolicy
    from payload_log.spool import SpooledEvent
    from tests.helpers.mesh import Mesh
from payload_log import EventType, PayloadEvent

EVENT_BODY = b'{"data":{"names":["a","b","c","d"],"ndarray":[[1.0,2.0,3.0,4.0]]},"meta":{}}' + b" " * 180
TARGET = 2000.0  # events/s, the load
SPOOL_EVENTS = 3000


def _segment_rate(directory: Path, batch: int) -> float:
    """Bare segment-file appends (a length and the body per event, one fsync per batch): the floor."""
    with (directory / f"segment-{batch}.log").open("ab") as segment:
        started = time.perf_counter()
        for _ in range(0, SPOOL_EVENTS, batch):
            for _ in range(batch):
                segment.write(len(EVENT_BODY).to_bytes(4, "big") + EVENT_BODY)
            segment.flush()
            os.fsync(segment.fileno())
        return SPOOL_EVENTS / (time.perf_counter() - started)


def _records(batch: int) -> list[SpooledEvent]:
    from payload_log.spool import SpooledEvent

    event = PayloadEvent(EventType.REQUEST, EVENT_BODY, "application/json", "r" * 20, "m", "d", "n", "p")
    head = event.head()
    return [SpooledEvent("http://sink/", 0, "r" * 20, head, EVENT_BODY) for _ in range(batch)]


def _spool_rate(directory: Path, batch: int) -> float:
    """Our spool (`payload_log.spool`, fsync=group): one append per batch, then its fdatasync."""
    from payload_log.settings import FsyncPolicy
    from payload_log.spool import Spool

    spool = Spool(directory / f"spool-{batch}", FsyncPolicy.GROUP, writer=True)
    try:
        started = time.perf_counter()
        for _ in range(0, SPOOL_EVENTS, batch):
            with spool.lock:
                spool.append(_records(batch))
                fds, _ = spool.sync_targets()
            for fd in fds:
                os.fdatasync(fd)
                os.close(fd)
        return SPOOL_EVENTS / (time.perf_counter() - started)
    finally:
        spool.close()


def _commit_floor(directory: Path) -> dict[str, float]:
    """The floor of durable logging, CPU (process time, this thread) per event at a few events per write,
    written then forgotten once delivered, as the logger does: our segment spool (`spool_*`: append, and
    `done`, which deletes a segment once all of it was delivered; with an fdatasync per write for `group`)
    against a bare SQLite WAL commit of the same rows, insert then delete (`sqlite_*`, the spool before the
    segments; `synchronous=FULL` for `group`, `NORMAL` for `os`)."""
    import sqlite3

    from payload_log.settings import FsyncPolicy
    from payload_log.spool import Spool

    found: dict[str, float] = {}
    for policy in (FsyncPolicy.GROUP, FsyncPolicy.OS):
        for batch in (2, 16, 64):
            writes = max(50, 3000 // batch)
            spool = Spool(directory / f"floor-{policy}-{batch}", policy, writer=True, segment_bytes=1 << 20)
            try:
                batches = [_records(batch) for _ in range(writes)]
                cpu = time.process_time()
                previous: list[SpooledEvent] = []
                for records in batches:
                    with spool.lock:
                        spool.append(records)
                        fds, _ = spool.sync_targets() if policy is FsyncPolicy.GROUP else ([], False)
                    for fd in fds:
                        os.fdatasync(fd)
                        os.close(fd)
                    spool.done(previous)
                    previous = records
                spool.done(previous)
                found[f"spool_{policy}_{batch}_cpu_us"] = (time.process_time() - cpu) / (writes * batch) * 1e6
            finally:
                spool.close()
            db = sqlite3.connect(directory / f"floor-{policy}-{batch}.sqlite3", isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={'FULL' if policy is FsyncPolicy.GROUP else 'NORMAL'}")
                db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)")
                insert = "INSERT INTO events (body) VALUES " + ",".join(["(?)"] * batch)
                delete = f"DELETE FROM events WHERE seq IN ({','.join('?' * batch)})"
                cpu = time.process_time()
                previous_seqs: list[int] = []
                for _ in range(writes):
                    db.execute("BEGIN IMMEDIATE")
                    if previous_seqs:
                        db.execute(delete, previous_seqs)
                    db.execute(insert, [EVENT_BODY] * batch)
                    last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
                    db.execute("COMMIT")
                    previous_seqs = list(range(last - batch + 1, last + 1))
                spent = time.process_time() - cpu
                found[f"sqlite_{policy}_{batch}_cpu_us"] = spent / (writes * batch) * 1e6
            finally:
                db.close()
    return found


def _receipt_rates(directory: Path) -> dict[str, float]:
    """The logger as a request sees it: 16 requests in flight on one event loop, each posting a request
    and a response event through a `Receipt` and awaiting `written()` (what extproc and the runtimes do
    before answering), delivery to a file sink. CPU of the whole process per event, and events/s, for
    fsync per commit (`group`) and without (`os`)."""
    from payload_log import FsyncPolicy

    found: dict[str, float] = {}
    for policy in (FsyncPolicy.GROUP, FsyncPolicy.OS):
        cpu_us, rate = _receipt_rate(directory, policy)
        found[f"{policy}_cpu_us"], found[f"{policy}_events_per_s"] = cpu_us, rate
    return found


def _receipt_rate(directory: Path, policy: FsyncPolicy, requests: int = 3000) -> tuple[float, float]:
    from payload_log import PayloadLogger, PayloadLoggerSettings

    sink = directory / f"receipts-{policy}.jsonl"
    settings = PayloadLoggerSettings(
        spool_dir=directory / f"receipts-{policy}", default_endpoint=f"file://{sink}", fsync=policy
    )
    logger = PayloadLogger(settings)
    logger.start()
    events = _events(2 * requests, "")

    async def all_of() -> None:
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with gate:
                receipt = logger.receipt()
                receipt.post(events[2 * i])
                await asyncio.sleep(0)  # the request's work between its two events
                receipt.post(events[2 * i + 1])
                await receipt.written()

        await asyncio.gather(*(one(i) for i in range(requests)))

    try:
        cpu, wall = time.process_time(), time.perf_counter()
        asyncio.run(all_of())
        elapsed = time.perf_counter() - wall
        while logger.stats().spooled_events:
            time.sleep(0.01)
        return (time.process_time() - cpu) / (2 * requests) * 1e6, 2 * requests / elapsed
    finally:
        logger.stop()


def _events(n: int, destination: str) -> list[PayloadEvent]:
    return [
        PayloadEvent(
            type=EventType.REQUEST if i % 2 == 0 else EventType.RESPONSE,
            body=EVENT_BODY,
            content_type="application/json",
            request_id=f"req-{i // 2}",
            model_id="classifier",
            deployment="iris",
            namespace="seldon",
            predictor="default",
            destination=destination or None,
        )
        for i in range(n)
    ]


# The bench's CloudEvents sink shares the two cores with the mesh, so it costs what a broker costs from
# our side and no more: a bare asyncio protocol that reads each request (head + content-length body) and
# answers 202 on the kept-alive connection (aiohttp's web server took about 280 us of CPU per event here,
# this about 100 us).
_SINK = """
import asyncio, sys

ACCEPTED = b"HTTP/1.1 202 Accepted\\r\\ncontent-length: 0\\r\\n\\r\\n"

class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        buffer, answers = self.buffer + data, 0
        while (end := buffer.find(b"\\r\\n\\r\\n")) >= 0:
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\\r\\n", 1)[0]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            buffer, answers = buffer[end + 4 + length:], answers + 1
        self.buffer = buffer
        if answers:
            self.transport.write(ACCEPTED * answers)

async def main(port):
    server = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", port)
    await server.serve_forever()

asyncio.run(main(int(sys.argv[1])))
"""


def _logger_rates(directory: Path) -> tuple[float, float]:
    """(accepted events/s with 64 requests in flight on an event loop, as ext_proc calls `alog`;
    delivered events/s to a local HTTP sink, timed from the first event to an empty spool)."""
    import socket

    from payload_log import LogOutcome, PayloadLogger, PayloadLoggerSettings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = subprocess.Popen([sys.executable, "-c", _SINK, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        n = 10_000
        events = _events(n, f"http://127.0.0.1:{port}/")
        settings = PayloadLoggerSettings(spool_dir=directory / "logger")
        logger = PayloadLogger(settings)
        # accept rate: delivery paused by a destination nobody listens on would distort it, so measure
        # both together, as in service: accept all, then time until the spool is empty
        logger.start()

        async def log_all() -> list[LogOutcome]:
            in_flight = asyncio.Semaphore(64)

            async def one(event: PayloadEvent) -> LogOutcome:
                async with in_flight:
                    return await logger.alog(event)

            return await asyncio.gather(*(one(e) for e in events))

        started = time.perf_counter()
        outcomes = asyncio.run(log_all())
        accepted_s = time.perf_counter() - started
        assert all(o.accepted for o in outcomes)
        while logger.stats().spooled_events:
            time.sleep(0.01)
        delivered_s = time.perf_counter() - started
        logger.stop()
        return n / accepted_s, n / delivered_s
    finally:
        sink.terminate()
        sink.wait()


# A bare grpc.aio ExternalProcessor (uvloop, as extproc runs) that reads each stream to its end and
# answers nothing, like an observe stream: the floor of what one logged single-model request can cost
# extproc over ext_proc's gRPC transport, before any logging work.
_BARE_EXTPROC = """
import sys, grpc, uvloop
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

class Bare(ep_grpc.ExternalProcessorServicer):
    async def Process(self, requests, context):
        async for request in requests:
            request.WhichOneof("request")
        return
        yield

async def main():
    server = grpc.aio.server()
    ep_grpc.add_ExternalProcessorServicer_to_server(Bare(), server)
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    await server.start()
    await server.wait_for_termination()

uvloop.run(main())
"""


def _bare_stream_us(streams: int = 2000) -> float:
    """Server CPU µs per observe-shaped stream (the 6 messages Envoy sends for an HTTP/1.1 exchange:
    headers, body, empty end of stream, each way; 16 streams at a time) of `_BARE_EXTPROC`."""
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

    def headers(values: dict[str, str]) -> ep.HttpHeaders:
        pairs = [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in values.items()]
        return ep.HttpHeaders(headers=base_pb2.HeaderMap(headers=pairs))

    body = json.dumps(E2E_BODY).encode()
    path = "/seldon/default/single/api/v1.0/predictions"
    request = {":path": path, ":method": "POST", "content-type": "application/json",
               "content-length": str(len(body)), "x-request-id": "0" * 36}  # fmt: skip
    response = {":status": "200", "content-type": "application/json", "content-length": "60"}
    observed = {"observability_mode": True}
    exchange = [
        ep.ProcessingRequest(request_headers=headers(request), **observed),
        ep.ProcessingRequest(request_body=ep.HttpBody(body=body), **observed),
        ep.ProcessingRequest(request_body=ep.HttpBody(end_of_stream=True), **observed),
        ep.ProcessingRequest(response_headers=headers(response), **observed),
        ep.ProcessingRequest(response_body=ep.HttpBody(body=b"x" * 60), **observed),
        ep.ProcessingRequest(response_body=ep.HttpBody(end_of_stream=True), **observed),
    ]
    server = subprocess.Popen([sys.executable, "-c", _BARE_EXTPROC], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())

        async def all_streams() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                process = ep_grpc.ExternalProcessorStub(channel).Process
                gate = asyncio.Semaphore(E2E_IN_FLIGHT)

                async def one() -> None:
                    async with gate:
                        async for _ in process(iter(exchange)):
                            pass

                await asyncio.gather(*(one() for _ in range(E2E_WARM)))
                before = _cpu_seconds([server.pid])[server.pid]
                await asyncio.gather(*(one() for _ in range(streams)))
                spent.append(_cpu_seconds([server.pid])[server.pid] - before)

        spent: list[float] = []
        asyncio.run(all_streams())
        return spent[0] / streams * 1e6
    finally:
        server.terminate()
        server.wait()


def _span_cost_us() -> tuple[float, float]:
    """(µs per request with a server span + a client span + inject, µs with tracing sampled out)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from extproc.tracing import Tracing, TracingSettings, attributes

    def per_request(ratio: float) -> float:
        tracing = Tracing(TracingSettings(sampling_ratio=ratio), exporter=InMemorySpanExporter())
        attrs, node_attrs = attributes("iris", "default"), attributes("iris", "default", "classifier")
        n = 5000
        started = time.perf_counter()
        for _ in range(n):
            headers: dict[str, str] = {}
            with (
                tracing.span("extproc predictions", tracing.extract({}), attrs),
                tracing.span("node classifier", None, node_attrs, client=True),
            ):
                tracing.inject(headers)
        elapsed = time.perf_counter() - started
        tracing.shutdown()
        return elapsed / n * 1e6

    return per_request(1.0), per_request(0.0)


def _executor_rates(directory: Path) -> dict[str, float]:
    """Requests/s through the real two-node graph executor with instant nodes, 32 in flight."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    from extproc.codecs import Payload
    from extproc.config import NodeConfig, PredictorConfig, Timeouts
    from extproc.graph import GraphExecutor
    from extproc.graph.executor import Json
    from extproc.metrics import ExecutorMetrics, InstrumentedNodeClient, PredictorLabels, predictor_scope
    from extproc.tracing import TracedNodeClient, Tracing, TracingSettings, attributes
    from payload_log import PayloadLogger, PayloadLoggerSettings, SpoolingNodeEvents

    class InstantNodes:
        async def call(
            self, node: NodeConfig, method: str, payloads: Sequence[Payload], meta: Json, limits: Timeouts
        ) -> tuple[Payload, Json]:
            return payloads[0], {}

        async def feedback(self, node: NodeConfig, feedback: Json, limits: Timeouts) -> None:
            return None

        async def metadata(self, node: NodeConfig, limits: Timeouts) -> Json:
            return {}

    graph = NodeConfig(
        name="transformer", type="TRANSFORMER", logger_mode="all", http="x:1",
        children=(NodeConfig(name="classifier", logger_mode="all", http="y:1"),),
    )  # fmt: skip
    predictor = PredictorConfig("seldon", "iris", "default", graph)
    payload = Payload.seldon({"data": {"ndarray": [[1.0, 2.0, 3.0, 4.0]]}})
    labels = PredictorLabels("iris", "default")

    def rate(executor: GraphExecutor, tracing: Tracing | None = None, n: int = 4000) -> float:
        async def one(i: int, gate: asyncio.Semaphore) -> None:
            async with gate:
                with predictor_scope(labels):
                    if tracing is None:
                        await executor.predict(predictor, payload, f"p-{i}")
                    else:
                        with tracing.span("extproc predictions", None, attributes("iris", "default")):
                            await executor.predict(predictor, payload, f"p-{i}")

        async def all_of() -> float:
            gate = asyncio.Semaphore(32)
            started = time.perf_counter()
            await asyncio.gather(*(one(i, gate) for i in range(n)))
            return n / (time.perf_counter() - started)

        return asyncio.run(all_of())

    nodes = InstantNodes()
    plain = GraphExecutor(nodes)
    metered = GraphExecutor(InstrumentedNodeClient(nodes, ExecutorMetrics(CollectorRegistry())))
    logger = PayloadLogger(
        PayloadLoggerSettings(spool_dir=directory / "executor", default_endpoint="file:///dev/null")
    )
    logger.start()
    logged = GraphExecutor(nodes, events=SpoolingNodeEvents(logger, "http://extproc/"))
    tracing = Tracing(TracingSettings(sampling_ratio=1.0), exporter=InMemorySpanExporter())
    traced = GraphExecutor(TracedNodeClient(nodes, tracing))
    rate(plain, n=500)  # warm up
    try:
        return {
            "plain": rate(plain),
            "metrics": rate(metered),
            "logging": rate(logged),
            "tracing": rate(traced, tracing),
        }
    finally:
        logger.stop()
        tracing.shutdown()


E2E_MANIFEST = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: {name}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: pre, image: example/affine:0.1, workingDir: {classes},
                 env: [{{name: MODEL_NAME, value: Affine}}]}}
              - {{name: model, image: example/affine:0.1, workingDir: {classes},
                 env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: pre
        type: TRANSFORMER
        parameters: [{{name: offset, value: "1", type: FLOAT}}]
        {pre_logger}
        children:
          - name: model
            type: MODEL
            parameters: [{{name: scale, value: "2", type: FLOAT}}]
            {model_logger}
"""
SINGLE_MANIFEST = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: {name}
spec:
  predictors:
    - name: main
      componentSpecs:
        - spec:
            containers:
              - {{name: model, image: example/affine:0.1, workingDir: {classes},
                 env: [{{name: MODEL_NAME, value: Affine}}]}}
      graph:
        name: model
        type: MODEL
        parameters: [{{name: scale, value: "2", type: FLOAT}}]
        {logger}
"""
E2E_BODY = {"data": {"ndarray": [[1.0, 2.0, 3.0, 4.0]]}}
E2E_IN_FLIGHT = 16
E2E_WARM = 50  # requests before the timed ones, on the same connections
E2E_NOMINAL_RPS = 300  # sets wrk's duration: about as long as the httpx client takes
TRACE_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "SELDON_MESH_TRACE_SAMPLING_RATIO")


def _manifest(name: str, sink: str | None) -> str:
    classes = Path(__file__).resolve().parents[1] / "tests/data/graphs"
    logger = f'logger: {{mode: all, url: "{sink}"}}' if sink else ""
    return E2E_MANIFEST.format(name=name, classes=classes, pre_logger=logger, model_logger=logger)


def _single_manifest(name: str, sink: str | None) -> str:
    """A single-model predictor: Envoy serves it directly; with a logger, extproc sees copies of each
    exchange in ext_proc observability mode."""
    classes = Path(__file__).resolve().parents[1] / "tests/data/graphs"
    logger = f'logger: {{mode: all, url: "{sink}"}}' if sink else ""
    return SINGLE_MANIFEST.format(name=name, classes=classes, logger=logger)


def _throughput(url: str, n: int, headers: dict[str, str] | None = None) -> float:
    import httpx

    async def all_of() -> float:
        limits = httpx.Limits(max_connections=E2E_IN_FLIGHT)
        async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:
            gate = asyncio.Semaphore(E2E_IN_FLIGHT)

            async def one() -> None:
                async with gate:
                    response = await client.post(url, json=E2E_BODY)
                    if response.status_code != 200:
                        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")

            await asyncio.gather(*(one() for _ in range(E2E_WARM)))  # warm connections
            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            return n / (time.perf_counter() - started)

    return asyncio.run(all_of())


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds so far of each process still running."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / tick
    return seconds


def _kind(pid: int, sink_pid: int) -> str:
    """Which part of the mesh a process is: envoy, extproc, runtime, up (the `seldon-mesh up` process)
    or sink."""
    if pid == sink_pid:
        return "sink"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if Path(argv[0].decode(errors="replace")).name == "envoy":
        return "envoy"
    joined = b" ".join(argv)
    if b"model_runtime" in joined:
        return "runtime"
    if b"extproc" in joined:
        return "extproc"
    return "up" if b"seldon-mesh" in joined else "other"


def _measured(
    mesh: Mesh, sink_pid: int, url: str, n: int, headers: dict[str, str]
) -> tuple[float, dict[str, float]]:
    """(requests/s, CPU µs per request of the processes of the mesh and of the sink, by `_kind`). The CPU
    figure is steadier than throughput on a shared machine: other work slows our requests, not what they
    cost.

    With `wrk` on the PATH (`make bench` installs it) the load comes from wrk, one C thread, for about as
    long as `n` requests take at E2E_NOMINAL_RPS; otherwise from an httpx client, whose own CPU (about a
    millisecond per request in Python) then caps the rates and hides part of the difference."""
    assert mesh.process is not None
    pids = [*_process_tree(mesh.process.pid), sink_pid]
    kinds = {pid: _kind(pid, sink_pid) for pid in pids}
    before = _cpu_seconds(pids)
    if shutil.which("wrk") is not None:
        with tempfile.TemporaryDirectory() as work:
            seconds = max(2.0, n / E2E_NOMINAL_RPS)
            measured = run_wrk(url, json.dumps(E2E_BODY).encode(), E2E_IN_FLIGHT, seconds, Path(work))
        if measured.errors:
            raise RuntimeError(f"{url}: {measured.errors} non-2xx answers under load")
        rate, count = measured.rps, measured.rps * round(seconds)
    else:
        rate, count = _throughput(url, n, headers), n + E2E_WARM
    time.sleep(0.5)  # deliveries of the last events
    after = _cpu_seconds(pids)
    split: dict[str, float] = {}
    for pid, seconds in after.items():
        kind = kinds[pid]
        split[kind] = split.get(kind, 0.0) + (seconds - before.get(pid, seconds)) / count * 1e6
    return rate, split


def _start_mesh(folder: Path, manifest: str, env: dict[str, str]) -> Mesh:
    from tests.helpers.mesh import Mesh, free_port

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "graphs.yaml").write_text(manifest)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # `up` passes its environment on to extproc and the runtimes
    try:
        return Mesh(folder / "state", free_port()).start(folder / "graphs.yaml")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _end_to_end(directory: Path, requests: int, rounds: int) -> dict[str, float]:
    """Requests/s through the gateway: plain, logging (both nodes, every request and response), tracing.

    Two meshes run side by side, idle but for the one measured, so the cases interleave in each
    round and share the machine's state: one without tracing (`plain` and `logged` deployments, and a
    single-model predictor without and with a logger, `single` and `single-logged`), one exporting every
    span to a local OTLP receiver (`traced`, the same graph as `plain`, and `single-traced`).
    `<case>_cpu_us` counts mesh + sink, `<case>_mesh_cpu_us` the mesh alone, `<case>_cpu_<kind>_us` one
    kind of process (of the round with the least total)."""
    import socket

    from tests.helpers.otlp import OtlpReceiver

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        sink_port = probe.getsockname()[1]
    sink = subprocess.Popen([sys.executable, "-c", _SINK, str(sink_port)])
    receiver = OtlpReceiver().start()
    meshes: list[Mesh] = []
    best: dict[str, float] = {}
    try:
        sink_url = f"http://127.0.0.1:{sink_port}/"
        manifests = (
            _manifest("plain", None),
            _manifest("logged", sink_url),
            _single_manifest("single", None),
            _single_manifest("single-logged", sink_url),
        )
        # the single model's runtime spools here (it logs in process, `model_runtime.payloads`)
        spools = {"SELDON_MESH_SPOOL_DIR": str(directory / "runtime-spools")}
        untraced = _start_mesh(directory / "untraced", "---".join(manifests), spools)
        meshes.append(untraced)
        traced = _start_mesh(
            directory / "traced",
            "---".join((_manifest("traced", None), _single_manifest("single-traced", None))),
            {TRACE_ENV[0]: receiver.endpoint, TRACE_ENV[1]: "1.0"},
        )
        meshes.append(traced)
        cases = {
            "plain": (untraced, "plain"),
            "logging": (untraced, "logged"),
            "tracing": (traced, "traced"),
            "single": (untraced, "single"),
            "single_logging": (untraced, "single-logged"),
            "single_tracing": (traced, "single-traced"),
        }
        for mesh, name in cases.values():
            mesh.wait_state(name, "Available", timeout=180)
            mesh.wait_serving(f"/seldon/default/{name}/api/v1.0/predictions", E2E_BODY)
        for _ in range(rounds):
            for case, (mesh, name) in cases.items():
                url = f"{mesh.gateway}/seldon/default/{name}/api/v1.0/predictions"
                # a sampled client traceparent, as a traced caller sends (ignored where tracing is off)
                headers = {"traceparent": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"}
                rate, split = _measured(mesh, sink.pid, url, requests, headers)
                best[case] = max(best.get(case, 0.0), rate)
                cpu = sum(split.values())
                if cpu < best.get(f"{case}_cpu_us", float("inf")):
                    best[f"{case}_cpu_us"] = cpu
                    best[f"{case}_mesh_cpu_us"] = cpu - split.get("sink", 0.0)
                    for kind, spent in split.items():
                        best[f"{case}_cpu_{kind}_us"] = spent
        best["spans_received"] = float(len(receiver.spans()))
    finally:
        for mesh in meshes:
            mesh.stop()
        receiver.stop()
        sink.terminate()
        sink.wait()
    return best


def run(args: list[str]) -> None:
    quick = "--quick" in args
    # --rounds=N: more interleaved rounds of the end-to-end cases; their CPU figures are the least of the
    # rounds, and on a shared machine more rounds find a quieter one (default 3)
    rounds = next((int(a.split("=", 1)[1]) for a in args if a.startswith("--rounds=")), 1 if quick else 3)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for batch in (1, 10, 100):
            rows.append(
                Row(f"spool append, fsync per {batch} event(s)", "events/s", _spool_rate(directory, batch),
                    _segment_rate(directory, batch), "bare segment file", "ev/s")
            )  # fmt: skip
        floor = _commit_floor(directory)
        receipts = _receipt_rates(directory)
        accepted, delivered = _logger_rates(directory)
        bare_stream = _bare_stream_us()
        executor = _executor_rates(directory)
        e2e = _end_to_end(directory, 300 if quick else 1500, rounds)
    for policy, label in (("group", "fsync"), ("os", "no fsync")):
        for batch in (2, 16, 64):
            rows.append(
                Row(f"spool write+delete CPU per event, {batch}/write, {label}", "us/event",
                    floor[f"spool_{policy}_{batch}_cpu_us"], floor[f"sqlite_{policy}_{batch}_cpu_us"],
                    "bare SQLite commit", "us", higher_is_better=False)
            )  # fmt: skip
    rows.append(
        Row("logger CPU per event, receipts (16 in flight), fsync", "us/event", receipts["group_cpu_us"],
            receipts["os_cpu_us"], "no fsync (os)", "us", higher_is_better=False)
    )  # fmt: skip
    rows.append(
        Row("logger events/s, receipts (16 in flight), fsync", "events/s", receipts["group_events_per_s"],
            receipts["os_events_per_s"], "no fsync (os)", "ev/s")
    )  # fmt: skip
    rows.append(
        Row("payload logger accept (alog, 64 in flight)", "events/s", accepted, TARGET, "issue load", "ev/s")
    )
    rows.append(
        Row("payload logger accept+deliver (HTTP)", "events/s", delivered, TARGET, "issue load", "ev/s")
    )
    traced, sampled_out = _span_cost_us()
    rows.append(
        Row("2 spans + inject per request", "us/request", traced, sampled_out, "sampled out", "us",
            higher_is_better=False)
    )  # fmt: skip
    for case in ("metrics", "logging", "tracing"):
        rows.append(
            Row(f"2-node graph executor + {case} (fake nodes)", "requests/s", executor[case],
                executor["plain"], "executor alone", "req/s")
        )  # fmt: skip
    for case in ("logging", "tracing"):
        rows.append(
            Row(f"2-node graph via gateway + {case} (seldon-mesh up)", "requests/s", e2e[case],
                e2e["plain"], "same graph, no " + case, "req/s")
        )  # fmt: skip
    for case in ("logging", "tracing"):
        rows.append(
            Row(f"single model via gateway + {case} (seldon-mesh up)", "requests/s", e2e[f"single_{case}"],
                e2e["single"], f"same model, no {case}", "req/s")
        )  # fmt: skip
    # (label, case, anchor, events per request when logged; tracing's targets are withdrawn: measured only)
    compared = (
        ("2-node graph + logging", "logging", "plain", 4),
        ("2-node graph + tracing", "tracing", "plain", 0),
        ("single model + logging", "single_logging", "single", 2),
        ("single model + tracing", "single_tracing", "single", 0),
    )
    for label, case, anchor, _ in compared:
        for part, key in (("mesh + sink", "cpu_us"), ("mesh only", "mesh_cpu_us")):
            rows.append(
                Row(f"CPU per request, {label} ({part})", "us/request", e2e[f"{case}_{key}"],
                    e2e[f"{anchor}_{key}"], "same, without", "us", higher_is_better=False)
            )  # fmt: skip
    for label, case, anchor, events in compared:
        if events:
            per_event = (e2e[f"{case}_mesh_cpu_us"] - e2e[f"{anchor}_mesh_cpu_us"]) / events
            rows.append(
                Row(f"mesh CPU added per logged event, {label}", "us/event", per_event, 30.0,
                    "issue target", "us", higher_is_better=False)
            )  # fmt: skip
            rows.append(
                Row(f"throughput kept, {label}", "fraction", e2e[case] / e2e[anchor], 0.75, "issue target",
                    "")
            )  # fmt: skip
    rows.append(
        Row("runtime CPU per unlogged single-model request", "us/request", e2e["single_cpu_runtime_us"],
            bare_stream, "bare grpc.aio observe stream (the old path's floor)", "us", higher_is_better=False)
    )  # fmt: skip
    print_table("observability", rows)
    for label, case, anchor, _ in compared:
        cost = 1 - e2e[case] / e2e[anchor]
        cpu = e2e[f"{case}_cpu_us"] / e2e[f"{anchor}_cpu_us"] - 1
        added = ", ".join(
            f"{kind} {e2e.get(f'{case}_cpu_{kind}_us', 0.0) - e2e.get(f'{anchor}_cpu_{kind}_us', 0.0):+.0f}"
            for kind in ("envoy", "extproc", "runtime", "up", "sink")
        )
        print(
            f"  end-to-end {label} costs {cost:.1%} of throughput; "
            f"CPU per request +{cpu:.1%} (us added per process kind: {added})"
        )
    extra = {
        "end_to_end": e2e,
        "bare_observe_stream_us": bare_stream,
        "commit_floor": floor,
        "receipts": receipts,
        "in_flight": E2E_IN_FLIGHT,
        "rounds": rounds,
        "load_average": list(os.getloadavg()),
    }
    print(f"  results: {write_results('observability', rows, extra)}")
