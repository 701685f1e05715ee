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
from typing import cast
from urllib.parse import urlsplit

# Answers up to this size are remembered for the fast path of `_Connection._answer` (a broker's 202
# with a few headers is ~100-200 bytes).
_REMEMBERED_ANSWER_BYTES = 512


class HttpProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.x we can read."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` writes a batch of requests at once (HTTP/1.1 pipelining)
    and collects their answers, which come in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.deadline = 0.0  # loop time by which the answers in flight must be in
        self._buffer = bytearray()
        self._expected = 0
        self._statuses: list[int] = []
        self._failure: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._last_answer = b""  # the last whole answer that left the connection reusable, and its status
        self._last_status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if b"\r\n\r\n" in self._buffer and not self.reusable:  # a body that ran to the close
            try:
                self._statuses.append(_status(self._buffer))
                self._buffer.clear()
            except HttpProtocolError as error:
                self._fail(error)
                return
        if len(self._statuses) < self._expected:
            self._fail(ConnectionResetError("connection closed before the answer"))
        else:
            self._waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            while len(self._statuses) < self._expected:
                status = self._answer()
                if status is None:
                    return
                self._statuses.append(status)
        except HttpProtocolError as error:
            self.reusable = False
            self._fail(error)
            return
        self._waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        self._failure = error
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _answer(self) -> int | None:
        """The status once the whole answer is in the buffer (and taken out of it), else None.

        A sink answers every event alike, so the last answer read whole is kept with its status: the
        same bytes again are taken without parsing them (same bytes, same meaning; in py-spy, parsing
        was about an eighth of the delivery thread's time)."""
        buffer = self._buffer
        last = self._last_answer
        if last and buffer.startswith(last):
            del buffer[: len(last)]
            return self._last_status
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
        if self.reusable and body_end <= _REMEMBERED_ANSWER_BYTES:
            self._last_answer, self._last_status = bytes(buffer[:body_end]), status
        del buffer[:body_end]
        return status

    async def exchange(self, message: bytes, count: int) -> tuple[list[int], Exception | None]:
        """Write `count` requests (`message`) and wait for their answers: the statuses of those answered,
        in order, and why the rest were not (None when all were)."""
        assert self.transport is not None
        self._expected, self._statuses, self._failure = count, [], None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(message)
        try:
            await self._waiter
            return self._statuses, self._failure
        finally:
            self._waiter = None

    def received_any(self) -> bool:
        return bool(self._buffer)

    def expire(self) -> None:
        """The answers took too long: fail what is unanswered (TimeoutError) and drop the connection."""
        self._fail(TimeoutError("no answer in time"))
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

    def request(self, headers: dict[str, str], body: bytes) -> bytes:
        """One POST's bytes; ValueError if a header would break the request apart."""
        breaks = max(len(headers) - 1, 0)
        lines = "\r\n".join(map(": ".join, headers.items()))  # in C: a generator of f-strings cost 3x
        if lines.count("\n") != breaks or lines.count("\r") != breaks:
            raise ValueError("a header of the event holds a line break")
        head = lines.encode() + b"\r\n" if headers else b""
        return b"".join((self._prefix, head, b"content-length: %d\r\n\r\n" % len(body), body))

    def request_head(self, head: bytes, body: bytes) -> bytes:
        """One POST's bytes from header lines already CRLF-terminated (a spooled event's `head`)."""
        return b"".join((self._prefix, head, b"content-length: %d\r\n\r\n" % len(body), body))

    async def post(self, headers: dict[str, str], body: bytes) -> int:
        """Send one POST and return the answer's status; OSError (ConnectionError...) when it failed."""
        statuses, failure = await self.post_many([self.request(headers, body)])
        if failure is not None:
            raise failure
        return statuses[0]

    async def post_many(self, requests: list[bytes]) -> tuple[list[int], Exception | None]:
        """Send `requests` (from `request`) pipelined on one connection: the statuses of those answered,
        in order, and the error that stopped the rest (None when all were answered)."""
        message = b"".join(requests)
        for attempt in (0, 1):
            idle = self._take() if attempt == 0 else None
            reused = idle is not None
            try:
                connection = idle if idle is not None else await self._connect()
            except OSError as error:  # TimeoutError included
                return [], error
            connection.deadline = asyncio.get_running_loop().time() + self._timeout
            self._busy.add(connection)
            if self._sweeper is None:
                self._sweeper = asyncio.create_task(self._sweep())
            try:
                statuses, failure = await connection.exchange(message, len(requests))
            except BaseException:
                connection.close()
                raise
            finally:
                self._busy.discard(connection)
            stale = (
                not statuses and isinstance(failure, ConnectionResetError) and not connection.received_any()
            )
            if failure is not None or not connection.reusable or len(self._idle) >= self._max_idle:
                connection.close()
            else:
                self._idle.append(connection)
            if stale and reused and attempt == 0:
                continue  # the server closed it while idle: once more on a fresh connection
            return statuses, failure
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
