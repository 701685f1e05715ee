"""extproc's edges: the ext_proc servicer (REST graphs), the gRPC graph servicers, and the server."""

from extproc.server.app import ExtprocSettings, create_server, serve
from extproc.server.frontend import Frontend, Reply

__all__ = ["ExtprocSettings", "Frontend", "Reply", "create_server", "serve"]
