"""Fixtures that run the real stack: gardend with its own containerd and real runc."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gardend import server as gardend_server
from gardend.client import GardenClient, GardenClientError
from gardend.config import Config
from gardend.network.host import pool_is_free
from tests.network_state import leftovers

ROOTFS = os.environ.get("GARDEND_TEST_ROOTFS", "/var/lib/gardend/rootfs/busybox")
CONTAINERD_BIN = os.environ.get("GARDEND_TEST_CONTAINERD_BIN", "containerd")
"""Run the suite against another containerd build (e.g. 2.x) by naming its binary."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TEST_POOLS = ipaddress.IPv4Network("10.254.192.0/18").subnets(new_prefix=23)
TEST_PORTS = itertools.count(61000, 100)


def network_settings() -> dict[str, Any]:
    """A network pool of its own for each test server (none another gardend on this host holds),
    its own host ports, and no egress but what a test's NetOut rules allow."""
    pool = next(p for p in TEST_POOLS if pool_is_free(p))
    return {
        "network_pool": str(pool),
        "port_pool_start": next(TEST_PORTS),
        "port_pool_size": 100,
        "deny_networks": ("0.0.0.0/0",),
    }


def make_config(depot: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        **network_settings(),
        "bind_ip": "127.0.0.1",
        "bind_port": free_port(),
        "depot": depot,
        "default_rootfs": ROOTFS,
        "containerd_bin": CONTAINERD_BIN,
        "containerd_namespace": f"gardend-test-{uuid.uuid4().hex[:8]}",
        **overrides,
    }
    config = Config(**values)
    CONFIGS.append(config)
    return config


CONFIGS: list[Config] = []
"""Every test server's configuration, so the session can empty what a failed test left."""


async def sweep(config: Config) -> None:
    """Reopens a test server's depot and destroys what it still holds.

    A test that fails between creating containers and destroying them leaves them running
    in its depot; this keeps such a failure from leaking shims, mounts and networks."""
    if not await asyncio.to_thread(lambda: any((config.depot / "containers").glob("*"))):
        return
    quiet = replace(config, bind_port=free_port(), bind_socket="", debug_bind_ip="", tls_cert="", tls_key="", tls_ca="")
    with contextlib.suppress(Exception):
        srv = await gardend_server.start(quiet)
        try:
            for handle in srv.garden.list_handles({"garden.state": "all"}):
                with contextlib.suppress(Exception):
                    await srv.garden.destroy(handle)
        finally:
            await srv.close()


@pytest.fixture(scope="session")
def rootfs() -> str:
    if not os.path.isdir(ROOTFS):
        pytest.fail(f"test rootfs {ROOTFS} is missing: run scripts/build-rootfs.sh")
    return ROOTFS


@pytest.fixture(scope="session")
async def depot() -> AsyncIterator[Path]:
    """A short path: containerd's unix socket lives under it and sun_path is 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="gd-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def gardend(depot: Path, rootfs: str) -> AsyncIterator[gardend_server.Server]:
    srv = await gardend_server.start(make_config(depot / "server"))
    yield srv
    for config in CONFIGS:
        if config is not srv.config:
            await sweep(config)
    for handle in srv.garden.list_handles({"garden.state": "all"}):
        with contextlib.suppress(Exception):
            await srv.garden.destroy(handle)
    await srv.close()
    assert not leftovers(srv.config), "the test server left networking behind"


@pytest.fixture
async def client(gardend: gardend_server.Server) -> AsyncIterator[GardenClient]:
    c = GardenClient(f"http://{gardend.config.bind_ip}:{gardend.config.bind_port}")
    yield c
    await c.close()


CreateFn = Callable[..., Coroutine[Any, Any, str]]


@pytest.fixture
async def create(client: GardenClient) -> AsyncIterator[CreateFn]:
    """Creates containers that are destroyed after the test, whatever it did to them."""
    handles: list[str] = []

    async def _create(**spec: Any) -> str:
        handle = await client.create(**spec)
        handles.append(handle)
        return handle

    yield _create
    for handle in handles:
        with contextlib.suppress(GardenClientError):
            await client.destroy(handle)


@pytest.fixture
async def container(create: CreateFn) -> str:
    return await create()
