"""Container subnets and addresses from the server's pool, as Guardian allocates them.

By default each container gets a /30 of its own (gateway = first address, container =
second). A create request's ``network`` may name a subnet ("10.254.1.0/24": next free
address in it, shared with other containers naming it) or an address in one
("10.254.1.5/24": exactly that address). Requested subnets must lie inside the pool, so
gardend never routes an address range it was not given.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_interface

from gardend.errors import BadRequestError, ConflictError

DEFAULT_PREFIX = 30


@dataclass(frozen=True)
class Lease:
    subnet: IPv4Network
    ip: IPv4Address

    @property
    def gateway(self) -> IPv4Address:
        return gateway_of(self.subnet)


def gateway_of(subnet: IPv4Network) -> IPv4Address:
    return subnet.network_address + 1


class SubnetPool:
    def __init__(self, pool: IPv4Network) -> None:
        if pool.prefixlen > DEFAULT_PREFIX:
            raise ValueError(f"network pool {pool} is smaller than one /{DEFAULT_PREFIX}")
        self.pool = pool
        self.used: dict[IPv4Network, set[IPv4Address]] = {}

    @property
    def capacity(self) -> int:
        """How many containers fit when each has its own /30, which is what gdn reports."""
        return int(self.pool.num_addresses) >> (32 - DEFAULT_PREFIX)

    def allocate(self, requested: str) -> Lease:
        lease = self._dynamic() if not requested else self._requested(requested)
        self.used.setdefault(lease.subnet, set()).add(lease.ip)
        return lease

    def reserve(self, lease: Lease) -> None:
        """Records a lease found at start; a clash means two records claim one address."""
        ips = self.used.setdefault(lease.subnet, set())
        if lease.ip in ips:
            raise ConflictError(f"address {lease.ip} is claimed twice")
        ips.add(lease.ip)

    def release(self, lease: Lease) -> bool:
        """Frees the address; True when its subnet has no container left."""
        ips = self.used.get(lease.subnet, set())
        ips.discard(lease.ip)
        if not ips:
            self.used.pop(lease.subnet, None)
            return True
        return False

    def _dynamic(self) -> Lease:
        for subnet in self.pool.subnets(new_prefix=DEFAULT_PREFIX):
            if not any(subnet.overlaps(u) for u in self.used):
                return Lease(subnet, gateway_of(subnet) + 1)
        raise ConflictError(f"insufficient subnets remaining in the pool {self.pool}")

    def _requested(self, requested: str) -> Lease:
        try:
            iface = ip_interface(requested if "/" in requested else f"{requested}/{DEFAULT_PREFIX}")
        except ValueError:
            raise BadRequestError(f"invalid network {requested!r}: must be a.b.c.d/n") from None
        if not isinstance(iface, IPv4Interface):
            raise BadRequestError(f"invalid network {requested!r}: only IPv4 is supported")
        subnet = iface.network
        if subnet.prefixlen > DEFAULT_PREFIX:
            raise BadRequestError(f"network {requested!r} is smaller than a /{DEFAULT_PREFIX}")
        if not subnet.subnet_of(self.pool):
            raise BadRequestError(f"network {requested!r} is outside the network pool {self.pool}")
        if any(subnet.overlaps(u) and subnet != u for u in self.used):
            raise ConflictError(f"network {requested!r} overlaps a subnet already in use")
        used = self.used.get(subnet, set())
        if iface.ip != subnet.network_address:
            if iface.ip in (gateway_of(subnet), subnet.broadcast_address):
                raise BadRequestError(f"address {iface.ip} is the gateway or broadcast address of {subnet}")
            if iface.ip in used:
                raise ConflictError(f"address {iface.ip} is already in use")
            return Lease(subnet, iface.ip)
        for ip in subnet.hosts():
            if ip != gateway_of(subnet) and ip not in used:
                return Lease(subnet, ip)
        raise ConflictError(f"no address left in network {subnet}")
