"""A process's stdio FIFOs, read and written through asyncio without blocking the loop.

containerd's shim opens the FIFOs it is given: it writes stdout and stderr (holding a read
end of each itself, so its writes never fail while gardend is away) and reads stdin
(holding a write end itself, so only containerd's CloseIO ends the process's stdin).
Closing gardend's own ends therefore never sends EOF, SIGPIPE or SIGHUP to a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from pathlib import Path

from gardend.backend.output import OutputLog

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
"""Output FIFOs are grown to 1 MiB: bigger reads, and more room while gardend restarts."""
STDIN_BUFFER = 1 << 20
"""Stdin a process has not read yet that gardend buffers before it stops reading the client
(whose signals then wait behind the stdin, as with Garden's reference server)."""


def make_fifos(directory: Path, names: tuple[str, ...]) -> None:
    """Creates ``directory`` with a FIFO for each name (blocking; run it in a thread)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = directory / name
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.mkfifo(path, 0o600)


def open_output_fds(path: Path) -> tuple[int, int]:
    """A non-blocking read end of an output FIFO and a write end (blocking; run it in a thread)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    return fd, os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)


class OutputPipe(asyncio.Protocol):
    """Reads one output FIFO into its log until EOF."""

    def __init__(self, log: OutputLog) -> None:
        self.log = log
        self.fd = -1
        self.ended = asyncio.Event()
        self._transport: asyncio.ReadTransport | None = None
        self._detached = False

    @classmethod
    async def open(cls, fd: int, log: OutputLog) -> OutputPipe:
        pipe = cls(log)
        pipe.fd = fd
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: pipe, os.fdopen(fd, "rb", buffering=0))
        return pipe

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self._transport = transport
        self.log.throttle_with(transport.pause_reading, transport.resume_reading)

    def data_received(self, data: bytes) -> None:
        self.log.append(data)

    def eof_received(self) -> None:
        self.log.close()
        self.ended.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._detached:
            self.log.close()
            self.ended.set()

    def detach(self) -> None:
        """Stops reading without ending the stream, so a later gardend can go on reading it."""
        self._detached = True
        if self._transport is not None:
            self._transport.close()


class StdinPipe(asyncio.Protocol):
    """The write end of a process's stdin FIFO. Writes are buffered by the transport and
    dropped once the process is gone; ``drain`` applies backpressure to the sender."""

    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost = asyncio.Event()
        self._lost.set()

    async def open(self, path: Path) -> None:
        """Opens the FIFO; if nobody reads it any more (the process closed stdin), stays closed."""
        try:
            fd = await asyncio.to_thread(os.open, path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                return
            raise
        self._lost.clear()
        loop = asyncio.get_running_loop()
        await loop.connect_write_pipe(lambda: self, os.fdopen(fd, "wb", buffering=0))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.set_write_buffer_limits(high=STDIN_BUFFER)
        self._transport = transport

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._writable.set()
        self._lost.set()

    async def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
            await self._writable.wait()

    async def close(self) -> None:
        """Flushes what is buffered, then closes gardend's end."""
        if self._transport is not None:
            self._transport.close()
        await self._lost.wait()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
