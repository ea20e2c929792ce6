"""NetIn: host ports forwarded to container ports, picked from the server's port pool.

A mapping is a DNAT rule in the container's nat chain, which the server's chain runs for
traffic to any local address, both arriving (PREROUTING) and from the host itself
(OUTPUT): so a port answers on the external address and on loopback alike.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

from gardend.errors import BadRequestError, ConflictError


def dnat_spec(host_port: int, ip: IPv4Address, container_port: int) -> str:
    return f"-p tcp -m tcp --dport {host_port} -j DNAT --to-destination {ip}:{container_port}"


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class PortPool:
    def __init__(self, start: int, size: int) -> None:
        if not 0 < start <= start + size - 1 <= 65535:
            raise ValueError(f"port pool {start}+{size} is not within 1-65535")
        self.start, self.size = start, size
        self.used: set[int] = set()
        self._next = start

    def acquire(self, host_port: int, taken_elsewhere: set[int]) -> int:
        """``host_port``, or a free one from the pool for 0; blocks a port until released.

        A free port is one no container of ours maps, no other server's rule maps
        (``taken_elsewhere``) and nothing on the host listens on. Called in a thread.
        """
        if not 0 <= host_port <= 65535:
            raise BadRequestError(f"host port {host_port} is out of range")
        if host_port:
            if host_port in self.used or host_port in taken_elsewhere:
                raise ConflictError(f"host port {host_port} is already mapped")
            self.used.add(host_port)
            return host_port
        for i in range(self.size):
            port = self.start + (self._next - self.start + i) % self.size
            if port not in self.used and port not in taken_elsewhere and _bindable(port):
                self._next = port + 1 if port + 1 < self.start + self.size else self.start
                self.used.add(port)
                return port
        raise ConflictError(f"no free port left in the port pool {self.start}-{self.start + self.size - 1}")

    def reserve(self, port: int) -> None:
        self.used.add(port)

    def release(self, port: int) -> None:
        self.used.discard(port)
