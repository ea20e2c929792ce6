"""The Garden backend as the HTTP layer sees it: one object per server.

Each method is one Garden operation; it resolves the handle, holds the container's grace
countdown while it runs, and delegates to the part that owns the semantics.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gardend.backend.attachments import Attachment, OutputStream
from gardend.backend.containers import ContainerBackend
from gardend.backend.processes import ProcessBackend
from gardend.backend.store import ContainerRecord
from gardend.errors import GardenError
from gardend.models import Capacity, ContainerInfo, ContainerSpec, ProcessSpec, to_wire


class Garden:
    def __init__(self, containers: ContainerBackend) -> None:
        self.containers = containers
        self.processes = ProcessBackend(containers)

    async def start(self) -> None:
        await self.containers.start()
        await self.processes.start()

    async def close(self) -> None:
        await self.processes.close()
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
            await self.processes.settle(record)

    async def info(self, handle: str) -> ContainerInfo:
        async with self.containers.activity(handle) as record:
            return self.containers.info(record, self.processes.live_ids(record))

    async def bulk_info(self, handles: list[str]) -> dict[str, Any]:
        """Per-handle results; an unknown handle is an entry's error, never the call's."""
        entries: dict[str, Any] = {}
        for handle in handles:
            try:
                record = self.containers.get(handle)
                info = self.containers.info(record, self.processes.live_ids(record))
                entries[handle] = {"Info": to_wire(info), "Err": None}
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

    def run(self, handle: str, spec: ProcessSpec) -> contextlib.AbstractAsyncContextManager[Attachment]:
        """Starts a process; the grace countdown holds while the caller keeps the attachment."""
        return self._attachment(handle, lambda record: self.processes.run(record, spec))

    def attach(self, handle: str, process_id: str) -> contextlib.AbstractAsyncContextManager[Attachment]:
        return self._attachment(handle, lambda record: self.processes.attach(record, process_id))

    @contextlib.asynccontextmanager
    async def _attachment(
        self, handle: str, open_attachment: Callable[[ContainerRecord], Awaitable[Attachment]]
    ) -> AsyncIterator[Attachment]:
        async with self.containers.activity(handle) as record:
            attachment = await open_attachment(record)
            try:
                yield attachment
            finally:
                attachment.finish()

    def output(self, stream_id: str, name: str) -> OutputStream | None:
        """An attachment's stdout or stderr; streams are found by stream id alone, as Garden does."""
        return self.processes.output(stream_id, name)
