"""Node calls: pooled REST and gRPC clients that speak each node's protocol."""

from extproc.nodes.client import NodeClients

__all__ = ["NodeClients"]
