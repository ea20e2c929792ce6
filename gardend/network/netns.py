"""A container's network namespace, pinned to a file once its task exists.

runc makes the namespace (inside the container's user namespace, so that an unprivileged
container can still mount its own sysfs), and gardend configures it between task create
and start, so PID 1 never runs without its network. The namespace is pinned by
bind-mounting it onto a file: CNI DEL then still reaches the veth after the task is gone,
and a restarted task is told apart from the one whose namespace holds the interface.
Unmounting the file frees the namespace, and with it both ends of the veth pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from gardend.network.command import run


def _identity(path: Path | str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _is_pinned(path: Path) -> bool:
    own, parent = _identity(path), _identity(path.parent)
    return own is not None and parent is not None and own[0] != parent[0]


async def is_pinned(path: Path) -> bool:
    return await asyncio.to_thread(_is_pinned, path)


async def pins(path: Path, pid: int) -> bool:
    """Whether ``path`` pins the network namespace process ``pid`` is in."""

    def same() -> bool:
        own = _identity(path)
        return _is_pinned(path) and own is not None and own == _identity(f"/proc/{pid}/ns/net")

    return await asyncio.to_thread(same)


def _make_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(0o644)


async def pin(path: Path, pid: int) -> None:
    await asyncio.to_thread(_make_file, path)
    await run("mount", "--bind", f"/proc/{pid}/ns/net", str(path))


async def remove(path: Path) -> None:
    """Unpins and deletes; safe when the file or its mount is already gone."""
    if await is_pinned(path):
        await run("umount", "--lazy", str(path), check=False)
    with contextlib.suppress(FileNotFoundError):
        await asyncio.to_thread(os.unlink, path)
