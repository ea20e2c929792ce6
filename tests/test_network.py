"""Container networking through the real stack: addresses, NetIn, NetOut, DNS files, cleanup.

Traffic only ever goes to loopback, the host's own address and the test containers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gardend import server as gardend_server
from gardend.backend.store import containerd_id
from gardend.client import GardenClient, GardenClientError
from gardend.network.host import pool_tag
from tests.conftest import CreateFn, make_config
from tests.inside import run_in, start_in
from tests.network_state import leftovers

SERVE = "while true; do echo hallo-{port} | nc -l -p {port}; done"


async def init_pid(srv: gardend_server.Server, handle: str) -> int:
    return int((await srv.client.get_task(containerd_id(handle))).pid)


async def serve(srv: gardend_server.Server, handle: str, *ports: int, privileged: bool = False) -> None:
    """Answers each connection to each port with ``hallo-<port>``."""
    for port in ports:
        await start_in(srv, handle, "sh", "-c", SERVE.format(port=port))


async def fetch(host: str, port: int) -> bytes:
    """What a server says on connect, retrying while it is not (yet, or again) listening."""
    for _ in range(100):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)
            continue
        try:
            return await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
    raise AssertionError(f"nothing listens on {host}:{port}")


async def reaches(srv: gardend_server.Server, handle: str, ip: str, port: int) -> bool:
    """Whether ``handle`` gets the greeting from ``ip:port`` (a rejected connect fails at once)."""
    probe = f"for i in 1 2 3 4 5; do nc -w 2 {ip} {port} </dev/null | grep -q hallo && exit 0; sleep 0.2; done; exit 1"
    return await run_in(srv, handle, "sh", "-c", probe) == 0


async def test_each_container_has_its_own_address_gateway_and_loopback(
    gardend: gardend_server.Server, client: GardenClient, create: CreateFn
) -> None:
    pool = ipaddress.IPv4Network(gardend.config.network_pool)
    a, b = await create(), await create(privileged=True)
    infos = [await client.info(h) for h in (a, b)]
    ips = [ipaddress.IPv4Address(i["ContainerIP"]) for i in infos]
    assert ips[0] != ips[1] and all(ip in pool for ip in ips)
    for info, ip in zip(infos, ips, strict=True):
        assert ipaddress.IPv4Address(info["HostIP"]) == ip - 1
        assert info["ExternalIP"]
        props = info["Properties"]
        assert props["garden.network.container-ip"] == str(ip)
        assert props["garden.network.host-ip"] == info["HostIP"]
        assert props["garden.network.external-ip"] == info["ExternalIP"]
        assert json.loads(props["garden.network.mapped-ports"]) == []
    for handle, ip in zip((a, b), ips, strict=True):
        namespace = f"/proc/{await init_pid(gardend, handle)}/ns/net"
        assert await run_in(gardend, handle, "sh", "-c", f"ip -4 addr show eth0 | grep -q 'inet {ip}/30'") == 0
        assert await run_in(gardend, handle, "sh", "-c", "ip link show lo | grep -q UP") == 0
        assert await run_in(gardend, handle, "sh", "-c", "ip route | grep -q '^default via'") == 0
        assert Path(namespace).exists()


@pytest.mark.parametrize("privileged", [False, True])
async def test_host_and_container_talk_over_the_bridge(
    gardend: gardend_server.Server, client: GardenClient, create: CreateFn, privileged: bool
) -> None:
    handle = await create(privileged=privileged)
    await serve(gardend, handle, 8080)
    assert await fetch((await client.info(handle))["ContainerIP"], 8080) == b"hallo-8080\n"


async def test_net_in_serves_a_container_port_on_host_loopback_and_external_address(
    gardend: gardend_server.Server, client: GardenClient, create: CreateFn
) -> None:
    handle = await create()
    await serve(gardend, handle, 8080, 9090)
    mapped = await client.request("POST", f"/containers/{handle}/net/in", {"handle": handle, "container_port": 8080})
    start = gardend.config.port_pool_start
    assert start <= mapped["host_port"] < start + gardend.config.port_pool_size
    assert mapped["container_port"] == 8080
    info = await client.info(handle)
    for host in ("127.0.0.1", info["ExternalIP"]):
        assert await fetch(host, mapped["host_port"]) == b"hallo-8080\n"
    same = await client.request("POST", f"/containers/{handle}/net/in", {"host_port": 9090})
    assert same == {"host_port": 9090, "container_port": 9090}
    assert await fetch("127.0.0.1", 9090) == b"hallo-9090\n"
    expected = [{"HostPort": mapped["host_port"], "ContainerPort": 8080}, {"HostPort": 9090, "ContainerPort": 9090}]
    assert (await client.info(handle))["MappedPorts"] == expected
    assert json.loads((await client.properties(handle))["garden.network.mapped-ports"]) == expected


async def test_net_in_given_at_create_is_mapped_and_reported(client: GardenClient, create: CreateFn) -> None:
    handle = await create(netin=[{"host_port": 0, "container_port": 7070}])
    [mapping] = (await client.info(handle))["MappedPorts"]
    assert mapping["ContainerPort"] == 7070 and mapping["HostPort"] > 0


async def test_net_out_allows_one_port_to_another_container_and_not_another(
    gardend: gardend_server.Server, client: GardenClient, create: CreateFn
) -> None:
    server, caller = await create(), await create()
    await serve(gardend, server, 8080, 8081)
    ip = (await client.info(server))["ContainerIP"]
    assert not await reaches(gardend, caller, ip, 8080)
    rule = {"protocol": 1, "networks": [{"start": ip, "end": ip}], "ports": [{"start": 8080, "end": 8080}]}
    await client.request("POST", f"/containers/{caller}/net/out", rule)
    assert await reaches(gardend, caller, ip, 8080)
    assert not await reaches(gardend, caller, ip, 8081)
    everything = {"networks": [{"start": ip, "end": ip}], "log": True}
    await client.request("POST", f"/containers/{caller}/net/out/bulk", [everything])
    assert await reaches(gardend, caller, ip, 8081)


async def test_container_cannot_reach_the_host_without_allow_host_access(
    gardend: gardend_server.Server, client: GardenClient, create: CreateFn
) -> None:
    handle = await create()
    host_ip = (await client.info(handle))["HostIP"]
    assert not await reaches(gardend, handle, host_ip, gardend.config.bind_port)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"protocol": 0, "ports": [{"start": 80, "end": 80}]}, "ports cannot be given for protocol all"),
        ({"protocol": 1, "networks": [{"start": "nope", "end": "1.2.3.4"}]}, "invalid IPv4 address"),
        ({"protocol": 9}, "invalid protocol"),
        ({"protocol": 1, "ports": [{"start": 90, "end": 80}]}, "ends before it starts"),
    ],
)
async def test_invalid_net_out_rules_are_refused_with_a_4xx(
    client: GardenClient, container: str, rule: dict[str, Any], fragment: str
) -> None:
    for path, body in (("net/out", rule), ("net/out/bulk", [rule])):
        with pytest.raises(GardenClientError) as e:
            await client.request("POST", f"/containers/{container}/{path}", body)
        assert e.value.status == 400 and fragment in e.value.message
    with pytest.raises(GardenClientError) as e:
        await client.request("POST", f"/containers/{container}/net/out/bulk", {"protocol": 1})
    assert e.value.status == 400


async def test_network_field_names_a_shared_subnet_or_an_exact_address(
    gardend: gardend_server.Server, client: GardenClient, create: CreateFn
) -> None:
    pool = ipaddress.IPv4Network(gardend.config.network_pool)
    subnet = list(pool.subnets(new_prefix=28))[-1]
    a, b = await create(network=str(subnet)), await create(network=f"{subnet.network_address + 9}/28")
    ips = [ipaddress.IPv4Address((await client.info(h))["ContainerIP"]) for h in (a, b)]
    assert ips == [subnet.network_address + 2, subnet.network_address + 9]
    assert (await client.info(a))["HostIP"] == str(subnet.network_address + 1)
    for bad, status in (("192.168.0.0/24", 400), (f"{subnet.network_address + 9}/28", 409), ("junk", 400)):
        with pytest.raises(GardenClientError) as e:
            await create(network=bad)
        assert e.value.status == status


async def test_hosts_and_resolv_conf_are_written_from_the_host(
    gardend: gardend_server.Server, client: GardenClient, create: CreateFn
) -> None:
    handle = await create(handle="net-dns-" + "x" * 60)
    root = Path(f"/proc/{await init_pid(gardend, handle)}/root")
    ip = (await client.info(handle))["ContainerIP"]
    hosts = (root / "etc/hosts").read_text()
    assert "127.0.0.1 localhost" in hosts and f"{ip} {handle[-49:]}" in hosts
    host_lines = Path("/etc/resolv.conf").read_text().splitlines()
    expected = [line for line in host_lines if not line.startswith("nameserver 127.")]
    assert (root / "etc/resolv.conf").read_text().splitlines() == expected


async def test_capacity_is_the_pools_number_of_container_subnets(
    gardend: gardend_server.Server, client: GardenClient
) -> None:
    pool = ipaddress.IPv4Network(gardend.config.network_pool)
    assert (await client.capacity())["max_containers"] == pool.num_addresses // 4


async def test_restart_relearns_addresses_and_mappings_and_destroy_leaves_nothing(depot: Path) -> None:
    config = make_config(depot / "net-restart")
    srv = await gardend_server.start(config)
    async with aiohttp.ClientSession() as session:
        c = GardenClient(f"http://127.0.0.1:{config.bind_port}", session)
        try:
            kept = await c.create(handle="kept")
            await serve(srv, kept, 8080)
            mapped = await c.request("POST", f"/containers/{kept}/net/in", {"container_port": 8080})
            before = await c.info(kept)
            await srv.close()
            srv = await gardend_server.start(config)
            after = await c.info(kept)
            assert {k: after[k] for k in ("ContainerIP", "HostIP", "MappedPorts")} == {
                k: before[k] for k in ("ContainerIP", "HostIP", "MappedPorts")
            }
            assert await fetch("127.0.0.1", mapped["host_port"]) == b"hallo-8080\n"
            other = await c.create()
            assert (await c.info(other))["ContainerIP"] != after["ContainerIP"]
            for _ in range(20):
                h = await c.create(netin=[{"host_port": 0, "container_port": 80}], netout_rules=[{"protocol": 1}])
                await c.destroy(h)
            for h in await c.list():
                await c.destroy(h)
        finally:
            await srv.close()
    assert leftovers(config) == []


@pytest.mark.parametrize("privileged", [False, True])
async def test_container_root_can_overwrite_hosts_and_resolv_conf(
    gardend: gardend_server.Server, create: CreateFn, privileged: bool
) -> None:
    handle = await create(privileged=privileged)
    script = "echo NONSENSE > /etc/hosts && echo NONSENSE > /etc/resolv.conf"
    assert await run_in(gardend, handle, "sh", "-c", script) == 0


async def test_start_removes_what_a_crash_left_of_unknown_containers(depot: Path) -> None:
    config = make_config(depot / "net-orphans")
    pool = ipaddress.IPv4Network(config.network_pool)
    ghost = list(pool.subnets(new_prefix=30))[-1]
    bridge = "gd" + ghost.network_address.packed.hex()
    chain = f"GD-{pool_tag(pool)}-{(ghost.network_address + 2).packed.hex()}"
    srv = await gardend_server.start(config)
    async with aiohttp.ClientSession() as session:
        c = GardenClient(f"http://127.0.0.1:{config.bind_port}", session)
        try:
            kept = await c.create()
            await srv.close()
            subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
            ipam = config.depot / "network" / "ipam" / bridge
            ipam.mkdir(parents=True)
            (ipam / str(ghost.network_address + 2)).write_text("ghost\neth0")
            (config.depot / "network" / "netns" / "ghost").touch()
            rules = (
                f"*filter\n:{chain} - [0:0]\n-A GD-{pool_tag(pool)}-OUT -s {ghost.network_address + 2}/32 -g {chain}\n"
            )
            subprocess.run(["iptables-restore", "--noflush"], input=rules + "COMMIT\n", text=True, check=True)
            srv = await gardend_server.start(config)
            found = leftovers(config)
            assert not [f for f in found if bridge in f or chain in f or "ghost" in f], found
            await serve(srv, kept, 8080)
            assert await fetch((await c.info(kept))["ContainerIP"], 8080) == b"hallo-8080\n"
            await c.destroy(kept)
        finally:
            await srv.close()
            subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)
    assert leftovers(config) == []
