"""Which mesh process made a request. extproc marks its node calls with `CALLER: CALLER_VALUE` (an HTTP
header, or gRPC metadata); a runtime the gateway also routes to directly (a V2 single model that Seldon v1
clients reach through extproc's translation) leaves those out of its executor request metrics, since
extproc counts the client's request itself."""

from __future__ import annotations

CALLER = "x-seldon-mesh-caller"
CALLER_VALUE = "extproc"
