"""The ADS gRPC server over grpc.aio: `StreamAggregatedResources` (state of the world) and
`DeltaAggregatedResources` (incremental), both fed by the same cache.

Per stream, one asyncio task reads requests and one waits for snapshot changes in the cache; both feed a
queue that the stream handler drains, asking the stream's bookkeeping (`SotwStream` or `DeltaStream`)
what to send after each event. The server sees the cache only as a `ConfigWatcher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from envoy.service.discovery.v3 import ads_pb2, ads_pb2_grpc, discovery_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from xds_controller.cache import ConfigWatcher
from xds_controller.callbacks import Callbacks
from xds_controller.delta import DeltaStream
from xds_controller.sotw import ProtocolError, SotwStream

ADS_SERVICE = ads_pb2.DESCRIPTOR.services_by_name["AggregatedDiscoveryService"].full_name


@dataclass(frozen=True)
class ServerSettings:
    # Loopback: locally Envoy runs next to the control plane; bind wider only behind a network policy.
    host: str = "127.0.0.1"
    # 0 lets the OS pick a free port; create_server returns the bound one.
    port: int = 0
    # Seconds open streams get to finish on stop() before they are cancelled. ADS streams never end by
    # themselves, so this only bounds shutdown time; Envoy reconnects to the next server.
    grace_s: float = 1.0
    # Full names of extra services (already in the default descriptor pool) that reflection lists, so
    # grpcurl through the gateway can describe them. The server's own services are always listed.
    reflection_services: tuple[str, ...] = ()


class _Stream(Protocol):
    """SotwStream or DeltaStream: the per-stream protocol state the serving loop drives."""

    @property
    def stream_id(self) -> int: ...

    @property
    def node_id(self) -> str: ...

    def handle(self, request: Any) -> None: ...

    def responses(self) -> Sequence[Any]: ...

    def close(self) -> None: ...


class _Closed:
    pass


_CLOSED = _Closed()
_CHANGED = object()


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, watcher: ConfigWatcher, callbacks: Callbacks) -> None:
        self._watcher = watcher
        self._callbacks = callbacks
        self._stream_ids = itertools.count(1)

    async def StreamAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext[discovery_pb2.DiscoveryRequest, discovery_pb2.DiscoveryResponse],
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        stream = SotwStream(
            stream_id=next(self._stream_ids), watcher=self._watcher, callbacks=self._callbacks
        )
        async for response in self._serve(stream, request_iterator, context):
            self._callbacks.on_response(stream.stream_id, stream.node_id, response)
            yield response

    async def DeltaAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext[
            discovery_pb2.DeltaDiscoveryRequest, discovery_pb2.DeltaDiscoveryResponse
        ],
    ) -> AsyncIterator[discovery_pb2.DeltaDiscoveryResponse]:
        stream = DeltaStream(
            stream_id=next(self._stream_ids), watcher=self._watcher, callbacks=self._callbacks
        )
        async for response in self._serve(stream, request_iterator, context):
            self._callbacks.on_delta_response(stream.stream_id, stream.node_id, response)
            yield response

    async def _serve(
        self,
        stream: _Stream,
        request_iterator: AsyncIterator[Any],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """The loop both variants share: requests and snapshot changes in, responses out, in push order."""
        self._callbacks.on_stream_open(stream.stream_id, context.peer())
        events: asyncio.Queue[object] = asyncio.Queue()
        reader = asyncio.create_task(self._read(request_iterator, events))
        watcher: asyncio.Task[None] | None = None
        try:
            while (event := await events.get()) is not _CLOSED:
                if event is not _CHANGED:
                    try:
                        stream.handle(event)
                    except ProtocolError as error:
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
                    if watcher is None:
                        watcher = asyncio.create_task(self._watch(stream.node_id, events))
                for response in stream.responses():
                    yield response
        finally:
            for task in (reader, watcher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            stream.close()
            self._callbacks.on_stream_closed(stream.stream_id, stream.node_id or None)

    @staticmethod
    async def _read(requests: AsyncIterator[Message], events: asyncio.Queue[object]) -> None:
        try:
            async for request in requests:
                events.put_nowait(request)
        except (grpc.aio.AioRpcError, grpc.RpcError):
            pass
        finally:
            events.put_nowait(_CLOSED)

    async def _watch(self, node_id: str, events: asyncio.Queue[object]) -> None:
        generation = self._watcher.generation(node_id)
        while True:
            generation = await self._watcher.wait_for_change(node_id, generation)
            events.put_nowait(_CHANGED)


async def create_server(
    settings: ServerSettings, cache: ConfigWatcher, callbacks: Callbacks | None = None
) -> tuple[grpc.aio.Server, int]:
    """Build, bind and start the server (ADS, health, reflection) on the running loop.

    Returns the server and its bound port. Stop it with `await server.stop(settings.grace_s)`: gRPC's
    graceful stop, which refuses new streams and cancels open ones after the grace period.
    """
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
        AdsServicer(cache, callbacks or Callbacks()), server
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = (ADS_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
    reflection.enable_server_reflection((*names, *settings.reflection_services), server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"could not bind the xDS server to {settings.host}:{settings.port}")
    await server.start()
    for service in ("", ADS_SERVICE):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    return server, port
