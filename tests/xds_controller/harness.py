"""Real servers for the xDS and traffic tests: our ADS server on its own event-loop thread, a stdlib
HTTP upstream that echoes what it received (or fails on purpose), a gRPC upstream serving
seldon.protos.Seldon with reflection, and `Gateway`, one real Envoy fed by the ADS server."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from grpc_reflection.v1alpha import reflection

from generated.seldon import prediction_pb2, prediction_pb2_grpc
from mesh.local.envoy import EnvoyProcess
from tests.helpers.envoy import free_port
from xds_controller import resource_types
from xds_controller.bootstrap import render_bootstrap
from xds_controller.cache import SnapshotCache
from xds_controller.callbacks import Callbacks
from xds_controller.resource_types import TypeUrl
from xds_controller.server import ServerSettings, create_server
from xds_controller.snapshot import Snapshot, Version
from xds_controller.translate import (
    ComponentEndpoints,
    ComponentKey,
    GatewaySettings,
    Resources,
    Upstream,
    translate,
)

_nodes = itertools.count(1)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Recorder(Callbacks):
    """Callbacks that remember every event, readable from the test thread."""

    responses: list[tuple[str, discovery_pb2.DiscoveryResponse]] = field(default_factory=list)
    delta_responses: list[tuple[str, discovery_pb2.DeltaDiscoveryResponse]] = field(default_factory=list)
    acks: list[tuple[str, TypeUrl, Version]] = field(default_factory=list)
    nacks: list[tuple[str, TypeUrl, Version, str]] = field(default_factory=list)
    opened: int = 0
    closed: int = 0

    def on_stream_open(self, stream_id: int, peer: str) -> None:
        self.opened += 1

    def on_stream_closed(self, stream_id: int, node_id: str | None) -> None:
        self.closed += 1

    def on_response(self, stream_id: int, node_id: str, response: discovery_pb2.DiscoveryResponse) -> None:
        copy = discovery_pb2.DiscoveryResponse()
        copy.CopyFrom(response)
        self.responses.append((node_id, copy))

    def on_delta_response(
        self, stream_id: int, node_id: str, response: discovery_pb2.DeltaDiscoveryResponse
    ) -> None:
        copy = discovery_pb2.DeltaDiscoveryResponse()
        copy.CopyFrom(response)
        self.delta_responses.append((node_id, copy))

    def on_ack(self, node_id: str, type_url: TypeUrl, version: Version) -> None:
        self.acks.append((node_id, type_url, version))

    def on_nack(self, node_id: str, type_url: TypeUrl, version: Version, message: str) -> None:
        self.nacks.append((node_id, type_url, version, message))

    def sent(self, type_url: str, version: str, node_id: str | None = None) -> int:
        """Responses (SotW or delta, to `node_id` or anyone) that carried `type_url` at type version
        `version`."""
        sotw = sum(
            1
            for node, r in list(self.responses)
            if r.type_url == type_url and r.version_info == version and node_id in (None, node)
        )
        delta = sum(
            1
            for node, r in list(self.delta_responses)
            if r.type_url == type_url
            and r.system_version_info == version
            and r.resources
            and node_id in (None, node)
        )
        return sotw + delta

    def sent_resource(self, type_url: str, name: str, version: str, node_id: str | None = None) -> int:
        """Delta responses (to `node_id` or anyone) that carried resource `name` at `version`."""
        return sum(
            1
            for node, r in list(self.delta_responses)
            if r.type_url == type_url and node_id in (None, node)
            for resource in r.resources
            if resource.name == name and resource.version == version
        )


class ControlPlane:
    """Our ADS server (plus health and reflection) running on a private event loop in a thread."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.cache = SnapshotCache()
        self.recorder = Recorder()
        self.settings = settings or ServerSettings()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="xds-loop", daemon=True)
        self._server: grpc.aio.Server | None = None
        self.port = 0

    def start(self) -> ControlPlane:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            create_server(self.settings, self.cache, self.recorder), self.loop
        )
        self._server, self.port = started.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle plus delayed ACKs add 40 ms a request.
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        assert isinstance(self.server, _EchoServer)
        upstream = self.server.upstream
        with upstream.lock:
            upstream.received.append(self.path)
            upstream.headers.append({k.lower(): v for k, v in self.headers.items()})
            failing = upstream.fails(upstream.received.count(self.path))
        if "/slow" in self.path:
            upstream.release.wait()
        payload = json.dumps(
            {
                "upstream": upstream.name,
                "path": self.path,
                "method": self.command,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": raw.decode() if len(raw) <= BIG_BODY else "",
                "body_length": len(raw),
            }
        ).encode()
        try:
            self.send_response(503 if failing else 200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client (Envoy, after a timeout) has gone

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


BIG_BODY = 2**20  # bodies larger than this are not echoed back, only their length


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: HttpUpstream) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.upstream = upstream


