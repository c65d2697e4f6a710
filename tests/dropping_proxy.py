"""A TCP proxy whose live connections can be cut at once, as a lost network cuts them: no
close frame, no FIN handshake to wait for (the sockets are aborted). For resume tests: put it
between a client (the browser, `talk`) and the relay, then ``sever()``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from relay_loadtools.ports import free_port

CHUNK = 65536


class DroppingProxy:
    """Listens on 127.0.0.1:``port`` and forwards each connection to ``target_port``, in a
    thread of its own (usable from sync Playwright tests and from async tests alike)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.severed = 0  # connections cut so far
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> DroppingProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        return self

    def sever(self) -> int:
        """Cut every live connection (both sides, abruptly); returns how many."""
        return self._call(self._sever())

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._call(self._sever())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def live(self) -> int:
        return len(self._pairs)

    def _call(self, coro: Any) -> Any:  # a coroutine, run on the proxy's loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _sever(self) -> int:
        pairs = list(self._pairs)
        self._pairs.clear()
        for a, b in pairs:
            a.transport.abort()
            b.transport.abort()
        self.severed += len(pairs)
        return len(pairs)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()  # the relay is not there (a worker restarting)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One direction; an orderly end (EOF) is passed on as one, a broken side aborts."""
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            writer.transport.abort()
        else:
            if not writer.transport.is_closing():
                writer.close()


@contextmanager
def dropping_proxy(target_port: int) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(target_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
