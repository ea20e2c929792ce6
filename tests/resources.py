"""Helpers for the resource tests: limits as the Go client sends them, cgroup files, polling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from gardend import server as gardend_server
from gardend.backend.store import containerd_id

MIB = 1 << 20


def limits(**given: dict[str, int]) -> dict[str, dict[str, int]]:
    """A create request's limits as the Go client sends them: every sub-object present."""
    base: dict[str, dict[str, int]] = {
        "bandwidth_limits": {},
        "cpu_limits": {},
        "disk_limits": {},
        "memory_limits": {},
        "pid_limits": {},
    }
    return {**base, **given}


def cgroup_file(gardend: gardend_server.Server, handle: str, controller: str, name: str) -> str:
    path = Path("/sys/fs/cgroup", controller, gardend.config.containerd_namespace, containerd_id(handle), name)
    return path.read_text().strip()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Polls an async predicate until it holds or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        assert loop.time() < end, "condition did not hold in time"
        await asyncio.sleep(0.1)
