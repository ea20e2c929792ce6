"""Garden bandwidth limits as tc rules on the interfaces inside a container's network namespace.

Outgoing traffic goes through a token-bucket (tbf) root qdisc on each interface. Incoming
traffic is redirected by a tc filter on the interface's ingress qdisc to an IFB device
whose own tbf qdisc shapes it the same way (policing actions are often not built into
the kernel; IFB and mirred usually are). Everything sits inside the container's network
namespace, where its capabilities (no NET_ADMIN) cannot undo it. Rates and bursts are
bytes per second and bytes, as in Garden.
"""

from __future__ import annotations

import json
from typing import Any

from gardend import command
from gardend.errors import GardenError
from gardend.models import BandwidthLimits

LATENCY = "25ms"
MIN_BURST = 1600
"""A bucket smaller than one full-size packet would pass nothing at all."""
INGRESS_HANDLE = "ffff:"
IFB_PREFIX = "gardend-ifb"


class BandwidthError(GardenError):
    """tc or ip failed to apply a bandwidth limit."""


async def _in_netns(netns: str, *argv: str) -> str:
    return (await command.run("nsenter", f"--net={netns}", "--", *argv, error=BandwidthError))[1]


async def _links(netns: str) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = json.loads(await _in_netns(netns, "ip", "-details", "-json", "link", "show"))
    return links


def _shapeable(links: list[dict[str, Any]]) -> list[str]:
    """Interfaces other than loopback and IFB devices (ours)."""
    return [
        str(link["ifname"])
        for link in links
        if link.get("link_type") != "loopback" and link.get("linkinfo", {}).get("info_kind") != "ifb"
    ]


async def shape(netns: str, limits: BandwidthLimits) -> list[str]:
    """Limits every interface in ``netns`` both ways; returns the interfaces it limited.

    Safe to repeat (gardend does at start): existing rules are replaced.
    """
    tbf = ["tbf", "rate", f"{limits.rate}bps", "burst", str(max(limits.burst, MIN_BURST)), "latency", LATENCY]
    links = await _links(netns)
    existing = {str(link["ifname"]) for link in links}
    shaped = _shapeable(links)
    for index, dev in enumerate(shaped):
        ifb = f"{IFB_PREFIX}{index}"
        if ifb not in existing:
            await _in_netns(netns, "ip", "link", "add", ifb, "type", "ifb")
        await _in_netns(netns, "ip", "link", "set", ifb, "up")
        for target in (dev, ifb):
            await _in_netns(netns, "tc", "qdisc", "replace", "dev", target, "root", *tbf)
        await _in_netns(netns, "tc", "qdisc", "replace", "dev", dev, "handle", INGRESS_HANDLE, "ingress")
        await _in_netns(
            netns, "tc", "filter", "replace", "dev", dev, "parent", INGRESS_HANDLE, "protocol", "all", "prio", "1",
            "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb,
        )  # fmt: skip
    return shaped
