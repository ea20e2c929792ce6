"""Running the host's networking tools (ip, iptables, unshare) without blocking the loop."""

from __future__ import annotations

import asyncio

from gardend.errors import GardenError


class NetworkError(GardenError):
    """The host refused a networking change; the message names the command and its reason."""


async def run(*argv: str, stdin: bytes | None = None, check: bool = True) -> tuple[int, str]:
    """Runs ``argv``; returns its exit status and stdout, raising NetworkError on failure if ``check``."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    status = proc.returncode or 0
    if check and status != 0:
        raise NetworkError(f"{argv[0]} {' '.join(argv[1:3])}: {err.decode(errors='replace').strip() or status}")
    return status, out.decode(errors="replace")
