"""Resource limits through gardend, a real containerd and runc: applied, enforced, reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from gardend import server as gardend_server
from gardend.client import GardenClient, GardenClientError
from gardend.models import ContainerSpec, CPULimits, Limits
from gardend.runtime import cgroups
from tests.conftest import CreateFn, make_config
from tests.inside import run_in, start_in
from tests.resources import MIB, cgroup_file, eventually, limits


async def test_limits_routes_report_what_create_set(client: GardenClient, create: CreateFn) -> None:
    host = cgroups.detect()
    disk = {"byte_soft": 40 * MIB, "byte_hard": 50 * MIB, "scope": 1}
    handle = await create(
        limits=limits(memory_limits={"limit_in_bytes": 128 * MIB}, cpu_limits={"limit_in_shares": 50}, disk_limits=disk)
    )
    assert await client.request("GET", f"/containers/{handle}/limits/memory") == {"limit_in_bytes": 128 * MIB}
    expected_shares = cgroups.shares_to_v2_weight(50) if host.v2 else 50
    assert await client.request("GET", f"/containers/{handle}/limits/cpu") == {"limit_in_shares": expected_shares}
    assert await client.request("GET", f"/containers/{handle}/limits/disk") == disk
    assert await client.request("GET", f"/containers/{handle}/limits/bandwidth") == {}


async def test_unset_limits_are_reported_as_empty_objects(client: GardenClient, create: CreateFn) -> None:
    handle = await create(limits=limits())
    for kind in ("bandwidth", "cpu", "disk", "memory"):
        assert await client.request("GET", f"/containers/{handle}/limits/{kind}") == {}, kind


async def test_limits_of_an_unknown_handle_are_container_not_found(client: GardenClient) -> None:
    with pytest.raises(GardenClientError) as e:
        await client.request("GET", "/containers/no-such-handle/limits/memory")
    assert (e.value.status, e.value.type, e.value.body["Handle"]) == (404, "ContainerNotFoundError", "no-such-handle")


async def test_cpu_weight_is_applied_to_the_cgroup_and_wins_over_shares(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(limits=limits(cpu_limits={"weight": 512, "limit_in_shares": 100}))
    if cgroups.detect().v2:
        assert cgroup_file(gardend, handle, "", "cpu.weight") == str(cgroups.shares_to_v2_weight(512))
    else:
        assert cgroup_file(gardend, handle, "cpu", "cpu.shares") == "512"
    reported = await client.request("GET", f"/containers/{handle}/limits/cpu")
    assert reported["limit_in_shares"] in (512, cgroups.shares_to_v2_weight(512))


async def test_memory_hog_is_oom_killed_at_its_limit_and_reported_in_events(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(limits=limits(memory_limits={"limit_in_bytes": 32 * MIB}))
    assert cgroup_file(gardend, handle, "memory", "memory.limit_in_bytes") == str(32 * MIB)
    status = await run_in(gardend, handle, "sh", "-c", "dd if=/dev/zero of=/dev/shm/hog bs=1M count=64")
    assert status == 137

    async def oom_reported() -> bool:
        return "Out of memory" in ((await client.info(handle))["Events"] or [])

    await eventually(oom_reported)


async def test_memory_within_the_limit_is_not_killed(gardend: gardend_server.Server, create: CreateFn) -> None:
    handle = await create(limits=limits(memory_limits={"limit_in_bytes": 64 * MIB}))
    assert await run_in(gardend, handle, "sh", "-c", "dd if=/dev/zero of=/dev/shm/ok bs=1M count=40") == 0


async def test_memory_limit_also_caps_swap_where_the_host_can(gardend: gardend_server.Server, create: CreateFn) -> None:
    host = cgroups.detect()
    handle = await create(limits=limits(memory_limits={"limit_in_bytes": 48 * MIB}))
    if host.swap_limit and not host.v2:
        assert cgroup_file(gardend, handle, "memory", "memory.memsw.limit_in_bytes") == str(48 * MIB)


async def test_fork_bomb_is_held_at_the_pid_limit(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(limits=limits(pid_limits={"max": 20}))
    assert cgroup_file(gardend, handle, "pids", "pids.max") == "20"
    await start_in(gardend, handle, "sh", "-c", "b() { b & b & wait; }; b")

    async def forks_refused() -> bool:
        return int(cgroup_file(gardend, handle, "pids", "pids.events").split()[1]) > 0

    await eventually(forks_refused)
    await client.ping()
    metrics = await client.request("GET", f"/containers/{handle}/metrics")
    assert metrics["PidStat"]["Max"] == 20
    assert 0 < metrics["PidStat"]["Current"] <= 20


async def test_process_cannot_fork_past_the_pid_limit(gardend: gardend_server.Server, create: CreateFn) -> None:
    handle = await create(limits=limits(pid_limits={"max": 50}))
    script = "for i in $(seq 1 50); do sleep 2 & done"
    assert await run_in(gardend, handle, "sh", "-c", script) == 2


async def test_zero_pid_limit_means_unlimited(gardend: gardend_server.Server, create: CreateFn) -> None:
    handle = await create(limits=limits(pid_limits={"max": 0}))
    assert cgroup_file(gardend, handle, "pids", "pids.max") == "max"
    assert await run_in(gardend, handle, "sh", "-c", "for i in $(seq 1 100); do sleep 1 & done; wait") == 0


async def test_bad_disk_scope_is_a_4xx_and_leaves_nothing(client: GardenClient) -> None:
    with pytest.raises(GardenClientError) as e:
        await client.create(handle="bad-scope", limits=limits(disk_limits={"byte_hard": 50 * MIB, "scope": 2}))
    assert e.value.status == 400
    assert "scope" in e.value.message
    assert "bad-scope" not in await client.list()


async def test_cpu_quota_per_share_caps_cpu_in_proportion_to_shares(depot: Path) -> None:
    config = make_config(depot / "cpu-quota", cpu_quota_per_share=50)
    srv = await gardend_server.start(config)
    try:
        handle = await srv.garden.create(ContainerSpec(limits=Limits(cpu_limits=CPULimits(weight=512))))
        unlimited = await srv.garden.create(ContainerSpec())
        if not cgroups.detect().v2:
            assert cgroup_file(srv, handle, "cpu", "cpu.cfs_period_us") == "100000"
            assert cgroup_file(srv, handle, "cpu", "cpu.cfs_quota_us") == str(512 * 50)
            assert cgroup_file(srv, unlimited, "cpu", "cpu.cfs_quota_us") == "-1"
        for h in (handle, unlimited):
            await srv.garden.destroy(h)
    finally:
        await srv.close()
