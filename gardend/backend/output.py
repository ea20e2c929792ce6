"""A process's output stream as attachments see it: one bounded log, read through cursors.

One reader per stream (the FIFO) appends here; every attachment reads at its own cursor,
so output fans out to all of them and a new attacher takes over from where delivery
stopped. Bytes stay only while someone may still need them:

- a connected output connection, until it has written them;
- an attachment whose output connection may still arrive (see ``Cursor.PENDING``);
- while the stream is *wanted* (its last reader did not decline it), the bytes nobody has
  delivered yet, for the next attacher, even after a client disconnect or a restart.

When those bytes reach ``capacity`` the log asks its producer to pause, so the process
blocks on a full pipe instead of losing output. Unwanted bytes are dropped at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import Enum

DEFAULT_CAPACITY = 1 << 20
"""Bytes kept per stream beyond the slowest reader: 1 MiB (see the README)."""
MAX_READ = 256 << 10
_SMALL = 4 << 10
"""Chunks smaller than this are joined (up to _JOINED) so a trickle of tiny writes stays few chunks."""
_JOINED = 64 << 10


class CursorState(Enum):
    PENDING = "pending"
    """The attachment exists and its output connection has not arrived (yet)."""
    CONNECTED = "connected"
    CLOSED = "closed"


class Cursor:
    """One attachment's position in a stream."""

    __slots__ = ("limit", "offset", "state")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.limit: int | None = None
        self.state = CursorState.PENDING

    def pins(self) -> bool:
        return self.state != CursorState.CLOSED and (self.limit is None or self.offset < self.limit)


class OutputLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, eof: bool = False, wanted: bool = True) -> None:
        self.capacity = capacity
        self.base = 0
        self.end = 0
        self.delivered = 0
        self.eof = eof
        self.wanted = wanted
        self.throttled = False
        self._chunks: deque[bytes | bytearray] = deque()
        self._cursors: set[Cursor] = set()
        self._changed = asyncio.Event()
        self._pause: Callable[[], None] | None = None
        self._resume: Callable[[], None] | None = None

    # The producer: the FIFO reader

    def throttle_with(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """How to stop and restart the producer when the log is full and has room again."""
        self._pause, self._resume = pause, resume

    def append(self, data: bytes) -> None:
        if not data:
            return
        last = self._chunks[-1] if self._chunks else None
        if len(data) >= _SMALL:
            self._chunks.append(data)
        elif isinstance(last, bytearray) and len(last) + len(data) <= _JOINED:
            last += data
        else:
            self._chunks.append(bytearray(data))
        self.end += len(data)
        self._trim()
        if not self.throttled and self.full() and self._pause is not None:
            self.throttled = True
            self._pause()
        self._notify()

    def close(self) -> None:
        """The stream has ended: readers finish once they have everything."""
        if not self.eof:
            self.eof = True
            self._notify()

    def restore(self, data: bytes) -> None:
        """Starts the log with output kept from before a restart, all of it undelivered."""
        self.append(data)

    def full(self) -> bool:
        return self.end - self._low() >= self.capacity

    # Readers: attachments and their output connections

    def cursor(self) -> Cursor:
        """A cursor for a new attachment: it gets what nobody has delivered yet, then live output."""
        cursor = Cursor(max(self.delivered, self.base))
        self._cursors.add(cursor)
        return cursor

    def connect(self, cursor: Cursor) -> None:
        if cursor.state == CursorState.PENDING:
            cursor.state = CursorState.CONNECTED
            self.wanted = True

    def decline(self, cursor: Cursor) -> None:
        """The attachment's output connection did not come: its client does not read this stream."""
        if cursor.state == CursorState.PENDING:
            self.release(cursor)
            self.wanted = any(c.state == CursorState.CONNECTED for c in self._cursors)
            self._trim()
            self._unthrottle()

    def finish(self, cursor: Cursor) -> None:
        """The attachment has ended: its reader gets what is here now, and no more."""
        if cursor.limit is None:
            cursor.limit = self.end
            self._notify()

    def release(self, cursor: Cursor) -> None:
        if cursor.state != CursorState.CLOSED:
            cursor.state = CursorState.CLOSED
            self._cursors.discard(cursor)
            self._trim()
            self._unthrottle()
            self._notify()

    def done(self, cursor: Cursor) -> bool:
        """Whether ``cursor`` has read all it ever will."""
        if cursor.state == CursorState.CLOSED:
            return True
        stop = self.end if cursor.limit is None else min(self.end, cursor.limit)
        return cursor.offset >= stop and (self.eof or cursor.limit is not None)

    async def read(self, cursor: Cursor, max_bytes: int = MAX_READ) -> bytes:
        """The next bytes at ``cursor`` (without moving it), waiting for them; ``b""`` when done."""
        while True:
            stop = self.end if cursor.limit is None else min(self.end, cursor.limit)
            if cursor.state != CursorState.CLOSED and cursor.offset < stop:
                return self._slice(cursor.offset, min(stop, cursor.offset + max_bytes))
            if self.done(cursor):
                return b""
            await self._changed.wait()

    def advance(self, cursor: Cursor, count: int) -> None:
        """``count`` bytes at ``cursor`` have been handed to its connection."""
        cursor.offset += count
        self.delivered = max(self.delivered, cursor.offset)
        self._trim()
        self._unthrottle()
        if self.done(cursor):
            self._notify()

    def undelivered(self) -> bytes:
        """What a future attacher is owed, for keeping across a restart."""
        start = max(self.delivered, self.base)
        return self._slice(start, self.end) if self.wanted and start < self.end else b""

    # Internals

    def _low(self) -> int:
        pins = [c.offset for c in self._cursors if c.pins()]
        if self.wanted:
            pins.append(self.delivered)
        return max(self.base, min(pins, default=self.end))

    def _trim(self) -> None:
        low = self._low()
        while self._chunks and self.base + len(self._chunks[0]) <= low:
            self.base += len(self._chunks.popleft())

    def _unthrottle(self) -> None:
        if self.throttled and not self.full() and self._resume is not None:
            self.throttled = False
            self._resume()

    def _slice(self, start: int, stop: int) -> bytes:
        offset = self.base
        parts: list[bytes] = []
        for chunk in self._chunks:
            chunk_end = offset + len(chunk)
            if chunk_end > start:
                lo, hi = max(start - offset, 0), min(stop - offset, len(chunk))
                if isinstance(chunk, bytes) and lo == 0 and hi == len(chunk):
                    parts.append(chunk)
                else:
                    parts.append(bytes(memoryview(chunk)[lo:hi]))
                if chunk_end >= stop:
                    break
            offset = chunk_end
        return b"".join(parts)

    def _notify(self) -> None:
        self._changed.set()
        self._changed.clear()
