"""Facts and changes on the host outside iptables: links, sysctls, the external address, the pool lock."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from ipaddress import IPv4Network
from pathlib import Path
from typing import IO

from gardend.network.command import run

LOCK_DIR = Path("/run/gardend")


class PoolInUseError(Exception):
    """Another gardend on this host uses the same network pool."""


def pool_tag(pool: IPv4Network) -> str:
    """Names this pool's chains and lock: its address and prefix length in hex."""
    return f"{pool.network_address.packed.hex()}{pool.prefixlen:02x}"


def _lock(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    f = path.open("ab")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise PoolInUseError(f"network pool is in use by another gardend (lock {path})") from None
    return f


class PoolLock:
    """Held while a server runs: two servers on one pool would fight over bridges and chains."""

    def __init__(self, pool: IPv4Network) -> None:
        self.path = LOCK_DIR / f"network-{pool_tag(pool)}.lock"
        self._file: IO[bytes] | None = None

    async def acquire(self) -> None:
        self._file = await asyncio.to_thread(_lock, self.path)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def pool_is_free(pool: IPv4Network) -> bool:
    """Whether no gardend holds ``pool`` now (blocking; for tests choosing a pool)."""
    try:
        _lock(PoolLock(pool).path).close()
    except PoolInUseError:
        return False
    return True


async def links(kind: str) -> list[str]:
    _, out = await run("ip", "-j", "link", "show", "type", kind)
    return [str(link["ifname"]) for link in json.loads(out or "[]")]


async def link_exists(name: str) -> bool:
    return await asyncio.to_thread(os.path.exists, f"/sys/class/net/{name}")


async def delete_link(name: str) -> None:
    """Deletes the link; one already gone is fine."""
    status, _ = await run("ip", "link", "delete", name, check=False)
    if status != 0 and await link_exists(name):
        await run("ip", "link", "delete", name)


async def set_route_localnet(bridge: str) -> None:
    """Lets loopback-sourced packets that NetIn's OUTPUT DNAT sends into the bridge be routed."""

    def write() -> None:
        Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1")

    await asyncio.to_thread(write)


async def external_ip() -> str:
    """The source address of the default route, where NetIn ports are reachable from elsewhere."""
    _, out = await run("ip", "-j", "-4", "route", "show", "default", check=False)
    for route in json.loads(out or "[]"):
        if route.get("prefsrc"):
            return str(route["prefsrc"])
        if route.get("dev"):
            _, addrs = await run("ip", "-j", "-4", "addr", "show", "dev", str(route["dev"]), check=False)
            for link in json.loads(addrs or "[]"):
                for info in link.get("addr_info", []):
                    if info.get("local"):
                        return str(info["local"])
    return "127.0.0.1"
