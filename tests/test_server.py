"""The server's listeners: TCP, unix socket and gdn's debug endpoint."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from gardend import server as gardend_server
from tests.conftest import free_port, make_config


async def test_unix_socket_and_debug_vars_listeners_serve(depot: Path, gardend: gardend_server.Server) -> None:
    assert gardend.daemon is not None
    sock = str(depot / "garden.sock")
    debug_port = free_port()
    config = make_config(
        depot / "listeners",
        containerd_socket=gardend.daemon.socket,
        bind_socket=sock,
        debug_bind_ip="127.0.0.1",
        debug_bind_port=debug_port,
    )
    srv = await gardend_server.start(config)
    try:
        unix = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock))
        async with unix as session, session.get("http://api/ping") as resp:
            assert resp.status == 200 and await resp.json() == {}
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{debug_port}/debug/vars") as resp:
            body = await resp.json()
        assert body["memstats"]["Alloc"] > 0
    finally:
        await srv.close()
