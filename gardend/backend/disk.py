"""Garden disk limits and disk usage, in terms of a container's image and writable layer.

Garden's ``scope`` says what a limit covers: ``total`` (0) counts the rootfs image and
the writable layer together, ``exclusive`` (1) only the writable layer. The image is
shared and read-only, so a total limit leaves the layer what the image does not use.
Soft limits are reported back but, as in Guardian, not enforced.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gardend.errors import BadRequestError
from gardend.models import ContainerDiskStat, DiskLimits
from gardend.rootfs.disklimit import DiskImages, LayerQuota
from gardend.rootfs.usage import ImageSizes, Usage, measure

SCOPE_TOTAL = 0
SCOPE_EXCLUSIVE = 1


class LayerDisks:
    """Quotas for writable layers, and what layers and images use."""

    def __init__(self, images: DiskImages) -> None:
        self.images = images
        self.image_sizes = ImageSizes()

    async def quota(self, limits: DiskLimits, lower: Path) -> LayerQuota | None:
        """The writable layer's share of ``limits``; None when there is no hard limit."""
        if limits.scope not in (SCOPE_TOTAL, SCOPE_EXCLUSIVE):
            raise BadRequestError(f"disk limit scope must be 0 (total) or 1 (exclusive), got {limits.scope}")
        if not limits.byte_hard and not limits.inode_hard:
            return None
        image = await self.image_sizes.get(lower) if limits.scope == SCOPE_TOTAL else Usage()
        layer_bytes = limits.byte_hard - image.bytes if limits.byte_hard else await self._host_disk_bytes()
        layer_inodes = limits.inode_hard - image.inodes if limits.inode_hard else 0
        if layer_bytes <= 0 or (limits.inode_hard and layer_inodes <= 0):
            raise BadRequestError(
                f"disk limit ({limits.byte_hard} bytes, {limits.inode_hard} inodes) is smaller than the "
                f"rootfs image ({image.bytes} bytes, {image.inodes} inodes)"
            )
        return LayerQuota(bytes=layer_bytes, inodes=layer_inodes)

    async def _host_disk_bytes(self) -> int:
        """An inode-only limit still needs a size: the depot's disk, as the layer could use it all
        (its inodes then round up to 16 per 128 MiB of that disk, see disklimit)."""
        st = await asyncio.to_thread(os.statvfs, self.images.layers.parent)
        return st.f_blocks * st.f_frsize

    async def stats(self, layers: dict[str, tuple[Path, Path]]) -> dict[str, ContainerDiskStat]:
        """DiskStat per container id, from ``{id: (writable layer dir, image dir)}``."""
        images = {lower: await self.image_sizes.get(lower) for _, lower in layers.values()}
        exclusive = await asyncio.to_thread(
            lambda: {cid: self._layer_usage(cid, upper) for cid, (upper, _) in layers.items()}
        )
        stats = {}
        for cid, (_, lower) in layers.items():
            total = exclusive[cid] + images[lower]
            stats[cid] = ContainerDiskStat(
                total_bytes_used=total.bytes,
                total_inodes_used=total.inodes,
                exclusive_bytes_used=exclusive[cid].bytes,
                exclusive_inodes_used=exclusive[cid].inodes,
            )
        return stats

    def _layer_usage(self, container_id: str, upper: Path) -> Usage:
        """A limited layer's filesystem counts it for free; others are walked."""
        return self.images.usage(container_id) or measure(upper)
