"""Real servers for the xDS tests: our ADS server on its own event-loop thread, a stdlib HTTP upstream
that echoes what it received, and a gRPC upstream serving seldon.protos.Seldon with reflection."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from grpc_reflection.v1alpha import reflection

from generated.seldon import prediction_pb2, prediction_pb2_grpc
from xds_controller.cache import SnapshotCache
from xds_controller.callbacks import Callbacks
from xds_controller.resource_types import TypeUrl
from xds_controller.server import ServerSettings, create_server
from xds_controller.snapshot import Version


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

    def sent(self, type_url: str, version: str) -> int:
        """Responses (SotW or delta) that carried `type_url` at type version `version`."""
        sotw = sum(1 for _, r in list(self.responses) if r.type_url == type_url and r.version_info == version)
        delta = sum(
            1
            for _, r in list(self.delta_responses)
            if r.type_url == type_url and r.system_version_info == version and r.resources
        )
        return sotw + delta

    def sent_resource(self, type_url: str, name: str, version: str) -> int:
        """Delta responses that carried resource `name` at `version`."""
        return sum(
            1
            for _, r in list(self.delta_responses)
            if r.type_url == type_url
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

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        upstream: HttpUpstream = self.server.upstream  # type: ignore[attr-defined]
        upstream.received.append(self.path)
        if "/slow" in self.path:
            upstream.release.wait()
        payload = json.dumps(
            {
                "upstream": upstream.name,
                "path": self.path,
                "method": self.command,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        ).encode()
        try:
            self.send_response(200)
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


class HttpUpstream:
    """A REST runtime stand-in that answers every request with JSON describing it.

    It records every path it received; paths containing `/slow` are held until `release` is set (stop()
    sets it), which is how tests make Envoy time out without guessing durations.
    """

    def __init__(self, name: str = "http-upstream") -> None:
        self.name = name
        self.received: list[str] = []
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self._server.upstream = self  # type: ignore[attr-defined]
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-upstream", daemon=True)

    def start(self) -> HttpUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Seldon(prediction_pb2_grpc.SeldonServicer):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        self._name = name

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        metadata = {k: v for k, v in context.invocation_metadata()}
        return prediction_pb2.SeldonMessage(
            strData=json.dumps({"upstream": self._name, "seldon": metadata.get("seldon", "")})
        )


class GrpcUpstream:
    """A gRPC runtime stand-in: seldon.protos.Seldon/Predict answers with its name; reflection on."""

    def __init__(self, name: str = "grpc-upstream") -> None:
        self.name = name
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_pb2_grpc.add_SeldonServicer_to_server(_Seldon(name), self._server)
        service = prediction_pb2.DESCRIPTOR.services_by_name["Seldon"].full_name
        reflection.enable_server_reflection((service, reflection.SERVICE_NAME), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def start(self) -> GrpcUpstream:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(0).wait(10)
