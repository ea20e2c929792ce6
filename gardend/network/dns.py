"""The container's /etc/hosts and /etc/resolv.conf, written into its layer at create."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, ip_address

HOST_RESOLV_CONF = "/etc/resolv.conf"
MAX_RESOLV_CONF = 64 << 10


def hosts_file(hostname: str, ip: IPv4Address | None) -> bytes:
    """localhost, and the hostname on the container's address (127.0.1.1 without a network)."""
    own = ip if ip is not None else "127.0.1.1"
    return f"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{own} {hostname}\n".encode()


async def container_resolv_conf(dns_servers: tuple[str, ...], additional: tuple[str, ...]) -> bytes:
    return resolv_conf(await asyncio.to_thread(_read_host_resolv_conf), dns_servers, additional)


def _read_host_resolv_conf() -> str:
    try:
        with open(HOST_RESOLV_CONF, "rb") as f:
            return f.read(MAX_RESOLV_CONF).decode(errors="replace")
    except OSError:
        return ""


def resolv_conf(host: str, dns_servers: tuple[str, ...], additional: tuple[str, ...]) -> bytes:
    """The host's file, with ``dns_servers`` instead of its nameservers if given, then ``additional``.

    The host's loopback nameservers are dropped: from the container's namespace they would
    be the container itself.
    """
    lines = []
    for line in host.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and (dns_servers or len(words) < 2 or _is_loopback(words[1])):
            continue
        lines.append(line)
    lines += [f"nameserver {s}" for s in (*dns_servers, *additional)]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _is_loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False
