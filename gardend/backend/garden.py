"""The Garden backend as the HTTP layer sees it: one object per server.

Each method is one Garden operation; it resolves the handle, holds the container's grace
countdown while it runs, and delegates to the part that owns the semantics.
"""

from __future__ import annotations

from typing import Any

from gardend.backend.containers import ContainerBackend
from gardend.errors import GardenError
from gardend.models import Capacity, ContainerInfo, ContainerSpec, NetIn, NetOutRule, to_wire


class Garden:
    def __init__(self, containers: ContainerBackend) -> None:
        self.containers = containers

    async def start(self) -> None:
        await self.containers.start()

    async def close(self) -> None:
        await self.containers.close()

    async def ping(self) -> None:
        await self.containers.ping()

    async def capacity(self) -> Capacity:
        return await self.containers.capacity()

    async def create(self, spec: ContainerSpec) -> str:
        return await self.containers.create(spec)

    def list_handles(self, filters: dict[str, str]) -> list[str]:
        return self.containers.list_handles(filters)

    async def destroy(self, handle: str) -> None:
        await self.containers.destroy(handle)

    async def stop(self, handle: str, kill: bool) -> None:
        async with self.containers.activity(handle) as record:
            await self.containers.stop(record, kill)

    async def info(self, handle: str) -> ContainerInfo:
        async with self.containers.activity(handle) as record:
            return self.containers.info(record, [])

    async def bulk_info(self, handles: list[str]) -> dict[str, Any]:
        """Per-handle results; an unknown handle is an entry's error, never the call's."""
        entries: dict[str, Any] = {}
        for handle in handles:
            try:
                record = self.containers.get(handle)
                entries[handle] = {"Info": to_wire(self.containers.info(record, [])), "Err": None}
            except GardenError as e:
                entries[handle] = {"Info": to_wire(ContainerInfo()), "Err": e.to_wire()}
        return entries

    async def properties(self, handle: str) -> dict[str, str]:
        async with self.containers.activity(handle) as record:
            return self.containers.properties(record)

    async def property(self, handle: str, key: str) -> str:
        async with self.containers.activity(handle) as record:
            return self.containers.property(record, key)

    async def set_property(self, handle: str, key: str, value: str) -> None:
        async with self.containers.activity(handle) as record:
            await self.containers.set_property(record, key, value)

    async def remove_property(self, handle: str, key: str) -> None:
        async with self.containers.activity(handle) as record:
            await self.containers.remove_property(record, key)

    async def set_grace_time(self, handle: str, grace_ns: int) -> None:
        await self.containers.set_grace_time(handle, grace_ns)

    async def net_in(self, handle: str, host_port: int, container_port: int) -> NetIn:
        async with self.containers.activity(handle) as record:
            return await self.containers.networks.net_in(record, host_port, container_port)

    async def net_out(self, handle: str, rules: list[NetOutRule]) -> None:
        async with self.containers.activity(handle) as record:
            await self.containers.networks.net_out(record, rules)
