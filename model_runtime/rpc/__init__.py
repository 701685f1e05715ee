"""gRPC transport: the Seldon servicers, health and reflection."""

from model_runtime.rpc.server import create_server, mark_serving

__all__ = ["create_server", "mark_serving"]