class HttpUpstream:
    """A REST runtime stand-in that answers every request with JSON describing it.

    It records every path (and the headers) it received; paths containing `/slow` are held until
    `release` is set (stop() sets it), which is how tests make Envoy time out without guessing durations.
    `failing` makes it answer 503: "half" to every other request per path (the 1st, 3rd, ...: counted per
    path, so what one test sent cannot shift the next test's pattern), "all" to every one.
    """

    def __init__(self, name: str = "http-upstream", failing: str = "") -> None:
        self.name = name
        self.failing = failing
        self.lock = threading.Lock()
        self.received: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()
        self._server = _EchoServer(self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-upstream", daemon=True)

    def fails(self, count: int) -> bool:
        return self.failing == "all" or (self.failing == "half" and count % 2 == 1)

    def count(self, marker: str = "") -> int:
        with self.lock:
            return sum(1 for path in self.received if marker in path)

    def start(self) -> HttpUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Seldon(prediction_pb2_grpc.SeldonServicer):
    def __init__(self, name: str, release: threading.Event) -> None:
        self._name = name
        self._release = release
        self.calls = 0

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        metadata = {k: v for k, v in context.invocation_metadata()}
        self.calls += 1
        if metadata.get("slow"):
            self._release.wait()
        if metadata.get("flaky") and self.calls % 2 == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "busy, try again")
        return prediction_pb2.SeldonMessage(
            strData=json.dumps({"upstream": self._name, "seldon": metadata.get("seldon", "")})
        )


class GrpcUpstream:
    """A gRPC runtime stand-in: seldon.protos.Seldon/Predict answers with its name; reflection on.

    A call with metadata `slow: 1` is held until `release` is set (stop() sets it); with `flaky: 1`,
    every other call (counting all calls) fails with UNAVAILABLE."""

    def __init__(self, name: str = "grpc-upstream") -> None:
        self.name = name
        self.release = threading.Event()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.servicer = _Seldon(name, self.release)
        prediction_pb2_grpc.add_SeldonServicer_to_server(self.servicer, self._server)
        service = prediction_pb2.DESCRIPTOR.services_by_name["Seldon"].full_name
        reflection.enable_server_reflection((service, reflection.SERVICE_NAME), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def start(self) -> GrpcUpstream:
        self._server.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.stop(0).wait(10)


class Gateway:
    """One Envoy with its own node id, fed by a shared control plane over delta or SotW ADS."""

    def __init__(
        self, plane: ControlPlane, workdir: Path, *, delta: bool = True, scoped: bool = False
    ) -> None:
        self.plane = plane
        self.node_id = f"gw-{next(_nodes)}"
        self.settings = GatewaySettings(
            listen_port=free_port(), reflection=Upstream("127.0.0.1", plane.port), scoped=scoped
        )
        bootstrap = render_bootstrap(
            self.node_id, Upstream("127.0.0.1", plane.port), admin_port=0, delta=delta
        )
        self.envoy = EnvoyProcess(bootstrap, workdir, log_level="warning", concurrency=2, stop_grace_s=5.0)
        self.url = f"http://127.0.0.1:{self.settings.listen_port}"
        self.address = f"127.0.0.1:{self.settings.listen_port}"

    def resources(
        self, deployments: Sequence[Any], endpoints: Mapping[ComponentKey, ComponentEndpoints]
    ) -> Resources:
        return translate(deployments, endpoints, self.settings)

    def acked(self, type_url: TypeUrl) -> str | None:
        return self.plane.cache.status(self.node_id).acked.get(type_url)

    def publish(self, snapshot: Snapshot) -> None:
        self.plane.cache.set_snapshot(self.node_id, snapshot)

    def apply(self, resources: Resources, timeout: float = 30.0) -> Snapshot:
        """Publish, start Envoy if needed, and wait until Envoy runs exactly this config."""
        snapshot = resources.to_snapshot()
        snapshot.consistency_check()
        self.publish(snapshot)
        if not self.envoy.running:
            self.envoy.start()
            self.envoy.wait_ready(timeout)
        self.envoy.wait_for(lambda: self.runs(snapshot), timeout, "the snapshot ACKed")
        return snapshot

    def runs(self, snapshot: Snapshot) -> bool:
        """Envoy ACKed every type at the snapshot's version (delta and SotW alike), so it runs it."""
        return all(
            self.acked(url) == snapshot.version(url) for url in resource_types.PUSH_ORDER if snapshot.get(url)
        )

    def stop(self) -> None:
        self.envoy.stop()
        self.plane.cache.forget(self.node_id)
