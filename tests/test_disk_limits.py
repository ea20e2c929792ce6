"""Disk limits through gardend, a real containerd and runc: enforced by a filesystem per layer."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp
import pytest

from gardend import server as gardend_server
from gardend.backend.store import containerd_id
from gardend.client import GardenClient, GardenClientError
from gardend.rootfs.disklimit import DiskImages, LayerQuota
from gardend.rootfs.usage import measure
from tests.conftest import ROOTFS, CreateFn, make_config
from tests.inside import run_in
from tests.resources import MIB, limits

EXCLUSIVE, TOTAL = 1, 0


def disk(byte_hard: int = 0, scope: int = EXCLUSIVE, inode_hard: int = 0) -> dict[str, dict[str, int]]:
    return limits(disk_limits={"byte_hard": byte_hard, "inode_hard": inode_hard, "scope": scope})


def layer_dir(gardend: gardend_server.Server, handle: str) -> Path:
    return gardend.config.depot / "containers" / containerd_id(handle)


def image_file(gardend: gardend_server.Server, handle: str) -> Path:
    return gardend.config.depot / "disks" / f"{containerd_id(handle)}.img"


def loop_devices(image: Path) -> str:
    return subprocess.run(["losetup", "--associated", str(image)], capture_output=True, text=True, check=True).stdout


def dd(path: str, mib: int) -> str:
    return f"dd if=/dev/zero of={path} bs=1M count={mib}"


async def test_exclusive_limit_allows_writes_up_to_it_and_fails_past_it(
    gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(limits=disk(10 * MIB))
    assert os.path.ismount(layer_dir(gardend, handle))
    assert await run_in(gardend, handle, "sh", "-c", dd("/root/test", 9)) == 0
    assert await run_in(gardend, handle, "sh", "-c", "rm /root/test") == 0
    assert await run_in(gardend, handle, "sh", "-c", dd("/root/test", 11)) != 0


async def test_exclusive_limit_does_not_count_the_rootfs(gardend: gardend_server.Server, create: CreateFn) -> None:
    rootfs_bytes = measure(Path(ROOTFS)).bytes
    handle = await create(limits=disk(rootfs_bytes + 2 * MIB))
    assert await run_in(gardend, handle, "sh", "-c", dd("/root/test", (rootfs_bytes >> 20) + 1)) == 0


async def test_total_limit_counts_the_rootfs_image(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    rootfs = measure(Path(ROOTFS))
    handle = await create(limits=disk(20 * MIB, TOTAL))
    stat = (await client.request("GET", f"/containers/{handle}/metrics"))["DiskStat"]
    assert stat["TotalBytesUsed"] - stat["ExclusiveBytesUsed"] == rootfs.bytes
    assert stat["TotalInodesUsed"] - stat["ExclusiveInodesUsed"] == rootfs.inodes
    assert await run_in(gardend, handle, "sh", "-c", dd("/root/test", 7)) == 0
    free_mib = (20 * MIB - rootfs.bytes) >> 20
    assert await run_in(gardend, handle, "sh", "-c", dd("/root/more", free_mib - 7 + 1)) != 0


async def test_total_limit_smaller_than_the_rootfs_is_refused(client: GardenClient) -> None:
    with pytest.raises(GardenClientError) as e:
        await client.create(handle="too-small", limits=disk(1 * MIB, TOTAL))
    assert e.value.status == 400
    assert "smaller than the rootfs" in e.value.message
    assert "too-small" not in await client.list()


async def test_inode_limit_stops_file_creation(gardend: gardend_server.Server, create: CreateFn) -> None:
    handle = await create(limits=disk(100 * MIB, inode_hard=60))
    assert await run_in(gardend, handle, "sh", "-c", "mkdir /root/d && cd /root/d && touch $(seq 1 40)") == 0
    assert await run_in(gardend, handle, "sh", "-c", "cd /root/d && touch $(seq 41 100)") != 0


async def test_privileged_containers_are_limited_too(gardend: gardend_server.Server, create: CreateFn) -> None:
    handle = await create(privileged=True, limits=disk(10 * MIB))
    assert await run_in(gardend, handle, "sh", "-c", dd("/root/test", 11)) != 0


async def test_each_container_has_its_own_quota(gardend: gardend_server.Server, create: CreateFn) -> None:
    first, second = await create(limits=disk(30 * MIB)), await create(limits=disk(30 * MIB))
    assert await run_in(gardend, first, "sh", "-c", dd("/tmp/f", 25)) == 0
    assert await run_in(gardend, second, "sh", "-c", dd("/tmp/f", 25)) == 0


async def test_limited_layer_usage_follows_writes(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(limits=disk(500 * MIB, TOTAL))
    before = (await client.request("GET", f"/containers/{handle}/metrics"))["DiskStat"]
    assert await run_in(gardend, handle, "sh", "-c", dd("/root/f", 3)) == 0
    after = (await client.request("GET", f"/containers/{handle}/metrics"))["DiskStat"]
    for key in ("ExclusiveBytesUsed", "TotalBytesUsed"):
        assert abs(after[key] - before[key] - 3 * MIB) < MIB, key


async def test_destroy_unmounts_and_removes_the_image_and_its_loop_device(
    client: GardenClient, gardend: gardend_server.Server
) -> None:
    handle = await client.create(limits=disk(10 * MIB))
    image = image_file(gardend, handle)
    assert image.exists() and loop_devices(image)
    await client.destroy(handle)
    assert not image.exists()
    assert not layer_dir(gardend, handle).exists()
    assert loop_devices(image) == ""


async def test_restart_remounts_limited_layers_and_removes_orphaned_ones(depot: Path) -> None:
    config = make_config(depot / "disk-restart")
    orphans = DiskImages(config.depot / "disks", config.depot / "containers")
    srv = await gardend_server.start(config)
    async with aiohttp.ClientSession() as session:
        c = GardenClient(f"http://127.0.0.1:{config.bind_port}", session)
        try:
            handle = await c.create(handle="kept", limits=disk(10 * MIB))
            assert await run_in(srv, handle, "sh", "-c", "echo data > /root/data") == 0
            await srv.client.kill(containerd_id(handle), 9)
            await srv.client.wait(containerd_id(handle))
            await srv.client.delete_task(containerd_id(handle))
            subprocess.run(["umount", str(config.depot / "containers" / handle)], check=True)
            await orphans.create("ghost", LayerQuota(2 * MIB))
            await srv.close()

            srv = await gardend_server.start(config)
            assert await run_in(srv, handle, "sh", "-c", "test $(cat /root/data) = data") == 0
            assert await run_in(srv, handle, "sh", "-c", dd("/root/test", 11)) != 0
            assert not orphans.image("ghost").exists()
            assert not os.path.ismount(orphans.mount_point("ghost"))
            assert loop_devices(orphans.image("ghost")) == ""
            await c.destroy(handle)
        finally:
            await srv.close()
