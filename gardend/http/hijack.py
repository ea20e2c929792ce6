"""Taking over an HTTP connection after the response head, as Garden's process routes need.

aiohttp has no public hijack API. After the head is sent, we install our own protocol on
the connection's transport (asyncio's public ``set_protocol``), so every later byte in
either direction is ours and raw, with real flow control both ways. aiohttp's protocol is
told when the connection is lost, so its own bookkeeping stays right, and when the route
returns, the response it finishes can no longer write anything (the transport is closed).

The head must be HTTP/1.1 with ``Transfer-Encoding: chunked`` and no ``Connection: close``,
or the Go client reports "persistent connection closed"; what follows is never chunked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

READ_HIGH_WATER = 1 << 20
"""Bytes read ahead from the client before reading pauses."""


class HijackedConnection(asyncio.Protocol):
    def __init__(self, transport: asyncio.Transport, previous: asyncio.BaseProtocol) -> None:
        self.transport = transport
        self._previous = previous
        self._buffer = bytearray()
        self._eof = False
        self._reading_paused = False
        self._data = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.lost = asyncio.Event()
        self._on_lost: list[Callable[[], None]] = []

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` when the connection goes (the client left, or it was closed)."""
        if self.lost.is_set():
            callback()
        else:
            self._on_lost.append(callback)

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= READ_HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._data.set()

    def eof_received(self) -> bool:
        """The client closed its side: Garden clients never half-close, so it has gone."""
        self._eof = True
        self._data.set()
        return False

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._data.set()
        self._writable.set()
        self.lost.set()
        for callback in self._on_lost:
            callback()
        self._on_lost.clear()
        self._previous.connection_lost(exc)

    # For the route

    async def readline(self, limit: int) -> bytes | None:
        """The next line without its newline; None at EOF. Raises ValueError if a line exceeds ``limit``."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._resume_reading()
                return line
            if len(self._buffer) > limit:
                raise ValueError(f"message longer than {limit} bytes")
            if self._eof:
                line, self._buffer = bytes(self._buffer), bytearray()
                return line or None
            self._data.clear()
            await self._data.wait()

    def _resume_reading(self) -> None:
        if self._reading_paused and len(self._buffer) < READ_HIGH_WATER // 2 and not self.lost.is_set():
            self._reading_paused = False
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Waits while the transport's buffer is above its high-water mark."""
        await self._writable.wait()

    def close(self) -> None:
        """Closes after sending what is buffered (the client reads EOF)."""
        self.transport.close()


async def hijack(
    request: web.Request, status: int, session: Callable[[HijackedConnection], Awaitable[None]]
) -> web.StreamResponse:
    """Sends the response head, then hands the raw connection to ``session`` and closes it after."""
    response = web.StreamResponse(status=status)
    response.content_type = "application/json"
    await response.prepare(request)
    transport = request.transport
    if transport is None or transport.is_closing():
        return response
    assert isinstance(transport, asyncio.Transport)
    connection = HijackedConnection(transport, request.protocol)
    transport.set_protocol(connection)
    transport.resume_reading()
    try:
        await session(connection)
    finally:
        connection.close()
    return response
