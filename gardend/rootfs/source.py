"""Which directory a container's rootfs comes from, and its id-shifted copy when needed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from gardend.errors import BadRequestError


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
    """Copies of rootfs directories with container root's files owned by the mapped host id.

    Unprivileged containers see host id ``root_id`` as root, so their lower layer must be
    owned by it; every other id maps to itself and keeps its owner. Each source is copied
    once per source directory version and reused by every container.
    """

    def __init__(self, directory: Path, root_id: int) -> None:
        self.directory = directory
        self.root_id = root_id
        self._locks: dict[Path, asyncio.Lock] = {}

    def _key(self, source: Path) -> str:
        st = source.stat()
        raw = f"{source}\0{st.st_ino}\0{st.st_mtime_ns}\0{self.root_id}"
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
            proc = await asyncio.create_subprocess_exec(
                "cp",
                "-a",
                "--reflink=auto",
                str(source),
                str(tmp),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate()
            if proc.returncode != 0:
                raise BadRequestError(f"copying rootfs {source}: {err.decode(errors='replace').strip()}")
            await asyncio.to_thread(shift_owners, tmp, self.root_id)
            await asyncio.to_thread(tmp.rename, target)
            return target


def shift_owners(tree: Path, root_id: int) -> None:
    """Gives every file owned by uid or gid 0 to ``root_id`` instead, links included."""
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            uid = root_id if st.st_uid == 0 else st.st_uid
            gid = root_id if st.st_gid == 0 else st.st_gid
            if (uid, gid) != (st.st_uid, st.st_gid):
                mode = st.st_mode
                os.lchown(path, uid, gid)
                if not os.path.islink(path) and mode & 0o6000:
                    os.chmod(path, mode & 0o7777)
