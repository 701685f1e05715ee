"""A gRPC server that only answers server reflection, for grpcurl calls that carry no `seldon` header.

With `-H seldon: <name>` grpcurl's reflection requests are routed to that deployment's runtime; without it
the gateway sends them here, so `grpcurl -plaintext localhost:8000 list` shows the Seldon and V2 services.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from generated.inference import dataplane_pb2
from generated.seldon import prediction_pb2

SERVICES = (
    prediction_pb2.DESCRIPTOR.services_by_name["Seldon"].full_name,
    dataplane_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)


async def start_reflection_server(host: str) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*SERVICES, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    return server, port
