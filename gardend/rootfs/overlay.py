"""Per-container copy-on-write layers over a shared, read-only rootfs directory."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gardend.containerd.client import Mount


@dataclass(frozen=True)
class Overlay:
    """The upper and work directories of one container, under its depot directory."""

    lower: Path
    base: Path

    @property
    def upper(self) -> Path:
        return self.base / "upper"

    @property
    def work(self) -> Path:
        return self.base / "work"

    def mounts(self) -> list[Mount]:
        options = [f"lowerdir={self.lower}", f"upperdir={self.upper}", f"workdir={self.work}"]
        return [Mount(type="overlay", source="overlay", options=options)]

    async def create(self, root_uid: int, root_gid: int, files: dict[str, bytes]) -> None:
        await asyncio.to_thread(self._create, root_uid, root_gid, files)

    def _create(self, root_uid: int, root_gid: int, files: dict[str, bytes]) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        lower_st = os.stat(self.lower)
        for d in (self.upper, self.work):
            d.mkdir(exist_ok=True)
            os.chown(d, root_uid, root_gid)
        os.chmod(self.upper, lower_st.st_mode & 0o7777)
        for relpath, content in files.items():
            self._seed(relpath, content, root_uid, root_gid)

    def _seed(self, relpath: str, content: bytes, uid: int, gid: int) -> None:
        """Writes a file into the upper layer, giving new parents the lower layer's modes.

        Parents that are not plain directories in the lower layer (symlinks in the
        image) are skipped, so a hostile image cannot redirect the write.
        """
        parts = relpath.strip("/").split("/")
        upper, lower = self.upper, self.lower
        for part in parts[:-1]:
            upper, lower = upper / part, lower / part
            try:
                st = os.lstat(lower)
            except FileNotFoundError:
                st = None
            if (st is not None and not os.path.isdir(lower)) or os.path.islink(lower):
                return
            if not upper.exists():
                upper.mkdir()
                os.chown(upper, st.st_uid if st else uid, st.st_gid if st else gid)
                os.chmod(upper, (st.st_mode & 0o7777) if st else 0o755)
        target = upper / parts[-1]
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, content)
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)

    async def remove(self) -> None:
        await asyncio.to_thread(shutil.rmtree, self.base, True)
