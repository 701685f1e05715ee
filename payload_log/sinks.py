"""Where spooled events go: an HTTP sink (CloudEvents binary mode, one POST per event, as a Knative broker
expects) and a JSON-lines file sink (CloudEvents JSON format, one event per line).

A sink raises `RetryableSinkError` for failures worth retrying (connection errors, timeouts, 408, 429,
5xx) and `PermanentSinkError` when the sink answered that it will never take the event (other 4xx).
"""

from __future__ import annotations

import asyncio
import base64
import functools
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import aiohttp
import orjson

from payload_log.http1 import Http1Poster
from payload_log.spool import SpooledEvent

_RETRYABLE_STATUS = frozenset({408, 425, 429})


class SinkError(Exception):
    pass


class RetryableSinkError(SinkError):
    pass


class PermanentSinkError(SinkError):
    pass


class Sink(Protocol):
    async def send(self, event: SpooledEvent) -> None: ...

    async def send_batch(self, events: list[SpooledEvent]) -> list[SinkError | None]:
        """Send `events` in order: per event None (the sink took it) or the error it met."""
        ...

    async def aclose(self) -> None: ...


async def send_each(sink: Sink, events: list[SpooledEvent]) -> list[SinkError | None]:
    """`send_batch` for sinks that send one event at a time."""
    outcomes: list[SinkError | None] = []
    for event in events:
        try:
            await sink.send(event)
        except SinkError as error:
            outcomes.append(error)
        else:
            outcomes.append(None)
    return outcomes


class HttpSink:
    """Plain http:// sinks, through the minimal keep-alive client of `http1` (about a seventh of
    aiohttp's Python time per POST under py-spy on the CI machine, where delivery shares two cores with
    the whole mesh). A batch is one pipelined write on one connection: one system call and one wake-up
    for several events, for us and for the sink."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._url = url
        self._poster = Http1Poster(url, timeout_seconds)

    async def send(self, event: SpooledEvent) -> None:
        outcome = (await self.send_batch([event]))[0]
        if outcome is not None:
            raise outcome

    async def send_batch(self, events: list[SpooledEvent]) -> list[SinkError | None]:
        """The events' spooled header lines are written as they are (`PayloadEvent.head` keeps line
        breaks out of values)."""
        statuses, failure = await self._poster.post_many(
            [self._poster.request_head(e.head, e.body) for e in events]
        )
        outcomes: list[SinkError | None] = [None] * len(events)
        for index, status in enumerate(statuses):
            if not 200 <= status < 300:
                outcomes[index] = _status_error(self._url, status)
        for index in range(len(statuses), len(events)):
            outcomes[index] = RetryableSinkError(f"POST {self._url}: {failure!r}")
        return outcomes

    async def aclose(self) -> None:
        self._poster.close()


class HttpsSink:
    """https:// sinks, through aiohttp (TLS); aiohttp, not httpx: on the CI machine httpx spends about
    4.7 ms of CPU per POST against aiohttp's 0.3 ms."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self._url = url
        self._session = session

    async def send(self, event: SpooledEvent) -> None:
        try:
            async with self._session.post(self._url, data=event.body, headers=event.headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableSinkError(f"POST {self._url}: {exc!r}") from exc
        _check_status(self._url, status)

    async def send_batch(self, events: list[SpooledEvent]) -> list[SinkError | None]:
        return await send_each(self, events)

    async def aclose(self) -> None:
        """The session is shared; `SinkFactory.aclose` closes it."""


def _check_status(url: str, status: int) -> None:
    if not 200 <= status < 300:
        raise _status_error(url, status)


def _status_error(url: str, status: int) -> SinkError:
    message = f"POST {url}: HTTP {status}"
    if status >= 500 or status in _RETRYABLE_STATUS:
        return RetryableSinkError(message)
    return PermanentSinkError(message)


def structured_event(event: SpooledEvent) -> dict[str, Any]:
    """The CloudEvents JSON format of a spooled event: attributes lower-cased, JSON payloads inline."""
    out: dict[str, Any] = {}
    content_type = ""
    for name, value in event.headers.items():
        lower = name.lower()
        if lower == "content-type":
            content_type = value
            out["datacontenttype"] = value
        elif lower.startswith("ce-"):
            out[lower[3:]] = value
    if "json" in content_type:
        try:
            out["data"] = orjson.loads(event.body)
            return out
        except orjson.JSONDecodeError:
            pass
    out["data_base64"] = base64.b64encode(event.body).decode("ascii")
    return out


class JsonLinesSink:
    """Appends and flushes one line per event: a process kill loses nothing written (the kernel keeps it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")

    async def send(self, event: SpooledEvent) -> None:
        line = orjson.dumps(structured_event(event), option=orjson.OPT_APPEND_NEWLINE)
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            raise RetryableSinkError(f"write {self._file.name}: {exc}") from exc
        # this sink never suspends otherwise: let other lanes, the acker and a stop() run between events
        await asyncio.sleep(0)

    async def send_batch(self, events: list[SpooledEvent]) -> list[SinkError | None]:
        """The batch's lines in one write and one flush (and one yield to the loop), not one of each per
        event; a failed write fails the batch, whose lines already written are then written again (at
        least once)."""
        lines = b"".join(
            orjson.dumps(structured_event(event), option=orjson.OPT_APPEND_NEWLINE) for event in events
        )
        outcomes: list[SinkError | None] = [None] * len(events)
        try:
            self._file.write(lines)
            self._file.flush()
        except OSError as exc:
            outcomes = [RetryableSinkError(f"write {self._file.name}: {exc}")] * len(events)
        await asyncio.sleep(0)
        return outcomes

    async def aclose(self) -> None:
        self._file.close()


class SinkFactory:
    """One sink per destination, created on first use: http(s):// URLs and file:// paths."""

    def __init__(self, http_timeout_seconds: float, max_connections: int) -> None:
        self._timeout = http_timeout_seconds
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # for https:// sinks, made on first use
        self._sinks: dict[str, Sink] = {}

    def sink_for(self, destination: str) -> Sink:
        sink = self._sinks.get(destination)
        if sink is None:
            sink = self._sinks[destination] = self._create(destination)
        return sink

    def _create(self, destination: str) -> Sink:
        parsed = urlparse(destination)
        if parsed.scheme == "http":
            return HttpSink(destination, self._timeout)
        if parsed.scheme == "https":
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                    connector=aiohttp.TCPConnector(limit=self._max_connections),
                    skip_auto_headers=("Content-Type",),
                )
            return HttpsSink(destination, self._session)
        if parsed.scheme == "file":
            return JsonLinesSink(Path(unquote(parsed.path)))
        raise PermanentSinkError(f"unsupported payload log destination {destination!r}")

    async def aclose(self) -> None:
        for sink in self._sinks.values():
            await sink.aclose()
        if self._session is not None:
            await self._session.close()


@functools.lru_cache(maxsize=1024)
def check_destination(destination: str) -> None:
    """Raise ValueError for a destination no sink serves (checked before an event is accepted)."""
    parsed = urlparse(destination)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return
    if parsed.scheme == "file" and parsed.path:
        return
    raise ValueError(f"payload log destination must be http(s)://host/... or file:///path: {destination!r}")
