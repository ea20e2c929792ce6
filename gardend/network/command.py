"""Errors of the host's networking tools; they run through gardend.command."""

from __future__ import annotations

from gardend import command
from gardend.errors import GardenError


class NetworkError(GardenError):
    """The host refused a networking change; the message names the command and its reason."""


async def run(*argv: str, stdin: bytes | None = None, check: bool = True) -> tuple[int, str]:
    return await command.run(*argv, stdin=stdin, check=check, error=NetworkError)
