"""The graph executor's node HTTP pool after an idle spell: a runtime (uvicorn: 5 s keep-alive) closes
every idle connection, and the next burst of node calls must not fail on them. Seen in
bench/observability as 503 "connection closed before the answer" once a case sat idle between rounds."""

from __future__ import annotations

import asyncio

from extproc.nodes.http1 import Http1Pool

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def test_calls_after_the_server_closed_every_idle_connection_succeed() -> None:
    async def run() -> None:
        writers: list[asyncio.StreamWriter] = []

        handlers: list[asyncio.Task[None]] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.append(task)
            writers.append(writer)
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                    await asyncio.sleep(0.01)  # keep the calls of a burst overlapping
                    writer.write(ANSWER)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool()
        burst = [pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}) for _ in range(8)]
        assert await asyncio.gather(*burst) == [(200, b"ok")] * 8  # 8 connections now idle in the pool
        assert len(writers) == 8
        for writer in writers:  # the keep-alive timeout: the server closes them all
            writer.close()
        writers.clear()
        # one call first: more stale connections are pooled than a retry could skip one by one
        assert await pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}) == (200, b"ok")
        burst = [pool.request("POST", "127.0.0.1", port, "/p", b"{}", {}) for _ in range(8)]
        assert await asyncio.gather(*burst) == [(200, b"ok")] * 8
        await pool.close()  # the server's handlers see EOF and close their side
        await asyncio.gather(*handlers)
        server.close()
        await server.wait_closed()

    asyncio.run(run())
