"""The server's iptables chains and each container's, named after the pool and the address.

filter (FORWARD → FWD, INPUT → IN):
  FWD  replies pass; traffic from our containers goes through OUT; other traffic to them passes
  OUT  one goto per container, matched on its address and bridge, to its chain
  C    the container's NetOut rules (ACCEPT), then goto DEF
  DEF  --allow-network ACCEPT, --deny-network REJECT, otherwise ACCEPT
  IN   containers reach the host's own addresses only with --allow-host-access
nat (PREROUTING and OUTPUT to local addresses → PRE, POSTROUTING → POST):
  PRE  one jump per container to its chain C of NetIn DNAT rules
  POST masquerades egress, and loopback clients of NetIn ports (the container could not answer 127.0.0.1)

All names start with ``GD-<pool tag>-``, so servers with different pools never touch each
other's chains, and a container's chain is ``GD-<pool tag>-<address in hex>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from gardend.models import NetIn, NetOutRule
from gardend.network.iptables import declare, target
from gardend.network.netout import rule_specs
from gardend.network.ports import dnat_spec

BUILTIN_JUMPS = {
    "filter": [("FORWARD", "", "FWD"), ("INPUT", "", "IN")],
    "nat": [
        ("PREROUTING", "-m addrtype --dst-type LOCAL ", "PRE"),
        ("OUTPUT", "-m addrtype --dst-type LOCAL ", "PRE"),
        ("POSTROUTING", "", "POST"),
    ],
}


@dataclass(frozen=True)
class ContainerRules:
    container_id: str
    ip: IPv4Address
    bridge: str
    netin: list[NetIn]
    netout: list[NetOutRule]


class Layout:
    def __init__(
        self,
        tag: str,
        pool: IPv4Network,
        deny: Iterable[IPv4Network],
        allow: Iterable[IPv4Network],
        allow_host_access: bool,
    ) -> None:
        self.prefix = f"GD-{tag}-"
        self.pool = pool
        self.deny, self.allow = list(deny), list(allow)
        self.allow_host_access = allow_host_access

    def chain(self, name: str) -> str:
        return self.prefix + name

    def container_chain(self, ip: IPv4Address) -> str:
        return self.prefix + ip.packed.hex()

    def is_ours(self, chain: str) -> bool:
        return chain.startswith(self.prefix)

    def static(self) -> dict[str, list[str]]:
        """Declarations (which empty the chains) and rules of the server's own chains."""
        fwd, out, default, inp = (self.chain(n) for n in ("FWD", "OUT", "DEF", "IN"))
        pre, post = self.chain("PRE"), self.chain("POST")
        pool = str(self.pool)
        established = "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        filter_rules = [
            *(declare(c) for c in (fwd, out, default, inp)),
            f"-A {fwd} -d {pool} {established}",
            f"-A {fwd} -s {pool} {established}",
            f"-A {fwd} -s {pool} -j {out}",
            f"-A {fwd} -s {pool} -j DROP",
            f"-A {fwd} -d {pool} -j ACCEPT",
            *(f"-A {default} -d {n} -j ACCEPT" for n in self.allow),
            *(f"-A {default} -d {n} -j REJECT --reject-with icmp-port-unreachable" for n in self.deny),
            f"-A {default} -j ACCEPT",
            f"-A {inp} -s {pool} {established}",
        ]
        if not self.allow_host_access:
            filter_rules.append(f"-A {inp} -s {pool} -j REJECT --reject-with icmp-host-prohibited")
        nat_rules = [
            declare(pre),
            declare(post),
            f"-A {post} -s 127.0.0.0/8 -d {pool} -j MASQUERADE",
            f"-A {post} -s {pool} ! -d {pool} -j MASQUERADE",
        ]
        return {"filter": filter_rules, "nat": nat_rules}

    def builtin_jumps(self, saved: dict[str, list[str]]) -> dict[str, list[str]]:
        """Rules that hook the server's chains into the built-in ones, where missing."""
        batches: dict[str, list[str]] = {}
        for table, jumps in BUILTIN_JUMPS.items():
            present = {
                (line.split()[1], target(line.split())) for line in saved.get(table, []) if line.startswith("-A")
            }
            batches[table] = [
                f"-I {builtin} 1 {match}-j {self.chain(ours)}"
                for builtin, match, ours in jumps
                if (builtin, self.chain(ours)) not in present
            ]
        return batches

    def container_filter_chain(self, c: ContainerRules) -> list[str]:
        chain = self.container_chain(c.ip)
        rules = [spec for rule in c.netout for spec in rule_specs(rule, c.container_id[:28])]
        return [declare(chain), *(f"-A {chain} {spec}" for spec in rules), f"-A {chain} -g {self.chain('DEF')}"]

    def container_nat_chain(self, c: ContainerRules) -> list[str]:
        chain = self.container_chain(c.ip)
        return [declare(chain), *(f"-A {chain} {dnat_spec(m.host_port, c.ip, m.container_port)}" for m in c.netin)]

    def container(self, c: ContainerRules) -> dict[str, list[str]]:
        """A container's chains and the rules that lead to them."""
        chain = self.container_chain(c.ip)
        return {
            "filter": [
                *self.container_filter_chain(c),
                f"-A {self.chain('OUT')} -s {c.ip}/32 -i {c.bridge} -g {chain}",
            ],
            "nat": [*self.container_nat_chain(c), f"-A {self.chain('PRE')} -j {chain}"],
        }
