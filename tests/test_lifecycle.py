"""Container lifecycle through gardend, a real containerd and real runc."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import aiohttp
import pytest

from gardend import server as gardend_server
from gardend.backend.store import containerd_id
from gardend.client import GardenClient, GardenClientError
from gardend.containerd import errors as cerr
from tests.conftest import CreateFn, make_config

EMPTY_LIMITS: dict[str, dict[str, int]] = {
    "bandwidth_limits": {},
    "cpu_limits": {},
    "disk_limits": {},
    "memory_limits": {},
    "pid_limits": {},
}


async def init_pid(gardend: gardend_server.Server, handle: str) -> int:
    task = await gardend.client.get_task(containerd_id(handle))
    return int(task.pid)


def in_namespaces(pid: int, *argv: str) -> str:
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-u", "-m", "--", *argv], check=True, capture_output=True, text=True
    ).stdout


async def test_ping_answers_with_an_empty_object(client: GardenClient) -> None:
    assert await client.request("GET", "/ping") == {}


async def test_capacity_reports_real_memory_disk_and_max_containers(client: GardenClient) -> None:
    capacity = await client.capacity()
    with open("/proc/meminfo") as f:
        mem_total = int(f.readline().split()[1]) * 1024
    assert capacity["memory_in_bytes"] == mem_total
    assert capacity["disk_in_bytes"] > 0
    assert capacity["schedulable_disk_in_bytes"] > 0
    assert capacity["max_containers"] > 0


async def test_create_runs_garden_init_as_pid_1_in_its_own_namespaces(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(image={}, limits=EMPTY_LIMITS)
    pid = await init_pid(gardend, handle)
    status = Path(f"/proc/{pid}/status").read_text()
    assert status.splitlines()[0].split() == ["Name:", "garden-init"]
    for ns in ("mnt", "pid", "ipc", "uts", "net", "user"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert in_namespaces(pid, "hostname").strip() == handle
    assert handle in await client.list()


async def test_unprivileged_container_root_is_the_hosts_maximus_id(
    gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create()
    pid = await init_pid(gardend, handle)
    uid_map = [line.split() for line in Path(f"/proc/{pid}/uid_map").read_text().splitlines()]
    assert uid_map == [["0", "4294967294", "1"], ["1", "1", "4294967293"]]


async def test_privileged_container_has_no_user_namespace(gardend: gardend_server.Server, create: CreateFn) -> None:
    handle = await create(privileged=True)
    pid = await init_pid(gardend, handle)
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")


async def test_long_handle_uses_its_last_49_characters_as_hostname(
    gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = "7132-ec774112a9cd-101f8293-230e-4fa8-4138-e8244e6dcfa1-and-some-more"
    await create(handle=handle)
    assert in_namespaces(await init_pid(gardend, handle), "hostname").strip() == handle[-49:]


async def test_generated_handle_when_none_is_given(client: GardenClient, create: CreateFn) -> None:
    handle = await create()
    assert handle and handle in await client.list()


async def test_destroy_removes_task_container_overlay_and_listing(
    client: GardenClient, gardend: gardend_server.Server
) -> None:
    handle = await client.create(handle="doomed")
    pid = await init_pid(gardend, handle)
    container_dir = gardend.config.depot / "containers" / containerd_id(handle)
    assert container_dir.is_dir()
    await client.destroy(handle)
    assert handle not in await client.list()
    assert not container_dir.exists()
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(cerr.NotFound):
        await gardend.client.get_container(containerd_id(handle))
    with open("/proc/self/mounts") as f:
        assert containerd_id(handle) not in f.read()


async def test_duplicate_handle_is_refused_with_gardens_message(create: CreateFn) -> None:
    await create(handle="twin")
    with pytest.raises(GardenClientError) as e:
        await create(handle="twin")
    assert e.value.message == "Handle 'twin' already in use"


@pytest.mark.parametrize("route", ["info", "properties", "properties/foo"])
async def test_unknown_handle_is_container_not_found(client: GardenClient, route: str) -> None:
    with pytest.raises(GardenClientError) as e:
        await client.request("GET", f"/containers/not-a-real-handle/{route}")
    assert (e.value.status, e.value.type, e.value.body["Handle"]) == (
        404,
        "ContainerNotFoundError",
        "not-a-real-handle",
    )


async def test_destroy_of_unknown_handle_is_container_not_found(client: GardenClient) -> None:
    with pytest.raises(GardenClientError) as e:
        await client.destroy("potato-sandwhich-policy")
    assert e.value.type == "ContainerNotFoundError" and e.value.body["Handle"] == "potato-sandwhich-policy"


async def test_concurrent_destroys_leave_one_error_saying_already_being_destroyed(client: GardenClient) -> None:
    handle = await client.create()
    results = await asyncio.gather(client.destroy(handle), client.destroy(handle), return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], GardenClientError)
    assert errors[0].message == "container already being destroyed"


async def test_properties_round_trip_and_filter_list_by_all_given(client: GardenClient, create: CreateFn) -> None:
    a = await create(properties={"role": "web", "zone": "a"})
    b = await create(properties={"role": "web", "zone": "b"})
    assert set(await client.list(role="web")) >= {a, b}
    assert await client.list(role="web", zone="a") == [a]
    await client.set_property(b, "zone", "a")
    assert set(await client.list(role="web", zone="a")) == {a, b}
    assert await client.property(a, "role") == "web"
    await client.remove_property(a, "role")
    assert "role" not in await client.properties(a)
    assert (await client.info(b))["Properties"]["zone"] == "a"


async def test_property_values_of_any_size_and_content_round_trip(client: GardenClient, create: CreateFn) -> None:
    value = 'ünïcødé ✓ \n\t"quoted" ' * 20000
    handle = await create(properties={"big": value})
    assert await client.property(handle, "big") == value
    await client.set_property(handle, "big2", value[::-1])
    assert (await client.properties(handle))["big2"] == value[::-1]


async def test_missing_property_is_a_not_found_error(client: GardenClient, container: str) -> None:
    with pytest.raises(GardenClientError) as e:
        await client.property(container, "nope")
    assert e.value.status == 404 and e.value.message == "property does not exist: nope"


async def test_info_reports_active_and_then_stopped_after_stop(client: GardenClient, container: str) -> None:
    info = await client.info(container)
    assert info["State"] == "active"
    assert set(info) >= {"State", "Events", "HostIP", "ContainerIP", "ExternalIP", "ContainerPath", "Properties"}
    await client.stop(container, kill=True)
    assert (await client.info(container))["State"] == "stopped"


async def test_bulk_info_reports_each_handle_and_errors_for_unknown_ones(
    client: GardenClient, create: CreateFn
) -> None:
    a, b = await create(), await create()
    result = await client.bulk_info(a, b, "nope")
    assert result[a]["Info"]["State"] == "active" and result[a]["Err"] is None
    assert result[b]["Info"]["State"] == "active"
    assert result["nope"]["Err"]["Message"] == "unknown handle: nope"
    assert await client.bulk_info() == {}


async def test_grace_time_reaps_idle_containers(client: GardenClient) -> None:
    handle = await client.create(grace_time=300_000_000)
    assert (await client.properties(handle))["garden.grace-time"] == "300000000"
    for _ in range(100):
        if handle not in await client.list():
            break
        await asyncio.sleep(0.05)
    assert handle not in await client.list()


async def test_activity_resets_grace_time_but_listing_does_not(client: GardenClient, create: CreateFn) -> None:
    handle = await create()
    await client.set_grace_time(handle, 800_000_000)
    for _ in range(6):
        await asyncio.sleep(0.3)
        await client.info(handle)
    assert handle in await client.list()
    for _ in range(60):
        await asyncio.sleep(0.05)
        if handle not in await client.list():
            break
    assert handle not in await client.list()


async def test_zero_grace_time_means_never_reaped(client: GardenClient, create: CreateFn) -> None:
    handle = await create(grace_time=200_000_000)
    await client.set_grace_time(handle, 0)
    await asyncio.sleep(0.5)
    assert handle in await client.list()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"handle": 42}', "handle"),
        (b'{"grace_time": "soon"}', "grace_time"),
        (b'{"grace_time": -1}', "grace_time"),
        (b'{"properties": {"a": 1}}', "properties"),
        (b'{"env": ["NOEQUALS"]}', "KEY=VALUE"),
        (b'{"handle": "a/b"}', "handle"),
        (b'{"handle": ".."}', "handle"),
        (b'{"handle": "nul\\u0000byte"}', "handle"),
        (json.dumps({"handle": "x" * 513}).encode(), "512 bytes"),
        (b'{"image": {"uri": "/no/such/rootfs"}}', "does not exist"),
        (b'{"rootfs": "relative/path"}', "absolute"),
        (b'{"bind_mounts": [{"src_path": "/no/such/src", "dst_path": "/mnt"}]}', "does not exist"),
        (b"[1, 2]", "ContainerSpec"),
    ],
)
async def test_bad_create_requests_get_a_4xx_garden_error_and_leave_nothing(
    client: GardenClient, gardend: gardend_server.Server, body: bytes, fragment: str
) -> None:
    before = await client.list()
    depot_before = sorted(os.listdir(gardend.config.depot / "containers"))
    with pytest.raises(GardenClientError) as e:
        await client.request("POST", "/containers", raw=body)
    assert 400 <= e.value.status < 500
    assert set(e.value.body) == {"Type", "Message", "Handle", "ProcessID", "Binary"}
    assert fragment in e.value.message
    assert await client.list() == before
    assert sorted(os.listdir(gardend.config.depot / "containers")) == depot_before


async def test_bad_grace_time_and_stop_bodies_are_4xx(client: GardenClient, container: str) -> None:
    for path, body in [("grace_time", b'"5m"'), ("grace_time", b"-3"), ("stop", b'{"kill": "yes"}')]:
        with pytest.raises(GardenClientError) as e:
            await client.request("PUT", f"/containers/{container}/{path}", raw=body)
        assert 400 <= e.value.status < 500, path


async def test_oversized_bodies_are_refused_with_a_4xx(client: GardenClient) -> None:
    with pytest.raises(GardenClientError) as e:
        await client.request("POST", "/containers", raw=b'{"handle": "' + b"x" * (17 << 20) + b'"}')
    assert 400 <= e.value.status < 500


async def test_unknown_routes_answer_with_a_garden_error(client: GardenClient) -> None:
    with pytest.raises(GardenClientError) as e:
        await client.request("GET", "/nope")
    assert e.value.status == 404 and "Type" in e.value.body


async def test_restart_keeps_containers_properties_and_grace_timers(depot: Path) -> None:
    config = make_config(depot / "restart")
    srv = await gardend_server.start(config)
    url = f"http://127.0.0.1:{config.bind_port}"
    async with aiohttp.ClientSession() as session:
        c = GardenClient(url, session)
        keep = await c.create(handle="survivor", properties={"k": "v" * 5000})
        reaped = await c.create(handle="reaped", grace_time=2_000_000_000)
        pid = await init_pid(srv, keep)
        await srv.close()
        srv = await gardend_server.start(config)
        try:
            assert set(await c.list()) == {keep, reaped}
            assert (await c.properties(keep))["k"] == "v" * 5000
            assert await init_pid(srv, keep) == pid
            for _ in range(60):
                if reaped not in await c.list():
                    break
                await asyncio.sleep(0.1)
            assert await c.list() == [keep]
            await c.destroy(keep)
        finally:
            await srv.close()


async def test_existing_containerd_is_used_through_its_socket(depot: Path, gardend: gardend_server.Server) -> None:
    assert gardend.daemon is not None
    config = make_config(depot / "external", containerd_socket=gardend.daemon.socket)
    srv = await gardend_server.start(config)
    try:
        assert srv.daemon is None
        async with aiohttp.ClientSession() as session:
            c = GardenClient(f"http://127.0.0.1:{config.bind_port}", session)
            handle = await c.create()
            task = await srv.client.get_task(containerd_id(handle))
            assert task.pid > 0
            await c.destroy(handle)
    finally:
        await srv.close()
    assert gardend.daemon.healthy
