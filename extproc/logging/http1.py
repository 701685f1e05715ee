"""A minimal keep-alive HTTP/1.1 POST client for plain-HTTP sinks (a Knative broker, a local collector).

Delivery sends one small POST per event and reads a status with an empty or tiny body; a general client's
per-request machinery was most of the logger's CPU (py-spy, `python -m bench observability`: aiohttp's
request path held the GIL about two thirds of the time the logger did). This speaks just that: a request
written in one call on an `asyncio.Protocol`, an answer read from the protocol's buffer (content-length,
chunked, or up to close), connections reused unless the server says `connection: close`. A request that
fails on a reused idle connection before any byte of the answer arrived (the server closed it while idle)
is retried once on a fresh connection. HTTPS sinks go through aiohttp (`sinks.HttpsSink`).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class HttpProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.x we can read."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.deadline = 0.0  # loop time by which the answer in flight must be in
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if b"\r\n\r\n" in self._buffer and not self.reusable:  # a body that ran to the close
                try:
                    waiter.set_result(_status(self._buffer))
                except HttpProtocolError as error:
                    waiter.set_exception(error)
            else:
                waiter.set_exception(ConnectionResetError("connection closed before the answer"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            status = self._answer()
        except HttpProtocolError as error:
            self.reusable = False
            waiter.set_exception(error)
            return
        if status is not None:
            waiter.set_result(status)

    def _answer(self) -> int | None:
        """The status once the whole answer is in the buffer (and taken out of it), else None."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buffer[:end]).lower()
        status = _status(buffer)
        if not head.startswith(b"http/1.1") or b"\r\nconnection: close" in head:
            self.reusable = False
        start = end + 4
        length_at = head.find(b"\r\ncontent-length:")
        if length_at >= 0:
            line_end = head.find(b"\r\n", length_at + 2)
            raw = head[length_at + 17 : line_end if line_end >= 0 else len(head)]
            if not raw.strip().isdigit():
                raise HttpProtocolError(f"bad content-length {raw!r}")
            body_end = start + int(raw)
        elif b"\r\ntransfer-encoding: chunked" in head:
            body_end = _chunked_end(buffer, start)
            if body_end < 0:
                return None
        elif status in (204, 304) or 100 <= status < 200:
            body_end = start
        else:
            self.reusable = False  # the body runs until the server closes
            return None
        if len(buffer) < body_end:
            return None
        del buffer[:body_end]
        return status

    async def post(self, message: bytes) -> int:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(message)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def received_any(self) -> bool:
        return bool(self._buffer)

    def expire(self) -> None:
        """The answer took too long: fail the request (TimeoutError) and drop the connection."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("no answer in time"))
        self.reusable = False
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _status(buffer: bytearray) -> int:
    line = bytes(buffer[: buffer.find(b"\r\n")])
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return int(parts[1])


def _chunked_end(buffer: bytearray, at: int) -> int:
    """Where a chunked body starting at `at` ends (after its trailers), or -1 if it is not all in."""
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return -1
        size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            trailers_end = buffer.find(b"\r\n\r\n", line_end)
            if buffer[line_end : line_end + 4] == b"\r\n\r\n":
                return line_end + 4
            return -1 if trailers_end < 0 else trailers_end + 4
        at = line_end + 2 + size + 2
        if at > len(buffer):
            return -1


class Http1Poster:
    """POSTs to one http:// URL over a pool of keep-alive connections (one per concurrent send)."""

    def __init__(self, url: str, timeout_seconds: float, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain http:// URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._prefix = f"POST {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n".encode()
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        # Timeouts by a sweep once a second rather than a timer per request (a tenth of delivery's CPU).
        self._timeout = timeout_seconds
        self._busy: set[_Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def post(self, headers: dict[str, str], body: bytes) -> int:
        """Send one POST and return the answer's status; OSError (ConnectionError...) when it failed."""
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
            raise ValueError("a header of the event holds a line break")
        message = b"".join((self._prefix, lines.encode(), b"content-length: %d\r\n\r\n" % len(body), body))
        for attempt in (0, 1):
            idle = self._take() if attempt == 0 else None
            reused = idle is not None
            connection = idle if idle is not None else await self._connect()
            connection.deadline = asyncio.get_running_loop().time() + self._timeout
            self._busy.add(connection)
            if self._sweeper is None:
                self._sweeper = asyncio.create_task(self._sweep())
            try:
                status = await connection.post(message)
            except BaseException as error:
                stale = reused and isinstance(error, ConnectionResetError) and not connection.received_any()
                connection.close()
                if stale and attempt == 0:
                    continue
                raise
            finally:
                self._busy.discard(connection)
            if connection.reusable and not connection.closed and len(self._idle) < self._max_idle:
                self._idle.append(connection)
            else:
                connection.close()
            return status
        raise AssertionError("unreachable")

    async def _connect(self) -> _Connection:
        connecting = asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
        _, connection = await asyncio.wait_for(connecting, self._timeout)
        return connection

    def _take(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self._timeout / 4))
            now = loop.time()
            for connection in [c for c in self._busy if c.deadline < now]:
                connection.expire()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in self._idle:
            connection.close()
        self._idle.clear()
