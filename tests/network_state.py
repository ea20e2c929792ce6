"""What a gardend's networking left on the host: chains, bridges, veths, namespaces, IPAM files."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from gardend.config import Config
from gardend.network.host import pool_tag


def leftovers(config: Config) -> list[str]:
    """Everything of ``config``'s pool still on the host; empty once its server is gone."""
    pool = ipaddress.IPv4Network(config.network_pool)
    prefix = f"GD-{pool_tag(pool)}-"
    saved = subprocess.run(["iptables-save"], check=True, capture_output=True, text=True).stdout
    found = [line for line in saved.splitlines() if prefix in line]
    links = json.loads(subprocess.run(["ip", "-j", "link"], check=True, capture_output=True, text=True).stdout)
    bridges = set()
    for link in links:
        name = str(link["ifname"])
        if name.startswith("gd") and len(name) == 10:
            try:
                if ipaddress.IPv4Address(bytes.fromhex(name[2:])) in pool:
                    bridges.add(name)
            except ValueError:
                continue
    found += sorted(bridges)
    found += [str(link["ifname"]) for link in links if link.get("master") in bridges]
    network_dir = config.depot / "network"
    found += [str(p) for p in network_dir.glob("netns/*")]
    found += [str(p) for p in network_dir.glob("ipam/*/*") if p.name not in ("lock", "last_reserved_ip.0")]
    return found
