"""Running host tools (ip, iptables, tc, mkfs, mount, cp, cc) without blocking the loop."""

from __future__ import annotations

import asyncio

from gardend.errors import GardenError


async def run(
    *argv: str, stdin: bytes | None = None, check: bool = True, error: type[GardenError] = GardenError
) -> tuple[int, str]:
    """Runs ``argv``; returns its exit status and stdout.

    With ``check`` a failure raises ``error`` naming the command and what it printed, so
    the client learns which host step failed and why.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    status = proc.returncode or 0
    if check and status != 0:
        said = (err or out).decode(errors="replace").strip() or f"exit status {status}"
        raise error(f"{' '.join(argv[:3])}: {said}")
    return status, out.decode(errors="replace")
