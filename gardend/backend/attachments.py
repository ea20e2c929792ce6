"""Attachments: one per Run or Attach, each with its own cursors into a process's output.

An attachment's stream id is how its stdout and stderr connections find it. Its cursors
keep output for those connections until they arrive (or ARRIVAL_WINDOW says they will not),
and once the control connection has ended, they send what there is and close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gardend.backend.output import CursorState
from gardend.backend.process import Process
from gardend.backend.process_depot import ExitResult
from gardend.models import WindowSize

ARRIVAL_WINDOW = 5.0
"""Seconds an attachment waits for its stdout/stderr connections before deciding that its
client does not read them. The Go client opens them right after the first message."""
FINISHED_WINDOW = 60.0
"""Seconds a late output connection may still arrive once the process has exited, as in
Guardian: waiting can no longer block the process, and what is kept is bounded."""


class OutputStream:
    """One attachment's stdout or stderr as its output connection reads it."""

    def __init__(self, attachment: Attachment, name: str) -> None:
        self.attachment = attachment
        self._log = attachment.process.logs[name]
        self._cursor = attachment.cursors[name]
        self._log.connect(self._cursor)

    async def read(self) -> bytes:
        """The next bytes to send; ``b""`` when the stream is done."""
        return await self._log.read(self._cursor)

    def advance(self, count: int) -> None:
        self._log.advance(self._cursor, count)

    def close(self) -> None:
        self._log.release(self._cursor)
        self.attachment.check_done()


class Attachment:
    """One Run or Attach: cursors into the process's output and the client's handle on it."""

    def __init__(
        self,
        process: Process,
        stream_id: str,
        on_done: Callable[[Attachment], None],
        on_reported: Callable[[Process], Awaitable[None]],
    ) -> None:
        self.process = process
        self.stream_id = stream_id
        self.cursors = {name: out.cursor() for name, out in process.logs.items()}
        self.finished = False
        self._waited = ARRIVAL_WINDOW
        self._on_done = on_done
        self._on_reported = on_reported
        self._window = asyncio.get_running_loop().call_later(ARRIVAL_WINDOW, self._close_window)

    @property
    def process_id(self) -> str:
        return self.process.id

    async def wait(self) -> ExitResult:
        await self.process.done.wait()
        assert self.process.result is not None
        return self.process.result

    async def reported(self) -> None:
        """The exit status has been sent to this attachment's client."""
        await self._on_reported(self.process)

    async def write_stdin(self, data: bytes) -> None:
        await self.process.write_stdin(data)

    async def close_stdin(self) -> None:
        await self.process.close_stdin()

    async def signal(self, number: int) -> None:
        await self.process.signal(number)

    async def resize(self, size: WindowSize) -> None:
        await self.process.resize(size)

    def output(self, name: str) -> OutputStream | None:
        """The output stream for a connection that just arrived, unless one came already."""
        if self.cursors[name].state != CursorState.PENDING:
            return None
        return OutputStream(self, name)

    def finish(self) -> None:
        """The control connection has ended: output connections send what they have and close."""
        if not self.finished:
            self.finished = True
            for name, cursor in self.cursors.items():
                self.process.logs[name].finish(cursor)
            self.check_done()

    def cancel(self) -> None:
        self._window.cancel()

    def _close_window(self) -> None:
        if self.process.done.is_set() and self._waited < FINISHED_WINDOW:
            extra = FINISHED_WINDOW - self._waited
            self._waited = FINISHED_WINDOW
            self._window = asyncio.get_running_loop().call_later(extra, self._close_window)
            return
        for name, cursor in self.cursors.items():
            self.process.logs[name].decline(cursor)
        self.check_done()

    def check_done(self) -> None:
        if self.finished and all(c.state == CursorState.CLOSED for c in self.cursors.values()):
            self._window.cancel()
            self._on_done(self)
