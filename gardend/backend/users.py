"""Resolving a Garden ``user`` ("name", "uid:gid", "name:group") in a container's own files."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gardend.errors import BadRequestError
from gardend.rootfs import inroot


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    home: str
    additional_gids: tuple[int, ...] = ()


def _entries(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= fields and not line.startswith("#"):
            rows.append(parts)
    return rows


def _read(root: str, path: str) -> str:
    try:
        return inroot.read_file(root, path).decode(errors="replace")
    except OSError:
        return ""


def _lookup(root: str, spec: str) -> User:
    name, _, group = spec.partition(":")
    name = name or "root"
    passwd = _entries(_read(root, "/etc/passwd"), 7)
    entry = next((p for p in passwd if p[0] == name or (name.isdigit() and p[2] == name)), None)
    if entry is None and not name.isdigit():
        raise BadRequestError(f"unable to find user {name}: no matching entries in passwd file")
    uid = int(name) if name.isdigit() else int(entry[2]) if entry else 0
    gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    home = entry[5] if entry and entry[5] else ("/root" if uid == 0 else "/")
    groups = _entries(_read(root, "/etc/group"), 4)
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = next((g for g in groups if g[0] == group), None)
            if match is None:
                raise BadRequestError(f"unable to find group {group}: no matching entries in group file")
            gid = int(match[2])
    user_name = entry[0] if entry else ""
    extra = tuple(
        int(g[2]) for g in groups if user_name and user_name in g[3].split(",") and g[2].isdigit() and int(g[2]) != gid
    )
    return User(uid=uid, gid=gid, home=home, additional_gids=extra)


async def resolve(root: str, spec: str) -> User:
    """The ids and home of ``spec`` as the container's /etc/passwd and /etc/group define them.

    ``root`` is a host path to the container's root (such as /proc/PID/root); lookups
    resolve inside it, so symlinks in the image cannot point at host files.
    """
    return await asyncio.to_thread(_lookup, root, spec)
