"""Metrics and bulk metrics through gardend, a real containerd and runc."""

from __future__ import annotations

from typing import Any

import pytest

from gardend import server as gardend_server
from gardend.client import GardenClient, GardenClientError
from gardend.models import ContainerMemoryStat, Metrics, to_wire
from tests.conftest import CreateFn
from tests.inside import run_in
from tests.resources import MIB, limits

TOP_LEVEL_KEYS = {"MemoryStat", "CPUStat", "DiskStat", "NetworkStat", "PidStat", "Age", "CPUEntitlement"}


async def metrics(client: GardenClient, handle: str) -> dict[str, Any]:
    result: dict[str, Any] = await client.request("GET", f"/containers/{handle}/metrics")
    return result


def test_metrics_use_gardens_exact_keys() -> None:
    wire = to_wire(Metrics())
    assert set(wire) == TOP_LEVEL_KEYS
    assert wire["NetworkStat"] is None
    assert set(wire["CPUStat"]) == {"Usage", "User", "System"}
    assert set(wire["DiskStat"]) == {"TotalBytesUsed", "TotalInodesUsed", "ExclusiveBytesUsed", "ExclusiveInodesUsed"}
    assert set(wire["PidStat"]) == {"Current", "Max"}
    memory = to_wire(ContainerMemoryStat())
    assert len(memory) == 32
    assert "TotalUsageTowardLimit" in memory
    assert {"cache", "rss", "total_rss", "hierarchical_memsw_limit", "anon", "file", "swapcached"} <= set(memory)


async def test_metrics_of_a_live_container_are_all_set(client: GardenClient, create: CreateFn) -> None:
    handle = await create(limits=limits(cpu_limits={"weight": 1024}))
    m = await metrics(client, handle)
    assert set(m) == TOP_LEVEL_KEYS
    assert m["CPUStat"]["Usage"] > 0
    assert m["MemoryStat"]["TotalUsageTowardLimit"] > 0
    assert m["PidStat"] == {"Current": 1, "Max": 0}
    assert m["Age"] > 0
    assert m["CPUEntitlement"] > 0
    assert m["DiskStat"]["TotalBytesUsed"] > m["DiskStat"]["ExclusiveBytesUsed"] > 0
    assert set(m["NetworkStat"]) == {"RxBytes", "TxBytes"}
    assert all(isinstance(v, int) for v in m["MemoryStat"].values())


async def test_memory_and_cpu_metrics_rise_when_a_process_allocates_and_computes(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create()
    before = await metrics(client, handle)
    script = "dd if=/dev/zero of=/dev/shm/held bs=1M count=24 && i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"
    assert await run_in(gardend, handle, "sh", "-c", script) == 0
    after = await metrics(client, handle)
    grown = after["MemoryStat"]["TotalUsageTowardLimit"] - before["MemoryStat"]["TotalUsageTowardLimit"]
    assert grown >= 20 * MIB
    assert after["CPUStat"]["Usage"] > before["CPUStat"]["Usage"]
    assert after["CPUStat"]["User"] + after["CPUStat"]["System"] > 0
    assert after["Age"] > before["Age"]


async def test_network_metrics_count_the_containers_traffic(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create()
    gateway = (await client.info(handle))["HostIP"]
    before = (await metrics(client, handle))["NetworkStat"]
    await run_in(gardend, handle, "ping", "-c", "3", "-W", "1", gateway)
    after = (await metrics(client, handle))["NetworkStat"]
    assert after["TxBytes"] >= before["TxBytes"] + 3 * 64
    assert after["RxBytes"] > before["RxBytes"]


async def test_pid_limit_shows_as_pid_stat_max(client: GardenClient, create: CreateFn) -> None:
    handle = await create(limits=limits(pid_limits={"max": 128}))
    assert (await metrics(client, handle))["PidStat"]["Max"] == 128


async def test_disk_usage_grows_when_files_are_written(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create()
    before = (await metrics(client, handle))["DiskStat"]
    assert await run_in(gardend, handle, "sh", "-c", "dd if=/dev/zero of=/root/file bs=1M count=5") == 0
    after = (await metrics(client, handle))["DiskStat"]
    for key in ("ExclusiveBytesUsed", "TotalBytesUsed"):
        assert abs(after[key] - before[key] - 5 * MIB) < MIB, key
    assert after["ExclusiveInodesUsed"] > before["ExclusiveInodesUsed"]
    assert (
        after["TotalBytesUsed"] - after["ExclusiveBytesUsed"] == before["TotalBytesUsed"] - before["ExclusiveBytesUsed"]
    )


async def test_metrics_of_an_unknown_handle_are_container_not_found(client: GardenClient) -> None:
    with pytest.raises(GardenClientError) as e:
        await metrics(client, "no-such-handle")
    assert (e.value.status, e.value.type, e.value.body["Handle"]) == (404, "ContainerNotFoundError", "no-such-handle")


async def test_bulk_metrics_answers_each_live_handle_and_errors_for_an_unknown_one(
    client: GardenClient, create: CreateFn
) -> None:
    handles = [await create() for _ in range(3)]
    reply = await client.request(
        "GET", "/containers/bulk_metrics", params={"handles": ",".join([*handles, "not-a-handle"])}
    )
    assert set(reply) == {*handles, "not-a-handle"}
    for handle in handles:
        assert reply[handle]["Err"] is None
        assert reply[handle]["Metrics"]["MemoryStat"]["TotalUsageTowardLimit"] > 0
        assert reply[handle]["Metrics"]["PidStat"]["Current"] == 1
    error = reply["not-a-handle"]["Err"]
    assert error["Type"] == "ContainerNotFoundError"
    assert error["Message"] == "unknown handle: not-a-handle"
    assert set(reply["not-a-handle"]["Metrics"]) == TOP_LEVEL_KEYS


async def test_bulk_metrics_without_handles_is_an_empty_object(client: GardenClient) -> None:
    assert await client.request("GET", "/containers/bulk_metrics", params={"handles": ""}) == {}
    assert await client.request("GET", "/containers/bulk_metrics") == {}
