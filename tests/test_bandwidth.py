"""Bandwidth limits: recorded at create, and tc rules on every interface of a network namespace."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from gardend import server as gardend_server
from gardend.backend.store import containerd_id
from gardend.client import GardenClient
from gardend.models import BandwidthLimits
from gardend.runtime import bandwidth
from tests.conftest import CreateFn
from tests.resources import MIB, limits


def in_netns(name: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", name, *argv], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of our own with a veth pair in it, as a container network has."""
    name = f"gardend-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        in_netns(name, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


async def test_bandwidth_limits_shape_the_containers_interface_and_are_reported(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    given = {"rate": MIB, "burst": 2 * MIB}
    handle = await create(limits=limits(bandwidth_limits=given))
    assert await client.request("GET", f"/containers/{handle}/limits/bandwidth") == given
    pid = (await gardend.client.get_task(containerd_id(handle))).pid
    qdiscs = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "tc", "qdisc", "show"], check=True, capture_output=True, text=True
    ).stdout
    assert "qdisc tbf" in qdiscs and "dev eth0 root" in qdiscs and "dev gardend-ifb0 root" in qdiscs


async def test_shaping_limits_each_interface_both_ways(netns: str) -> None:
    shaped = await bandwidth.shape(f"/var/run/netns/{netns}", BandwidthLimits(rate=MIB, burst=2 * MIB))
    assert sorted(shaped) == ["eth0", "eth1"]
    roots = {line.split()[4]: line for line in in_netns(netns, "tc", "qdisc", "show").splitlines() if " root " in line}
    for dev in ("eth0", "eth1", "gardend-ifb0", "gardend-ifb1"):
        assert roots[dev].startswith("qdisc tbf") and "rate 8388Kbit burst 2Mb" in roots[dev], dev
    for dev in ("eth0", "eth1"):
        filters = in_netns(netns, "tc", "filter", "show", "dev", dev, "parent", "ffff:")
        assert "mirred (Egress Redirect to device gardend-ifb" in filters


async def test_shaping_again_replaces_the_rules(netns: str) -> None:
    await bandwidth.shape(f"/var/run/netns/{netns}", BandwidthLimits(rate=MIB))
    assert sorted(await bandwidth.shape(f"/var/run/netns/{netns}", BandwidthLimits(rate=2 * MIB))) == ["eth0", "eth1"]
    assert in_netns(netns, "tc", "qdisc", "show").count("rate 16777Kbit") == 4


async def test_a_namespace_without_interfaces_has_nothing_to_shape(netns: str) -> None:
    in_netns(netns, "ip", "link", "del", "eth0")
    assert await bandwidth.shape(f"/var/run/netns/{netns}", BandwidthLimits(rate=MIB)) == []
