"""iptables through iptables-save and iptables-restore, one atomic batch per change.

Every change is one ``iptables-restore --noflush`` of all the tables it touches, so a
failure leaves the rules as they were. Declaring a chain (``:NAME - [0:0]``) creates it
or, if it exists, empties it; that makes rebuilding a chain idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from gardend.network.command import run


def declare(chain: str) -> str:
    return f":{chain} - [0:0]"


class Iptables:
    """Serialises this server's changes so that a batch computed from a save is applied before the next save."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()

    async def save(self) -> dict[str, list[str]]:
        """Each table's lines (chain declarations and ``-A`` rules) as iptables-save prints them."""
        _, out = await run("iptables-save")
        tables: dict[str, list[str]] = {}
        current: list[str] = []
        for line in out.splitlines():
            if line.startswith("*"):
                current = tables.setdefault(line[1:], [])
            elif line.startswith((":", "-A ")):
                current.append(line)
        return tables

    async def restore(self, batches: Mapping[str, Iterable[str]]) -> None:
        text = ""
        for table, lines in batches.items():
            body = "\n".join(lines)
            if body:
                text += f"*{table}\n{body}\nCOMMIT\n"
        if text:
            await run("iptables-restore", "--noflush", "--wait", stdin=text.encode())


def chains(lines: Iterable[str]) -> set[str]:
    """The chains an iptables-save table declares."""
    return {line[1:].split()[0] for line in lines if line.startswith(":")}


def removal(lines: list[str], doomed: set[str]) -> list[str]:
    """Restore lines deleting the chains ``doomed`` (where they exist) and every rule that jumps to one."""
    existing = chains(lines) & doomed
    out = []
    for line in lines:
        words = line.split()
        if line.startswith("-A ") and words[1] not in existing and target(words) in existing:
            out.append("-D " + line[3:])
    out += [declare(c) for c in sorted(existing)]
    out += [f"-X {c}" for c in sorted(existing)]
    return out


def target(words: list[str]) -> str:
    for flag in ("-j", "-g"):
        if flag in words and words.index(flag) + 1 < len(words):
            return words[words.index(flag) + 1]
    return ""
