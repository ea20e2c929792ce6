"""Which directory a container's rootfs comes from, and its id-shifted copy when needed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from gardend import command
from gardend.errors import BadRequestError
from gardend.runtime.spec import IdMapping


def resolve_uri(uri: str, default: str) -> Path:
    """The host directory named by a Garden image URI (a path, ``raw:///path`` or empty)."""
    uri = uri or default
    parsed = urlparse(uri)
    if parsed.scheme in ("", "raw") and not parsed.netloc:
        path = Path(parsed.path if parsed.scheme else uri)
    elif parsed.scheme == "docker":
        raise BadRequestError(f"docker image rootfs is not supported by this server: {uri}")
    else:
        raise BadRequestError(f"unsupported rootfs URI: {uri}")
    if not path.is_absolute():
        raise BadRequestError(f"rootfs path must be absolute: {uri}")
    if not path.is_dir():
        raise BadRequestError(f"rootfs directory does not exist: {path}")
    return path


class ShiftedRootfsCache:
    """Copies of rootfs directories with every file owned by the host id its owner maps to.

    Unprivileged containers see host id ``mapping.root_host_id`` as root, so their lower
    layer must be owned by it, and other ids by their mapped host ids. Each source is copied
    once per source directory version and mapping, and reused by every container.
    """

    def __init__(self, directory: Path, mapping: IdMapping) -> None:
        self.directory = directory
        self.mapping = mapping
        self._locks: dict[Path, asyncio.Lock] = {}

    def _key(self, source: Path) -> str:
        st = source.stat()
        m = self.mapping
        raw = f"{source}\0{st.st_ino}\0{st.st_mtime_ns}\0{m.root_host_id}\0{m.start}\0{m.length}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    async def get(self, source: Path) -> Path:
        key = await asyncio.to_thread(self._key, source)
        target = self.directory / key
        lock = self._locks.setdefault(target, asyncio.Lock())
        async with lock:
            if await asyncio.to_thread(target.is_dir):
                return target
            tmp = self.directory / f"{key}.tmp"
            await asyncio.to_thread(shutil.rmtree, tmp, True)
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
            await command.run("cp", "-a", "--reflink=auto", str(source), str(tmp), error=BadRequestError)
            await asyncio.to_thread(shift_owners, tmp, self.mapping)
            await asyncio.to_thread(tmp.rename, target)
            return target


def shift_owners(tree: Path, mapping: IdMapping) -> None:
    """Gives every file, links included, to the host ids its owner and group map to.

    Ids the container cannot hold keep their host owner and appear as overflow ids.
    """
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            uid, gid = mapping.to_host(st.st_uid), mapping.to_host(st.st_gid)
            uid = st.st_uid if uid is None else uid
            gid = st.st_gid if gid is None else gid
            if (uid, gid) != (st.st_uid, st.st_gid):
                mode = st.st_mode
                os.lchown(path, uid, gid)
                if not os.path.islink(path) and mode & 0o6000:
                    os.chmod(path, mode & 0o7777)
