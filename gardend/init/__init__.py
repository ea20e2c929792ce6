"""garden-init, the container's PID 1, built from C once per depot and bind-mounted in.

The host provides it, not the image, so every rootfs gets the same reaper and clients
see PID 1 named ``garden-init``.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from gardend import command
from gardend.errors import GardenError

SOURCE = Path(__file__).with_name("garden_init.c")
CONTAINER_PATH = "/tmp/garden-init"


class InitBuildError(GardenError):
    """garden-init could not be compiled; the message carries the compiler's output."""


async def ensure_built(depot: Path, compiler: str = "cc") -> Path:
    """Path to a garden-init binary built from the current source, compiling it if needed."""
    source = await asyncio.to_thread(SOURCE.read_bytes)
    digest = hashlib.sha256(source).hexdigest()[:16]
    binary = depot / "bin" / digest / "garden-init"
    if await asyncio.to_thread(binary.exists):
        return binary
    await asyncio.to_thread(binary.parent.mkdir, parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    await command.run(compiler, "-static", "-O2", "-o", str(tmp), str(SOURCE), error=InitBuildError)
    await asyncio.to_thread(tmp.rename, binary)
    return binary
