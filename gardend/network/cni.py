"""Calling CNI plugins directly, as the CNI spec's runtime does: environment + config on stdin.

A container's interface is made by the ``bridge`` plugin with ``host-local`` IPAM: a veth
from its subnet's bridge into the namespace, the address and the default route (runc has
already brought loopback up in the namespace it made). Masquerading, port mappings and
egress rules are this package's own iptables chains instead of the ``portmap`` and
``firewall`` plugins: those keep host-wide chains that are never removed and take port
mappings only at ADD time, while NetIn adds mappings to running containers and a server
must be able to leave no rule behind.
"""

from __future__ import annotations

import asyncio
import json
import os
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from gardend.network.command import NetworkError
from gardend.network.pool import Lease

CNI_VERSION = "1.0.0"
CNI_PATH = "/usr/lib/cni"
CONTAINER_IFNAME = "eth0"


def bridge_name(lease: Lease) -> str:
    """Named after its subnet: unique on the host while servers' pools don't overlap (15 bytes max)."""
    return "gd" + lease.subnet.network_address.packed.hex()


def bridge_config(lease: Lease, ipam_dir: Path) -> dict[str, Any]:
    name = bridge_name(lease)
    return {
        "cniVersion": CNI_VERSION,
        "name": name,
        "type": "bridge",
        "bridge": name,
        "isGateway": True,
        "isDefaultGateway": True,
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": str(lease.subnet), "gateway": str(lease.gateway)}]],
            "dataDir": str(ipam_dir),
        },
    }


class Cni:
    def __init__(self, plugin_dir: str = CNI_PATH) -> None:
        self.plugin_dir = plugin_dir

    async def add(self, config: dict[str, Any], container_id: str, netns: str, ip: IPv4Address | None = None) -> Any:
        return await self._invoke("ADD", config, container_id, netns, ip)

    async def delete(self, config: dict[str, Any], container_id: str, netns: str) -> None:
        await self._invoke("DEL", config, container_id, netns, None)

    async def _invoke(
        self, command: str, config: dict[str, Any], container_id: str, netns: str, ip: IPv4Address | None
    ) -> Any:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": CONTAINER_IFNAME,
            "CNI_PATH": self.plugin_dir,
        }
        if ip is not None:
            env["CNI_ARGS"] = f"IgnoreUnknown=1;IP={ip}"
        plugin = os.path.join(self.plugin_dir, str(config["type"]))
        try:
            proc = await asyncio.create_subprocess_exec(
                plugin,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as e:
            raise NetworkError(f"CNI plugin {plugin}: {e}") from None
        out, err = await proc.communicate(json.dumps(config).encode())
        if proc.returncode != 0:
            raise NetworkError(f"CNI {config['type']} {command} for {container_id}: {_error_text(out, err)}")
        return json.loads(out) if out.strip() else None


def _error_text(out: bytes, err: bytes) -> str:
    try:
        reply = json.loads(out)
        return " ".join(str(reply.get(k, "")) for k in ("msg", "details")).strip()
    except (ValueError, AttributeError):
        return (out + err).decode(errors="replace").strip()
