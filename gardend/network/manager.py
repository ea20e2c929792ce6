"""The server's container networking: what the backend calls to give a container its network.

State lives where it is needed: leases and mappings in the container records (the
backend persists ``Attachment`` fields), and on the host the pinned namespace, the CNI
plugins' veth and IPAM files, the bridge and the iptables chains. ``start`` rebuilds the
host side from the records, so a crash at any point leaves nothing that a restart does
not either repair or remove.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shutil
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from gardend.config import Config
from gardend.models import NetIn, NetOutRule
from gardend.network import cni, host, netns
from gardend.network.chains import ContainerRules, Layout
from gardend.network.command import NetworkError
from gardend.network.iptables import Iptables, chains, removal
from gardend.network.netout import rule_specs
from gardend.network.pool import Lease, SubnetPool
from gardend.network.ports import PortPool

log = logging.getLogger("gardend.network")

IPAM_METADATA = ("lock", "last_reserved_ip.0")


@dataclass(frozen=True)
class Settings:
    pool: IPv4Network
    deny: tuple[IPv4Network, ...]
    allow: tuple[IPv4Network, ...]
    allow_host_access: bool
    dns_servers: tuple[str, ...]
    additional_dns_servers: tuple[str, ...]
    external_ip: str
    port_start: int
    port_size: int
    state_dir: Path

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        """Raises ValueError naming the bad flag value."""
        for server in (*config.dns_servers, *config.additional_dns_servers):
            IPv4Address(server)
        if config.external_ip:
            IPv4Address(config.external_ip)
        return cls(
            pool=IPv4Network(config.network_pool),
            deny=tuple(IPv4Network(n) for n in config.deny_networks),
            allow=tuple(IPv4Network(n) for n in config.allow_networks),
            allow_host_access=config.allow_host_access,
            dns_servers=config.dns_servers,
            additional_dns_servers=config.additional_dns_servers,
            external_ip=config.external_ip,
            port_start=config.port_pool_start,
            port_size=config.port_pool_size,
            state_dir=config.depot / "network",
        )


@dataclass
class Attachment:
    """One container's network, as its record keeps it."""

    container_id: str
    lease: Lease
    netin: list[NetIn] = field(default_factory=list)
    netout: list[NetOutRule] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return cni.bridge_name(self.lease)

    def rules(self) -> ContainerRules:
        return ContainerRules(self.container_id, self.lease.ip, self.bridge, self.netin, self.netout)


