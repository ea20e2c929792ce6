"""Hard disk limits for writable layers: one loop-mounted ext4 image per limited container.

XFS and ext4 project quotas need kernel and filesystem support many hosts lack, while
loop devices work nearly everywhere. The container's layer directory (overlay upper and
work dirs) becomes the root of an ext4 filesystem sized so that exactly the allowed bytes
and inodes are free in it; writes past the limit fail with ENOSPC, as they would under a
quota. Images are sparse files under their own directory, so the layer directory stays a
plain mount point that can be unmounted before it is removed.

Inode limits are as exact as ext4 allows: inode tables fill whole blocks, so each 128 MiB
block group holds a multiple of 16 inodes and a limit rounds up to that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from gardend import command
from gardend.errors import GardenError
from gardend.rootfs.usage import Usage

log = logging.getLogger("gardend.disklimit")

BLOCK_SIZE = 4096
BYTES_PER_INODE = 4096
"""Every non-empty file takes a block anyway, so inodes never run out before bytes do."""
RESERVED_INODES = 11
"""ext4's inodes 1-10 are reserved (2 is the root directory) and 11 is lost+found."""
KERNEL_RESERVE_DIVISOR, KERNEL_RESERVE_MAX = 50, 4096
"""The kernel keeps 2% of blocks (at most 4096) free for metadata; no file can use them."""
MIN_LAYER_BYTES = 1 << 20
SIZING_ROUNDS = 4
SUPERBLOCK_OFFSET = 1024
IMAGE_SUFFIX = ".img"


class DiskLimitError(GardenError):
    """An image could not be made, mounted or removed."""


@dataclass(frozen=True)
class LayerQuota:
    """What a writable layer may hold: ``inodes`` 0 means one inode per 4 KiB."""

    bytes: int
    inodes: int = 0


@dataclass(frozen=True)
class _Superblock:
    blocks: int
    free_blocks: int
    inodes: int
    free_inodes: int
    block_size: int


def _read_superblock(image: Path) -> _Superblock:
    with open(image, "rb") as f:
        f.seek(SUPERBLOCK_OFFSET)
        raw = f.read(1024)
    inodes, blocks_lo, _, free_blocks_lo, free_inodes, _, log_block = struct.unpack_from("<7I", raw)
    blocks_hi, _, free_blocks_hi = struct.unpack_from("<3I", raw, 0x150)
    return _Superblock(
        blocks=blocks_hi << 32 | blocks_lo,
        free_blocks=free_blocks_hi << 32 | free_blocks_lo,
        inodes=inodes,
        free_inodes=free_inodes,
        block_size=1024 << log_block,
    )


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


async def _run(*argv: str) -> str:
    return (await command.run(*argv, error=DiskLimitError))[1]


