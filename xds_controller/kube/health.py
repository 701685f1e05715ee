"""`GET /healthz` (the process is up), `GET /readyz` (the first full snapshot is published) and
`GET /statusz` (JSON: what Envoy applied, see `GatewayController.status`) over a bare asyncio HTTP/1.1
server: the probes need nothing more, and the gateway pod needs no web framework."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

OK = b"200 OK"


def _answer(
    path: bytes, ready: Callable[[], bool], status: Callable[[], dict[str, Any]] | None
) -> tuple[bytes, bytes]:
    if path == b"/healthz":
        return OK, b"ok\n"
    if path == b"/readyz":
        return (OK, b"ready\n") if ready() else (b"503 Service Unavailable", b"syncing\n")
    if path == b"/statusz" and status is not None:
        return OK, json.dumps(status()).encode()
    return b"404 Not Found", b"not found\n"


async def start_health_server(
    host: str, port: int, ready: Callable[[], bool], status: Callable[[], dict[str, Any]] | None = None
) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            code, body = _answer(path, ready, status)
            writer.write(
                b"HTTP/1.1 " + code + b"\r\ncontent-type: text/plain\r\ncontent-length: "
                + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(serve, host, port)
