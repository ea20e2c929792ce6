"""NetOut rules as iptables rule specs, in Guardian's terms.

A rule accepts traffic matching its protocol, destination ranges and ports (every
combination of a range and a port range); with ``log`` set, new connections are logged
first. Rules only ever allow: what they don't match falls to the server's default policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import AddressValueError, IPv4Address

from gardend.errors import BadRequestError
from gardend.models import IPRange, NetOutRule, PortRange

PROTOCOLS = {0: "all", 1: "tcp", 2: "udp", 3: "icmp"}
ICMPV6 = 4


def rule_specs(rule: NetOutRule, log_prefix: str) -> list[str]:
    """The iptables match-and-target strings for ``rule``; BadRequestError if it is not valid."""
    if rule.protocol == ICMPV6:
        raise BadRequestError("NetOut: icmpv6 rules are not supported: containers have IPv4 only")
    if rule.protocol not in PROTOCOLS:
        raise BadRequestError(f"NetOut: invalid protocol {rule.protocol}")
    protocol = PROTOCOLS[rule.protocol]
    if rule.ports and protocol == "all":
        raise BadRequestError("NetOut: ports cannot be given for protocol all")
    if rule.icmps is not None and protocol != "icmp":
        raise BadRequestError("NetOut: icmp types can only be given for protocol icmp")
    specs = []
    for network in _networks(rule.networks or []):
        for ports in _ports(rule.ports or [] if protocol in ("tcp", "udp") else []):
            match = " ".join(p for p in (_protocol(rule), network, ports) if p)
            if rule.log:
                specs.append(f'{match} -m conntrack --ctstate NEW -j LOG --log-prefix "{log_prefix} "'.lstrip())
            specs.append(f"{match} -j ACCEPT".lstrip())
    return specs


def _protocol(rule: NetOutRule) -> str:
    if rule.protocol == 0:
        return ""
    name = PROTOCOLS[rule.protocol]
    if name == "icmp" and rule.icmps is not None:
        icmp_type = str(rule.icmps.type) if rule.icmps.code is None else f"{rule.icmps.type}/{rule.icmps.code}"
        return f"-p icmp -m icmp --icmp-type {icmp_type}"
    return f"-p {name}"


def _networks(ranges: list[IPRange]) -> Iterator[str]:
    if not ranges:
        yield ""
    for r in ranges:
        start, end = _address(r.start or r.end), _address(r.end or r.start)
        if start is None or end is None:
            yield ""
        elif int(end) < int(start):
            raise BadRequestError(f"NetOut: network range {start}-{end} ends before it starts")
        elif start == end:
            yield f"-d {start}/32"
        else:
            yield f"-m iprange --dst-range {start}-{end}"


def _address(text: str) -> IPv4Address | None:
    if not text:
        return None
    try:
        return IPv4Address(text)
    except AddressValueError:
        raise BadRequestError(f"NetOut: invalid IPv4 address {text!r}") from None


def _ports(ranges: list[PortRange]) -> Iterator[str]:
    if not ranges:
        yield ""
    for r in ranges:
        end = r.end or r.start
        if end < r.start:
            raise BadRequestError(f"NetOut: port range {r.start}-{end} ends before it starts")
        yield f"--dport {r.start}" if r.start == end else f"--dport {r.start}:{end}"
