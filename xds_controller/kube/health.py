"""`GET /healthz` (the process is up) and `GET /readyz` (the first full snapshot is published) over a
bare asyncio HTTP/1.1 server: the probes need nothing more, and the gateway pod needs no web framework."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


async def start_health_server(host: str, port: int, ready: Callable[[], bool]) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if path == b"/healthz":
                status, body = b"200 OK", b"ok\n"
            elif path == b"/readyz":
                status, body = (
                    (b"200 OK", b"ready\n") if ready() else (b"503 Service Unavailable", b"syncing\n")
                )
            else:
                status, body = b"404 Not Found", b"not found\n"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\ncontent-type: text/plain\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port)
