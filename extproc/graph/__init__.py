"""The pure graph executor and its built-in units, over an injected node client."""

from extproc.graph.errors import GraphError, NodeError, bad_request
from extproc.graph.executor import GraphExecutor, NodeClient, Result
from extproc.graph.state import MemoryState, SqliteState, StateStore

__all__ = [
    "GraphError",
    "GraphExecutor",
    "MemoryState",
    "NodeClient",
    "NodeError",
    "Result",
    "SqliteState",
    "StateStore",
    "bad_request",
]
