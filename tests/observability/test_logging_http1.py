"""The payload logger's minimal HTTP/1.1 client against servers answering the ways real ones do:
content-length, chunked, `connection: close`, closing idle keep-alive connections, never answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

from payload_log import EventType, PayloadEvent
from payload_log.http1 import Http1Poster
from payload_log.sinks import HttpSink, PermanentSinkError, RetryableSinkError
from payload_log.spool import SpooledEvent, encode_head

Answer = Callable[[bytes], bytes | None]  # request head -> raw answer (None: say nothing)


@asynccontextmanager
async def _server(answer: Answer, close_after_answer: bool = False) -> AsyncIterator[list[bytes]]:
    """A raw HTTP server on a free port; yields the list of request heads it read (port appended)."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length")
                )
                await reader.readexactly(length)
                heads.append(head)
                raw = answer(head)
                if raw is None:
                    await asyncio.sleep(3600)
                    return
                writer.write(raw)
                await writer.drain()
                if close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    heads.append(str(port).encode())
    async with server:
        yield heads


def _url(heads: list[bytes]) -> str:
    return f"http://127.0.0.1:{heads[0].decode()}/events?x=1"


def _event(headers: dict[str, str] | None = None) -> SpooledEvent:
    headers = headers or {"Ce-Id": "1", "Content-Type": "application/json"}
    return SpooledEvent("", 0, "r", encode_head(headers), b'{"a":1}', seq=1)


def _run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_answers_with_a_length_chunked_or_closing_body_are_read_and_connections_reused() -> None:
    answers = iter(
        [
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ]
    )

    async def test() -> None:
        async with _server(lambda head: next(answers)) as heads:
            poster = Http1Poster(_url(heads), timeout_seconds=5)
            assert [await poster.post(_event().headers, b"{}") for _ in range(3)] == [202, 200, 204]
            assert heads[1].startswith(b"POST /events?x=1 HTTP/1.1\r\n")
            assert b"Ce-Id: 1\r\n" in heads[1]
            poster.close()

    _run(test)


def test_a_closing_server_and_silently_dropped_keep_alive_connections_are_survived() -> None:
    async def test() -> None:
        closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        async with _server(lambda head: closing, close_after_answer=True) as heads:
            poster = Http1Poster(_url(heads), timeout_seconds=5)
            assert [await poster.post({}, b"x") for _ in range(3)] == [200, 200, 200]
            poster.close()
        # keep-alive answers, but the server closes each connection right after: the pooled connection
        # is stale, seen closed before reuse or failing on it, and the request goes on a fresh one
        kept = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        async with _server(lambda head: kept, close_after_answer=True) as heads:
            poster = Http1Poster(_url(heads), timeout_seconds=5)
            assert [await poster.post({}, b"x") for _ in range(5)] == [200] * 5
            poster.close()

    _run(test)


def test_sink_errors_say_whether_to_retry() -> None:
    statuses = iter([503, 429, 400])

    async def test() -> None:
        async with _server(
            lambda head: b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % next(statuses)
        ) as heads:
            sink = HttpSink(_url(heads), timeout_seconds=5)
            for expected in (RetryableSinkError, RetryableSinkError, PermanentSinkError):
                with pytest.raises(expected):
                    await sink.send(_event())
            await sink.aclose()
        with pytest.raises(RetryableSinkError):  # nobody listens any more
            await HttpSink(_url(heads), timeout_seconds=5).send(_event())

    _run(test)


def test_a_server_that_never_answers_times_out_as_retryable() -> None:
    async def test() -> None:
        async with _server(lambda head: None) as heads:
            sink = HttpSink(_url(heads), timeout_seconds=0.4)
            with pytest.raises(RetryableSinkError):
                await sink.send(_event())
            await sink.aclose()

    _run(test)


def test_a_batch_is_pipelined_on_one_connection_with_an_outcome_per_event() -> None:
    statuses = iter([200, 503, 400, 202])

    async def test() -> None:
        answer = lambda head: b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % next(statuses)  # noqa: E731
        async with _server(answer) as heads:
            sink = HttpSink(_url(heads), timeout_seconds=5)
            outcomes = await sink.send_batch([_event() for _ in range(4)])
            assert outcomes[0] is None and outcomes[3] is None
            assert isinstance(outcomes[1], RetryableSinkError)
            assert isinstance(outcomes[2], PermanentSinkError)
            await sink.aclose()
        # a server that answers the first and closes: the rest of the batch is to be sent again
        closing = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        async with _server(lambda head: closing, close_after_answer=True) as heads:
            sink = HttpSink(_url(heads), timeout_seconds=5)
            outcomes = await sink.send_batch([_event(), _event(), _event()])
            assert outcomes[0] is None
            assert all(isinstance(o, RetryableSinkError) for o in outcomes[1:])
            await sink.aclose()

    _run(test)


def test_answers_repeating_the_last_one_or_differing_from_it_each_get_their_own_status() -> None:
    accepted = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"  # remembered once read whole
    busy = b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno"
    longer = b"HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nyes"
    closing = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    answers = iter([accepted, accepted, busy, accepted, longer, accepted, closing])

    async def test() -> None:
        async with _server(lambda head: next(answers)) as heads:
            sink = HttpSink(_url(heads), timeout_seconds=5)
            outcomes = await sink.send_batch([_event() for _ in range(6)])
            assert [type(o) for o in outcomes] == [type(None)] * 2 + [RetryableSinkError] + [type(None)] * 3
            # the same bytes as a remembered answer but for `connection: close`: the connection is
            # dropped after it, and the next batch goes on a fresh one
            assert await sink.send_batch([_event()]) == [None]
            await sink.aclose()

    _run(test)


def test_a_line_break_in_an_event_attribute_never_adds_a_header_line() -> None:
    event = PayloadEvent(
        type=EventType.REQUEST,
        body=b"{}",
        content_type="application/json",
        request_id="r-1\r\nX-Injected: 1",
        model_id="m\nX-Other: 2",
        deployment="d",
        namespace="n",
        predictor="p",
    )
    head = event.head()
    lines = head.split(b"\r\n")[:-1]
    assert len(lines) == len(event.headers())
    assert b"\n" not in b"".join(lines) and b"\r" not in b"".join(lines)
    assert not any(line.startswith((b"X-Injected", b"X-Other")) for line in lines)
    assert b"Ce-Requestid: r-1  X-Injected: 1" in lines


def test_the_spooled_head_is_the_events_headers() -> None:
    event = PayloadEvent(
        type=EventType.RESPONSE,
        body=b"{}",
        content_type="application/json",
        request_id="r-2",
        model_id="m",
        deployment="d",
        namespace="n",
        predictor="p",
    )
    assert event.head() == encode_head(event.headers())