class Networker:
    def __init__(self, settings: Settings, plugins: cni.Cni | None = None) -> None:
        self.settings = settings
        self.cni = plugins or cni.Cni()
        self.subnets = SubnetPool(settings.pool)
        self.ports = PortPool(settings.port_start, settings.port_size)
        self.layout = Layout(
            host.pool_tag(settings.pool), settings.pool, settings.deny, settings.allow, settings.allow_host_access
        )
        self.iptables = Iptables()
        self.lock = host.PoolLock(settings.pool)
        self.external_ip = settings.external_ip
        self.live: set[str] = set()
        self._subnet_locks: collections.defaultdict[IPv4Network, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    @property
    def capacity(self) -> int:
        return self.subnets.capacity

    def netns_path(self, container_id: str) -> Path:
        return self.settings.state_dir / "netns" / container_id

    @property
    def ipam_dir(self) -> Path:
        return self.settings.state_dir / "ipam"

    # Server start and stop

    async def start(self, attachments: list[Attachment], doomed: list[Attachment]) -> None:
        """Takes the pool, re-learns the records' leases and ports, and repairs the host to match.

        ``doomed`` are half-created containers the caller will detach: their leases are
        re-learned so that detaching them frees exactly what they held.
        """
        await self.lock.acquire()
        try:
            await self._start(attachments, doomed)
        except BaseException:
            self.lock.release()
            raise

    async def _start(self, attachments: list[Attachment], doomed: list[Attachment]) -> None:
        self.external_ip = self.settings.external_ip or await host.external_ip()
        for att in [*attachments, *doomed]:
            self.subnets.reserve(att.lease)
            for mapping in att.netin:
                self.ports.reserve(mapping.host_port)
            self.live.add(att.container_id)
        await self._remove_orphans()
        await self._rebuild_chains(attachments)

    async def close(self) -> None:
        """Removes the server's chains when no container is left; containers that remain keep their network."""
        try:
            if not self.live:
                async with self.iptables.lock:
                    saved = await self.iptables.save()
                    ours = {t: {c for c in chains(lines) if self.layout.is_ours(c)} for t, lines in saved.items()}
                    await self.iptables.restore(
                        {t: removal(saved[t], ours[t]) for t in ("filter", "nat") if t in saved}
                    )
                await asyncio.to_thread(shutil.rmtree, self.ipam_dir, True)
        finally:
            self.lock.release()

    # Allocation

    async def allocate(self, container_id: str, requested: str, netin: list[NetIn]) -> Attachment:
        """Leases an address and host ports; nothing changes on the host until ``attach``."""
        lease = self.subnets.allocate(requested)
        att = Attachment(container_id, lease)
        self.live.add(container_id)
        try:
            for mapping in netin:
                att.netin.append(await self._map_port(mapping.host_port, mapping.container_port))
        except BaseException:
            self.release(att)
            raise
        return att

    def release(self, att: Attachment) -> bool:
        """Frees the lease and ports; True if the subnet is now unused."""
        for mapping in att.netin:
            self.ports.release(mapping.host_port)
        self.live.discard(att.container_id)
        return self.subnets.release(att.lease)

    async def _map_port(self, host_port: int, container_port: int) -> NetIn:
        elsewhere = await self._ports_mapped_elsewhere()
        port = await asyncio.to_thread(self.ports.acquire, host_port, elsewhere)
        return NetIn(host_port=port, container_port=container_port or port)

    async def _ports_mapped_elsewhere(self) -> set[int]:
        """Host ports other servers' DNAT rules take: they would shadow or be shadowed by ours."""
        saved = await self.iptables.save()
        ports = set()
        for line in saved.get("nat", []):
            words = line.split()
            if "DNAT" in words and "--dport" in words and not self.layout.is_ours(words[1]):
                with contextlib.suppress(ValueError, IndexError):
                    ports.add(int(words[words.index("--dport") + 1]))
        return ports

    # Attach and detach

    async def attach(self, att: Attachment, pid: int) -> None:
        """Gives the namespace of process ``pid`` its interface, and makes the container's chains."""
        path = self.netns_path(att.container_id)
        await netns.pin(path, pid)
        await self._add_interfaces(att, path)
        async with self.iptables.lock:
            await self.iptables.restore(self.layout.container(att.rules()))

    async def repair(self, att: Attachment, pid: int) -> None:
        """At start: moves the interface into a restarted task's namespace, or re-adds a lost one."""
        path = self.netns_path(att.container_id)
        if await netns.pins(path, pid) and await host.link_exists(att.bridge):
            return
        log.info("re-attaching container network", extra={"id": att.container_id})
        await self._delete_interfaces(att, path)
        await netns.remove(path)
        await netns.pin(path, pid)
        await self._add_interfaces(att, path)

    async def _add_interfaces(self, att: Attachment, path: Path) -> None:
        async with self._subnet_locks[att.lease.subnet]:
            await self.cni.add(cni.bridge_config(att.lease, self.ipam_dir), att.container_id, str(path), att.lease.ip)
            await host.set_route_localnet(att.bridge)

    async def detach(self, att: Attachment) -> None:
        """Removes everything ``attach`` made, whatever part of it exists, and frees the lease."""
        chain = self.layout.container_chain(att.lease.ip)
        async with self.iptables.lock:
            saved = await self.iptables.save()
            await self.iptables.restore({t: removal(saved[t], {chain}) for t in ("filter", "nat") if t in saved})
        path = self.netns_path(att.container_id)
        await self._delete_interfaces(att, path)
        await netns.remove(path)
        async with self._subnet_locks[att.lease.subnet]:
            if self.release(att):
                await host.delete_link(att.bridge)

    async def _delete_interfaces(self, att: Attachment, path: Path) -> None:
        pinned = await netns.is_pinned(path)
        try:
            await self.cni.delete(
                cni.bridge_config(att.lease, self.ipam_dir), att.container_id, str(path) if pinned else ""
            )
        except NetworkError as e:
            log.warning("CNI DEL failed; removing the IPAM entry", extra={"id": att.container_id, "error": e.message})
        await asyncio.to_thread(_unlink, self.ipam_dir / att.bridge / str(att.lease.ip))

    # NetIn and NetOut

    async def net_in(self, att: Attachment, host_port: int, container_port: int) -> NetIn:
        mapping = await self._map_port(host_port, container_port)
        try:
            att.netin.append(mapping)
            async with self.iptables.lock:
                await self.iptables.restore({"nat": self.layout.container_nat_chain(att.rules())})
        except BaseException:
            att.netin.remove(mapping)
            self.ports.release(mapping.host_port)
            raise
        return mapping

    @staticmethod
    def check_rules(rules: list[NetOutRule]) -> None:
        """BadRequestError for the first rule iptables could not express."""
        for rule in rules:
            rule_specs(rule, "")

    async def net_out(self, att: Attachment, rules: list[NetOutRule]) -> None:
        self.check_rules(rules)
        att.netout.extend(rules)
        try:
            async with self.iptables.lock:
                await self.iptables.restore({"filter": self.layout.container_filter_chain(att.rules())})
        except BaseException:
            del att.netout[len(att.netout) - len(rules) :]
            raise

    # Start-time cleanup

    async def _remove_orphans(self) -> None:
        """Namespaces, IPAM entries and bridges of this pool that no record claims."""
        netns_dir = self.netns_path("x").parent
        for path in await asyncio.to_thread(_listdir, netns_dir):
            if path.name not in self.live:
                log.info("removing orphaned network namespace", extra={"path": str(path)})
                await netns.remove(path)
        await asyncio.to_thread(_remove_ipam_orphans, self.ipam_dir, self.live)
        in_use = {cni.bridge_name(Lease(s, s.network_address)) for s in self.subnets.used}
        for name in await host.links("bridge"):
            if self._is_our_bridge(name) and name not in in_use:
                log.info("removing orphaned bridge", extra={"bridge": name})
                await host.delete_link(name)

    def _is_our_bridge(self, name: str) -> bool:
        """Named by ``cni.bridge_name`` after a subnet of this pool."""
        if not (name.startswith("gd") and len(name) == 10):
            return False
        try:
            return IPv4Address(bytes.fromhex(name[2:])) in self.settings.pool
        except ValueError:
            return False

    async def _rebuild_chains(self, attachments: list[Attachment]) -> None:
        async with self.iptables.lock:
            saved = await self.iptables.save()
            batches = self.layout.static()
            wanted = {self.layout.container_chain(a.lease.ip) for a in attachments}
            static = {t: chains(lines) for t, lines in batches.items()}
            for table, lines in batches.items():
                stale = sorted(
                    c
                    for c in chains(saved.get(table, []))
                    if self.layout.is_ours(c) and c not in wanted and c not in static[table]
                )
                lines += [f":{c} - [0:0]" for c in stale] + [f"-X {c}" for c in stale]
            for att in attachments:
                for table, lines in self.layout.container(att.rules()).items():
                    batches[table] += lines
            for table, lines in self.layout.builtin_jumps(saved).items():
                batches[table] += lines
            await self.iptables.restore(batches)


def _listdir(path: Path) -> list[Path]:
    return list(path.iterdir()) if path.is_dir() else []


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _remove_ipam_orphans(ipam_dir: Path, live: set[str]) -> None:
    """host-local keeps one file per address, holding the container id on its first line."""
    for network in _listdir(ipam_dir):
        for entry in _listdir(network):
            if entry.name in IPAM_METADATA:
                continue
            owner = entry.read_text(errors="replace").split("\n", 1)[0].strip()
            if owner not in live:
                entry.unlink()
        if not [e for e in _listdir(network) if e.name not in IPAM_METADATA]:
            shutil.rmtree(network, ignore_errors=True)
