"""The node HTTP/1.1 client against a scripted asyncio server: framing, keep-alive, stale connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from extproc.nodes.http1 import Http1Pool, HttpProtocolError

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


async def _serve(script: Script) -> tuple[asyncio.Server, int, list[int]]:
    """A server that runs `script` per request; it returns whether to keep the connection open.
    The list counts connections accepted."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        number = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            number += 1
            if not await script(reader, writer, number):
                writer.close()
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], accepted


async def _fixed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    await writer.drain()
    return True


def test_keep_alive_reuses_one_connection() -> None:
    async def run() -> None:
        server, port, accepted = await _serve(_fixed)
        pool = Http1Pool()
        for _ in range(5):
            assert await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}) == (200, b"ok")
        assert len(accepted) == 1
        await pool.close()
        server.close()

    asyncio.run(run())


def test_chunked_and_close_delimited_bodies() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(
            b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
        )
        await writer.drain()
        return True

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()
        return False

    async def run() -> None:
        server, port, _ = await _serve(chunked)
        pool = Http1Pool()
        assert await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}) == (500, b"abcde")
        server.close()
        server, port, _ = await _serve(until_close)
        assert await pool.request("GET", "127.0.0.1", port, "/p", None, {}) == (200, b"all of it")
        await pool.close()
        server.close()

    asyncio.run(run())


def test_a_connection_closed_while_idle_is_retried_once() -> None:
    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
    ) -> bool:
        await _fixed(reader, writer, number)
        return False  # the server closes after each answer (but said nothing about it)

    async def run() -> None:
        server, port, accepted = await _serve(one_per_connection)
        pool = Http1Pool()
        for _ in range(3):
            assert await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}) == (200, b"ok")
        assert len(accepted) == 3
        await pool.close()
        server.close()

    asyncio.run(run())


def test_garbage_and_refused_connections_raise() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        writer.write(b"<html>hello</html>\r\n")
        await writer.drain()
        return False

    async def run() -> None:
        server, port, _ = await _serve(garbage)
        pool = Http1Pool()
        with pytest.raises(HttpProtocolError):
            await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {})
        server.close()
        await server.wait_closed()
        with pytest.raises(OSError):
            await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {})

    asyncio.run(run())


def test_an_answer_in_many_pieces_is_read_whole() -> None:
    answer = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"a": 1.5}\n'

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        for index in range(len(answer)):
            writer.write(answer[index : index + 1])
            await writer.drain()
            await asyncio.sleep(0)
        return True

    async def run() -> None:
        server, port, accepted = await _serve(trickle)
        pool = Http1Pool()
        for _ in range(2):
            assert await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}) == (200, answer[-11:])
        assert len(accepted) == 1
        await pool.close()
        server.close()

    asyncio.run(run())


@pytest.mark.parametrize("how", ["within_s", "cancelled"])
def test_a_call_cut_short_by_a_timeout_leaves_no_half_read_connection(how: str) -> None:
    calls: list[int] = []
    late = asyncio.Event()
    finished = asyncio.Event()

    async def slow_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        calls.append(number)
        if len(calls) == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nsl")  # half, then too late
            await writer.drain()
            await late.wait()
            writer.write(b"ow")
            finished.set()
            return False
        await _fixed(reader, writer, number)
        return True

    async def run() -> None:
        server, port, accepted = await _serve(slow_first)
        pool = Http1Pool()
        with pytest.raises(TimeoutError):
            if how == "within_s":  # the pool's own timer, as the node client uses it
                await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}, within_s=0.1)
            else:  # a caller's timeout scope cancels the call
                async with asyncio.timeout(0.1):
                    await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {})
        # the next call does not read the late bytes of the first answer: it gets its own connection
        assert await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}) == (200, b"ok")
        assert len(accepted) == 2
        late.set()
        await finished.wait()
        await pool.close()
        server.close()

    asyncio.run(run())
