"""Bind mounts of a create request: checked before anything is created, with sources in
the container resolved inside its rootfs so that no symlink in the image leads out of it.

runc resolves a bind mount's source on the host. A container-origin source is handed to
it as ``rootfs/<path>`` with ``<path>`` already free of symlinks in the image, so the
host path stays inside the container's root filesystem.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from gardend.errors import BadRequestError, GardenError
from gardend.models import BindMount, BindMountMode, BindMountOrigin
from gardend.rootfs import inroot


async def prepare(bind_mounts: list[BindMount], rootfs: Path) -> list[BindMount]:
    """The bind mounts, validated, with container-origin sources resolved in ``rootfs``."""
    return await asyncio.to_thread(lambda: [_prepare(bm, rootfs) for bm in bind_mounts])


def _prepare(bm: BindMount, rootfs: Path) -> BindMount:
    if not bm.dst_path.startswith("/"):
        raise BadRequestError(f"bind mount destination must be an absolute path: {bm.dst_path!r}")
    if bm.mode not in (BindMountMode.RO, BindMountMode.RW):
        raise BadRequestError(f"bind mount {bm.dst_path}: unknown mode {bm.mode}")
    if bm.origin == BindMountOrigin.HOST:
        if not bm.src_path.startswith("/"):
            raise BadRequestError(f"bind mount source must be an absolute path: {bm.src_path!r}")
        if not os.path.exists(bm.src_path):
            raise BadRequestError(f"bind mount source does not exist: {bm.src_path}")
        return bm
    if bm.origin != BindMountOrigin.CONTAINER:
        raise BadRequestError(f"bind mount {bm.dst_path}: unknown origin {bm.origin}")
    try:
        resolved = inroot.resolve(str(rootfs), bm.src_path)
    except OSError:
        raise BadRequestError(f"bind mount source does not exist in the container: {bm.src_path}") from None
    return bm.model_copy(update={"src_path": resolved})


async def check_container_sources(bind_mounts: list[BindMount], upper: Path) -> None:
    """Refuses to restart a container that replaced a directory on the path of one of its
    container-origin sources with a symlink, which runc would follow on the host.

    Sources were resolved in the image at create time, so only the container's own layer
    (``upper``) can have put a symlink there since.
    """
    for bm in bind_mounts:
        if bm.origin == BindMountOrigin.CONTAINER:
            await asyncio.to_thread(_check_no_symlink, upper, bm.src_path)


def _check_no_symlink(upper: Path, in_root: str) -> None:
    path = upper
    for part in Path(in_root).relative_to("/").parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise GardenError(f"bind mount source {in_root} is now a symlink in the container; not following it")
