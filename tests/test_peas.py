"""Peas through gardend, a real containerd and real runc: processes with their own image
inside an existing container."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from gardend import server as gardend_server
from gardend.backend.peas import PEA_LABEL
from gardend.client import GardenClient, GardenClientError, Output
from tests.conftest import CreateFn, make_config
from tests.test_processes import HANG_GUARD, eventually, run

MIB = 1024 * 1024


def pea(rootfs: str, script: str, **spec: Any) -> dict[str, Any]:
    return {"path": "sh", "args": ["-c", script], "image": {"uri": f"raw://{rootfs}"}, **spec}


async def pea_sh(client: GardenClient, handle: str, rootfs: str, script: str, **spec: Any) -> bytes:
    status, out, err = await run(client, handle, pea(rootfs, script, **spec))
    assert status == 0, err
    return out


async def sandbox_sh(client: GardenClient, handle: str, script: str) -> bytes:
    status, out, err = await run(client, handle, {"path": "sh", "args": ["-c", script]})
    assert status == 0, err
    return out


async def pea_containers(gardend: gardend_server.Server) -> list[str]:
    return [c.id for c in await gardend.client.list_containers(f'labels."{PEA_LABEL}"')]


async def test_pea_sees_its_own_rootfs_and_the_sandboxs_network_and_processes(
    client: GardenClient, container: str, rootfs: str
) -> None:
    await sandbox_sh(client, container, "echo sandbox > /only-in-sandbox")
    script = "ls /only-in-sandbox 2>&1; pwd; for ns in net pid mnt; do readlink /proc/self/ns/$ns; done"
    out = (await pea_sh(client, container, rootfs, script)).decode().splitlines()
    sandbox = await sandbox_sh(client, container, "for ns in net pid mnt; do readlink /proc/self/ns/$ns; done")
    net, pid, mnt = sandbox.decode().splitlines()
    assert "No such file" in out[0]
    assert out[1] == "/"
    assert out[2:4] == [net, pid]
    assert out[4] != mnt
    ps = await pea_sh(client, container, rootfs, "ps -o comm")
    assert b"garden-init" in ps


async def test_pea_shares_the_sandboxs_hosts_file_and_resolves_users_in_its_own_image(
    client: GardenClient, container: str, rootfs: str
) -> None:
    await pea_sh(client, container, rootfs, "echo 10.1.2.3 from-the-pea >> /etc/hosts")
    assert b"from-the-pea" in await sandbox_sh(client, container, "cat /etc/hosts")
    assert await pea_sh(client, container, rootfs, "echo -n $(id -u):$(id -g)", user="operator") == b"37:37"


async def test_pea_with_its_own_memory_limit_is_killed_over_it(
    client: GardenClient, container: str, rootfs: str
) -> None:
    limits = {"memory_limits": {"limit_in_bytes": 32 * MIB}}
    script = "dd if=/dev/zero of=/dev/shm/big bs=1M count=40 && echo survived"
    status, out, _ = await run(client, container, pea(rootfs, script, limits=limits))
    assert status != 0
    assert b"survived" not in out


async def test_pea_exits_cleanly_and_leaves_nothing_behind(
    client: GardenClient, container: str, rootfs: str, gardend: gardend_server.Server
) -> None:
    status, out, err = await run(client, container, pea(rootfs, "echo out; echo err >&2; exit 7"))
    assert (status, out, err) == (7, b"out\n", b"err\n")
    peas_dir = Path(gardend.config.depot) / "containers" / container / "peas"

    async def cleaned() -> bool:
        leftovers = await asyncio.to_thread(lambda: list(peas_dir.iterdir()) if peas_dir.exists() else [])
        return not leftovers and not await pea_containers(gardend)

    await eventually(cleaned)


async def test_pea_is_measured_by_bulk_metrics_under_its_process_id(
    client: GardenClient, create: CreateFn, rootfs: str
) -> None:
    handle = await create(limits={"memory_limits": {"limit_in_bytes": 64 * MIB}})
    out = Output()
    process = await client.run(handle, pea(rootfs, "echo ready; while :; do ls -la / >/dev/null; done"), stdout=out)
    await out.wait_for(b"ready")

    async def measured() -> bool:
        entry = (await client.bulk_metrics(process.id))[process.id]
        return entry["Err"] is None and entry["Metrics"]["MemoryStat"]["TotalUsageTowardLimit"] > 0

    await eventually(measured)
    await process.signal(kill=True)
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 137


async def test_destroying_the_sandbox_kills_and_removes_its_peas(
    client: GardenClient, create: CreateFn, rootfs: str, gardend: gardend_server.Server
) -> None:
    handle = await create()
    process = await client.run(handle, pea(rootfs, "sleep 100000"))
    await client.destroy(handle)
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 137
    assert not await pea_containers(gardend)


async def test_stopping_the_sandbox_stops_its_peas_with_or_without_limits_of_their_own(
    client: GardenClient, container: str, rootfs: str
) -> None:
    sharing = await client.run(container, pea(rootfs, "sleep 100000"))
    own = await client.run(container, pea(rootfs, "sleep 100000", limits={}))
    await eventually(lambda: _sleeping(client, container, 2))
    await client.stop(container, kill=True)
    assert await asyncio.wait_for(sharing.wait(), HANG_GUARD) == 137
    assert await asyncio.wait_for(own.wait(), HANG_GUARD) == 137


async def _sleeping(client: GardenClient, handle: str, count: int) -> bool:
    return (await sandbox_sh(client, handle, "ps -o comm | grep -c sleep || true")).strip() == str(count).encode()


async def test_bind_mounts_without_an_image_are_refused(client: GardenClient, container: str) -> None:
    spec = {"path": "true", "bind_mounts": [{"src_path": "/tmp", "dst_path": "/mnt"}]}
    try:
        await client.run(container, spec)
    except GardenClientError as e:
        assert "only supported for processes with their own image" in e.message
    else:
        raise AssertionError("run with bind mounts but no image was accepted")


async def test_pea_survives_a_gardend_restart_and_is_removed_when_it_exits(depot: Path, rootfs: str) -> None:
    """Sidecars keep running while gardend restarts; the new gardend reports their exit."""
    config = make_config(depot / "pea-restart")
    srv = await gardend_server.start(config)
    async with aiohttp.ClientSession() as session:
        c = GardenClient(f"http://127.0.0.1:{config.bind_port}", session)
        handle = await c.create()
        try:
            out = Output()
            script = "echo up; until [ -e /tmp/go ]; do sleep 0.05; done; echo down; exit 3"
            process = await c.run(handle, {**pea(rootfs, script), "id": "sidecar"}, stdout=out)
            await out.wait_for(b"up\n")
            await process.detach()
            await srv.close()
            srv = await gardend_server.start(config)
            [sidecar] = await pea_containers(srv)
            stdout = Output()
            attached = await c.attach(handle, "sidecar", stdout=stdout)
            pid = (await srv.client.get_task(sidecar)).pid
            Path(f"/proc/{pid}/root/tmp/go").touch()
            assert await asyncio.wait_for(attached.wait(), HANG_GUARD) == 3
            assert stdout.data == b"down\n"

            async def removed() -> bool:
                return await pea_containers(srv) == []

            await eventually(removed)
        finally:
            await c.destroy(handle)
            await srv.close()
