"""A TCP proxy in front of a real Redis that injects network faults (no mock: real sockets, a real server).

Modes:

- ``pass``: bytes flow both ways;
- ``lose_reply``: the next request is forwarded to Redis (which applies it), then the client connection is cut
  before the reply comes back, once; afterwards the proxy passes again. A client that retries sends it twice.
- ``blackhole``: the proxy reads what the client sends and never answers nor forwards it, like a half-open
  socket whose peer vanished (no FIN, no RST).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from common.tasks import stop_tasks

Mode = Literal["pass", "lose_reply", "blackhole"]


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode: Mode = "pass"
        self.port = 0
        self.lost_replies = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        await stop_tasks(list(self._tasks), what="proxy task")
        if self._server is not None:
            await self._server.wait_closed()

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.mode == "blackhole":
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.add(up_w)
        cut = asyncio.Event()  # set: replies on this connection are swallowed
        self._spawn(self._upstream(reader, up_w, writer, cut))
        self._spawn(self._downstream(up_r, writer, cut))

    async def _upstream(
        self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, client: asyncio.StreamWriter, cut: asyncio.Event
    ) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue
                losing = self.mode == "lose_reply"
                if losing:
                    self.mode = "pass"
                    cut.set()
                up.write(data)
                await up.drain()
                if losing:
                    self.lost_replies += 1
                    await asyncio.sleep(0.05)  # Redis applies it and answers; the answer is swallowed
                    client.transport.abort()
                    up.close()
                    return
        up.close()

    async def _downstream(self, up: asyncio.StreamReader, client: asyncio.StreamWriter, cut: asyncio.Event) -> None:
        with contextlib.suppress(Exception):
            while data := await up.read(65536):
                if self.mode == "blackhole" or cut.is_set() or client.is_closing():
                    continue
                client.write(data)
                await client.drain()
        client.close()
