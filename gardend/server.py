"""Assembles and runs gardend: containerd (embedded or given), the backend, the listeners."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from gardend import init, listeners
from gardend.backend.containers import ContainerBackend
from gardend.backend.garden import Garden
from gardend.config import Config
from gardend.containerd.client import ContainerdClient, wait_until_ready
from gardend.containerd.daemon import EmbeddedContainerd
from gardend.http.app import make_app
from gardend.http.debug import make_debug_app
from gardend.runtime import kernel

log = logging.getLogger("gardend")


@dataclass
class Server:
    """A running gardend; ``close`` stops it and, if it owns one, its containerd."""

    config: Config
    garden: Garden
    client: ContainerdClient
    runners: list[web.AppRunner]
    daemon: EmbeddedContainerd | None

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        await self.garden.close()
        await self.client.close()
        if self.daemon is not None:
            await self.daemon.stop()


class DepotError(Exception):
    pass


def _prepare_depot(config: Config) -> None:
    """Creates the depot, searchable by all: runc in a user namespace walks to the bundle as
    the container's root id, which is not the host's root."""
    depot = config.depot.absolute()
    depot.mkdir(parents=True, exist_ok=True)
    mode = depot.stat().st_mode
    if mode & 0o111 != 0o111:
        depot.chmod((mode & 0o7777) | 0o111)
    for parent in depot.parents:
        if parent.stat().st_mode & 0o001 == 0:
            raise DepotError(f"depot {depot}: {parent} is not searchable by others (chmod o+x) as containers need")


async def start(config: Config) -> Server:
    await asyncio.to_thread(_prepare_depot, config)
    await asyncio.to_thread(kernel.ensure_key_quota)
    ssl_context = await listeners.load_tls(config)
    daemon: EmbeddedContainerd | None = None
    socket = config.containerd_socket
    if not socket:
        daemon = EmbeddedContainerd(config.depot, config.containerd_bin)
        await daemon.start()
        socket = daemon.socket
    client = ContainerdClient(socket, config.containerd_namespace, config.containerd_timeout)
    runners: list[web.AppRunner] = []
    try:
        version = await wait_until_ready(client, config.containerd_timeout, lambda: daemon is None or daemon.healthy)
        log.info("using containerd", extra={"socket": socket, "version": version})
        init_binary = await init.ensure_built(config.depot)
        garden = Garden(ContainerBackend(config, client, init_binary))
        await garden.start()
        runner = web.AppRunner(make_app(garden), access_log=None, shutdown_timeout=1.0)
        runners.append(runner)
        await runner.setup()
        sites = await listeners.sites(runner, config, ssl_context)
        if config.debug_bind_ip:
            debug = web.AppRunner(make_debug_app(), access_log=None)
            runners.append(debug)
            await debug.setup()
            sites.append(web.TCPSite(debug, config.debug_bind_ip, config.debug_bind_port))
        for site in sites:
            await site.start()
    except BaseException:
        for r in runners:
            await r.cleanup()
        await client.close()
        if daemon is not None:
            await daemon.stop()
        raise
    log.info(
        "gardend listening", extra={"address": f"{config.bind_ip}:{config.bind_port}", "socket": config.bind_socket}
    )
    return Server(config, garden, client, runners, daemon)


async def serve(config: Config) -> None:
    server = await start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("gardend stopping")
        await server.close()
