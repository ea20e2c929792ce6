"""Grace-time reaping, as Guardian's "bomberman" does it.

Each container has one countdown. Requests about the container pause it (nested), and
when the last one ends a fresh full-length countdown starts, so a container dies
``grace_time`` after its last activity. Zero means never.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

log = logging.getLogger("gardend.grace")


class _Timer:
    def __init__(self, grace_ns: int) -> None:
        self.grace_ns = grace_ns
        self.paused = 0
        self.handle: asyncio.TimerHandle | None = None


class GraceReaper:
    def __init__(self, expire: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self._expire = expire
        self._timers: dict[str, _Timer] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def track(self, handle: str, grace_ns: int) -> None:
        """Starts (or restarts) the countdown for ``handle`` with a new grace time."""
        timer = self._timers.setdefault(handle, _Timer(grace_ns))
        timer.grace_ns = grace_ns
        if timer.paused == 0:
            self._arm(handle, timer)

    def forget(self, handle: str) -> None:
        timer = self._timers.pop(handle, None)
        if timer is not None and timer.handle is not None:
            timer.handle.cancel()

    @contextlib.asynccontextmanager
    async def paused(self, handle: str) -> AsyncIterator[None]:
        """Holds the countdown for as long as a request about ``handle`` is in flight."""
        timer = self._timers.get(handle)
        if timer is None:
            yield
            return
        timer.paused += 1
        if timer.handle is not None:
            timer.handle.cancel()
            timer.handle = None
        try:
            yield
        finally:
            timer.paused -= 1
            if timer.paused == 0 and self._timers.get(handle) is timer:
                self._arm(handle, timer)

    def _arm(self, handle: str, timer: _Timer) -> None:
        if timer.handle is not None:
            timer.handle.cancel()
            timer.handle = None
        if timer.grace_ns <= 0:
            return
        loop = asyncio.get_running_loop()
        timer.handle = loop.call_later(timer.grace_ns / 1e9, self._fire, handle)

    def _fire(self, handle: str) -> None:
        timer = self._timers.get(handle)
        if timer is None or timer.paused:
            return
        timer.handle = None
        log.info("grace time expired", extra={"handle": handle})
        task = asyncio.create_task(self._expire(handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for timer in self._timers.values():
            if timer.handle is not None:
                timer.handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