def _mounted_under(directory: Path) -> list[Path]:
    """Mount points directly inside ``directory``, from this process's mount table."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = Path(line.split()[4].encode().decode("unicode_escape"))
            if mount_point.parent == directory:
                found.append(mount_point)
    return found


class DiskImages:
    """The images (under ``images``) and their mount points (layer dirs under ``layers``)."""

    def __init__(self, images: Path, layers: Path) -> None:
        self.images = images
        self.layers = layers

    def image(self, container_id: str) -> Path:
        return self.images / f"{container_id}{IMAGE_SUFFIX}"

    def mount_point(self, container_id: str) -> Path:
        return self.layers / container_id

    async def create(self, container_id: str, quota: LayerQuota) -> None:
        """Makes the image and mounts it at the layer directory, which must not exist yet."""
        if quota.bytes < MIN_LAYER_BYTES:
            raise DiskLimitError(f"a writable layer needs at least {MIN_LAYER_BYTES} bytes, got {quota.bytes}")
        image = self.image(container_id)
        await asyncio.to_thread(self.images.mkdir, parents=True, exist_ok=True)
        await self._format(image, quota)
        await asyncio.to_thread(self.mount_point(container_id).mkdir, parents=True, exist_ok=True)
        await _run("mount", "-t", "ext4", "-o", "loop", str(image), str(self.mount_point(container_id)))
        log.info("disk limit applied", extra={"id": container_id, "bytes": quota.bytes, "inodes": quota.inodes})

    async def _format(self, image: Path, quota: LayerQuota) -> None:
        """Grows the image until the empty filesystem has ``quota.bytes`` free.

        Metadata (inode tables, bitmaps, directories) takes space too, so the image is
        larger than the quota by that overhead; each round adds the shortfall and an eighth
        more, since a larger filesystem has more inode tables.
        """
        size = _round_up(quota.bytes, BLOCK_SIZE)
        options = ["-q", "-F", "-b", str(BLOCK_SIZE), "-m", "0", "-I", "256", "-O", "^has_journal"]
        if quota.inodes:
            options += ["-N", str(quota.inodes + RESERVED_INODES)]
        else:
            options += ["-i", str(BYTES_PER_INODE)]
        for _ in range(SIZING_ROUNDS):
            await asyncio.to_thread(self._sparse_file, image, size)
            await _run("mkfs.ext4", *options, str(image))
            sb = await asyncio.to_thread(_read_superblock, image)
            free = (sb.free_blocks - min(sb.blocks // KERNEL_RESERVE_DIVISOR, KERNEL_RESERVE_MAX)) * sb.block_size
            if free >= quota.bytes:
                return
            deficit = quota.bytes - free
            size += _round_up(deficit + deficit // 8 + BLOCK_SIZE, BLOCK_SIZE)
        raise DiskLimitError(f"could not size a filesystem for {quota.bytes} free bytes")

    @staticmethod
    def _sparse_file(path: Path, size: int) -> None:
        with open(path, "wb") as f:
            f.truncate(size)

    async def restore(self, container_id: str) -> None:
        """Mounts an existing image again (after a reboot), repairing it first if needed."""
        image, mount_point = self.image(container_id), self.mount_point(container_id)
        if not await asyncio.to_thread(image.exists) or await asyncio.to_thread(os.path.ismount, mount_point):
            return
        with contextlib.suppress(DiskLimitError):
            await _run("e2fsck", "-p", str(image))
        await asyncio.to_thread(mount_point.mkdir, parents=True, exist_ok=True)
        await _run("mount", "-t", "ext4", "-o", "loop", str(image), str(mount_point))

    async def remove(self, container_id: str) -> None:
        """Unmounts and deletes a layer's image; safe to repeat and when nothing is there."""
        mount_point, image = self.mount_point(container_id), self.image(container_id)
        if await asyncio.to_thread(os.path.ismount, mount_point):
            await self._unmount(mount_point)
        if await asyncio.to_thread(image.exists):
            await self._detach_loops(image)
            await asyncio.to_thread(image.unlink, True)

    @staticmethod
    async def _unmount(mount_point: Path) -> None:
        try:
            await _run("umount", str(mount_point))
        except DiskLimitError as e:
            log.warning("unmount failed, detaching lazily", extra={"path": str(mount_point), "error": e.message})
            await _run("umount", "--lazy", str(mount_point))

    @staticmethod
    async def _detach_loops(image: Path) -> None:
        """Frees loop devices still attached to ``image`` (left by a crash between attach
        and mount); for a device still in use this only sets auto-clear, which is harmless."""
        out = await _run("losetup", "--associated", str(image), "--noheadings", "--output", "NAME")
        for device in out.split():
            with contextlib.suppress(DiskLimitError):
                await _run("losetup", "--detach", device)

    async def reconcile(self, known_ids: set[str]) -> None:
        """Removes images and mounts of containers that no longer exist."""
        images = await asyncio.to_thread(lambda: list(self.images.glob(f"*{IMAGE_SUFFIX}")))
        mounted = await asyncio.to_thread(_mounted_under, self.layers)
        orphans = {p.name.removesuffix(IMAGE_SUFFIX) for p in images} | {p.name for p in mounted}
        for container_id in sorted(orphans - known_ids):
            log.info("removing orphaned disk limit image", extra={"id": container_id})
            await self.remove(container_id)

    def usage(self, container_id: str) -> Usage | None:
        """What the layer holds, from its filesystem's counters; None if it has no image.

        Blocking (statvfs); call it off the event loop.
        """
        mount_point = self.mount_point(container_id)
        if not os.path.ismount(mount_point):
            return None
        st = os.statvfs(mount_point)
        return Usage(
            bytes=(st.f_blocks - st.f_bfree) * st.f_frsize,
            inodes=max(0, st.f_files - st.f_ffree - RESERVED_INODES),
        )
