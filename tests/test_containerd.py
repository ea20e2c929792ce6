"""gardend's relationship with containerd: readiness, supervision, dead sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from gardend import server as gardend_server
from gardend.client import GardenClient
from gardend.containerd.daemon import EmbeddedContainerd
from gardend.containerd.errors import Unavailable
from tests.conftest import make_config


async def test_a_dead_containerd_socket_fails_start_quickly_and_clearly(depot: Path) -> None:
    config = make_config(depot / "dead", containerd_socket=str(depot / "no-such.sock"), containerd_timeout=2.0)
    with pytest.raises(Unavailable, match="did not answer"):
        await asyncio.wait_for(gardend_server.start(config), 10)


async def test_embedded_containerd_that_dies_is_restarted_and_containers_survive(depot: Path) -> None:
    config = make_config(depot / "phoenix")
    srv = await gardend_server.start(config)
    try:
        assert srv.daemon is not None and srv.daemon.pid is not None
        async with aiohttp.ClientSession() as session:
            c = GardenClient(f"http://127.0.0.1:{config.bind_port}", session)
            handle = await c.create(properties={"a": "b"})
            os.kill(srv.daemon.pid, signal.SIGKILL)
            for _ in range(100):
                try:
                    await c.ping()
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            await c.ping()
            props = await c.properties(handle)
            assert {k: props[k] for k in ("a", "garden.grace-time", "garden.state")} == {
                "a": "b",
                "garden.grace-time": "0",
                "garden.state": "created",
            }
            await c.destroy(handle)
            assert srv.daemon.healthy
    finally:
        await srv.close()


ABANDON = """
import asyncio, os, sys
from pathlib import Path
from gardend.containerd.daemon import EmbeddedContainerd

async def main():
    daemon = EmbeddedContainerd(Path(sys.argv[1]))
    await daemon.start()
    print(daemon.pid, flush=True)
    os._exit(0)

asyncio.run(main())
"""


async def test_a_containerd_left_by_a_killed_gardend_is_replaced_at_start(depot: Path) -> None:
    """A gardend that dies abruptly leaves its containerd running; the next one must not
    wait on that containerd's database lock or share its socket."""
    abandon = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ABANDON, str(depot / "orphan"), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await abandon.communicate()
    old_pid = int(out)
    successor = EmbeddedContainerd(depot / "orphan")
    try:
        await asyncio.wait_for(successor.start(), 20)
        assert successor.pid not in (None, old_pid)
        for _ in range(100):
            if not Path(f"/proc/{old_pid}").exists():
                break
            await asyncio.sleep(0.05)
        assert not Path(f"/proc/{old_pid}").exists()
    finally:
        await successor.stop()
