"""How much disk a directory tree takes: the numbers behind DiskStat and total-scope limits."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

BLOCK_UNIT = 512
"""``st_blocks`` counts 512-byte units whatever the filesystem's block size."""


@dataclass(frozen=True)
class Usage:
    bytes: int = 0
    inodes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.bytes + other.bytes, self.inodes + other.inodes)


def measure(root: Path) -> Usage:
    """Allocated bytes and inodes under ``root``, as ``du`` counts them (hard links once).

    Blocking; call it off the event loop. Entries that vanish while walking are skipped,
    since a running container keeps changing its layer.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            st = os.lstat(directory)
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * BLOCK_UNIT
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if (est.st_dev, est.st_ino) not in seen:
                seen.add((est.st_dev, est.st_ino))
                total += est.st_blocks * BLOCK_UNIT
    return Usage(total, len(seen))


class ImageSizes:
    """Sizes of rootfs directories, measured once each: lower layers never change."""

    def __init__(self) -> None:
        self._sizes: dict[Path, asyncio.Task[Usage]] = {}

    async def get(self, lower: Path) -> Usage:
        task = self._sizes.get(lower)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(asyncio.to_thread(measure, lower))
            self._sizes[lower] = task
        return await asyncio.shield(task)
