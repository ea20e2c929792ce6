"""Container networking as the backend sees it: records in, Garden fields and errors out.

The container's lease and port mappings are kept in its record's spec, so that a
restarted server re-learns them from containerd; the host side is the Networker's.
With ``--disable-networking`` containers get a fresh namespace with loopback only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from gardend.backend.store import ContainerRecord, ContainerStore
from gardend.config import Config
from gardend.errors import BadRequestError
from gardend.models import NetIn, NetOutRule, PortMapping
from gardend.network import dns
from gardend.network.manager import Attachment, Networker, Settings
from gardend.network.pool import Lease
from gardend.runtime.spec import hostname_for

CONTAINER_IP_KEY = "garden.network.container-ip"
HOST_IP_KEY = "garden.network.host-ip"
EXTERNAL_IP_KEY = "garden.network.external-ip"
MAPPED_PORTS_KEY = "garden.network.mapped-ports"


@dataclass(frozen=True)
class Addresses:
    """Info's HostIP, ContainerIP and ExternalIP; empty without a network."""

    host_ip: str = ""
    container_ip: str = ""
    external_ip: str = ""


class ContainerNetworks:
    def __init__(self, config: Config, store: ContainerStore) -> None:
        self.store = store
        self.config = config
        self.networker = None if config.disable_networking else Networker(Settings.from_config(config))

    @staticmethod
    def attachment(record: ContainerRecord) -> Attachment | None:
        spec = record.spec
        if not spec.container_ip:
            return None
        lease = Lease(IPv4Network(spec.subnet), IPv4Address(spec.container_ip))
        return Attachment(record.id, lease, spec.netin, spec.netout_rules)

    @property
    def capacity(self) -> int | None:
        return self.networker.capacity if self.networker else None

    async def start(self, live: list[ContainerRecord], doomed: list[ContainerRecord]) -> None:
        if self.networker is not None:
            await self.networker.start(_attachments(live), _attachments(doomed))

    async def close(self) -> None:
        if self.networker is not None:
            await self.networker.close()

    async def allocate(self, record: ContainerRecord) -> None:
        """Leases the address and host ports the record asks for, and writes them into it."""
        if self.networker is None:
            return
        self.networker.check_rules(record.spec.netout_rules)
        att = await self.networker.allocate(record.id, record.spec.network, record.spec.netin)
        record.spec.subnet, record.spec.container_ip = str(att.lease.subnet), str(att.lease.ip)
        record.spec.netin = att.netin

    def release(self, record: ContainerRecord) -> None:
        """Undoes ``allocate`` when the container was never made."""
        att = self.attachment(record)
        if self.networker is not None and att is not None:
            self.networker.release(att)

    async def attach(self, record: ContainerRecord, pid: int) -> None:
        """Connects the namespace of the container's (created, not yet started) init process ``pid``."""
        att = self.attachment(record)
        if self.networker is not None and att is not None:
            await self.networker.attach(att, pid)

    async def repair(self, record: ContainerRecord, pid: int) -> None:
        """At start, after the task is running again: reconnects its namespace if need be."""
        att = self.attachment(record)
        if self.networker is not None and att is not None:
            await self.networker.repair(att, pid)

    async def detach(self, record: ContainerRecord) -> None:
        att = self.attachment(record)
        if self.networker is not None and att is not None:
            await self.networker.detach(att)

    async def seeds(self, record: ContainerRecord) -> dict[str, bytes]:
        """/etc/hosts and /etc/resolv.conf for the container's layer."""
        att = self.attachment(record)
        resolv_conf = await dns.container_resolv_conf(self.config.dns_servers, self.config.additional_dns_servers)
        return {
            "etc/hosts": dns.hosts_file(hostname_for(record.handle), att.lease.ip if att else None),
            "etc/resolv.conf": resolv_conf,
        }

    def addresses(self, record: ContainerRecord) -> Addresses:
        att = self.attachment(record)
        if self.networker is None or att is None:
            return Addresses()
        return Addresses(str(att.lease.gateway), str(att.lease.ip), self.networker.external_ip)

    def mapped_ports(self, record: ContainerRecord) -> list[PortMapping]:
        return [PortMapping(host_port=m.host_port, container_port=m.container_port) for m in record.spec.netin]

    def properties(self, record: ContainerRecord) -> dict[str, str]:
        """The ``garden.network.*`` properties Guardian sets."""
        addresses = self.addresses(record)
        if not addresses.container_ip:
            return {}
        mapped = [{"HostPort": m.host_port, "ContainerPort": m.container_port} for m in record.spec.netin]
        return {
            CONTAINER_IP_KEY: addresses.container_ip,
            HOST_IP_KEY: addresses.host_ip,
            EXTERNAL_IP_KEY: addresses.external_ip,
            MAPPED_PORTS_KEY: json.dumps(mapped, separators=(",", ":")),
        }

    async def net_in(self, record: ContainerRecord, host_port: int, container_port: int) -> NetIn:
        att = self._require(record)
        mapping = await self.networker_or_fail().net_in(att, host_port, container_port)
        record.spec.netin = att.netin
        await self.store.save_spec(record)
        return mapping

    async def net_out(self, record: ContainerRecord, rules: list[NetOutRule]) -> None:
        att = self._require(record)
        await self.networker_or_fail().net_out(att, rules)
        record.spec.netout_rules = att.netout
        await self.store.save_spec(record)

    def networker_or_fail(self) -> Networker:
        if self.networker is None:
            raise BadRequestError("networking is disabled on this server (--disable-networking)")
        return self.networker

    def _require(self, record: ContainerRecord) -> Attachment:
        att = self.attachment(record)
        if att is None:
            raise BadRequestError(f"container {record.handle} has no network")
        return att


def _attachments(records: list[ContainerRecord]) -> list[Attachment]:
    return [a for a in (ContainerNetworks.attachment(r) for r in records) if a is not None]
